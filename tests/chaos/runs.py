"""DAG runs and task instances of a chaos check, through the Airflow REST API (what an operator sees).

The REST helpers of the e2e scenario (``tests/e2e/scenario.py``) do the paging and triggering; this
adds the waits a fault needs: a task instance running (with the id of its current try), a run finished.
"""

from __future__ import annotations

import time
from typing import Any

from e2e_stack import Stack, StackError

from tests.e2e.scenario import dag_runs, task_instances, trigger

FINISHED_RUN = ("success", "failed")
UNFINISHED_TI = (
    "running",
    "queued",
    "scheduled",
    "up_for_retry",
    "up_for_reschedule",
    "restarting",
    "deferred",
)
POLL_S = 0.5


def task_instance(stack: Stack, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return dict(stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}").json())


def tries(stack: Stack, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """Every try of one task instance (``/tries``: the history and the current one)."""
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/tries"
    return list(stack.api("GET", path).json()["task_instances"])


def start_run(stack: Stack, dag_id: str) -> tuple[str, str]:
    """Start a run of ``dag_id``: unpausing a paused DAG starts its scheduled run for the latest interval
    (used as is: no manual run spent); an unpaused DAG gets a manual run. Returns (run id, how)."""
    dag = stack.api("GET", f"/api/v2/dags/{dag_id}").json()
    if not dag["is_paused"]:
        return trigger(stack, dag_id), "manual"
    known = {r["dag_run_id"] for r in dag_runs(stack) if r["dag_id"] == dag_id}
    stack.api("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        new = [r for r in dag_runs(stack) if r["dag_id"] == dag_id and r["dag_run_id"] not in known]
        if new:
            return str(new[0]["dag_run_id"]), str(new[0]["run_type"])
        time.sleep(POLL_S)
    raise StackError(f"unpausing {dag_id} started no run within 120 s")


def wait_task(
    stack: Stack, dag_id: str, run_id: str, task_id: str, *, min_try: int = 1, timeout: float = 300
) -> dict[str, Any]:
    """Wait until the task instance is running at try ``min_try`` or later; return it."""
    deadline = time.monotonic() + timeout
    while True:
        ti = task_instance(stack, dag_id, run_id, task_id)
        if ti["state"] == "running" and ti["try_number"] >= min_try:
            return ti
        run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        if run["state"] in FINISHED_RUN:
            raise StackError(
                f"{dag_id} {run_id} ended {run['state']} before {task_id} ran (try >= {min_try})"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{task_id} of {dag_id} {run_id} not running after {timeout:.0f}s: {ti['state']}"
            )
        time.sleep(POLL_S)


def wait_task_done(
    stack: Stack, dag_id: str, run_id: str, task_id: str, *, timeout: float = 600
) -> dict[str, Any]:
    """Wait until the task instance is in a final state (or the run ended); return it."""
    deadline = time.monotonic() + timeout
    while True:
        ti = task_instance(stack, dag_id, run_id, task_id)
        if ti["state"] not in (None, *UNFINISHED_TI):
            return ti
        run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
        if run["state"] in FINISHED_RUN:
            return ti
        if time.monotonic() > deadline:
            raise StackError(f"{task_id} of {dag_id} {run_id} still {ti['state']} after {timeout:.0f}s")
        time.sleep(POLL_S)


def wait_quiet_dag(stack: Stack, dag_id: str, *, timeout: float) -> None:
    """Wait until no run of ``dag_id`` is queued or running."""
    deadline = time.monotonic() + timeout
    while busy := [r["dag_run_id"] for r in dag_runs(stack, "queued", "running") if r["dag_id"] == dag_id]:
        if time.monotonic() > deadline:
            raise StackError(f"{dag_id} still has runs after {timeout:.0f}s: {busy}")
        time.sleep(POLL_S * 2)


def wait_run(stack: Stack, dag_id: str, run_id: str, *, timeout: float = 600) -> dict[str, Any]:
    """Wait until the run succeeded or failed; return it (raise with the task states on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        run = dict(stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json())
        if run["state"] in FINISHED_RUN:
            return run
        if time.monotonic() > deadline:
            states = {
                ti["task_id"]: (ti["state"], ti["try_number"]) for ti in task_instances(stack, dag_id, run_id)
            }
            raise StackError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f}s: {states}")
        time.sleep(POLL_S * 2)


def wait_quiet(stack: Stack, *, timeout: float) -> None:
    """Wait until no run is queued or running and no task instance is unfinished."""
    deadline = time.monotonic() + timeout
    while busy := [
        f"{r['dag_id']} {r['dag_run_id']} {r['state']}" for r in dag_runs(stack, "queued", "running")
    ] + unfinished(stack):
        if time.monotonic() > deadline:
            raise StackError(f"still busy after {timeout:.0f}s: {busy}")
        time.sleep(POLL_S * 4)


def unfinished(stack: Stack) -> list[str]:
    """Task instances of any run that are not in a final state (nothing may be left running)."""
    left = []
    for ti in task_instances(stack, "~", "~"):
        if ti["state"] in UNFINISHED_TI:
            left.append(
                f"{ti['dag_id']}/{ti['dag_run_id']}/{ti['task_id']} {ti['state']} try {ti['try_number']}"
            )
    return left


def try_summary(stack: Stack, dag_id: str, run_id: str) -> str:
    """``task: state@try`` for every task of a run, tries beyond the first spelled out."""
    parts = []
    for ti in task_instances(stack, dag_id, run_id):
        if ti["try_number"] > 1:
            states = [t["state"] for t in tries(stack, dag_id, run_id, ti["task_id"])]
            parts.append(f"{ti['task_id']} tries {states}")
    run = stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()
    return f"{run['state']}" + (f" ({'; '.join(parts)})" if parts else " (every task on its first try)")
