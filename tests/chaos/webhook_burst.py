"""The API server, and with it the webhook receiver, restarted during a burst of deliveries (issue 25).

Edits are made the way users make them, in each platform's web app (the sandboxes'
``/_sandbox/webhooks/emit``, as ``tests/e2e/latency.py`` does): e-mails of paired contacts in Clientify
(unsigned deliveries, retried only when nothing answers, 5 times over about 31 s) and in FacturaDirecta's
REST API (signed, retried on any failure: 15 s, 45 s, 2 min, ...). Every edit must reach the other
side, through the platform's retries, the inbox and its event-woken runs, or the clock run (here the
one manual run the chaos checks allow), and none may be written twice.

The overlap is made by state, not by racing a sleep against the restart: half the burst is emitted
with the receiver up, the API server's process group is killed (-9), the other half is emitted while
nothing listens, and the server is started again (through the harness) only once the sandboxes count
a failed attempt for each delivery of that half.

The evidence, besides the chaos look (``evidence.gather``): the ledger's inbox (which deliveries were
stored, and which run claimed them), the plan items of every run after the burst (which run wrote each
edit to the other side, and how often each record was written), the sandboxes' delivery counts.
"""

from __future__ import annotations

import os
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import sqlalchemy as sa
from e2e_stack import Stack

from clientify_sync.engine.ledger import create_ledger_engine
from clientify_sync.engine.ledger.schema import inbox, plan_items
from clientify_sync.engine.vocabulary import Entity, Platform
from tests.chaos import deployment, evidence, runs
from tests.chaos.checks import RESULTS, Check
from tests.e2e import latency
from tests.e2e.scenario import dag_runs, trigger
from tests.faults.convergence import Edit, by_key, read_sides

EDITS = int(os.environ.get("CHAOS_BURST_EDITS", "20"))  # per platform
WEBHOOK_APIS = ("clientify", "facturadirecta")
# The platforms' real retry schedules (1.0); a smaller FacturaDirecta scale shortens its 15 s / 45 s waits.
FD_TIME_SCALE = float(os.environ.get("CHAOS_FD_WEBHOOK_TIME_SCALE", "1"))
SETTLE_TIMEOUT_S = 480.0
# The inbox trigger's max_wait_s (15; it fires after 5 s of quiet, polling every 2 s): a wake-up signal
# on its way is a run by then.
QUIET_S = 15.0
# How long the deliveries stored before the kill may take to wake a run: the trigger (on the triggerer,
# which the kill spares) fires within its 15 s maximum, then the scheduler makes the run; generous for
# a loaded machine.
WOKEN_TIMEOUT_S = 120.0
POLL_S = 2.0
WRITES = ("create", "update")
WRITTEN = ("created", "updated", "conflict")


@dataclass
class BurstEdit:
    """One edit of the burst: what was emitted, and the pair it belongs to."""

    change: latency.Edit
    key: str  # the pair's tax id
    inv_id: str
    crm_type: str  # contact or company
    crm_id: str
    while_down: bool  # emitted after the kill (its first delivery found no one listening)

    @property
    def from_clientify(self) -> bool:
        return self.change.direction == latency.CLIENTIFY_TO_FACTURADIRECTA

    @property
    def target_side(self) -> str:
        return "invoicing" if self.from_clientify else "clientify"

    @property
    def target_id(self) -> str:
        return self.inv_id if self.from_clientify else self.crm_id

    @property
    def source_id(self) -> str:
        return self.crm_id if self.from_clientify else self.inv_id


@dataclass
class Burst:
    """What the burst did and found; filled as the check goes."""

    edits: list[BurstEdit] = field(default_factory=list)
    known_runs: set[str] = field(default_factory=set)
    started_at: float = 0.0  # epoch seconds
    killed_at: float = 0.0
    down_s: float = 0.0
    hub_before: dict[str, dict[str, int]] = field(default_factory=dict)


# -- the pairs and the edits --------------------------------------------------------------------------------


