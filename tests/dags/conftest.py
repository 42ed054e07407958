"""Fixtures for the DAG tests: the parsed DagBag, a metadata DB for ``dag.test()``, run history cleanup.

The suite-wide conftest already points AIRFLOW_HOME, the dags folder and the metadata DB at a
throwaway directory; here the DB gets its tables (once per session) and each end-to-end test starts
from a DAG with no earlier runs, so no watermark leaks from one test into the next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAGS_DIR = ROOT / "dags"
EXPECTED_DAG_IDS = {
    f"{platform}_{entity}"
    for platform in ("facturama", "facturadirecta")
    for entity in ("contacts", "products", "estimates")
}


def ensure_airflow_db() -> None:
    """Create the metadata tables once (``resetdb`` on an empty SQLite file takes about a second)."""
    from airflow import settings
    from sqlalchemy import inspect

    if not inspect(settings.engine).has_table("dag_run"):
        from airflow.utils import db

        db.resetdb()


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """A metadata DB with every table, shared by the session."""
    ensure_airflow_db()


@pytest.fixture(scope="session")
def dagbag():
    """The project's DAG folder, parsed once (no ``include_examples``: it is a TypeError on 3.3)."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_DIR))


def forget_runs(dag_ids: Iterable[str]) -> None:
    """Delete the DAG runs, task instances, XComs and backfills of some DAGs."""
    from airflow.models.backfill import Backfill, BackfillDagRun
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    dag_ids = list(dag_ids)
    with create_session() as session:
        backfill_ids = select(Backfill.id).where(Backfill.dag_id.in_(dag_ids))
        session.execute(delete(BackfillDagRun).where(BackfillDagRun.backfill_id.in_(backfill_ids)))
        session.execute(delete(XComModel).where(XComModel.dag_id.in_(dag_ids)))
        session.execute(delete(TaskInstance).where(TaskInstance.dag_id.in_(dag_ids)))
        session.execute(delete(DagRun).where(DagRun.dag_id.in_(dag_ids)))
        session.execute(delete(Backfill).where(Backfill.dag_id.in_(dag_ids)))


def stored_watermarks(dag_id: str) -> list[tuple[str, str | None]]:
    """Return ``(run_id, watermark)`` for every run of a DAG whose ``commit`` pushed one, oldest first."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(
            select(XComModel.run_id, XComModel.value)
            .join(DagRun, (DagRun.run_id == XComModel.run_id) & (DagRun.dag_id == XComModel.dag_id))
            .where(XComModel.dag_id == dag_id, XComModel.task_id == "commit", XComModel.key == "watermark")
            .order_by(DagRun.logical_date)
        ).all()
    return [(run_id, XComModel.deserialize_value(_Row(value))) for run_id, value in rows]


class _Row:
    """What ``XComModel.deserialize_value`` expects: an object with a ``value`` attribute."""

    def __init__(self, value):
        self.value = value


def task_states(dag_run) -> dict[str, str]:
    """Return ``{task_id: state}`` of a finished ``dag.test()`` run."""
    from airflow.utils.session import create_session

    with create_session() as session:
        return {ti.task_id: str(ti.state) for ti in dag_run.get_task_instances(session=session)}


def xcom_value(dag_run, task_id: str, key: str = "return_value"):
    """Return one XCom of a finished run (``None`` when absent)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = session.scalar(
            select(XComModel.value).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        )
    return None if value is None else XComModel.deserialize_value(_Row(value))


@pytest.fixture
def fresh_dags(airflow_db) -> Callable[..., None]:
    """Forget the history of the given DAG ids now and again after the test."""
    used: set[str] = set()

    def _fresh(*dag_ids: str) -> None:
        used.update(dag_ids)
        forget_runs(dag_ids)

    yield _fresh
    if used:
        forget_runs(used)
