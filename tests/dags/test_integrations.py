"""The integration config loader and the state-ledger hook."""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import timedelta

import pytest
import yaml

from clientify_sync.dag_factory import build_dags
from clientify_sync.errors import ConfigurationError
from clientify_sync.hooks.state import StateLedgerHook, default_ledger_url
from clientify_sync.integrations import (
    DEFAULT_PATH,
    ENV_VAR,
    VARIABLE,
    load_integrations,
    merge_layer,
    parse_integrations,
)
from clientify_sync.vocabulary import Entity
from tests.dags.conftest import ROOT

VARIABLE_ENV = f"AIRFLOW_VAR_{VARIABLE.upper()}"


def test_packaged_defaults():
    config = load_integrations(DEFAULT_PATH)
    assert DEFAULT_PATH.parent.name == "config" and DEFAULT_PATH.parent.parent.name == "clientify_sync"
    assert [p.name for p in config.enabled_platforms] == ["facturama", "facturadirecta"]
    assert config.schedule == "0 * * * *" and config.timezone is None
    assert {p.name: (p.schedule, p.timezone) for p in config.platforms} == {
        "facturama": ("0 * * * *", "America/Mexico_City"),
        "facturadirecta": ("0 * * * *", "Europe/Madrid"),
    }
    assert config.lookback == timedelta(minutes=10)
    assert config.retries >= 2
    assert config.platform("facturama").conn_id == "facturama_default"
    assert config.platform("facturadirecta").pool == "facturadirecta_api"
    assert (config.clientify_conn_id, config.clientify_pool) == ("clientify_default", "clientify_api")


def test_the_repository_example_is_the_defaults_spelled_out():
    """include/integrations.yaml is one example override; as shipped it changes nothing."""
    example = load_integrations(ROOT / "include" / "integrations.yaml")
    assert example == load_integrations(DEFAULT_PATH)
    assert example.sources[-1].endswith("include/integrations.yaml")


def test_env_var_file_is_layered_on_the_defaults(tmp_path, monkeypatch):
    path = tmp_path / "i.yaml"
    path.write_text(yaml.safe_dump({"integrations": {"facturama": {"enabled": False}}, "retries": 5}))
    monkeypatch.setenv(ENV_VAR, str(path))
    config = load_integrations()
    assert [p.name for p in config.enabled_platforms] == ["facturadirecta"]
    assert config.retries == 5 and config.platform("facturadirecta").conn_id == "facturadirecta_default"
    assert config.sources[1] == f"{ENV_VAR}={path}"
    assert sorted(build_dags(config)) == [
        "facturadirecta_contacts",
        "facturadirecta_estimates",
        "facturadirecta_products",
    ]


def test_the_variable_overrides_the_file_in_yaml_or_json(tmp_path, monkeypatch):
    path = tmp_path / "i.yaml"
    path.write_text("retries: 5\nintegrations: {facturama: {conn_id: from_file}}\n")
    monkeypatch.setenv(ENV_VAR, str(path))
    monkeypatch.setenv(VARIABLE_ENV, "retries: 7\nintegrations:\n  facturadirecta: {enabled: false}\n")
    config = load_integrations()
    assert config.retries == 7
    assert [p.name for p in config.enabled_platforms] == ["facturama"]
    assert config.platform("facturama").conn_id == "from_file"
    assert config.sources[-1] == f"Airflow Variable {VARIABLE}"
    monkeypatch.setenv(
        VARIABLE_ENV, json.dumps({"integrations": {"facturama": {"schedule": "15 9 * * 1-5"}}})
    )
    config = load_integrations()
    assert config.platform("facturama").schedule == "15 9 * * 1-5"
    assert config.platform("facturadirecta").schedule == "0 * * * *"


def test_an_explicit_path_ignores_the_env_var_and_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "absent.yaml"))
    monkeypatch.setenv(VARIABLE_ENV, "retries: 9")
    assert load_integrations(DEFAULT_PATH).retries == 3


def test_a_top_level_timezone_or_schedule_replaces_earlier_per_platform_values():
    base = yaml.safe_load(DEFAULT_PATH.read_text())
    merged = merge_layer(base, {"timezone": "UTC", "schedule": "0 6 * * *"})
    config = parse_integrations(merged)
    assert {(p.schedule, p.timezone) for p in config.platforms} == {("0 6 * * *", "UTC")}
    # ... while a per-platform value in the same (or a later) source still wins for its platform.
    merged = merge_layer(
        base, {"timezone": "UTC", "integrations": {"facturadirecta": {"timezone": "Atlantic/Canary"}}}
    )
    config = parse_integrations(merged)
    assert (config.platform("facturama").timezone, config.platform("facturadirecta").timezone) == (
        "UTC",
        "Atlantic/Canary",
    )
    assert base["integrations"]["facturama"]["timezone"] == "America/Mexico_City"  # inputs untouched


