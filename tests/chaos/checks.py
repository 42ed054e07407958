"""One chaos check on a running stack: fresh data, a run, a fault at a moment chosen by watching the
run, recovery left to Airflow, then the evidence; every step printed with its time.

Each check starts from a clean slate so that one check's failure cannot leak into the next: a new
ledger database (the ``clientify_sync_state`` connection is pointed at it), the sandbox reset and
seeded, its latency profile set. Airflow's runs stay (their watermarks are older than the new data).

The flow: the faulted run (the DAG's scheduled run when it is first unpaused, else a manual one);
Airflow's retries; a first look (``after the faulted run``); then the one manual run the issue allows,
which must also carry the edits made during the fault to the other side; the final look. The time to
converge is from the injection to the end of the first run after which everything was right.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from e2e_stack import APIS, LEDGER_DB, Stack

from clientify_sync.engine.mapping import without_empty_strings
from clientify_sync.engine.vocabulary import Entity, Platform
from tests.chaos import deployment, evidence, runs
from tests.chaos.evidence import Evidence
from tests.e2e.scenario import trigger
from tests.faults.convergence import Edit, by_key, read_sides

# Every latency of the sandbox's ``realistic`` profile times this: Clientify writes 150 ms (500 ms x 0.3).
LATENCY_SCALE = float(os.environ.get("CHAOS_LATENCY_SCALE", "0.3"))
CLIENTS = int(os.environ.get("CHAOS_CLIENTS", "250"))  # records to create in the direction under test
HIT_AFTER = int(os.environ.get("CHAOS_HIT_AFTER", "60"))  # successful creates before the fault
OUTAGE_S = float(os.environ.get("CHAOS_OUTAGE_S", "60"))
# What "down" means: every request fails, as 5xx or a connection closed before or after the server
# acted ("truncate": the record is created, the answer is cut, the client cannot know).
OUTAGE_RATES = {"500": 0.3, "502": 0.1, "503": 0.2, "drop": 0.2, "truncate": 0.2}
EDITS = 2  # per side, made while the fault is on
RESULTS: list[dict[str, Any]] = []  # one row per check, for the summary and docs/reliability.md


@dataclass
class Check:
    """A named check's state and its printed timeline."""

    name: str
    stack: Stack
    platform: Platform
    ledger_url: str
    started: float = field(default_factory=time.monotonic)
    run_ids: list[str] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    injected_at: float | None = None
    injected: str = ""

    @property
    def dag_id(self) -> str:
        return f"{self.platform.value}_{Entity.CONTACTS.value}"

    def mark(self, text: str) -> None:
        line = f"[{self.name} +{time.monotonic() - self.started:6.1f}s] {text}"
        self.events.append(line)
        print(line, flush=True)

    def inject(self, text: str) -> None:
        """Note the fault (the first injection starts the convergence clock)."""
        if self.injected_at is None:
            self.injected_at = time.monotonic()
        self.injected = f"{self.injected}; {text}" if self.injected else text
        self.mark(f"INJECTED: {text}")

    # -- the run ----------------------------------------------------------------------------------

    def start_run(self) -> str:
        run_id, how = runs.start_run(self.stack, self.dag_id)
        self.run_ids.append(run_id)
        self.mark(f"{self.dag_id} run {run_id} started ({how})")
        return run_id

    def writes(self, api: str, method: str = "POST", route: str = "", ok_only: bool = True) -> int:
        """Requests the sandbox answered for ``api`` (method, route substring, 2xx only) since the reset."""
        body = httpx.get(f"{self.stack.sandbox_url(api)}/_sandbox/stats", timeout=30).json()
        return sum(
            r["count"]
            for r in body["by_route"]
            if r["method"] == method and route in r["route"] and (not ok_only or 200 <= r["status"] < 300)
        )

    def wait_writes(
        self, api: str, at_least: int, *, route: str = "", method: str = "POST", timeout: float = 300
    ) -> int:
        """Poll the sandbox until ``at_least`` successful writes of the kind went through (the moment to
        hit), or the faulted run has ended."""
        deadline = time.monotonic() + timeout
        while (n := self.writes(api, method, route)) < at_least:
            run = self.stack.api("GET", f"/api/v2/dags/{self.dag_id}/dagRuns/{self.run_ids[0]}").json()
            if run["state"] in runs.FINISHED_RUN:
                return n
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: only {n} {method} {api}{route} after {timeout:.0f}s")
            time.sleep(0.2)
        return n

    def edit_during_fault(self) -> None:
        """Edit paired records on both sides while the fault is on, as their users would: e-mails on the
        invoicing platform, names in Clientify. Each must read the same on both sides in the end."""
        w = evidence.world(self.stack, self.ledger_url)
        try:
            inv, crm = read_sides(w, self.platform, Entity.CONTACTS)
            inv_keys, crm_keys = by_key(inv), by_key(crm)
            pairs = [
                (inv_keys[k][0], crm_keys[k][0])
                for k in sorted(inv_keys)
                if len(inv_keys[k]) == 1 and len(crm_keys.get(k, [])) == 1
            ]
            for i, (record, _) in enumerate(pairs[:EDITS]):
                email = f"chaos.edit{i}@facturas.example"
                if self.platform is Platform.FACTURAMA:  # a whole-object PUT, without the "" it rejects
                    raw = without_empty_strings(w.facturama.clients.get(record.rid))
                    w.facturama.clients.update(record.rid, {**raw, "Email": email})
                else:
                    w.facturadirecta.clients.update(record.rid, {"email": email})
                self.edits.append(Edit(Entity.CONTACTS, record.key, "email", email))
            for i, (_, record) in enumerate(pairs[EDITS : 2 * EDITS]):
                name = f"Edición Caótica {i} SA"
                if record.rtype == "contact":
                    w.clientify.contacts.update(
                        record.rid, {"first_name": "Edición", "last_name": f"Caótica {i} SA"}
                    )
                else:
                    w.clientify.companies.update(record.rid, {"name": name})
                self.edits.append(Edit(Entity.CONTACTS, record.key, "name", name))
        finally:
            for client in (w.facturama, w.clientify, w.facturadirecta):
                client.close()
        self.mark(
            f"edited {len(self.edits)} records during the fault (e-mails on {self.platform.value}, "
            "names in Clientify)"
        )

    def queue_next_run(self) -> str:
        """A manual run now: it waits queued behind the running one (max_active_runs=1)."""
        run_id = trigger(self.stack, self.dag_id)
        self.mark(f"run {run_id} triggered: queued behind the running one")
        return run_id

    def outage(self, api: str, rates: dict[str, float], seconds: float, when: str) -> None:
        """Every request to ``api`` fails for ``seconds`` (fault rules over all its routes), then it is back.

        While it is down, each change of the apply tasks' state or try is printed.
        """
        base = self.stack.sandbox_url(api)
        httpx.put(
            f"{base}/_sandbox/faults",
            json=[{"method": "*", "path": ".*", "rates": rates, "seed": 22}],
            timeout=30,
        ).raise_for_status()
        self.inject(f"{api} down {when}: every request fails {rates} for {seconds:.0f}s")
        seen: dict[str, tuple[str, int]] = {}
        until = time.monotonic() + seconds
        try:
            while time.monotonic() < until:
                for task_id in ("apply_clientify", "apply_invoicing"):
                    ti = runs.task_instance(self.stack, self.dag_id, self.run_ids[0], task_id)
                    state = (str(ti["state"]), int(ti["try_number"]))
                    if seen.get(task_id) != state:
                        seen[task_id] = state
                        self.mark(f"  while {api} is down: {task_id} {state[0]} try {state[1]}")
                time.sleep(2)
        finally:
            body = httpx.get(f"{base}/_sandbox/faults", timeout=30).json()
            httpx.delete(f"{base}/_sandbox/faults", timeout=30).raise_for_status()
        self.mark(f"{api} back; {sum(r['applied'] for r in body['rules'])} requests failed while it was down")

    # -- after the fault --------------------------------------------------------------------------

    def look(self, what: str, *, edits_due: bool) -> Evidence:
        found = evidence.gather(
            self.stack,
            self.ledger_url,
            self.platform,
            self.dag_id,
            self.run_ids,
            self.edits,
            edits_due=edits_due,
        )
        for i, line in enumerate(found.lines()):
            self.mark(f"{what}: {line}" if i == 0 else line)
        return found

    def finish(self, did: str = "", settle_run_id: str | None = None) -> Evidence:
        """Wait for the faulted run, look, spend the one manual run (``settle_run_id``: one already
        triggered), look again; record the result row."""
        runs.wait_run(self.stack, self.dag_id, self.run_ids[0])
        ended = time.monotonic()
        faulted = runs.try_summary(self.stack, self.dag_id, self.run_ids[0])
        self.mark(f"faulted run ended: {faulted}")
        first = self.look("after the faulted run", edits_due=False)
        apis = ("clientify", self.platform.value)
        creates_before = {api: self.writes(api, "POST") for api in apis}
        run_id = settle_run_id or trigger(self.stack, self.dag_id)
        self.run_ids.append(run_id)
        self.mark(f"one manual run {run_id} (converge, and carry the edits made during the fault)")
        settle = runs.wait_run(self.stack, self.dag_id, run_id)
        settled = time.monotonic()
        made = {api: self.writes(api, "POST") - creates_before[api] for api in apis}
        self.mark(
            f"manual run ended: {runs.try_summary(self.stack, self.dag_id, run_id)}; POSTs it made: {made}"
        )
        final = self.look("final", edits_due=True)
        # Right after the faulted run (edits made during the fault aside: they need the next run), or
        # after the manual run, or never.
        converged_at = ended if first.ok and final.ok else (settled if final.ok else None)
        converge_s = (
            None if converged_at is None or self.injected_at is None else converged_at - self.injected_at
        )
        RESULTS.append(
            {
                "check": self.name,
                "executor": self.stack.executor,
                "injected": self.injected,
                "faulted_run": f"{faulted}; {did}".rstrip("; "),
                "settle_run": settle["state"],
                "converge_s": None if converge_s is None else round(converge_s),
                "duplicates_after_fault": first.extra_records,
                "duplicates": final.extra_records,
                "lost_edits": len(final.lost_edits),
                "pairs_differing": len(final.mismatches),
                "unconfirmed_open": len(final.unconfirmed),
                "passed": final.ok,
            }
        )
        when = "NOT" if converge_s is None else f"in {converge_s:.0f} s after the injection"
        self.mark(f"RESULT: {'PASS' if final.ok else 'FAIL'}; converged {when}")
        return final


