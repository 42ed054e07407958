"""Chaos checks on CeleryExecutor (two workers, Redis): FacturaDirecta contacts, both directions.

The other direction from test_local: Clientify contacts created in FacturaDirecta (apply_invoicing,
each create followed by the link written back to Clientify), and FacturaDirecta clients created in
Clientify (apply_clientify, each followed by the ``ID_CRM`` write-back to FacturaDirecta).
"""

from __future__ import annotations

import os
import signal

from e2e_stack import Stack

from clientify_sync.engine.vocabulary import Platform
from tests.chaos import deployment
from tests.chaos.checks import (
    CLIENTS,
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

GRACE_S = float(os.environ.get("CHAOS_GRACE_S", "10"))  # a deploy's SIGTERM-to-SIGKILL grace period


def test_kill9_task_process_apply_invoicing(celery_stack: Stack) -> None:
    """kill -9 of the process running apply_invoicing (Clientify contacts into FacturaDirecta) on a
    Celery worker; Airflow retries it. No FacturaDirecta client twice, every link written back."""
    check = prepare(
        celery_stack,
        "kill9-apply-invoicing",
        Platform.FACTURADIRECTA,
        facturadirecta_seeds(61, clients=40, crm_contacts=CLIENTS),
    )
    run_id = check.start_run()
    ti, proc = task_process(check, run_id, "apply_invoicing")
    n = check.wait_writes("facturadirecta", HIT_AFTER)
    os.kill(proc.pid, signal.SIGKILL)
    check.inject(
        f"kill -9 {proc.pid} on {ti['hostname']} (apply_invoicing try {ti['try_number']}) after {n} "
        "FacturaDirecta POSTs"
    )
    check.edit_during_fault()
    found = check.finish()
    tries = retried(check, run_id, "apply_invoicing")
    check.mark(f"apply_invoicing tries: {tries}")
    assert len(tries) >= 2, f"the kill did not make Airflow retry apply_invoicing: {tries}"
    assert_right(check, found)


def test_celery_worker_warm_shutdown_mid_apply(celery_stack: Stack) -> None:
    """SIGTERM (Celery's warm shutdown) to the worker running apply_clientify, SIGKILL after a deploy's
    grace period, the worker started again: the task finishes, or Airflow finds it lost and retries."""
    # Slower writes (the realistic profile: Clientify 500 ms, FacturaDirecta 400 ms): the apply must
    # outlast the grace period, or the worker simply finishes it and nothing is hit.
    check = prepare(
        celery_stack,
        "celery-warm-shutdown",
        Platform.FACTURADIRECTA,
        facturadirecta_seeds(67, clients=CLIENTS, crm_contacts=20),
        latency_scale=1.0,
    )
    run_id = check.start_run()
    ti, proc = task_process(check, run_id, "apply_clientify")
    n = check.wait_writes("clientify", HIT_AFTER)
    worker = f"celery-{ti['hostname']}"
    check.inject(
        f"warm shutdown (SIGTERM) of {worker} running apply_clientify try {ti['try_number']} after "
        f"{n} Clientify POSTs; SIGKILL after {GRACE_S:.0f}s if still up; then started again"
    )
    stopped, killed = deployment.warm_shutdown_and_restart(celery_stack, worker, grace_s=GRACE_S)
    check.mark(
        f"{worker} {'killed after the grace period' if killed else 'stopped by itself'} "
        f"({stopped:.1f}s); task process alive: {deployment.alive(proc.pid)}; started again"
    )
    check.edit_during_fault()
    found = check.finish(did="worker killed after grace" if killed else "worker finished the task first")
    check.mark(f"apply_clientify tries: {retried(check, run_id, 'apply_clientify')}")
    assert_right(check, found)


def test_facturadirecta_down_a_minute_mid_apply_invoicing(celery_stack: Stack) -> None:
    """Every FacturaDirecta request fails for a minute while apply_invoicing creates clients there."""
    check = prepare(
        celery_stack,
        "facturadirecta-down",
        Platform.FACTURADIRECTA,
        facturadirecta_seeds(71, clients=40, crm_contacts=CLIENTS),
    )
    run_id = check.start_run()
    task_process(check, run_id, "apply_invoicing")
    n = check.wait_writes("facturadirecta", HIT_AFTER)
    check.outage("facturadirecta", OUTAGE_RATES, OUTAGE_S, f"after {n} FacturaDirecta POSTs")
    check.edit_during_fault()
    found = check.finish()
    check.mark(f"apply_invoicing tries: {retried(check, run_id, 'apply_invoicing')}")
    assert_right(check, found)


def test_facturama_down_a_minute_mid_apply_invoicing(celery_stack: Stack) -> None:
    """Every Facturama request fails for a minute while apply_invoicing creates Clientify contacts there."""
    seeds = facturama_seeds(73, clients=40)
    seeds["clientify"]["contacts"] = CLIENTS
    check = prepare(celery_stack, "facturama-down", Platform.FACTURAMA, seeds)
    run_id = check.start_run()
    task_process(check, run_id, "apply_invoicing")
    n = check.wait_writes("facturama", HIT_AFTER)
    check.outage("facturama", OUTAGE_RATES, OUTAGE_S, f"after {n} Facturama POSTs")
    check.edit_during_fault()
    found = check.finish()
    check.mark(f"apply_invoicing tries: {retried(check, run_id, 'apply_invoicing')}")
    assert_right(check, found)