def test_each_platform_gets_its_own_clock(monkeypatch):
    config = parse_integrations(
        {
            "integrations": {
                "facturama": {"schedule": "0 8-20 * * 1-6"},
                "facturadirecta": {"schedule": "30 8-19 * * 1-5", "timezone": "Atlantic/Canary"},
            }
        }
    )
    dags = build_dags(config)
    mx, es = dags["facturama_contacts"].timetable, dags["facturadirecta_products"].timetable
    assert (mx.expression, str(mx.timezone)) == ("0 8-20 * * 1-6", "America/Mexico_City")
    assert (es.expression, str(es.timezone)) == ("30 8-19 * * 1-5", "Atlantic/Canary")
    assert "America/Mexico_City" in dags["facturama_contacts"].doc_md


@pytest.mark.parametrize(
    ("source", "text", "message"),
    [
        pytest.param("variable", "integrations: {facturama: {enabled: maybe}}", "integrations.facturama.enabled", id="var-value"),
        pytest.param("variable", '{"integrations": {"sage": {}}}', "unknown key(s) in integrations: sage", id="var-json-key"),
        pytest.param("variable", "integrations: [unclosed", "not valid YAML or JSON", id="var-syntax"),
        pytest.param("variable", "- a list", "must be a mapping", id="var-list"),
        pytest.param("file", "integrations: {facturadirecta: {timezone: Europe/Madird}}", "integrations.facturadirecta.timezone must be an IANA", id="file-tz"),
        pytest.param("file", "schedule: '61 * * * *'", "schedule is not a valid cron", id="file-cron"),
    ],
)  # fmt: skip
def test_a_bad_source_is_named_with_its_key(tmp_path, monkeypatch, source, text, message):
    path = tmp_path / "override.yaml"
    if source == "variable":
        monkeypatch.setenv(VARIABLE_ENV, text)
        where = f"Airflow Variable {VARIABLE}"
    else:
        path.write_text(text)
        monkeypatch.setenv(ENV_VAR, str(path))
        where = f"{ENV_VAR}={path}"
    with pytest.raises(ConfigurationError) as caught:
        load_integrations()
    assert message in str(caught.value) and where in str(caught.value)


def test_a_failing_variable_lookup_is_skipped_with_a_warning(monkeypatch, caplog):
    from airflow.sdk import Variable

    def broken(*args, **kwargs):
        raise ImportError("cannot import name 'SUPERVISOR_COMMS'")

    monkeypatch.setattr(Variable, "get", broken)
    with caplog.at_level("WARNING", logger="clientify_sync.integrations"):
        config = load_integrations()
    assert [p.name for p in config.enabled_platforms] == ["facturama", "facturadirecta"]
    assert VARIABLE in caplog.text and "SUPERVISOR_COMMS" in caplog.text


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
        pytest.param(
            {"integrations": {"facturama": {"schedule": "0 25 * * *"}}},
            "integrations.facturama.schedule",
            id="bad-hour",
        ),
        pytest.param({"timezone": "Mars/Olympus"}, "timezone must be an IANA", id="bad-tz"),
        pytest.param({"schedule": "0 * * * *", "clientify": []}, "must be a mapping", id="clientify-list"),
        pytest.param({"max_active_tasks": True}, "max_active_tasks", id="bool-is-not-int"),
    ],
)
def test_invalid_configs_are_rejected(raw, message):
    with pytest.raises(ConfigurationError, match=message):
        parse_integrations(raw)


def test_missing_file_names_the_env_var(tmp_path, monkeypatch):
    with pytest.raises(ConfigurationError, match=ENV_VAR):
        load_integrations(tmp_path / "absent.yaml")
    monkeypatch.setenv(ENV_VAR, str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigurationError, match="gone.yaml"):
        load_integrations()


def test_invalid_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("integrations: [unclosed\n")
    with pytest.raises(ConfigurationError, match="bad.yaml"):
        load_integrations(path)


