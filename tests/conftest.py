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


def pytest_addoption(parser):
    parser.addoption(
        "--large", action="store_true", default=False, help="fault and scenario suites at larger sizes"
    )
