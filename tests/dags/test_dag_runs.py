"""Whole DAG runs through ``dag.test()`` with a scripted engine: the watermark plumbing, exactly.

The real ``SyncJob`` is replaced by :class:`ScriptedJob` (``dag.test()`` runs tasks in this process,
so a monkeypatched class is what the tasks open). That isolates what the DAG layer owns: which
watermark each run starts from, when ``commit`` pushes, what a failure, ``full``, ``dry_run`` and a
backfill do to it, and that authentication errors fail without retries. The sandbox tests
(``test_dag_runs_sandbox.py``) run the same DAGs against the real engine and API emulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, ClassVar
from unittest import mock

import pytest

from clientify_sync.errors import AuthenticationError
from clientify_sync.watermark import next_watermark
from include.load_settings import connection_env
from tests.dags.conftest import (
    ROOT,
    create_backfill,
    running_existing_dagrun,
    stored_watermarks,
    task_states,
    xcom_value,
)

DAG_ID = "facturama_contacts"


@dataclass
class Script:
    """What the scripted engine does in the next run, and what it saw."""

    max_modified: str | None = None
    fail_at: str | None = None
    error: BaseException | None = None
    watermarks_in: list[str | None] = field(default_factory=list)
    commits: list[tuple[str | None, str | None]] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)


class ScriptedJob:
    """Stands in for ``clientify_sync.engine.job.SyncJob`` with the same step methods."""

    script: ClassVar[Script]

    def __init__(
        self, spec: Any, *, invoicing: Any, clientify: Any, ledger: Any, options: Any = None
    ) -> None:
        assert ledger.engine.url.drivername == "sqlite"
        assert options is not None and options.lookback == timedelta(minutes=10)
        self.spec = spec

    def close(self) -> None:
        pass

    def _step(self, name: str, summary: dict[str, Any]) -> dict[str, Any]:
        self.script.steps.append(name)
        if self.script.fail_at == name:
            raise self.script.error or RuntimeError(f"scripted failure in {name}")
        return summary

    def extract_invoicing(self) -> dict[str, Any]:
        return self._step("extract_invoicing", {"records": 3})

    def extract_clientify(self, watermark: str | None) -> dict[str, Any]:
        self.script.watermarks_in.append(watermark)
        return self._step("extract_clientify", {"records": 2, "max_modified": self.script.max_modified})

    def reconcile(self) -> dict[str, Any]:
        return self._step("reconcile", {"planned": {"update:clientify": 1}})

    def apply_clientify(self) -> dict[str, Any]:
        return self._step("apply_clientify", {"items": 0 if self.spec.dry_run else 1})

    def apply_invoicing(self) -> dict[str, Any]:
        return self._step("apply_invoicing", {"items": 0})

    def commit(self, previous_watermark: str | None, seen_max: str | None) -> dict[str, Any]:
        self.script.commits.append((previous_watermark, seen_max))
        self._step("commit", {})
        # What the engine proposes: a dry run keeps the watermark; otherwise the usual rule.
        out = (
            previous_watermark
            if self.spec.dry_run
            else next_watermark(previous_watermark, seen_max, self.spec.mode)
        )
        return {"run_id": self.spec.run_id, "watermark_in": previous_watermark, "watermark_out": out}


@pytest.fixture
def scripted(monkeypatch, fresh_dags, dagbag):
    """The DAG under test with the scripted engine, sandbox-default connections and no history."""
    import clientify_sync.engine.job as job_module
    import clientify_sync.engine.report as report_module

    for name, value in connection_env(ROOT / "airflow_settings.yaml").items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(job_module, "SyncJob", ScriptedJob)
    monkeypatch.setattr(report_module, "format_report_table", lambda report: f"report {report}")
    fresh_dags(DAG_ID)
    script = Script()
    monkeypatch.setattr(ScriptedJob, "script", script, raising=False)
    dag = dagbag.dags[DAG_ID]
    # Retries stay on (the auth test relies on them) but without the delay: an unexpected failure
    # would otherwise park dag.test() for minutes (and Airflow takes SIGALRM from pytest-timeout).
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag, script


def run(
    dag,
    script: Script,
    *,
    conf: dict | None = None,
    max_modified: str | None = None,
    fail_at: str | None = None,
    error: BaseException | None = None,
    **test_kwargs: Any,
):
    """One ``dag.test()`` run with the script set for it.

    The conf always names every param: in-process ``dag.test()`` resolves the run's conf into the
    DAG's own ``Param`` objects, so a value from an earlier run would otherwise stick.
    """
    script.max_modified, script.fail_at, script.error = max_modified, fail_at, error
    return dag.test(run_conf={"mode": "modified", "dry_run": False, **(conf or {})}, **test_kwargs)


def test_watermark_is_carried_between_runs_and_only_advances(scripted):
    dag, script = scripted

    first = run(dag, script, max_modified="2026-03-01T10:00:00+01:00")
    assert first.state == "success"
    assert script.watermarks_in == [None]
    assert stored_watermarks(DAG_ID)[-1][1] == "2026-03-01T09:00:00Z"

    second = run(dag, script, max_modified="2026-03-01T12:00:00Z")
    assert second.state == "success"
    assert script.watermarks_in[-1] == "2026-03-01T09:00:00Z"  # the previous run's, normalised to UTC
    assert xcom_value(second, "read_watermark")["watermark"] == "2026-03-01T09:00:00Z"

    # A run that sees an older max (clock skew, a straggler) never moves the watermark back.
    third = run(dag, script, max_modified="2026-03-01T08:00:00Z")
    assert third.state == "success"
    assert script.watermarks_in[-1] == "2026-03-01T12:00:00Z"
    assert [w for _, w in stored_watermarks(DAG_ID)] == [
        "2026-03-01T09:00:00Z",
        "2026-03-01T12:00:00Z",
        "2026-03-01T12:00:00Z",
    ]
    # After three pushes the pull is still one value (map_indexes=-1), not a list of all of them.
    run(dag, script, max_modified=None)
    assert script.watermarks_in[-1] == "2026-03-01T12:00:00Z"
    report = xcom_value(third, "commit")
    assert report["watermark_in"] == "2026-03-01T12:00:00Z"


def test_a_failed_run_does_not_advance_the_watermark(scripted):
    dag, script = scripted
    run(dag, script, max_modified="2026-03-01T10:00:00Z")

    # apply_invoicing fails for good (retries off so dag.test does not wait for retry delays).
    with mock.patch.object(dag.task_dict["apply_invoicing"], "retries", 0):
        failed = run(dag, script, max_modified="2026-03-05T10:00:00Z", fail_at="apply_invoicing")
    assert failed.state == "failed"
    states = task_states(failed)
    assert states["apply_invoicing"] == "failed"
    assert states["commit"] == "upstream_failed"
    assert [w for _, w in stored_watermarks(DAG_ID)] == ["2026-03-01T10:00:00Z"]

    after = run(dag, script, max_modified="2026-03-02T10:00:00Z")
    assert after.state == "success"
    assert script.watermarks_in[-1] == "2026-03-01T10:00:00Z"


def test_a_commit_failure_does_not_advance_the_watermark(scripted):
    dag, script = scripted
    run(dag, script, max_modified="2026-03-01T10:00:00Z")
    with mock.patch.object(dag.task_dict["commit"], "retries", 0):
        failed = run(dag, script, max_modified="2026-03-05T10:00:00Z", fail_at="commit")
    assert failed.state == "failed"
    assert [w for _, w in stored_watermarks(DAG_ID)] == ["2026-03-01T10:00:00Z"]


def test_authentication_errors_fail_at_once_with_a_clear_message(scripted, capfd):
    dag, script = scripted
    error = AuthenticationError("clientify", "GET", "/v1/contacts/", 401, "Invalid token.")
    failed = run(dag, script, max_modified="2026-03-01T10:00:00Z", fail_at="extract_clientify", error=error)
    assert failed.state == "failed"
    states = task_states(failed)
    # retries=3 on the task, yet it failed on the first try instead of waiting for a retry.
    assert states["extract_clientify"] == "failed"
    assert {states[t] for t in ("reconcile", "apply_clientify", "apply_invoicing", "commit")} == {
        "upstream_failed"
    }
    assert "apply_clientify" not in script.steps
    assert stored_watermarks(DAG_ID) == []
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "AirflowFailException" in text
    assert "Authentication failed against clientify" in text
    assert "connection 'clientify_default'" in text


def test_full_ignores_and_resets_the_watermark(scripted):
    dag, script = scripted
    run(dag, script, max_modified="2026-03-05T10:00:00Z")

    full = run(dag, script, conf={"mode": "full"}, max_modified="2026-03-02T00:00:00Z")
    assert full.state == "success"
    assert script.watermarks_in[-1] is None  # full reads everything
    # The engine gets the stored watermark and applies the full rule itself; the DAG pushes its answer.
    assert script.commits[-1] == ("2026-03-05T10:00:00Z", "2026-03-02T00:00:00Z")
    assert stored_watermarks(DAG_ID)[-1][1] == "2026-03-02T00:00:00Z"  # reset, even though lower

    run(dag, script, max_modified=None)
    assert script.watermarks_in[-1] == "2026-03-02T00:00:00Z"


def test_dry_run_keeps_the_watermark(scripted):
    dag, script = scripted
    run(dag, script, max_modified="2026-03-01T10:00:00Z")

    dry = run(dag, script, conf={"dry_run": True}, max_modified="2026-03-09T10:00:00Z")
    assert dry.state == "success"
    # Pushed back unchanged (a successful run always leaves the watermark it found).
    assert xcom_value(dry, "commit", key="watermark") == "2026-03-01T10:00:00Z"
    # A full dry run would reset the watermark if it pushed what it read from (nothing): it must not.
    full_dry = run(dag, script, conf={"dry_run": True, "mode": "full"}, max_modified="2026-03-09T10:00:00Z")
    assert full_dry.state == "success"
    assert [w for _, w in stored_watermarks(DAG_ID)] == ["2026-03-01T10:00:00Z"] * 3

    run(dag, script, max_modified=None)
    assert script.watermarks_in[-1] == "2026-03-01T10:00:00Z"


def test_a_run_without_logical_date_reads_the_previous_watermark(scripted):
    """``airflow dags trigger`` without --logical-date: the lookup falls back to run_after."""
    dag, script = scripted
    run(dag, script, max_modified="2026-03-01T10:00:00Z")
    undated = run(dag, script, max_modified="2026-03-02T10:00:00Z", logical_date=None)
    assert undated.state == "success" and undated.logical_date is None
    assert script.watermarks_in[-1] == "2026-03-01T10:00:00Z"
    assert xcom_value(undated, "commit", key="watermark") == "2026-03-02T10:00:00Z"


def test_invalid_mode_is_refused_before_any_task_runs(scripted):
    dag, script = scripted
    with pytest.raises(Exception, match="bogus"):
        run(dag, script, conf={"mode": "bogus"})
    assert script.steps == []


def test_backfill_with_mode_full(scripted):
    """``airflow backfill create --dag-run-conf '{"mode": "full"}'``, then its runs, in-process."""
    dag, script = scripted
    latest = run(dag, script, max_modified="2026-03-05T10:00:00Z")  # also syncs the DAG to the DB
    assert latest.state == "success"

    runs = create_backfill(DAG_ID, hours_ago=(3, 2), conf={"mode": "full"})
    assert len(runs) == 2
    for backfill_run in runs:
        assert backfill_run["run_type"] == "backfill"
        assert backfill_run["state"] == "queued"  # waiting for a scheduler
        assert backfill_run["conf"] == {"mode": "full"}
        start, end = backfill_run["interval"]
        assert end - start == timedelta(hours=1)  # real hourly data intervals
        with running_existing_dagrun(backfill_run["run_id"]):
            done = run(dag, script, conf={"mode": "full"}, max_modified="2026-02-01T00:00:00Z")
        assert done.run_id == backfill_run["run_id"] and done.state == "success"
        assert script.watermarks_in[-1] is None  # full: the stored watermark is ignored

    # The backfill runs pushed their (older-dated) watermark, but the next regular run still starts
    # from the newest logical date's value: a backfill in the past does not move it.
    assert stored_watermarks(DAG_ID)[-1][1] == "2026-03-05T10:00:00Z"
    run(dag, script, max_modified=None)
    assert script.watermarks_in[-1] == "2026-03-05T10:00:00Z"


def test_estimates_cannot_be_backfilled_and_say_so(scripted, dagbag):
    """Estimates are scheduled on assets alone (see the DAG factory): a backfill is refused by Airflow
    itself; their full resync is a manual trigger with mode=full."""
    from airflow.models.backfill import DagNonPeriodicScheduleException, ReprocessBehavior, _do_dry_run
    from airflow.sdk import timezone
    from airflow.utils.session import create_session

    dag, script = scripted
    run(dag, script, max_modified=None)  # dag.test() syncs the whole folder into the metadata DB
    now = timezone.utcnow().replace(minute=0, second=0, microsecond=0)
    with create_session() as session, pytest.raises(DagNonPeriodicScheduleException):
        list(
            _do_dry_run(
                dag_id="facturama_estimates",
                from_date=now - timedelta(hours=3),
                to_date=now - timedelta(hours=1),
                reverse=False,
                reprocess_behavior=ReprocessBehavior.NONE,
                session=session,
                dag_run_conf={"mode": "full"},
            )  # fmt: skip
        )


class GateTaskInstance:
    """What the gate asks of the task SDK: how many runs of a DAG are in some states."""

    def __init__(self, busy: dict[str, int]) -> None:
        self.busy = busy
        self.asked: list[tuple[str, tuple[str, ...]]] = []

    def get_dr_count(self, dag_id: str, states: list[str]) -> int:
        self.asked.append((dag_id, tuple(states)))
        return self.busy.get(dag_id, 0)


@pytest.mark.parametrize(
    ("busy", "passes"),
    [
        ({}, True),
        ({"facturama_contacts": 1}, False),
        ({"facturama_products": 2}, False),
        ({"facturadirecta_contacts": 1}, True),  # the other platform's runs do not hold Facturama's estimates
    ],
)
def test_the_estimates_gate_waits_while_a_prerequisite_run_is_queued_or_running(
    monkeypatch, dagbag, busy, passes
):
    from clientify_sync import dag_factory

    ti = GateTaskInstance(busy)
    monkeypatch.setattr(dag_factory, "get_current_context", lambda: {"ti": ti})
    gate = dagbag.dags["facturama_estimates"].task_dict["wait_for_prerequisites"]
    assert gate.python_callable() is passes
    assert {dag_id for dag_id, _ in ti.asked} <= {"facturama_contacts", "facturama_products"}
    assert all(states == ("queued", "running") for _, states in ti.asked)
