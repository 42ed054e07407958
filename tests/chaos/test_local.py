"""Chaos checks on LocalExecutor (metadata DB and ledger on PostgreSQL): Facturama clients being
created in Clientify while a fault hits the run; last, the api-server restarted during a burst of
webhook deliveries (FacturaDirecta on its REST API); each check prints its timeline and evidence."""

from __future__ import annotations

import os
import signal

from e2e_stack import Stack

from clientify_sync.engine.vocabulary import Platform
from tests.chaos import deployment, runs, webhook_burst
from tests.chaos.checks import (
    HIT_AFTER,
    OUTAGE_RATES,
    OUTAGE_S,
    assert_right,
    facturadirecta_seeds,
    facturama_seeds,
    prepare,
    retried,
    task_process,
)

ZOMBIE_CLIENTS = int(os.environ.get("CHAOS_ZOMBIE_CLIENTS", "400"))
# The webhook burst's data: enough linked pairs for 20 + 20 edits, a short initial sync.
BURST_FD_CLIENTS = int(os.environ.get("CHAOS_BURST_FD_CLIENTS", "30"))
BURST_CRM_CONTACTS = int(os.environ.get("CHAOS_BURST_CRM_CONTACTS", "25"))


def test_kill9_task_process_apply_clientify(local_stack: Stack) -> None:
    """Issue 22's duplicate: kill -9 the process running apply_clientify after some creates; Airflow
    retries the task within the run. Every Facturama client must end in Clientify exactly once."""
    check = prepare(local_stack, "kill9-apply-clientify", Platform.FACTURAMA, facturama_seeds(41))
    run_id = check.start_run()
    ti, proc = task_process(check, run_id, "apply_clientify")
    n = check.wait_writes("clientify", HIT_AFTER)
    os.kill(proc.pid, signal.SIGKILL)
    check.inject(f"kill -9 {proc.pid} (apply_clientify try {ti['try_number']}) after {n} Clientify POSTs")
    check.edit_during_fault()
    found = check.finish()
    tries = retried(check, run_id, "apply_clientify")
    check.mark(f"apply_clientify tries: {tries}")
    assert len(tries) >= 2, f"the kill did not make Airflow retry apply_clientify: {tries}"
    assert_right(check, found)


def test_postgres_restarted_twice_mid_apply(local_stack: Stack) -> None:
    """PostgreSQL (metadata DB and ledger) restarted with pg_ctl's fast mode twice while apply_clientify
    writes; the task rides it out or Airflow retries it; nothing duplicated."""
    check = prepare(local_stack, "postgres-restart", Platform.FACTURAMA, facturama_seeds(43))
    run_id = check.start_run()
    task_process(check, run_id, "apply_clientify")
    with deployment.supervised(local_stack, check.mark):
        for hit in (HIT_AFTER, 2 * HIT_AFTER):
            n = check.wait_writes("clientify", hit)
            if runs.task_instance(local_stack, check.dag_id, run_id, "apply_clientify")["state"] != "running":
                break
            down = deployment.restart_postgres(local_stack)
            check.inject(f"PostgreSQL fast restart after {n} Clientify POSTs (down {down:.1f}s)")
        check.edit_during_fault()
        found = check.finish()
    check.mark(f"apply_clientify tries: {retried(check, run_id, 'apply_clientify')}")
    assert_right(check, found)


def test_scheduler_killed_with_runs_running_and_queued(local_stack: Stack) -> None:
    """kill -9 of the scheduler while one run applies and a second waits queued; restarted 10 s later."""
    check = prepare(local_stack, "scheduler-kill", Platform.FACTURAMA, facturama_seeds(47))
    run_id = check.start_run()
    task_process(check, run_id, "apply_clientify")
    queued = check.queue_next_run()
    n = check.wait_writes("clientify", HIT_AFTER)
    deployment.kill_and_restart(local_stack, "scheduler", down_s=10)
    check.inject(
        f"kill -9 of the scheduler after {n} Clientify POSTs, run {queued} queued; restarted 10 s later"
    )
    check.edit_during_fault()
    found = check.finish(settle_run_id=queued)
    check.mark(f"apply_clientify tries: {retried(check, run_id, 'apply_clientify')}")
    assert_right(check, found)


