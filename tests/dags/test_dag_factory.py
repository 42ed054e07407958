"""The DAG factory without a scheduler: the DAG objects a config builds (ids, settings, pools, schedules,
params, docs), and the task functions called directly with a fake task context (the watermark read and
pushed, the options handed to the engine, the failures that must not be retried and their messages).

``test_dag_integrity.py`` checks the packaged DAG folder as Airflow parses it; here every value comes from
a literal config, so each one is seen to follow the config.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk import CronDataIntervalTimetable
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from clientify_sync import dag_factory
from clientify_sync.assets import sync_asset
from clientify_sync.engine import job as job_module
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform
from clientify_sync.errors import AuthenticationError, ConfigurationError, PlanLimitExceededError
from clientify_sync.integrations import IntegrationsConfig, parse_integrations

CONFIG = {
    "retries": 4,
    "retry_delay_minutes": 2,
    "max_active_tasks": 3,
    "lookback_minutes": 15,
    "prerequisite_poke_seconds": 30,
    "prerequisite_timeout_minutes": 45,
    "rounding_adjustment": False,
    "conflicts": {"products": "clientify"},
    "clientify": {"conn_id": "crm_conn", "pool": "crm_pool"},
    "integrations": {
        "facturama": {
            "enabled": True,
            "conn_id": "fm_conn",
            "pool": "fm_pool",
            "schedule": "15 8-20 * * 1-6",
        },
        "facturadirecta": {"enabled": False},
    },
}
FM_IDS = ["facturama_contacts", "facturama_products", "facturama_estimates"]


@pytest.fixture(scope="module")
def config() -> IntegrationsConfig:
    return parse_integrations(CONFIG)


@pytest.fixture(scope="module")
def dags(config):
    return dag_factory.build_dags(config)


# -- the DAG objects ----------------------------------------------------------------------------------
def test_one_dag_per_entity_of_each_enabled_platform(dags):
    assert list(dags) == FM_IDS  # FacturaDirecta is disabled: no DAG of it
    assert all(dag.dag_id == dag_id for dag_id, dag in dags.items())


@pytest.mark.parametrize("dag_id", FM_IDS)
def test_a_dag_takes_its_settings_from_the_config(dags, dag_id):
    dag = dags[dag_id]
    assert (dag.max_active_tasks, dag.max_active_runs, dag.catchup) == (3, 1, False)
    assert dag.dagrun_timeout == timedelta(hours=3) and dag.start_date == datetime(2026, 1, 1, tzinfo=UTC)
    assert set(dag.tags) == {"clientify-sync", "facturama", dag_id.split("_")[1]}
    for task in dag.tasks:
        assert (task.retries, task.retry_delay, task.retry_exponential_backoff) == (
            4,
            timedelta(minutes=2),
            True,
        )
        assert task.owner == "clientify-sync"


def test_each_api_call_runs_in_its_apis_pool(dags):
    pools = {task.task_id: task.pool for task in dags["facturama_contacts"].tasks}
    assert pools["extract_invoicing"] == pools["apply_invoicing"] == "fm_pool"
    assert pools["extract_clientify"] == pools["apply_clientify"] == "crm_pool"
    assert pools["reconcile"] == pools["commit"] == pools["read_watermark"] == "default_pool"  # no API call


def test_entities_run_on_the_platforms_clock_and_estimates_after_both_prerequisites(dags):
    for dag_id in FM_IDS[:2]:
        timetable = dags[dag_id].timetable
        assert isinstance(timetable, CronDataIntervalTimetable)
        assert (timetable.expression, str(timetable.timezone)) == ("15 8-20 * * 1-6", "America/Mexico_City")
    condition = dags["facturama_estimates"].timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"
    assert set(condition.objects) == {
        sync_asset("facturama", "contacts"),
        sync_asset("facturama", "products"),
    }
    assert dag_factory.prerequisite_dag_ids("facturama") == ["facturama_contacts", "facturama_products"]


def test_the_estimates_gate_pokes_as_configured(dags):
    gate = dags["facturama_estimates"].task_dict["wait_for_prerequisites"]
    assert (gate.mode, gate.poke_interval, gate.timeout) == ("poke", 30, 45 * 60)
    assert "wait_for_prerequisites" not in dags["facturama_contacts"].task_dict


def test_the_params_default_to_a_modified_run_that_writes(dags):
    params = dags["facturama_products"].params
    assert (params["mode"], params["dry_run"]) == ("modified", False)
    assert params.get_param("mode").schema["enum"] == ["modified", "full"]


def test_the_docs_name_the_connections_pools_and_overlap(dags):
    contacts, estimates = dags["facturama_contacts"], dags["facturama_estimates"]
    assert (
        contacts.description == "Sync contacts and companies between Facturama (Mexico, JSON) and Clientify"
    )
    for text in ("connection\n`fm_conn`", "pool `fm_pool`", "connection `crm_conn`", "pool `crm_pool`",
                 "15-minute overlap", "`15 8-20 * * 1-6` (America/Mexico_City)",
                 "airflow backfill create --dag-id facturama_contacts"):  # fmt: skip
        assert text in contacts.doc_md, text
    assert "**Runs after** `facturama_contacts` and `facturama_products`" in estimates.doc_md
    assert "backfill create" not in estimates.doc_md  # an asset-scheduled DAG cannot be backfilled


def test_summaries_cross_xcom_as_plain_json():
    moment = datetime(2026, 5, 1, 10, 0, tzinfo=UTC)
    assert dag_factory._small({"at": moment, "amount": Decimal("1.50"), "n": [1]}) == {
        "at": "2026-05-01 10:00:00+00:00", "amount": "1.50", "n": [1],
    }  # fmt: skip
    assert dag_factory._small(None) == {}


# -- a fake task context ------------------------------------------------------------------------------
class TaskInstance:
    """What the tasks ask of Airflow's task instance: earlier successful runs, XCom pull and push."""

    def __init__(self, *, successes: int = 1, stored: Any = None) -> None:
        self.dag_id = "facturama_contacts"
        self.successes, self.stored = successes, stored
        self.pulls: list[dict[str, Any]] = []
        self.pushed: list[tuple[str, Any]] = []

    def get_dr_count(self, dag_id: str, states: list[str]) -> int:
        return self.successes if states == ["success"] else 0

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulls.append(kwargs)
        return self.stored

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed.append((key, value))