# -- the conflict policy ---------------------------------------------------------------------------------
def test_the_conflict_policy_is_set_per_entity_and_the_defaults_stay():
    assert load_integrations(DEFAULT_PATH).invoicing_wins == {}  # every entity keeps its schema's default
    config = parse_integrations(
        {
            "conflicts": {
                "contacts": {"winner": "clientify", "fields": ["email", "city"]},
                "products": "invoicing",
            }
        }
    )
    contact_fields = {"tax_id", "name", "email", "street", "city", "state", "postal_code", "country"}
    assert config.invoicing_wins == {
        Entity.CONTACTS: frozenset(contact_fields - {"email", "city"}),  # Clientify wins only those two
        Entity.PRODUCTS: frozenset({"sku", "name", "price"}),  # the invoicing side wins every field
    }
    estimates = parse_integrations({"conflicts": {"estimates": {"winner": "invoicing", "fields": ["notes"]}}})
    assert estimates.invoicing_wins == {Entity.ESTIMATES: frozenset({"notes"})}


def test_a_later_source_replaces_an_entitys_conflict_policy_whole():
    earlier = {
        "conflicts": {"contacts": {"winner": "invoicing", "fields": ["name"]}, "products": "clientify"}
    }
    merged = merge_layer(earlier, {"conflicts": {"contacts": {"winner": "clientify"}}})
    assert parse_integrations(merged).invoicing_wins == {
        Entity.CONTACTS: frozenset(),  # clientify wins every field: the earlier `fields` is not inherited
        Entity.PRODUCTS: frozenset(),
    }


@pytest.mark.parametrize(
    ("conflicts", "message"),
    [
        pytest.param({"invoices": "clientify"}, "unknown key(s) in conflicts: invoices", id="unknown-entity"),
        pytest.param({"contacts": "crm"}, "conflicts.contacts.winner must be invoicing or clientify, got 'crm'", id="bad-side"),
        pytest.param({"contacts": {"fields": ["name"]}}, "conflicts.contacts.winner must be", id="no-winner"),
        pytest.param({"products": {"winner": "clientify", "fields": ["colour"]}}, "conflicts.products.fields: unknown field(s) colour; products have sku, name, price", id="unknown-field"),
        pytest.param({"estimates": {"winner": "invoicing", "fields": "lines"}}, "conflicts.estimates.fields must be a non-empty list", id="fields-text"),
        pytest.param({"estimates": {"winner": "invoicing", "fields": []}}, "conflicts.estimates.fields must be a non-empty list", id="fields-empty"),
        pytest.param({"contacts": {"winner": "invoicing", "side": "x"}}, "unknown key(s) in conflicts.contacts: side", id="unknown-key"),
        pytest.param({"contacts": 3}, "conflicts.contacts must be invoicing or clientify, or a mapping", id="number"),
        pytest.param(["contacts"], "conflicts must be a mapping", id="list"),
    ],
)  # fmt: skip
def test_a_bad_conflict_policy_is_refused_naming_the_key(conflicts, message):
    with pytest.raises(ConfigurationError) as caught:
        parse_integrations({"conflicts": conflicts})
    assert message in str(caught.value)


def test_a_bad_conflict_policy_in_a_source_names_the_source(tmp_path):
    path = tmp_path / "override.yaml"
    path.write_text("conflicts: {contacts: {winner: invoicing, fields: [phone]}}\n")
    with pytest.raises(ConfigurationError) as caught:
        load_integrations(path)
    assert str(caught.value).startswith(f"{path}: conflicts.contacts.fields: unknown field(s) phone")


def test_the_conflict_policy_reaches_the_sync_job(monkeypatch):
    import clientify_sync.dag_factory as factory
    import clientify_sync.engine.job as job_module

    @contextmanager
    def opened(*args):
        yield ("spec", "ledger", "invoicing", "clientify")

    monkeypatch.setattr(factory, "_opened", opened)
    monkeypatch.setattr(job_module, "SyncJob", lambda *args, **kwargs: kwargs["options"])
    config = parse_integrations({"conflicts": {"products": "clientify"}, "integrations": {"facturama": {}}})
    with factory._sync_job(config.platform("facturama"), Entity.PRODUCTS, config) as options:
        assert options.invoicing_wins == {Entity.PRODUCTS: frozenset()}


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


def test_rounding_adjustment_is_on_by_default_and_a_flag():
    """Issue 21: estimates keep their total through a rounding line unless the config turns it off."""
    assert parse_integrations({}).rounding_adjustment is True
    assert parse_integrations({"rounding_adjustment": False}).rounding_adjustment is False
    with pytest.raises(ConfigurationError, match="rounding_adjustment must be true or false"):
        parse_integrations({"rounding_adjustment": "no"})
