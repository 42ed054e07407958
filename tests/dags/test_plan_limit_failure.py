"""A plan cap (FacturaDirecta REST 403 ``plan_limit_exceeded``) fails the task at once, naming the cap, not
the credentials: the credentials are fine and a retry would hit the same cap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clientify_sync.errors import PlanLimitExceededError
from include.load_settings import connection_env
from tests.dags.conftest import ROOT, stored_watermarks, task_states
from tests.dags.test_dag_runs import Script, ScriptedJob, run

DAG_ID = "facturadirecta_contacts"
pytestmark = pytest.mark.dagrun  # a whole dag.test() run, as tests/conftest.py marks test_dag_runs.py


@pytest.fixture
def scripted(monkeypatch, fresh_dags, dagbag):
    """The FacturaDirecta contacts DAG with the scripted engine of test_dag_runs and no history."""
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
    for task in dag.tasks:
        monkeypatch.setattr(task, "retry_delay", timedelta(0))
    return dag, script


def test_a_plan_cap_fails_at_once_naming_the_cap_not_the_credentials(scripted, capfd):
    dag, script = scripted
    cap = "Has alcanzado el máximo de 10 contactos de tu plan"
    error = PlanLimitExceededError("facturadirecta", "POST", "/api/{companyId}/contacts", 403, cap)
    failed = run(dag, script, max_modified="2026-03-01T10:00:00Z", fail_at="apply_invoicing", error=error)
    assert failed.state == "failed"
    states = task_states(failed)
    assert states["apply_invoicing"] == "failed" and states["commit"] == "upstream_failed"
    assert script.steps.count("apply_invoicing") == 1  # retries=3 on the task, yet no second try
    assert stored_watermarks(DAG_ID) == []
    captured = capfd.readouterr()
    text = captured.out + captured.err
    assert "The facturadirecta plan of Airflow connection 'facturadirecta_default' caps" in text
    assert cap in text and "raise the plan" in text
    assert "Check the credentials" not in text
