"""Suite-wide set-up: a throwaway AIRFLOW_HOME with a SQLite metadata DB, import paths, shared fixtures.

Airflow reads its configuration when first imported, so the environment is set here, before any test
module imports ``airflow``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="clientify-sync-airflow-home-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(ROOT / "plugins")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
# pytest imports the package before Airflow would add plugins/ to sys.path.
for path in (ROOT, ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

pytest_plugins = ["tests.fixtures.sandbox"]


# What a test needs beyond the venv (markers in pyproject.toml), by node id prefix: a directory, a
# module, or one test (all its parameters). `make unit` deselects them with -m; `make test` runs all.
# The ledger's PostgreSQL parameter is marked where it is declared (tests/engine/ledger/conftest.py).
MARKS = {
    "tests/ui/test_live_ui.py": "browser",  # airflow standalone + headless Chromium
    "tests/provider/test_wheel.py": "wheel",
    "tests/dags/test_dag_runs.py": "dagrun",
    "tests/dags/test_dag_runs_sandbox.py": "dagrun",
    # Seconds each; together about 4 of the suite's minutes outside those above.
    "tests/faults/": "slow",  # whole syncs under injected faults, re-run until they converge
    "tests/bench/test_bench_smoke.py::test_bench_runs_end_to_end_and_beats_the_baseline": "slow",
    "tests/bench/test_bench_smoke.py::test_bench_with_the_realistic_profile_counts_the_added_latency": "slow",
    "tests/sandbox/test_performance.py::test_deep_pages_with_100k_records": "slow",
    "tests/sandbox/test_generator.py::test_100k_clients_have_unique_valid_rfcs": "slow",
    "tests/sandbox/test_control.py::test_file_database_survives_a_restart_and_cli_options_apply": "slow",
    "tests/test_load_settings.py::test_the_import_runs_airflows_commands_and_overwrites": "slow",
}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        test = item.nodeid.split("[", 1)[0]
        for prefix, mark in MARKS.items():
            if test == prefix or test.startswith(prefix if prefix.endswith("/") else prefix + "::"):
                item.add_marker(mark)


def pytest_addoption(parser):
    parser.addoption(
        "--large", action="store_true", default=False, help="fault and scenario suites at larger sizes"
    )
