"""Session set-up of the end-to-end suite: one real Airflow deployment per executor.

The unit suite's ``tests/conftest.py`` points ``AIRFLOW_HOME`` and the metadata DB of *this* process
at a throwaway SQLite; that does not matter here, since this process never imports Airflow, and the
harness strips every ``AIRFLOW*`` variable from what it hands the services (they get their own).

``E2E_EXECUTORS=local`` (or ``celery``) runs one executor only; ``E2E_KEEP=1`` keeps each throwaway
directory (logs, ``outcome.json``) for debugging.
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

from tests.e2e.scenario import Outcome, dump, run_scenario, summary  # noqa: E402

EXECUTORS = [e.strip() for e in os.environ.get("E2E_EXECUTORS", "local,celery").split(",") if e.strip()]
OUTCOMES: dict[str, Outcome] = {}


@pytest.fixture(scope="module", params=EXECUTORS)
def outcome(request: pytest.FixtureRequest) -> Iterator[Outcome]:
    """Run the scenario once per executor on a fresh stack (stopped before the checks run)."""
    with running(request.param) as stack:
        result = run_scenario(stack)
        dump(result, stack.root / "outcome.json")
    OUTCOMES[request.param] = result
    yield result


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Per executor and round: runs, task instances, time taken, calls per API."""
    if OUTCOMES:
        terminalreporter.section("clientify-sync e2e summary")
        for result in OUTCOMES.values():
            for line in summary(result):
                terminalreporter.write_line(line)
