"""Fixtures for the DAG tests: the parsed DagBag, a metadata DB for ``dag.test()``, run history cleanup.

The suite-wide conftest already points AIRFLOW_HOME, the dags folder and the metadata DB at a
throwaway directory; here the DB gets its tables (once per session) and each end-to-end test starts
from a DAG with no earlier runs, so no watermark leaks from one test into the next.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from unittest import mock

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
        rows = session.scalars(
            select(XComModel)
            .join(DagRun, (DagRun.run_id == XComModel.run_id) & (DagRun.dag_id == XComModel.dag_id))
            .where(XComModel.dag_id == dag_id, XComModel.task_id == "commit", XComModel.key == "watermark")
            .order_by(DagRun.logical_date)
        ).all()
        return [(row.run_id, XComModel.deserialize_value(row)) for row in rows]


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
        row = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == dag_run.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == task_id,
                XComModel.key == key,
            )
        )
        return None if row is None else XComModel.deserialize_value(row)


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


@contextlib.contextmanager
def running_existing_dagrun(run_id: str) -> Iterator[None]:
    """Make ``dag.test()`` execute an existing DAG run (e.g. a backfill's) instead of creating one.

    ``dag.test()`` always creates a manual run (and deletes any run at the same logical date). The
    scheduler is what normally starts backfill runs; here the run created by ``airflow backfill
    create`` logic is handed to ``dag.test()``'s in-process task loop unchanged.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.state import DagRunState
    from sqlalchemy import select

    def existing(*, dag, session, **kwargs):
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == dag.dag_id, DagRun.run_id == run_id))
        dag_run.state = DagRunState.RUNNING
        session.commit()
        dag_run.dag = dag
        return dag_run

    with mock.patch("airflow.models.dagrun.get_or_create_dagrun", existing):
        yield


def create_backfill(dag_id: str, *, hours_ago: tuple[int, int], conf: dict) -> list[dict]:
    """Create a backfill as ``airflow backfill create`` does; return its runs, oldest first.

    Args:
        dag_id: the DAG to backfill.
        hours_ago: the window, as whole hours before the current hour (``(3, 2)``: two runs).
        conf: the runs' conf.
    """
    from datetime import timedelta

    from airflow.models.backfill import _create_backfill
    from airflow.models.dagrun import DagRun
    from airflow.sdk import timezone
    from airflow.utils.session import create_session
    from sqlalchemy import select

    hour = timezone.utcnow().replace(minute=0, second=0, microsecond=0)
    backfill = _create_backfill(
        dag_id=dag_id,
        from_date=hour - timedelta(hours=hours_ago[0]),
        to_date=hour - timedelta(hours=hours_ago[1]),
        max_active_runs=1,
        reverse=False,
        dag_run_conf=conf,
        triggering_user_name="pytest",
    )
    with create_session() as session:
        runs = session.scalars(
            select(DagRun).where(DagRun.backfill_id == backfill.id).order_by(DagRun.logical_date)
        ).all()
        return [
            {
                "run_id": r.run_id,
                "run_type": str(r.run_type),
                "conf": r.conf,
                "interval": (r.data_interval_start, r.data_interval_end),
                "state": str(r.state),
            }
            for r in runs
        ]
