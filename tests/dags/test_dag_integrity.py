"""DAG integrity: the folder parses, every DAG has the required settings, wiring and ordering.

No network, no sandbox, no engine: these tests only parse the DAG files.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
import yaml
from airflow.sdk import CronDataIntervalTimetable, Param
from airflow.sdk.exceptions import ParamValidationError

from clientify_sync.assets import sync_asset
from tests.dags.conftest import DAGS_DIR, EXPECTED_DAG_IDS, ROOT

ENTITY_DAG_IDS = sorted(d for d in EXPECTED_DAG_IDS if not d.endswith("_estimates"))
ESTIMATE_DAG_IDS = sorted(d for d in EXPECTED_DAG_IDS if d.endswith("_estimates"))
TASK_IDS = [
    "read_watermark",
    "extract_invoicing",
    "extract_clientify",
    "reconcile",
    "apply_clientify",
    "apply_invoicing",
    "commit",
]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dag_ids(dagbag):
    assert set(dagbag.dag_ids) == EXPECTED_DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_dag_settings(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    platform, entity = dag_id.split("_")
    assert {"clientify-sync", platform, entity} <= set(dag.tags)
    assert dag.catchup is False
    assert dag.max_active_runs == 1
    assert dag.start_date is not None and dag.start_date.utcoffset() == timedelta(0)
    assert dag.doc_md and dag_id in dag.doc_md
    for task in dag.tasks:
        assert task.retries >= 2, task.task_id
        assert task.retry_delay >= timedelta(minutes=1), task.task_id
        assert task.trigger_rule == "all_success", task.task_id


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_params_mode_and_dry_run(dagbag, dag_id):
    params = dagbag.dags[dag_id].params
    mode = params.get_param("mode")
    dry_run = params.get_param("dry_run")
    assert isinstance(mode, Param) and isinstance(dry_run, Param)
    assert mode.value == "modified"
    assert sorted(mode.schema["enum"]) == ["full", "modified"]
    assert mode.description and dry_run.description
    assert dry_run.value is False and dry_run.schema["type"] == "boolean"
    chosen = copy.deepcopy(params)
    chosen.update({"mode": "full", "dry_run": True})
    assert chosen.validate() == {"mode": "full", "dry_run": True}
    with pytest.raises(ParamValidationError, match="bogus"):
        copy.deepcopy(params)["mode"] = "bogus"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_task_graph(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    estimates = dag_id.endswith("_estimates")
    gate = ["wait_for_prerequisites"] if estimates else []
    assert sorted(dag.task_ids) == sorted(TASK_IDS + gate)
    upstream = {task.task_id: task.upstream_task_ids for task in dag.tasks}
    assert upstream == {
        **({"wait_for_prerequisites": set()} if estimates else {}),
        "read_watermark": set(gate),
        "extract_invoicing": {"read_watermark"},
        "extract_clientify": {"read_watermark"},
        "reconcile": {"extract_invoicing", "extract_clientify"},
        "apply_clientify": {"reconcile"},
        "apply_invoicing": {"apply_clientify"},
        # commit reads the watermark and the Clientify summary; it runs after everything else.
        "commit": {"read_watermark", "extract_clientify", "apply_invoicing"},
    }
    # Every task is upstream of commit, so commit (all_success) runs only if all of them succeeded.
    assert dag.task_dict["commit"].get_flat_relative_ids(upstream=True) == set(TASK_IDS + gate) - {"commit"}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_pools_per_api(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    platform = dag_id.split("_")[0]
    pools = {task.task_id: task.pool for task in dag.tasks}
    assert pools["extract_invoicing"] == pools["apply_invoicing"] == f"{platform}_api"
    assert pools["extract_clientify"] == pools["apply_clientify"] == "clientify_api"


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAG_IDS))
def test_commit_publishes_the_dag_asset(dagbag, dag_id):
    dag = dagbag.dags[dag_id]
    platform, entity = dag_id.split("_")
    assert dag.task_dict["commit"].outlets == [sync_asset(platform, entity)]
    assert all(not dag.task_dict[t].outlets for t in TASK_IDS if t != "commit")


@pytest.mark.parametrize("dag_id", ENTITY_DAG_IDS)
def test_entity_dags_are_hourly_with_data_intervals(dagbag, dag_id):
    timetable = dagbag.dags[dag_id].timetable
    assert isinstance(timetable, CronDataIntervalTimetable)
    assert timetable.expression == "0 * * * *"
    # Each country syncs on its own clock (the packaged defaults).
    expected = {"facturama": "America/Mexico_City", "facturadirecta": "Europe/Madrid"}[dag_id.split("_")[0]]
    assert str(timetable.timezone) == expected


@pytest.mark.parametrize("dag_id", ESTIMATE_DAG_IDS)
def test_estimates_run_after_both_prerequisites_and_never_on_a_clock(dagbag, dag_id):
    """Ordering: an estimates run is created once both prerequisite DAGs of the platform committed.

    No clock: a tick would start estimates beside the contacts and products runs of the same tick.
    """
    dag = dagbag.dags[dag_id]
    platform = dag_id.split("_")[0]
    condition = dag.timetable.asset_condition
    assert type(condition).__name__ == "AssetAll"  # contacts AND products, not OR
    assert set(condition.objects) == {sync_asset(platform, "contacts"), sync_asset(platform, "products")}
    assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"  # assets alone, no clock
    # The assets waited on are exactly the ones the prerequisite DAGs' commit tasks publish.
    for entity in ("contacts", "products"):
        producer = dagbag.dags[f"{platform}_{entity}"]
        assert producer.task_dict["commit"].outlets[0] in condition.objects


@pytest.mark.parametrize("dag_id", ESTIMATE_DAG_IDS)
def test_estimates_first_task_waits_for_running_prerequisites(dagbag, dag_id):
    gate = dagbag.dags[dag_id].task_dict["wait_for_prerequisites"]
    assert gate.mode == "poke"  # reschedule mode hits apache/airflow#71172 (a wait becomes a retry)
    assert gate.poke_interval == 60 and gate.timeout == 120 * 60


def test_dag_ids_and_assets_are_consistent_across_platforms(dagbag):
    uris = {dagbag.dags[d].task_dict["commit"].outlets[0].uri for d in EXPECTED_DAG_IDS}
    assert len(uris) == len(EXPECTED_DAG_IDS)
    assert all(uri.startswith("clientify-sync://") for uri in uris)


def _parse_in_subprocess(env_overrides: dict[str, str], prelude: str = "") -> dict:
    """Parse the DAG folder in a fresh interpreter; return errors, dag ids and what it touched."""
    script = textwrap.dedent(
        f"""
        import json, os, socket, sys, tempfile
        home = tempfile.mkdtemp()
        os.environ.update(AIRFLOW_HOME=home, AIRFLOW__CORE__LOAD_EXAMPLES="False",
                          AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{{home}}/must-not-exist.db")
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "plugins")!r}]
        touched = []
        {textwrap.indent(prelude, "        ").strip()}
        from airflow.dag_processing.dagbag import DagBag
        bag = DagBag(dag_folder={str(DAGS_DIR)!r})
        print(json.dumps({{
            "errors": {{k: v for k, v in bag.import_errors.items()}},
            "dag_ids": sorted(bag.dag_ids),
            "touched": touched,
            "db_file": os.path.exists(os.path.join(home, "must-not-exist.db")),
            "modules": sorted(m for m in sys.modules if m.startswith("clientify_sync")),
        }}))
        """
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("AIRFLOW")}
    env.update(env_overrides)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


NO_NETWORK_NO_DB = """
def deny(*args, **kwargs):
    touched.append("network")
    raise OSError("network disabled while parsing DAGs")