def prepare(
    stack: Stack,
    name: str,
    platform: Platform,
    seeds: dict[str, dict[str, Any]],
    *,
    latency_scale: float = LATENCY_SCALE,
) -> Check:
    """A clean slate for one check: quiet (a check that failed half-way may have left runs going), a new
    ledger database, the sandbox reset and seeded, its latency profile set."""
    runs.wait_quiet(stack, timeout=300)
    database = f"{LEDGER_DB}_{name.replace('-', '_')}"
    import psycopg

    with psycopg.connect(stack.db_url("postgres", "postgresql"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    url = stack.db_url(database)
    stack.api(
        "PATCH",
        "/api/v2/connections/clientify_sync_state",
        params={"update_mask": "extra"},
        json={
            "connection_id": "clientify_sync_state",
            "conn_type": "generic",
            "extra": f'{{"url": "{url}"}}',
        },
    )
    for api in APIS:
        base = stack.sandbox_url(api)
        httpx.post(f"{base}/_sandbox/reset", timeout=60).raise_for_status()
        if api in seeds:
            httpx.post(f"{base}/_sandbox/seed", json=seeds[api], timeout=120).raise_for_status()
        evidence.stack_latency(stack, api, "realistic", latency_scale)
        httpx.delete(f"{base}/_sandbox/stats", timeout=30).raise_for_status()
    check = Check(name, stack, platform, url)
    counts = {api: {k: v for k, v in body.items() if k != "seed"} for api, body in seeds.items()}
    check.mark(
        f"fresh ledger {database}; sandbox seeded {counts}; latency realistic x{latency_scale} "
        f"(Clientify writes {500 * latency_scale:.0f} ms)"
    )
    return check


def unlimited_budgets(stack: Stack) -> None:
    """The shipped connections have no requests_per_minute (airflow_settings.yaml); the e2e suite sets
    low ones to press its budget check. The chaos checks use the shipped default."""
    for api in APIS:
        conn_id = f"{api}_default"
        current = stack.api("GET", f"/api/v2/connections/{conn_id}").json()
        stack.api(
            "PATCH",
            f"/api/v2/connections/{conn_id}",
            params={"update_mask": "extra"},
            json={"connection_id": conn_id, "conn_type": current["conn_type"], "extra": "{}"},
        )


def task_process(
    check: Check, run_id: str, task_id: str, min_try: int = 1
) -> tuple[dict[str, Any], deployment.TaskProcess]:
    """The running task instance and the process running its code (waits for both)."""
    ti = runs.wait_task(check.stack, check.dag_id, run_id, task_id, min_try=min_try)
    deadline = time.monotonic() + 60
    while (proc := deployment.find_task_process(ti["id"])) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"no process titled 'airflow worker -- {ti['id']}' for {task_id}")
        time.sleep(0.2)
    check.mark(f"{task_id} try {ti['try_number']} runs in pid {proc.pid} (supervisor {proc.supervisor})")
    return ti, proc


def retried(check: Check, run_id: str, task_id: str) -> list[str]:
    """The states of every try of a task instance, oldest first."""
    return [t["state"] for t in runs.tries(check.stack, check.dag_id, run_id, task_id)]


def assert_right(check: Check, found: Evidence) -> None:
    assert found.ok, f"{check.name}:\n" + "\n".join(found.lines())


def facturama_seeds(seed: int, clients: int = CLIENTS) -> dict[str, dict[str, Any]]:
    """Facturama clients to create in Clientify; 10 % of them already there unlinked (matched by RFC and
    merged), and 20 Clientify contacts of its own (created in Facturama by apply_invoicing)."""
    return {
        "facturama": {"seed": seed, "clients": clients},
        "clientify": {
            "seed": seed + 1,
            "country": "MX",
            "contacts": 20,
            "overlap": [{"platform": "facturama", "customers": clients, "fraction": 0.1, "seed": seed}],
        },
    }


def facturadirecta_seeds(seed: int, *, clients: int, crm_contacts: int) -> dict[str, dict[str, Any]]:
    """FacturaDirecta clients (30 % already in Clientify, unlinked) and Spanish Clientify contacts."""
    return {
        "facturadirecta": {"seed": seed, "clients": clients},
        "clientify": {
            "seed": seed + 1,
            "country": "ES",
            "contacts": crm_contacts,
            "overlap": [{"platform": "facturadirecta", "customers": clients, "fraction": 0.3, "seed": seed}],
        },
    }
