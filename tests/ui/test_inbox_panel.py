"""The overview's webhook-inbox panel over HTTP: each inbox's counts and times, the latency of the last runs
that claimed events, only the DAGs the user may read, and still nothing for an anonymous request."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from clientify_sync.engine.ledger import Ledger, write_transaction
from clientify_sync.engine.ledger.inbox import InboxEvent, add
from clientify_sync.engine.ledger.schema import inbox
from clientify_sync.ui import app as ui
from clientify_sync.ui import queries as Q
from tests.ui.conftest import count_statements, make_client

P = ui.URL_PREFIX
NOW = datetime.now(UTC).replace(microsecond=0)
EVENT_RUN = "asset_triggered__2026-12-01T10:00:05+00:00"
OLDER_EVENT_RUN = "asset_triggered__2026-12-01T09:00:05+00:00"
CLOCK_RUN = "scheduled__2026-12-01T08:00:00+00:00"


def event(
    rid: str, source: str = "clientify", entity: str = "contacts", event_type: str = "contact.saved"
) -> InboxEvent:
    return InboxEvent(source=source, entity=entity, record_type=event_type.split(".")[0], external_id=rid,
                      event_type=event_type, dedupe_key=f"{source}-{rid}-{event_type}", payload_sha256="0" * 64)  # fmt: skip


def claimed_by(view: Q.LedgerView, integration: str, entity: str, run_id: str, mode: str,
               received: list[tuple[str, datetime]], committed: datetime) -> None:  # fmt: skip
    """``received`` events (id, when) claimed by ``run_id`` (a run in ``mode``) and committed at ``committed``."""
    ledger = Ledger(view.engine, integration, entity)
    ledger.runs.start(run_id, mode, False)
    with write_transaction(view.engine) as conn:
        for rid, at in received:
            add(conn, event(rid), [integration], at=at)
    ledger.inbox.claim(run_id)
    ledger.inbox.finish_run(run_id)
    with write_transaction(view.engine) as conn:  # the commit's time, fixed
        conn.execute(sa.update(inbox).where(inbox.c.claimed_by_run == run_id).values(processed_at=committed))


@pytest.fixture
def with_inboxes(view: Q.LedgerView) -> Q.LedgerView:
    """Facturama contacts: two event-woken runs and a clock run that claimed events, three events pending;
    FacturaDirecta contacts: one FacturaDirecta event pending."""
    at = NOW - timedelta(minutes=30)
    claimed_by(view, "facturama", "contacts", CLOCK_RUN, "modified", [("7", at - timedelta(hours=2))],
               committed=at - timedelta(hours=1, minutes=10))  # fmt: skip
    claimed_by(view, "facturama", "contacts", OLDER_EVENT_RUN, "events", [("8", at - timedelta(minutes=20))],
               committed=at - timedelta(minutes=19, seconds=12))  # fmt: skip
    claimed_by(view, "facturama", "contacts", EVENT_RUN, "events",
               [("9", at), ("10", at + timedelta(seconds=5)), ("11", at + timedelta(seconds=9))],
               committed=at + timedelta(seconds=42))  # fmt: skip
    with write_transaction(view.engine) as conn:
        for n, seconds in ((12, 60), (13, 90), (14, 120)):
            add(conn, event(str(n)), ["facturama"], at=at + timedelta(seconds=seconds))
        add(conn, event("con_1", "facturadirecta", event_type="contact.updated"), ["facturadirecta"],
            at=at + timedelta(seconds=30))  # fmt: skip
    return view


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def panel(client: TestClient) -> str:
    response = client.get(f"{P}/")
    assert response.status_code == 200
    found = re.search(r'<table id="inboxes">(.*?)</table>', response.text, re.S)
    return found.group(1) if found else ""


def test_the_panel_shows_each_inbox_and_the_latency_of_the_last_runs(
    with_inboxes: Q.LedgerView, admin: ui.Viewer
) -> None:
    html = panel(make_client(with_inboxes, admin))
    row = re.search(r'<tr data-inbox="facturama_contacts/clientify">(.*?)</tr>', html, re.S).group(1)
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert _text(cells[1]) == "clientify"
    assert _text(cells[2]) == "8"  # received: 5 claimed by runs, 3 pending
    assert _text(cells[3]) == "3"
    at = NOW - timedelta(minutes=30)
    assert _text(cells[4]) == ui._fmt_time(at + timedelta(seconds=120))  # last event
    assert _text(cells[5]) == ui._fmt_time(at + timedelta(seconds=60))  # oldest pending
    runs = re.findall(r'<div class="inbox-run">(.*?)</div>', cells[6], re.S)
    assert [_text(r) for r in runs] == [
        f"{EVENT_RUN} events, 3 events, committed {ui._fmt_time(at + timedelta(seconds=42))} 42 s",
        f"{OLDER_EVENT_RUN} events, 1 event, committed {ui._fmt_time(at - timedelta(minutes=19, seconds=12))} 48 s",
        f"{CLOCK_RUN} modified, 1 event, committed {ui._fmt_time(at - timedelta(hours=1, minutes=10))} 50 min",
    ]
    assert f"{P}/runs/facturama_contacts/" in cells[6]  # each run links to its report
    fd = re.search(r'<tr data-inbox="facturadirecta_contacts/facturadirecta">(.*?)</tr>', html, re.S).group(1)
    assert "no run has claimed events" in fd and ">1</td>" in fd


def test_the_panel_shows_only_the_dags_the_user_may_read(with_inboxes: Q.LedgerView) -> None:
    reader = ui.Viewer(name="rita.reader", readable=frozenset({"facturadirecta_contacts"}))
    html = panel(make_client(with_inboxes, reader))
    assert 'data-inbox="facturadirecta_contacts/facturadirecta"' in html
    assert "facturama" not in html and EVENT_RUN not in html


def test_no_panel_without_webhook_events(view: Q.LedgerView, admin: ui.Viewer) -> None:
    response = make_client(view, admin).get(f"{P}/")
    assert response.status_code == 200 and 'id="inboxes"' not in response.text


def test_the_inbox_queries_are_two_whatever_the_scopes(with_inboxes: Q.LedgerView) -> None:
    with count_statements(with_inboxes.engine) as statements:
        panels = with_inboxes.inboxes(Q.all_scopes())
    assert len(statements) == 2
    assert [(p.dag_id, [r.run_id for r in p.event_runs]) for p in panels] == [
        ("facturama_contacts", [EVENT_RUN, OLDER_EVENT_RUN]),
        ("facturadirecta_contacts", []),
    ]


def test_an_anonymous_request_still_gets_no_overview(with_inboxes: Q.LedgerView) -> None:
    response = make_client(with_inboxes, None).get(f"{P}/")  # Airflow's real auth, no token
    assert response.status_code in (401, 403)
    assert "inboxes" not in response.text and EVENT_RUN not in response.text