def test_zombie_apply_clientify(local_stack: Stack) -> None:
    """The supervisor of apply_clientify stopped (SIGSTOP: no heartbeat) while its task process goes on
    writing: Airflow declares the task a zombie and starts try 2 beside it."""
    # Slower writes (Clientify 500 ms) and more of them: the first try must still be writing when
    # Airflow's next try starts, 30 s of missed heartbeats plus a task start after the stop.
    check = prepare(
        local_stack,
        "zombie",
        Platform.FACTURAMA,
        facturama_seeds(53, clients=ZOMBIE_CLIENTS),
        latency_scale=1.0,
    )
    run_id = check.start_run()
    ti, proc = task_process(check, run_id, "apply_clientify")
    n = check.wait_writes("clientify", HIT_AFTER // 2)
    os.kill(proc.supervisor, signal.SIGSTOP)
    check.inject(
        f"SIGSTOP supervisor {proc.supervisor} of apply_clientify try {ti['try_number']} after {n} "
        f"Clientify POSTs (its task process {proc.pid} keeps writing)"
    )
    try:
        second, _ = task_process(check, run_id, "apply_clientify", min_try=ti["try_number"] + 1)
        check.mark(
            f"Airflow started try {second['try_number']}; first try's process alive: "
            f"{deployment.alive(proc.pid)}; Clientify POSTs so far {check.writes('clientify')}"
        )
        check.edit_during_fault()
        runs.wait_run(local_stack, check.dag_id, run_id)
    finally:
        os.kill(proc.supervisor, signal.SIGCONT)
        check.mark(f"SIGCONT supervisor {proc.supervisor}")
    found = check.finish()
    check.mark(f"apply_clientify tries: {retried(check, run_id, 'apply_clientify')}")
    assert_right(check, found)


def test_clientify_down_a_minute_mid_apply(local_stack: Stack) -> None:
    """Every Clientify request fails (5xx, dropped or cut connections) for a minute during apply_clientify."""
    check = prepare(local_stack, "clientify-down", Platform.FACTURAMA, facturama_seeds(59))
    run_id = check.start_run()
    task_process(check, run_id, "apply_clientify")
    n = check.wait_writes("clientify", HIT_AFTER)
    check.outage("clientify", OUTAGE_RATES, OUTAGE_S, f"after {n} Clientify POSTs")
    check.edit_during_fault()
    found = check.finish()
    check.mark(f"apply_clientify tries: {retried(check, run_id, 'apply_clientify')}")
    assert_right(check, found)


def test_api_server_restarted_during_a_webhook_burst(local_stack: Stack) -> None:
    """Issue 25: the api-server, and with it the webhook receiver, killed and started again in the middle
    of a burst of edits on Clientify and on FacturaDirecta (REST); every edit reaches the other side
    (through the platform's retries, the inbox or the clock run), none is written twice."""
    # Clientify's deliveries are stored for every enabled platform: Facturama's contacts DAG stays
    # paused, so only FacturaDirecta's wakes (its inbox is the one under test).
    facturama_paused = local_stack.api("GET", "/api/v2/dags/facturama_contacts").json()["is_paused"]
    local_stack.api("PATCH", "/api/v2/dags/facturama_contacts", json={"is_paused": True})
    try:
        seeds = facturadirecta_seeds(79, clients=BURST_FD_CLIENTS, crm_contacts=BURST_CRM_CONTACTS)
        seeds["facturadirecta"]["target"] = "rest"
        check = prepare(local_stack, "webhook-burst", Platform.FACTURADIRECTA, seeds, latency_scale=0.1)
        found, problems = webhook_burst.run_check(check)
    finally:
        if not facturama_paused:
            local_stack.api("PATCH", "/api/v2/dags/facturama_contacts", json={"is_paused": False})
    assert_right(check, found)
    assert not problems, f"{check.name}:\n" + "\n".join(problems)