def context(
    monkeypatch, ti: TaskInstance | None = None, mode: str = "modified", **more: Any
) -> dict[str, Any]:
    values = {
        "params": {"mode": mode, "dry_run": False},
        "ti": ti or TaskInstance(),
        "run_id": "manual__1",
        **more,
    }
    monkeypatch.setattr(dag_factory, "get_current_context", lambda: values)
    return values


# -- read_watermark -------------------------------------------------------------------------------------
def read_watermark(dags, dag_id: str = "facturama_contacts") -> dict[str, Any]:
    return dags[dag_id].task_dict["read_watermark"].python_callable()


def test_the_first_run_reads_everything_without_asking_for_a_watermark(dags, monkeypatch):
    ti = TaskInstance(successes=0)
    context(monkeypatch, ti)
    assert read_watermark(dags) == {"watermark": None, "stored": None}
    assert ti.pulls == []  # nothing was ever pushed: asking would only log "XCom not found"


def test_the_watermark_is_the_latest_one_commit_pushed_in_canonical_form(dags, monkeypatch):
    ti = TaskInstance(stored="2026-05-01T10:00:00+02:00")
    context(monkeypatch, ti)
    assert read_watermark(dags) == {"watermark": "2026-05-01T08:00:00Z", "stored": "2026-05-01T08:00:00Z"}
    assert ti.pulls == [
        {"task_ids": "commit", "key": "watermark", "include_prior_dates": True, "map_indexes": -1}
    ]


def test_a_full_run_reads_from_nothing_but_keeps_the_stored_value_for_commit(dags, monkeypatch):
    context(monkeypatch, TaskInstance(stored="2026-05-01T08:00:00Z"), mode="full")
    assert read_watermark(dags) == {"watermark": None, "stored": "2026-05-01T08:00:00Z"}