socket.socket.connect = deny
socket.create_connection = deny
socket.getaddrinfo = deny
import httpx
def no_http(self, request):
    touched.append(f"http {request.url}")
    raise httpx.ConnectError("HTTP disabled while parsing DAGs", request=request)
httpx.HTTPTransport.handle_request = no_http
from sqlalchemy import event
from sqlalchemy.engine import Engine
@event.listens_for(Engine, "connect")
def on_connect(*args):
    touched.append("database")
"""


def test_parsing_makes_no_network_or_database_call():
    result = _parse_in_subprocess({}, prelude=NO_NETWORK_NO_DB)
    assert result["errors"] == {}
    assert set(result["dag_ids"]) == EXPECTED_DAG_IDS
    assert result["touched"] == []
    assert result["db_file"] is False
    # The engine, the API clients and the hooks are imported inside tasks only; parsing loads just the
    # shared vocabulary (plain enums and dataclasses, standard library only).
    loaded = set(result["modules"]) - {"clientify_sync.engine", "clientify_sync.engine.vocabulary"}
    assert not {m for m in loaded if m.startswith(("clientify_sync.engine", "clientify_sync.api"))}
    assert not {m for m in loaded if m.startswith("clientify_sync.hooks")}


def test_disabling_an_integration_removes_its_dags(tmp_path):
    config = yaml.safe_load((ROOT / "include" / "integrations.yaml").read_text())
    assert config["integrations"]["facturadirecta"]["enabled"] is True
    config["integrations"]["facturadirecta"]["enabled"] = False
    path = tmp_path / "integrations.yaml"
    path.write_text(yaml.safe_dump(config))
    result = _parse_in_subprocess({"CLIENTIFY_SYNC_INTEGRATIONS": str(path)})
    assert result["errors"] == {}
    assert result["dag_ids"] == ["facturama_contacts", "facturama_estimates", "facturama_products"]


def test_a_broken_config_is_a_clear_import_error(tmp_path):
    path = tmp_path / "integrations.yaml"
    path.write_text("integrations:\n  facturama:\n    enabled: yes-please\n")
    result = _parse_in_subprocess({"CLIENTIFY_SYNC_INTEGRATIONS": str(path)})
    assert result["dag_ids"] == []
    (message,) = result["errors"].values()
    assert "integrations.facturama.enabled must be true or false" in message


def test_the_variable_overrides_at_parse_time_without_a_database():
    """AIRFLOW_VAR_CLIENTIFY_SYNC_INTEGRATIONS is read at parse time; no DB, no network."""
    variable = json.dumps({"integrations": {"facturama": {"enabled": False}}})
    result = _parse_in_subprocess(
        {"AIRFLOW_VAR_CLIENTIFY_SYNC_INTEGRATIONS": variable}, prelude=NO_NETWORK_NO_DB
    )
    assert result["errors"] == {}
    assert result["dag_ids"] == [
        "facturadirecta_contacts",
        "facturadirecta_estimates",
        "facturadirecta_products",
    ]
    assert result["touched"] == [] and result["db_file"] is False


def test_a_bad_variable_is_an_import_error_naming_it_and_the_key():
    result = _parse_in_subprocess({"AIRFLOW_VAR_CLIENTIFY_SYNC_INTEGRATIONS": "retries: one"})
    assert result["dag_ids"] == []
    (message,) = result["errors"].values()
    assert (
        "Airflow Variable clientify_sync_integrations" in message and "retries must be an integer" in message
    )


def test_the_dag_file_is_the_two_lines_a_deployment_copies():
    lines = [line for line in (DAGS_DIR / "clientify_sync_dags.py").read_text().splitlines() if line]
    assert len(lines) == 2
    assert lines[0].startswith("from clientify_sync.dags import build_dags")
    assert lines[1] == "globals().update(build_dags())"
    # Airflow's safe-mode discovery parses only files that mention "airflow": the comment carries it.
    assert "airflow" in lines[0].lower()
