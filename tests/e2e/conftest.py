"""Session set-up of the end-to-end suite: one real Airflow deployment per executor.

The unit suite's ``tests/conftest.py`` points ``AIRFLOW_HOME`` and the metadata DB of *this* process
at a throwaway SQLite; that does not matter here, since this process never imports Airflow, and the
harness strips every ``AIRFLOW*`` variable from what it hands the services (they get their own).

``E2E_EXECUTORS=local`` (or ``celery``) runs one executor only; ``E2E_KEEP=1`` keeps each throwaway
directory (logs, ``outcome.json``) for debugging.

The LocalExecutor stack syncs FacturaDirecta through its REST API with ``webhooks: true`` and measures
the webhook latency (``tests/e2e/latency.py``); the Celery stack stays on the classic API without
webhooks, so each FacturaDirecta API runs the whole scenario once (issue 24).
``E2E_FACTURADIRECTA_API_<EXECUTOR>`` (``classic``/``rest``) and ``E2E_WEBHOOKS_<EXECUTOR>`` (``0``/``1``)
override that; the latency results go to ``$E2E_RESULTS_DIR`` (default ``/tmp/clientify-e2e-results``) as
``webhook-latency-<executor>.json``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts" / "e2e"))

from e2e_stack import running  # noqa: E402

from tests.e2e.latency import write_results  # noqa: E402
from tests.e2e.scenario import Outcome, dump, run_scenario, summary  # noqa: E402

EXECUTORS = [e.strip() for e in os.environ.get("E2E_EXECUTORS", "local,celery").split(",") if e.strip()]
DEFAULTS = {"local": ("rest", "1"), "celery": ("classic", "0")}  # FacturaDirecta API, webhooks
RESULTS_DIR = Path(os.environ.get("E2E_RESULTS_DIR", "/tmp/clientify-e2e-results"))
OUTCOMES: dict[str, Outcome] = {}
RESULT_FILES: list[Path] = []


def stack_options(executor: str) -> dict[str, object]:
    api, webhooks = DEFAULTS[executor]
    name = executor.upper()
    return {
        "facturadirecta_api": os.environ.get(f"E2E_FACTURADIRECTA_API_{name}", api),
        "webhooks": os.environ.get(f"E2E_WEBHOOKS_{name}", webhooks) == "1",
    }


@pytest.fixture(scope="module", params=EXECUTORS)
def outcome(request: pytest.FixtureRequest) -> Iterator[Outcome]:
    """Run the scenario once per executor on a fresh stack (stopped before the checks run)."""
    with running(request.param, **stack_options(request.param)) as stack:
        result = run_scenario(stack)
        dump(result, stack.root / "outcome.json")
    OUTCOMES[request.param] = result
    if result.webhooks is not None:
        RESULT_FILES.append(write_results(result.webhooks, RESULTS_DIR))
    yield result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Per executor and round: runs, task instances, time taken, calls per API."""
    if OUTCOMES:
        terminalreporter.section("clientify-sync e2e summary")
        for result in OUTCOMES.values():
            for line in summary(result):
                terminalreporter.write_line(line)
        for path in RESULT_FILES:
            terminalreporter.write_line(f"webhook latency results: {path}")
