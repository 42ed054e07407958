"""The chaos layer (``make chaos``, docs/reliability.md): faults injected into a real deployment.

The deployment is the e2e harness's (``scripts/e2e/e2e_stack.py``: PostgreSQL, Redis, the sandbox,
scheduler, API server, DAG processor, triggerer, LocalExecutor or CeleryExecutor with two workers),
with three settings of its own, so that Airflow notices a lost task within the run instead of after
five minutes: a task instance without a heartbeat for 30 s is failed (default 300 s), checked every
5 s, and orphaned tasks of a dead scheduler are looked for every 20 s.

Only ``scripts/chaos/run.py`` (``make chaos``) sets ``CHAOS_RUN=1``; without it pytest collects no
check here, so the unit suite's ``pytest tests`` never starts a stack.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "e2e"))

from e2e_stack import Stack  # noqa: E402

from tests.chaos.checks import RESULTS, unlimited_budgets  # noqa: E402

if os.environ.get("CHAOS_RUN") != "1":
    collect_ignore_glob = ["test_*.py"]

CHAOS_AIRFLOW_ENV = {
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "20",
}


class ChaosStack(Stack):
    """The e2e stack with the heartbeat and orphan settings above in every component's environment."""

    def _airflow_env(self) -> dict[str, str]:
        return {**super()._airflow_env(), **CHAOS_AIRFLOW_ENV}


def _interrupt(*_: object) -> None:
    """SIGTERM ends the whole session the way Ctrl-C does (a SystemExit would only fail one check)."""
    raise KeyboardInterrupt


def _stack(executor: str, **options: Any) -> Iterator[Stack]:
    stack = ChaosStack.create(executor, **options)
    restore = signal.signal(signal.SIGTERM, _interrupt)  # the finally below stops the stack
    try:
        stack.start()
        unlimited_budgets(stack)
        print(f"\nchaos: {executor} stack up in {stack.root}, {stack.timings}", flush=True)
        yield stack
    finally:
        stack.stop()
        signal.signal(signal.SIGTERM, restore)


@pytest.fixture(scope="module")
def local_stack() -> Iterator[Stack]:
    # FacturaDirecta on its REST API and webhooks on: the webhook-burst check needs both. The other checks
    # of this stack sync Facturama, which neither changes: no receiver is registered before the burst
    # (each check resets the sandbox, which forgets registrations), so no delivery wakes their runs.
    yield from _stack("local", facturadirecta_api="rest", webhooks=True)


@pytest.fixture(scope="module")
def celery_stack() -> Iterator[Stack]:
    yield from _stack("celery")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The table of docs/reliability.md, from this session's checks (also written to $CHAOS_RESULTS)."""
    if not RESULTS:
        return
    terminalreporter.section("chaos: every fault, what the product did, convergence")
    columns = (
        "check",
        "executor",
        "faulted_run",
        "converge_s",
        "duplicates_after_fault",
        "duplicates",
        "lost_edits",
        "pairs_differing",
        "unconfirmed_open",
        "passed",
    )
    terminalreporter.write_line(" | ".join(columns))
    for row in RESULTS:
        terminalreporter.write_line(" | ".join(str(row[c]) for c in columns))
    if target := os.environ.get("CHAOS_RESULTS"):
        Path(target).write_text(json.dumps(RESULTS, indent=1))