def test_a_stored_watermark_that_is_no_timestamp_fails_at_once_saying_how_to_reset_it(dags, monkeypatch):
    context(monkeypatch, TaskInstance(stored="yesterday"))
    with pytest.raises(AirflowFailException) as failed:
        read_watermark(dags)
    assert "The stored watermark 'yesterday' is not an ISO-8601 timestamp" in str(failed.value)
    assert "Run the DAG once with mode=full to reset it." in str(failed.value)


@contextlib.contextmanager
def opened_nothing(platform, entity, config) -> Iterator[tuple[Any, ...]]:
    yield JobSpec(platform.name, entity, "manual__1"), None, None, None


def test_an_estimates_run_on_an_account_without_estimates_is_skipped_green_with_the_reason(dags, monkeypatch):
    context(monkeypatch, TaskInstance(successes=0))
    found = [{"message": "unsupported: facturama answered 404 on /Estimates (set estimates_path)"}]
    monkeypatch.setattr(dag_factory, "_opened", opened_nothing)
    monkeypatch.setattr(job_module, "check_supported", lambda spec, *clients: found)
    with pytest.raises(
        AirflowSkipException, match="facturama estimates unsupported by the account: unsupported: "
    ):
        read_watermark(dags, "facturama_estimates")
    monkeypatch.setattr(job_module, "check_supported", lambda spec, *clients: [])
    assert read_watermark(dags, "facturama_estimates") == {"watermark": None, "stored": None}


# -- the steps and commit ----------------------------------------------------------------------------
class Job:
    """The engine job as the tasks drive it: each step answers a summary; commit answers a report."""

    def __init__(self, watermark_out: str | None) -> None:
        self.watermark_out = watermark_out
        self.commits: list[tuple[str | None, str | None]] = []

    def commit(self, previous_watermark: str | None, seen_max: str | None) -> dict[str, Any]:
        self.commits.append((previous_watermark, seen_max))
        return {"watermark_out": self.watermark_out, "at": datetime(2026, 5, 1, tzinfo=UTC)}


def test_commit_gives_the_engine_the_stored_watermark_and_pushes_what_it_answers_last(dags, monkeypatch):
    dag = dags["facturama_contacts"]
    asset = sync_asset("facturama", "contacts")
    job = Job("2026-05-01T09:00:00Z")
    event = SimpleNamespace(extra=None)
    ti = TaskInstance()
    context(monkeypatch, ti, dag=dag, outlet_events={asset: event})
    monkeypatch.setattr(dag_factory, "_sync_job", lambda *args: contextlib.nullcontext(job))
    monkeypatch.setattr("clientify_sync.engine.report.format_report_table", lambda report: "table")
    monkeypatch.setattr("clientify_sync.hooks.state.StateLedgerHook.describe", lambda self: "sqlite (test)")
    start = {"watermark": None, "stored": "2026-04-30T00:00:00Z"}  # a full run: read from nothing

    report = dag.task_dict["commit"].python_callable(start, {"max_modified": "2026-05-01T09:00:00Z"}, {})
    assert job.commits == [("2026-04-30T00:00:00Z", "2026-05-01T09:00:00Z")]  # the stored one, not None
    assert ti.pushed == [("watermark", "2026-05-01T09:00:00Z")]
    assert report == {"watermark_out": "2026-05-01T09:00:00Z", "at": "2026-05-01 00:00:00+00:00"}
    assert event.extra == {"run_id": "manual__1", "mode": "modified", "dry_run": False}


def test_the_engine_gets_the_configs_options(dags, config, monkeypatch):
    built: list[Any] = []

    class Recording:
        def __init__(self, spec: JobSpec, *, invoicing, clientify, ledger, options) -> None:
            built.append((spec, options))

        def extract_invoicing(self) -> dict[str, Any]:
            return {"records": 0}

    monkeypatch.setattr(dag_factory, "_opened", opened_nothing)
    monkeypatch.setattr(job_module, "SyncJob", Recording)
    assert dags["facturama_products"].task_dict["extract_invoicing"].python_callable() == {"records": 0}
    [(spec, options)] = built
    assert (spec.platform, spec.entity) == (Platform.FACTURAMA, Entity.PRODUCTS)
    assert options.lookback == timedelta(minutes=15) and options.rounding_adjustment is False
    assert options.invoicing_wins == config.invoicing_wins == {Entity.PRODUCTS: frozenset()}


