"""Time each status-view page on a generated ledger of 100,000 records per side (for ``make bench``).

    .venv/bin/python scripts/ui/bench_pages.py [--records 100000] [--repeat 5] [--db PATH]

Writes a SQLite ledger shaped like a real one after a full and a modified run of Facturama contacts
(100k invoicing clients, 100k Clientify contacts, 70% linked, the full run's plan itemised, a
thousand dead letters, five thousand conflicts), then renders every page through the app (auth
overridden: the pages, not Airflow's login, are measured) and prints the median time and the number of
SQL statements of each. Target: every page under 300 ms (the opt-in substring search excepted).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import sqlalchemy as sa  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from clientify_sync.engine import ledger as L  # noqa: E402
from clientify_sync.engine.ledger import schema  # noqa: E402
from clientify_sync.ui import app as ui  # noqa: E402
from clientify_sync.ui import queries as Q  # noqa: E402

FULL, MODIFIED = "scheduled__2026-11-28T10:00:00+00:00", "scheduled__2026-11-29T10:00:00+00:00"
TO_CRM = "invoicing→clientify"
TARGET_MS = 300.0
# The opt-in "anywhere in names and e-mails" search scans every record: reported, not held to the target.
SCAN = "search inside names (opt-in scan)"


def _rfc(n: int) -> str:
    return f"BEN{chr(65 + n % 26)}{800101 + n % 300000:06d}"[:10] + f"{n % 1000:03d}"


def build(path: Path, records: int) -> str:
    """The generated ledger; returns its URL."""
    url = f"sqlite:///{path}"
    engine = L.create_ledger_engine(url)
    L.upgrade_schema(engine)
    now = datetime(2026, 11, 29, 10, tzinfo=UTC)
    scope = {"integration": "facturama", "entity": "contacts"}
    with engine.begin() as conn:
        for start in range(0, records, 5000):
            chunk = range(start, min(records, start + 5000))
            rows = []
            for n in chunk:
                data = {"tax_id": _rfc(n), "name": f"Cliente {n} Pérez", "email": f"cliente{n}@example.mx",
                        "street": f"Calle {n}", "city": "CDMX", "state": "CDMX", "postal_code": "06600", "country": "MX"}  # fmt: skip
                common = {**scope, "key": _rfc(n), "kind": "person", "problem": None, "hash": f"h{n}",
                          "prev_hash": None, "modified": None, "seen_run": FULL, "data": data, "raw": None}  # fmt: skip
                rows.append({**common, "side": "invoicing", "rtype": "client", "rid": f"I{n}", "link": None})
                rows.append({**common, "side": "clientify", "rtype": "contact", "rid": f"{1000000 + n}",
                             "link": f"I{n}" if n % 10 < 7 else None})  # fmt: skip
            conn.execute(sa.insert(schema.remote_records), rows)
            conn.execute(sa.insert(schema.links), [
                {**scope, "inv_type": "client", "inv_id": f"I{n}", "crm_type": "contact", "crm_id": f"{1000000 + n}",
                 "base": {"email": f"cliente{n}@example.mx"}, "inv_hash": "", "crm_hash": "", "updated_run": FULL,
                 "updated_at": now} for n in chunk if n % 10 < 7
            ])  # fmt: skip
            conn.execute(sa.insert(schema.plan_items), [
                {**scope, "run_id": FULL, "pair": f"inv:client:I{n}", "action": "create" if n % 10 >= 7 else "update",
                 "target": "clientify", "direction": TO_CRM, "inv_type": "client", "inv_id": f"I{n}",
                 "crm_type": "contact", "crm_id": None if n % 10 >= 7 else f"{1000000 + n}", "fields": ["email"],
                 "merged": None, "reason": None, "detail": "HTTP 400" if n % 100 == 0 else None,
                 "status": "done", "priority": 1, "outcome": "failed" if n % 100 == 0 else "created", "result": None}
                for n in chunk
            ])  # fmt: skip
        conn.execute(sa.insert(schema.plan_items), [
            {**scope, "run_id": MODIFIED, "pair": f"inv:client:I{n}", "action": "update", "target": "clientify",
             "direction": TO_CRM, "inv_type": "client", "inv_id": f"I{n}", "crm_type": "contact",
             "crm_id": f"{1000000 + n}", "fields": ["email"], "merged": None, "reason": None, "detail": None,
             "status": "done", "priority": 1, "outcome": "updated", "result": None}
            for n in range(0, records, 50)
        ])  # fmt: skip
        conn.execute(sa.insert(schema.conflicts), [
            {**scope, "run_id": MODIFIED, "inv_id": f"I{n}", "crm_type": "contact", "crm_id": f"{1000000 + n}",
             "field": "email", "invoicing_value": "a@x.mx", "clientify_value": "b@x.mx", "base_value": "c@x.mx",
             "winner": "clientify", "created_at": now} for n in range(0, records, max(1, records // 5000))
        ])  # fmt: skip
        conn.execute(sa.insert(schema.dead_letters), [
            {**scope, "side": "invoicing", "rtype": "client", "rid": f"I{n}", "reason": "validation_error",
             "detail": "HTTP 400", "attempts": 1 + n % 6, "first_run": FULL, "last_run": MODIFIED}
            for n in range(0, records, 100)
        ])  # fmt: skip
        report = {"counts": {TO_CRM: {"created": records // 2, "failed": records // 100}}, "unchanged": records // 3,
                  "reasons": {"quarantined:duplicate_tax_id": 12}, "watermark_out": "2026-11-29T10:00:00Z",
                  "calls": {"facturama": {"calls": 1000, "retries": 0, "errors": 0}}}  # fmt: skip
        for run_id, started in ((FULL, now - timedelta(days=1)), (MODIFIED, now)):
            conn.execute(sa.insert(schema.runs).values(**scope, run_id=run_id, mode="full", dry_run=False,
                                                  started_at=started, finished_at=started, report=report))  # fmt: skip
    engine.dispose()
    return url


def measure(url: str, repeat: int) -> list[tuple[str, float, int]]:
    """(page, median ms, SQL statements) for every page."""
    engine = L.create_ledger_engine(url)
    Q.ensure_indexes(engine)
    view = Q.LedgerView(engine)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    ours = frozenset(Q.dag_id_for(*s) for s in Q.all_scopes())
    sub = ui.create_app()
    sub.dependency_overrides[ui.get_viewer] = lambda: ui.Viewer("bench", ours, ours)
    sub.dependency_overrides[ui.get_view] = lambda: view
    sub.dependency_overrides[ui.get_run_states] = lambda: lambda keys: {}
    root = FastAPI()
    root.mount(ui.URL_PREFIX, sub)
    client = TestClient(root)
    p = ui.URL_PREFIX
    pages = {
        "overview": f"{p}/",
        "run (full run, first page)": f"{p}/runs/facturama_contacts/{FULL}",
        "run (failed only)": f"{p}/runs/facturama_contacts/{FULL}?outcome=failed",
        "search tax ID": f"{p}/records?q={_rfc(73123)}",
        "search id": f"{p}/records?q=1073123",
        "search name (common)": f"{p}/records?q=cliente 7",
        "search e-mail start": f"{p}/records?q=cliente7312",
        SCAN: f"{p}/records?q=nobody%20at%20all&contains=true",
        "record": f"{p}/records/facturama_contacts/invoicing/client/I73150",
        "conflicts": f"{p}/conflicts",
        "conflicts (field filter)": f"{p}/conflicts?field=email&winner=clientify",
        "dead letters (open)": f"{p}/dead-letters",
        "dead letters (exhausted)": f"{p}/dead-letters?state=exhausted",
    }
    results = []
    for name, url_path in pages.items():
        assert client.get(url_path).status_code == 200, name  # warm-up (and reflection of cs_dead_letters)
        times = []
        for _ in range(repeat):
            statements.clear()
            started = time.perf_counter()
            response = client.get(url_path)
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, name
        count = sum(
            1 for s in statements if s.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")
        )
        results.append((name, statistics.median(times), count))
    engine.dispose()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="ledger file to (re)create (default: a temporary one)")
    args = parser.parse_args(argv)
    scratch = None if args.db else Path(tempfile.mkdtemp(prefix="clientify-sync-ui-bench-"))
    db = args.db or scratch / "ledger.db"  # type: ignore[operator]
    db.unlink(missing_ok=True)
    try:
        started = time.perf_counter()
        url = build(db, args.records)
        print(f"ledger: {args.records:,} records per side in {time.perf_counter() - started:.1f} s ({db})")
        results = measure(url, args.repeat)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"\n| page | median ms ({args.repeat} runs) | SQL statements |\n|---|---|---|")
    for name, ms, count in results:
        over = ms > TARGET_MS and name != SCAN
        print(f"| {name} | {ms:.0f}{' **over target**' if over else ''} | {count} |")
    return 0 if all(ms <= TARGET_MS or name == SCAN for name, ms, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