def plan(check: Check, count: int = EDITS) -> list[BurstEdit]:
    """``count`` e-mail edits on each side, on distinct linked pairs, interleaved (Clientify first)."""
    w = evidence.world(check.stack, check.ledger_url)
    try:
        inv, crm = read_sides(w, Platform.FACTURADIRECTA, Entity.CONTACTS)
    finally:
        for client in (w.facturama, w.clientify, w.facturadirecta):
            client.close()
    inv_keys, crm_keys = by_key(inv), by_key(crm)
    pairs = [
        (key, inv_keys[key][0], crm_keys[key][0])
        for key in sorted(inv_keys)
        if len(inv_keys[key]) == 1 and len(crm_keys.get(key, [])) == 1
    ]
    if len(pairs) < 2 * count:
        raise AssertionError(f"{check.name}: {len(pairs)} linked pairs, {2 * count} needed")
    nonce = secrets.token_hex(3)
    edits: list[BurstEdit] = []
    for i in range(count):
        for direction, (key, inv_record, crm_record) in (
            (latency.CLIENTIFY_TO_FACTURADIRECTA, pairs[i]),
            (latency.FACTURADIRECTA_TO_CLIENTIFY, pairs[count + i]),
        ):
            crm_ref = f"{'companies' if crm_record.rtype == 'company' else 'contacts'}/{crm_record.rid}"
            tag = "cf" if direction == latency.CLIENTIFY_TO_FACTURADIRECTA else "fd"
            email = f"burst-{tag}-{i:02d}-{nonce}@example.org"
            source, target = (
                (crm_ref, inv_record.rid)
                if direction == latency.CLIENTIFY_TO_FACTURADIRECTA
                else (inv_record.rid, crm_ref)
            )
            change = latency.Edit(direction, source, target, email)
            edits.append(
                BurstEdit(change, key, inv_record.rid, crm_record.rtype, crm_record.rid, while_down=False)
            )
    return edits


def emit(check: Check, edits: list[BurstEdit]) -> None:
    """Make the edits in the web apps (each platform then delivers its webhook)."""
    for edit in edits:
        latency.edit(check.stack, edit.change)
        check.edits.append(Edit(Entity.CONTACTS, edit.key, "email", edit.change.email))


# -- the sandboxes' deliveries ------------------------------------------------------------------------------


def hub(stack: Stack, api: str, *, limit: int = 0, wait_idle_s: float = 0) -> dict[str, Any]:
    """The sandbox's delivery state of one platform (``/_sandbox/webhooks``)."""
    params: dict[str, Any] = {"limit": limit, "wait_idle_s": wait_idle_s}
    response = httpx.get(f"{stack.sandbox_url(api)}/_sandbox/webhooks", params=params, timeout=90)
    return dict(response.raise_for_status().json())


def counts(stack: Stack) -> dict[str, dict[str, int]]:
    return {api: dict(hub(stack, api)["counts"]) for api in WEBHOOK_APIS}


def wait_unanswered(check: Check, at_kill: dict[str, dict[str, int]], due: dict[str, int]) -> None:
    """Until each platform counts ``due[api]`` more attempts that found no one answering than at the kill."""
    deadline = time.monotonic() + 60
    while True:
        now = counts(check.stack)
        missing = {
            api: due[api] - (now[api].get("no_answer", 0) - at_kill[api].get("no_answer", 0)) for api in due
        }
        if all(n <= 0 for n in missing.values()):
            check.mark(f"every delivery of the second half found no one listening: {now}")
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{check.name}: deliveries not attempted while the server was down: {missing}"
            )
        time.sleep(0.2)


def configure_sandbox(stack: Stack) -> None:
    """The real retry schedules (FacturaDirecta's scaled by ``FD_TIME_SCALE``)."""
    httpx.put(
        f"{stack.sandbox_url('facturadirecta')}/_sandbox/config",
        json={"rest_webhook_time_scale": FD_TIME_SCALE},
        timeout=30,
    ).raise_for_status()


# -- the ledger ---------------------------------------------------------------------------------------------


