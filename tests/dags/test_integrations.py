"""The integration config loader and the state-ledger hook."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import yaml

from clientify_sync.dag_factory import build_dags
from clientify_sync.errors import ConfigurationError
from clientify_sync.hooks.state import StateLedgerHook, default_ledger_url
from clientify_sync.integrations import DEFAULT_PATH, ENV_VAR, load_integrations, parse_integrations


def test_shipped_config():
    config = load_integrations(DEFAULT_PATH)
    assert [p.name for p in config.enabled_platforms] == ["facturama", "facturadirecta"]
    assert config.schedule == "0 * * * *" and config.timezone == "UTC"
    assert config.lookback == timedelta(minutes=10)
    assert config.retries >= 2
    assert config.platform("facturama").conn_id == "facturama_default"
    assert config.platform("facturadirecta").pool == "facturadirecta_api"
    assert (config.clientify_conn_id, config.clientify_pool) == ("clientify_default", "clientify_api")


def test_env_var_selects_another_file(tmp_path, monkeypatch):
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump({"integrations": {"facturadirecta": {"enabled": True}}}))
    monkeypatch.setenv(ENV_VAR, str(path))
    config = load_integrations()
    assert [p.name for p in config.enabled_platforms] == ["facturadirecta"]
    assert sorted(build_dags(config)) == [
        "facturadirecta_contacts",
        "facturadirecta_estimates",
        "facturadirecta_products",
    ]


def test_defaults_fill_in_a_minimal_entry():
    config = parse_integrations({"integrations": {"facturama": {}}})
    (platform,) = config.enabled_platforms
    assert (platform.conn_id, platform.pool) == ("facturama_default", "facturama_api")
    assert config.retries == 3 and config.max_active_tasks == 2


def test_knobs_reach_the_dags():
    config = parse_integrations(
        {
            "schedule": "15 */2 * * *",
            "retries": 4,
            "retry_delay_minutes": 2,
            "max_active_tasks": 1,
            "prerequisite_poke_seconds": 5,
            "prerequisite_timeout_minutes": 30,
            "clientify": {"pool": "crm_pool"},
            "integrations": {"facturama": {"pool": "mx_pool", "conn_id": "facturama_prod"}},
        }
    )
    dags = build_dags(config)
    contacts = dags["facturama_contacts"]
    assert contacts.timetable.expression == "15 */2 * * *"
    assert contacts.max_active_tasks == 1
    assert {t.retries for t in contacts.tasks} == {4}
    assert contacts.task_dict["extract_invoicing"].pool == "mx_pool"
    assert contacts.task_dict["apply_clientify"].pool == "crm_pool"
    assert "facturama_prod" in contacts.doc_md
    gate = dags["facturama_estimates"].task_dict["wait_for_prerequisites"]
    assert (gate.poke_interval, gate.timeout) == (5, 30 * 60)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param({"integrations": {"sage": {}}}, "unknown key", id="unknown-platform"),
        pytest.param({"integrations": {"facturama": {"enabled": "yes"}}}, "true or false", id="enabled-text"),
        pytest.param({"integrations": {"facturama": {"token": "x"}}}, "unknown key", id="secret-by-mistake"),
        pytest.param({"retries": 1}, "retries must be an integer >= 2", id="too-few-retries"),
        pytest.param({"lookback_minutes": -5}, "lookback_minutes", id="negative-lookback"),
        pytest.param({"schedule": "@hourly"}, "five-field cron", id="preset-schedule"),
        pytest.param({"schedule": "0 * * * *", "clientify": []}, "must be a mapping", id="clientify-list"),
        pytest.param({"max_active_tasks": True}, "max_active_tasks", id="bool-is-not-int"),
    ],
)
def test_invalid_configs_are_rejected(raw, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_integrations(raw)


def test_missing_file_names_the_env_var(tmp_path):
    with pytest.raises(ConfigurationError, match=ENV_VAR):
        load_integrations(tmp_path / "absent.yaml")


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("integrations: [unclosed\n")
    with pytest.raises(ConfigurationError, match="bad.yaml"):
        load_integrations(path)


class TestStateLedgerHook:
    def test_default_is_sqlite_under_airflow_home(self, tmp_path, monkeypatch):
        monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
        monkeypatch.delenv("AIRFLOW_CONN_CLIENTIFY_SYNC_STATE", raising=False)
        url = StateLedgerHook().get_url()
        assert url == default_ledger_url() == f"sqlite:///{tmp_path}/clientify_sync_state.db"

    def test_extra_url_wins(self, monkeypatch):
        monkeypatch.setenv(
            "AIRFLOW_CONN_CLIENTIFY_SYNC_STATE",
            json.dumps(
                {"conn_type": "generic", "host": "ignored", "extra": {"url": "sqlite:////data/ledger.db"}}
            ),
        )
        assert StateLedgerHook().get_url() == "sqlite:////data/ledger.db"

    @pytest.mark.parametrize(
        ("uri", "expected"),
        [
            pytest.param(
                "postgresql://sync:pw@db:5432/ledger", "postgresql://sync:pw@db:5432/ledger", id="pg"
            ),
            pytest.param("postgres://sync:pw@db/ledger", "postgresql://sync:pw@db/ledger", id="pg-alias"),
            pytest.param("sqlite:////var/lib/ledger.db", "sqlite:////var/lib/ledger.db", id="sqlite-abs"),
        ],
    )
    def test_uri_form(self, monkeypatch, uri, expected):
        monkeypatch.setenv("AIRFLOW_CONN_CLIENTIFY_SYNC_STATE", uri)
        assert StateLedgerHook().get_url() == expected

    def test_other_conn_id_and_test_connection(self, monkeypatch):
        monkeypatch.setenv("AIRFLOW_CONN_MY_LEDGER", "sqlite:////tmp/x.db")
        hook = StateLedgerHook(state_conn_id="my_ledger")
        assert hook.get_conn() == "sqlite:////tmp/x.db"
        assert hook.test_connection() == (True, "ledger URL sqlite:////tmp/x.db")

    def test_hook_metadata(self):
        assert StateLedgerHook.conn_name_attr == "state_conn_id"
        assert StateLedgerHook.default_conn_name == "clientify_sync_state"