# -- what must not be retried ------------------------------------------------------------------------
class Hook:
    """An API hook: ``get_conn`` answers a client or raises; ``close`` is counted."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error, self.closed, self.budget = error, 0, None

    def share_budget(self, engine: Any) -> None:
        self.budget = engine

    def get_conn(self) -> Any:
        if self.error is not None:
            raise self.error
        return SimpleNamespace()

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def hooks(monkeypatch, tmp_path) -> dict[str, Hook]:
    made = {"invoicing": Hook(), "clientify": Hook()}
    url = f"sqlite:///{tmp_path}/ledger.db"
    monkeypatch.setattr("clientify_sync.hooks.state.StateLedgerHook.get_url", lambda self: url)
    monkeypatch.setattr(dag_factory, "_invoicing_hook", lambda platform: made["invoicing"])
    monkeypatch.setattr(dag_factory, "_clientify_hook", lambda config: made["clientify"])
    return made


def opened(config: IntegrationsConfig, entity: Entity = Entity.CONTACTS):
    return dag_factory._opened(config.platform("facturama"), entity, config)


def test_a_task_opens_the_run_of_its_context_and_closes_everything(monkeypatch, config, hooks):
    context(monkeypatch, mode="full")
    with opened(config) as (spec, ledger, invoicing, clientify):
        assert spec == JobSpec(Platform.FACTURAMA, Entity.CONTACTS, "manual__1", Mode.FULL, False)
        assert (ledger.integration, ledger.entity) == ("facturama", "contacts")
        assert (
            hooks["invoicing"].budget is ledger.engine is hooks["clientify"].budget
        )  # one budget per account
    assert hooks["invoicing"].closed == hooks["clientify"].closed == 1


FAILURES = [
    pytest.param(
        "invoicing", AuthenticationError("facturama", "GET", "/Clients", 401),
        ["Authentication failed against facturama", "Airflow connection 'fm_conn'", "not retrying"], id="auth",
    ),
    pytest.param(
        "clientify", AuthenticationError("clientify", "GET", "/v1/contacts/", 401),
        ["Authentication failed against clientify", "Airflow connection 'crm_conn'"], id="auth-clientify",
    ),
    pytest.param(
        "clientify", PlanLimitExceededError("clientify", "POST", "/v1/contacts/", 402, detail="contacts limit"),
        ["The clientify plan of Airflow connection 'crm_conn' caps", "(contacts limit)", "raise the plan"],
        id="plan-limit",
    ),
    pytest.param(
        "invoicing", ConfigurationError("estimates_path must not be empty"),
        ["Configuration error: estimates_path must not be empty. Not retrying."], id="configuration",
    ),
    pytest.param(
        "invoicing", AirflowNotFoundException("The conn_id `fm_conn` isn't defined"),
        ["The conn_id `fm_conn` isn't defined. Define the connection", "Not retrying."], id="no-connection",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("hook", "error", "said"), FAILURES)
def test_an_error_a_retry_cannot_fix_fails_the_task_at_once_saying_what_to_do(
    monkeypatch, config, hooks, hook, error, said
):
    context(monkeypatch)
    hooks[hook].error = error
    with pytest.raises(AirflowFailException) as failed, opened(config):
        pass
    for text in said:
        assert text in str(failed.value)
    assert failed.value.__cause__ is error
    assert hooks["invoicing"].closed == hooks["clientify"].closed == 1  # closed on the way out too


def test_the_same_holds_for_an_error_raised_while_the_step_runs(monkeypatch, config, hooks):
    context(monkeypatch)
    with pytest.raises(AirflowFailException, match="Airflow connection 'crm_conn'"), opened(config):
        raise AuthenticationError("clientify", "POST", "/v1/companies/", 403)


def test_other_errors_are_left_to_airflows_retries(monkeypatch, config, hooks):
    context(monkeypatch)
    with pytest.raises(RuntimeError, match="a 503 after every retry"), opened(config):
        raise RuntimeError("a 503 after every retry")