def inbox_rows(ledger_url: str) -> list[dict[str, Any]]:
    """Every inbox row of FacturaDirecta's contacts (the only DAG the burst wakes)."""
    engine = create_ledger_engine(ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(inbox).where(
                inbox.c.integration == Platform.FACTURADIRECTA.value, inbox.c.entity == Entity.CONTACTS.value
            )
            return [dict(row._mapping) for row in conn.execute(query.order_by(inbox.c.id))]
    finally:
        engine.dispose()


def writes(ledger_url: str, run_ids: list[str]) -> list[dict[str, Any]]:
    """The plan items of these runs that wrote a record (created or updated it)."""
    engine = create_ledger_engine(ledger_url)
    try:
        with engine.connect() as conn:
            query = sa.select(
                plan_items.c.run_id, plan_items.c.target, plan_items.c.action, plan_items.c.outcome,
                plan_items.c.inv_id, plan_items.c.crm_id, plan_items.c.reason,
            ).where(
                plan_items.c.integration == Platform.FACTURADIRECTA.value,
                plan_items.c.entity == Entity.CONTACTS.value,
                plan_items.c.run_id.in_(run_ids),
                plan_items.c.action.in_(WRITES),
                plan_items.c.outcome.in_(WRITTEN),
            )  # fmt: skip
            return [dict(row._mapping) for row in conn.execute(query)]
    finally:
        engine.dispose()


# -- waiting ------------------------------------------------------------------------------------------------


def new_runs(check: Check, known: set[str]) -> list[dict[str, Any]]:
    """The DAG's runs not in ``known``, oldest first."""
    found = [r for r in dag_runs(check.stack) if r["dag_id"] == check.dag_id and r["dag_run_id"] not in known]
    return sorted(found, key=lambda r: str(r.get("queued_at") or r.get("start_date") or ""))


def wait_woken(check: Check, known: set[str]) -> None:
    """Until the deliveries stored before the kill have woken a run (bounded by ``WOKEN_TIMEOUT_S``; the
    check then finds no event-woken write and says so). Without this wait a quick restart let the clock
    run start first and claim every inbox row, so the run the events woke found nothing to carry."""
    deadline = time.monotonic() + WOKEN_TIMEOUT_S
    while not any(r["run_type"] == "asset_triggered" for r in new_runs(check, known)):
        if time.monotonic() > deadline:
            return
        time.sleep(POLL_S)


def settle(check: Check, what: str) -> None:
    """Until both platforms have nothing left to deliver, no inbox row is pending or claimed and no run
    of the DAG is queued or running, for ``QUIET_S`` in a row (a wake-up on its way shows by then)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    quiet_since: float | None = None
    while True:
        busy = [api for api in WEBHOOK_APIS if not hub(check.stack, api)["idle"]]
        open_rows = Counter(r["status"] for r in inbox_rows(check.ledger_url) if r["status"] != "done")
        active = [
            r["dag_run_id"] for r in dag_runs(check.stack, "queued", "running") if r["dag_id"] == check.dag_id
        ]
        now = time.monotonic()
        if busy or open_rows or active:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= QUIET_S:
            return
        if now > deadline:
            raise AssertionError(
                f"{check.name}: {what} not settled after {SETTLE_TIMEOUT_S:.0f}s: deliveries {busy}, "
                f"inbox {dict(open_rows)}, runs {active}"
            )
        time.sleep(POLL_S)


# -- how each edit got there --------------------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return None


def paths(
    burst: Burst, rows: list[dict[str, Any]], written: list[dict[str, Any]], run_types: dict[str, str]
) -> tuple[Counter[str], list[str], list[str]]:
    """Per edit: was its delivery stored (before the kill / after the restart / never), which run wrote
    it to the other side (an event-woken run or the clock run). Returns the tally, the edits written
    other than once to their target, and the edits written back onto their source."""
    tally: Counter[str] = Counter()
    twice, echoed = [], []
    for edit in burst.edits:
        source = "clientify" if edit.from_clientify else "facturadirecta"
        stored = [
            r
            for r in rows
            if r["source"] == source
            and r["external_id"] == edit.source_id
            and (not edit.from_clientify or r["record_type"] == edit.crm_type)
            and (_epoch(r["received_at"]) or 0) >= burst.started_at
        ]
        if not stored:
            delivery = "delivery given up or lost"
        elif min(_epoch(r["received_at"]) or 0 for r in stored) < burst.killed_at:
            delivery = "stored before the kill"
        else:
            delivery = "stored after the restart (retried)"
        on_target = [
            w
            for w in written
            if w["target"] == edit.target_side
            and (w["inv_id"] if edit.target_side == "invoicing" else w["crm_id"]) == edit.target_id
        ]
        on_source = [
            w
            for w in written
            if w["target"] != edit.target_side
            and (w["inv_id"] if edit.target_side == "clientify" else w["crm_id"]) == edit.source_id
        ]
        carriers = sorted({run_types.get(w["run_id"], "?") for w in on_target})
        tally[f"{source} edit, {delivery}, written by {'+'.join(carriers) or 'no run'}"] += 1
        if len(on_target) != 1:
            twice.append(f"{edit.change.direction} {edit.key}: written {len(on_target)} times")
        if on_source:
            echoed.append(
                f"{edit.change.direction} {edit.key}: written back onto its source {len(on_source)}x"
            )
    return tally, twice, echoed


# -- the check ----------------------------------------------------------------------------------------------


def initial_sync(check: Check) -> None:
    """The DAG's first run links the pairs; the receiver is registered while it commits (its apply steps
    are done by then, so none of its writes comes back as an event)."""
    stack = check.stack
    first = check.start_run()
    with ThreadPoolExecutor(1) as pool:
        runs.wait_task_done(stack, check.dag_id, first, "apply_invoicing")
        registering = pool.submit(stack.register_webhooks)
        initial = runs.wait_run(stack, check.dag_id, first)
        check.mark(f"initial sync: {runs.try_summary(stack, check.dag_id, first)}")
        registered = registering.result()
    tail = (registered.stdout + registered.stderr).strip().splitlines()[-6:]
    check.mark(f"register exit {registered.returncode}: " + " | ".join(tail))
    if initial["state"] != "success":
        raise AssertionError(f"{check.name}: the initial sync {first} ended {initial['state']}")
    if registered.returncode != 0:
        raise AssertionError(f"{check.name}: webhook registration failed:\n" + "\n".join(tail))


def restart_mid_burst(check: Check, burst: Burst) -> None:
    """Half the edits, ``kill -9`` of the API server, the other half, its restart once each delivery of
    that half found no one listening."""
    stack = check.stack
    for api in WEBHOOK_APIS:
        httpx.delete(f"{stack.sandbox_url(api)}/_sandbox/webhooks", timeout=30).raise_for_status()
        httpx.delete(f"{stack.sandbox_url(api)}/_sandbox/stats", timeout=30).raise_for_status()
    half = len(burst.edits) // 2
    started = time.monotonic()
    burst.started_at = time.time()
    emit(check, burst.edits[:half])
    old = deployment.kill_service(stack, "api-server")
    burst.killed_at = time.time()
    at_kill = counts(stack)
    check.inject(
        f"kill -9 of the api-server (the receiver) after {half} of {len(burst.edits)} edits "
        f"({time.monotonic() - started:.1f}s into the burst); deliveries so far {at_kill}"
    )
    for edit in burst.edits[half:]:
        edit.while_down = True
    emit(check, burst.edits[half:])
    check.mark(f"the other {len(burst.edits) - half} edits made while it is down")
    due = Counter("clientify" if e.from_clientify else "facturadirecta" for e in burst.edits[half:])
    wait_unanswered(check, at_kill, dict(due))
    took = deployment.respawn_api_server(stack, old)
    burst.down_s = time.time() - burst.killed_at
    check.mark(f"api-server started again: answering after {took:.1f}s, down {burst.down_s:.1f}s")


def run_check(check: Check) -> tuple[evidence.Evidence, list[str]]:
    """Initial sync and registration, the burst with the restart, the runs it wakes, the clock run, until
    all is quiet; returns the final look and what the webhook evidence found wrong (empty when right)."""
    stack = check.stack
    configure_sandbox(stack)
    initial_sync(check)
    burst = Burst(edits=plan(check), known_runs={r["dag_run_id"] for r in new_runs(check, set())})
    restart_mid_burst(check, burst)
    # The runs the deliveries before the kill woke go first (waited for: the server may be back before
    # the trigger fires); then the clock run (a manual run stands in for the hourly tick): it carries
    # what no delivery did and must not write again what the events carried; then whatever the retried
    # deliveries and the writes' echoes wake, until nothing is left to deliver, claim or run.
    wait_woken(check, burst.known_runs)
    runs.wait_quiet_dag(stack, check.dag_id, timeout=SETTLE_TIMEOUT_S)
    woken = new_runs(check, burst.known_runs)
    check.mark(
        f"{len(woken)} runs woken so far (" + ", ".join(f"{r['run_type']} {r['state']}" for r in woken) + ")"
    )
    clock_run = trigger(stack, check.dag_id)
    check.mark(f"clock run {clock_run} (manual, modified mode)")
    settle(check, "the deliveries and the runs they wake")
    after = new_runs(check, burst.known_runs)
    check.run_ids += [r["dag_run_id"] for r in after]
    run_types = {
        r["dag_run_id"]: ("clock run" if r["dag_run_id"] == clock_run else str(r["run_type"])) for r in after
    }
    check.mark(
        "settled; runs after the burst: "
        + ", ".join(f"{run_types[r['dag_run_id']]} {r['state']}" for r in after)
        + f"; deliveries {counts(stack)}"
    )
    final = check.look("final", edits_due=True)
    written = writes(check.ledger_url, list(run_types))
    tally, twice, echoed = paths(burst, inbox_rows(check.ledger_url), written, run_types)
    for line, n in sorted(tally.items()):
        check.mark(f"  {n:2d} x {line}")
    per_run = Counter(run_types[w["run_id"]] + " -> " + w["target"] for w in written)
    check.mark(f"records written per run kind and side: {dict(per_run)}")
    totals = {api: {m: check.writes(api, m) for m in ("POST", "PUT", "PATCH")} for api in WEBHOOK_APIS}
    check.mark(f"sandbox writes since the burst (2xx): {totals}")
    problems = twice + echoed
    # Each edit is one write on the other side, nothing else: FacturaDirecta's edits are Clientify's writes.
    for api, due in (("clientify", "facturadirecta"), ("facturadirecta", "clientify")):
        edits = sum(1 for e in burst.edits if (e.from_clientify == (due == "clientify")))
        if sum(totals[api].values()) != edits:
            problems.append(f"{api} answered {totals[api]} writes for {edits} edits made on {due}")
    if not any(run_types[w["run_id"]] == "asset_triggered" for w in written):
        problems.append("no edit was carried by an event-woken run: the inbox path did nothing")
    ends = {r["dag_run_id"]: _epoch(r.get("end_date")) for r in after}
    carried = [ends[w["run_id"]] for w in written if ends.get(w["run_id"])]
    converged_at = max(c for c in carried if c) if final.ok and carried else None
    record(check, burst, after, run_types, final, converged_at, problems, tally)
    return final, problems


def record(
    check: Check,
    burst: Burst,
    after: list[dict[str, Any]],
    run_types: dict[str, str],
    final: evidence.Evidence,
    converged_at: float | None,
    problems: list[str],
    tally: Counter[str],
) -> None:
    """The result row of docs/reliability.md's table."""
    states = Counter(f"{run_types[r['dag_run_id']]} {r['state']}" for r in after)
    RESULTS.append(
        {
            "check": check.name,
            "executor": check.stack.executor,
            "injected": check.injected,
            "faulted_run": f"runs after the burst {dict(states)}; api-server down {burst.down_s:.0f}s",
            "settle_run": "clock run",
            "converge_s": None if converged_at is None else round(converged_at - burst.killed_at),
            "duplicates_after_fault": None,
            "duplicates": final.extra_records,
            "lost_edits": len(final.lost_edits),
            "pairs_differing": len(final.mismatches),
            "unconfirmed_open": len(final.unconfirmed),
            "written_twice": len(problems),
            "paths": dict(tally),
            "passed": final.ok and not problems,
        }
    )
