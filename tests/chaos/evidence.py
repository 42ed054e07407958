"""After a fault: is everything right? Read from the three places a user would look.

- The APIs (through the sandbox's public endpoints, mapped by the engine's own mappers, read as the
  fault suite's ``tests/faults/convergence`` reads them): no natural key (tax ID) twice on a side, no
  link (``in_facturama`` / ``in_facturadirecta`` / FacturaDirecta's ``ID_CRM``) on two records, every
  record paired, every pair's mapped fields equivalent, the edits made during the fault on both sides.
- The ledger: no open ``unconfirmed_create`` dead letter, no pending-create journal entry left.
- Airflow: a run's ``commit`` pushed a watermark no later than the end of its ``extract_clientify``
  (a later one would skip Clientify changes the run never read); a failed run pushed none; no task
  instance unfinished and no task process of the stack alive.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from e2e_stack import APIS, FACTURAMA_PASSWORD, FACTURAMA_USER, Stack

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.ratelimit_headers import RateLimitGate
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.merge import equivalent
from clientify_sync.engine.model import SCHEMAS, SideRecord
from clientify_sync.engine.vocabulary import Entity, Platform
from tests.chaos import deployment, runs
from tests.e2e.scenario import facturadirecta_rest_credentials, xcom
from tests.engine.conftest import FAST, World, make_clients
from tests.faults.convergence import Edit, by_key, read_sides
from tests.fixtures.sandbox import SandboxHandle

UNCONFIRMED = "unconfirmed_create"


@dataclass
class Evidence:
    """What one look at the deployment found; ``ok`` when nothing is wrong."""

    records: int = 0
    duplicates: list[str] = field(default_factory=list)  # each group of records sharing a tax ID or a link
    extra_records: int = 0  # records beyond one per such group (a duplicate pair counts once)
    missing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    lost_edits: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)
    pending_creates: int = 0
    watermarks: list[str] = field(default_factory=list)
    running: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (
            self.duplicates
            or self.missing
            or self.mismatches
            or self.lost_edits
            or self.unconfirmed
            or self.pending_creates
            or self.watermarks
            or self.running
        )

    def lines(self) -> list[str]:
        head = (
            f"{self.records} records read; duplicate records {self.extra_records}, missing {len(self.missing)}, "
            f"mismatched pairs {len(self.mismatches)}, lost edits {len(self.lost_edits)}, open "
            f"{UNCONFIRMED} {len(self.unconfirmed)}, pending creates {self.pending_creates}, watermark "
            f"problems {len(self.watermarks)}, unfinished {len(self.running)}"
        )
        out = [head]
        for name in (
            "duplicates",
            "missing",
            "mismatches",
            "lost_edits",
            "unconfirmed",
            "watermarks",
            "running",
        ):
            values = getattr(self, name)
            if values:
                out.append(
                    f"  {name} ({len(values)}): "
                    + "; ".join(values[:6])
                    + (" ..." if len(values) > 6 else "")
                )
        return out


def world(stack: Stack, ledger_url: str) -> World:
    """The fault suite's ``World`` pointed at this stack's sandbox and ledger (read-only use here), its
    FacturaDirecta client on the API the stack syncs through (``Stack.facturadirecta_api``)."""
    urls = {f"{api}_url": stack.sandbox_url(api) for api in APIS}
    handle = SandboxHandle(**urls, facturama_user=FACTURAMA_USER, facturama_password=FACTURAMA_PASSWORD)
    facturama, clientify, facturadirecta = make_clients(handle)
    if stack.facturadirecta_api == "rest":
        facturadirecta.close()
        facturadirecta = rest_client(stack)
    return World(handle, facturama, clientify, facturadirecta, ledger_url)


def rest_client(stack: Stack) -> FacturaDirectaRestClient:
    """A FacturaDirecta REST client on this stack's sandbox, with the ``facturadirecta_rest`` connection's
    company and key, not rate-limited (our reads, not the sync's)."""
    company, key = facturadirecta_rest_credentials()
    settings = FacturaDirectaRestSettings(
        base_url=stack.sandbox_url("facturadirecta"), api_key=key, company_id=company, **FAST
    )
    return FacturaDirectaRestClient(settings, gate=RateLimitGate(_Unmetered(), sleep=lambda _s: None))


class _Unmetered:
    """A budget that never waits."""

    def acquire(self) -> float:
        return 0.0


def compare(w: World, platform: Platform, edits: list[Edit], *, edits_due: bool = True) -> Evidence:
    """Both sides' contacts: duplicates by tax ID and by link, unpaired records, pairs that differ (text
    compared as the engine compares it, ``merge.equivalent``: the CFDI upper-cases names), lost edits.

    ``edits_due=False``: the edits are not expected to have travelled yet (a run that read before they
    were made), so their pairs' differences are left out."""
    inv, crm = read_sides(w, platform, Entity.CONTACTS)
    found = Evidence(records=len(inv) + len(crm))
    pairs = {}
    inv_keys, crm_keys = by_key(inv), by_key(crm)
    extra: set[tuple[str, str]] = set()  # all but the oldest record of each group, by key or by link

    def group(side: str, records: list[SideRecord]) -> None:
        oldest = min(records, key=lambda r: (len(r.rid), r.rid))
        extra.update((side, r.rid) for r in records if r is not oldest)

    for key in sorted(set(inv_keys) | set(crm_keys)):
        on_inv, on_crm = inv_keys.get(key, []), crm_keys.get(key, [])
        for side, records in ((platform.value, on_inv), ("clientify", on_crm)):
            if len(records) > 1:
                found.duplicates.append(
                    f"{side} {key}: " + ", ".join(f"{r.rid} (link {r.link})" for r in records)
                )
                group(side, records)
        if not on_inv or not on_crm:
            found.missing.append(f"{key}: none on {'clientify' if on_inv else platform.value}")
        elif len(on_inv) == 1 and len(on_crm) == 1:
            pairs[key] = (on_inv[0], on_crm[0])
    for side, records in ((platform.value, inv), ("clientify", crm)):
        by_link: dict[str, list[SideRecord]] = {}
        for record in records:
            if record.link:
                by_link.setdefault(record.link, []).append(record)
        for link, linked in sorted(by_link.items()):
            if len(linked) > 1:
                found.duplicates.append(f"{side} link {link} on {len(linked)} records")
                group(side, linked)
    found.extra_records = len(extra)
    pending = set() if edits_due else {edit.key for edit in edits}
    for key, (a, b) in pairs.items():
        if key in pending:
            continue
        differ = {
            f: (a.data.get(f), b.data.get(f))
            for f in SCHEMAS[Entity.CONTACTS].fields
            if not equivalent(a.data.get(f), b.data.get(f))
        }
        if differ:
            found.mismatches.append(f"{key}: {differ}")
    for edit in edits if edits_due else ():
        pair = pairs.get(edit.key)
        values = [r.data.get(edit.field) for r in pair] if pair else []
        if not values or not all(equivalent(v, edit.value) for v in values):
            found.lost_edits.append(
                f"{edit.key}.{edit.field} = {edit.value!r}: sides hold {values or 'no pair'}"
            )
    return found


def ledger_state(ledger_url: str, platform: Platform) -> tuple[list[str], int]:
    """Open ``unconfirmed_create`` dead letters and pending-create entries of the platform's contacts."""
    ledger = Ledger.open(ledger_url, platform.value, Entity.CONTACTS.value)
    try:
        letters = ledger.dead_letters.open()
        open_unconfirmed = [
            f"{r.side} {r.rtype} {r.rid} (attempts {r.attempts})"
            for r in letters.itertuples()
            if r.reason == UNCONFIRMED
        ]
        return open_unconfirmed, len(ledger.pending.all())
    finally:
        ledger.close()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def watermark_problems(stack: Stack, dag_id: str, run_ids: list[str]) -> list[str]:
    """A succeeded run's watermark must not be later than its Clientify read; a failed run pushes none."""
    problems = []
    for run_id in run_ids:
        commit = runs.task_instance(stack, dag_id, run_id, "commit")
        pushed: Any = xcom(stack, dag_id, run_id, "commit", "watermark")
        if commit["state"] != "success":
            if isinstance(pushed, str) and not pushed.startswith("<unavailable"):
                problems.append(f"{run_id}: commit {commit['state']} yet a watermark {pushed} was pushed")
            continue
        read = runs.task_instance(stack, dag_id, run_id, "extract_clientify")
        if pushed and read["end_date"] and _parse(pushed) > _parse(read["end_date"]):
            problems.append(
                f"{run_id}: watermark {pushed} is after extract_clientify ended ({read['end_date']})"
            )
    return problems


def left_running(stack: Stack, settle_s: float = 30.0) -> list[str]:
    """Unfinished task instances and live task processes, after up to ``settle_s`` for them to end."""
    deadline = time.monotonic() + settle_s
    while True:
        left = runs.unfinished(stack) + [
            f"process {pid} {title}" for pid, title in deployment.task_processes(stack)
        ]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def gather(
    stack: Stack,
    ledger_url: str,
    platform: Platform,
    dag_id: str,
    run_ids: list[str],
    edits: list[Edit],
    *,
    edits_due: bool = True,
) -> Evidence:
    """One full look (latency off first: the reads are ours, not the sync's)."""
    for api in APIS:
        stack_latency(stack, api, "none")
    w = world(stack, ledger_url)
    try:
        evidence = compare(w, platform, edits, edits_due=edits_due)
    finally:
        for client in (w.facturama, w.clientify, w.facturadirecta):
            client.close()
    evidence.unconfirmed, evidence.pending_creates = ledger_state(ledger_url, platform)
    evidence.watermarks = watermark_problems(stack, dag_id, run_ids)
    evidence.running = left_running(stack)
    return evidence


def stack_latency(stack: Stack, api: str, profile: str, scale: float = 1.0) -> None:
    import httpx

    httpx.put(
        f"{stack.sandbox_url(api)}/_sandbox/latency", json={"profile": profile, "scale": scale}, timeout=30
    ).raise_for_status()
