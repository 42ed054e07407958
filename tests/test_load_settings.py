"""include/load_settings.py: airflow_settings.yaml into Airflow's own import files and commands, and env vars."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.load_settings import connection_env, main, read_settings

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "airflow_settings.yaml"
# What the issue named: the query of a conn_uri must survive as extras.
URI = "facturama://api-user:p%40ss@127.0.0.1:8701/?requests_per_minute=60&api_prefix=/api"
EXTRAS = {"requests_per_minute": 60, "api_prefix": "/api"}  # Airflow reads the query's numbers as numbers


@pytest.fixture(scope="module")
def airflow_db():
    from tests.dags.conftest import ensure_airflow_db

    ensure_airflow_db()


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_shipped_settings_are_the_sandbox_defaults_with_the_registered_types():
    settings = read_settings(SETTINGS)
    conns = settings["connections"]
    assert set(conns) == {
        "facturama_default",
        "clientify_default",
        "facturadirecta_default",
        "facturadirecta_rest",
    }
    assert {conn_id: c["conn_type"] for conn_id, c in conns.items()} == {
        "facturama_default": "facturama",
        "clientify_default": "clientify",
        "facturadirecta_default": "facturadirecta",
        "facturadirecta_rest": "facturadirecta",
    }
    assert conns["facturama_default"] == {
        "conn_type": "facturama",
        "host": "http://127.0.0.1:8701",
        "login": "sandbox-user",
        "password": "sandbox-password-fake",
    }
    assert conns["clientify_default"]["password"] == "fake-clientify-sandbox-token"
    assert set(settings["pools"]) == {"facturama_api", "clientify_api", "facturadirecta_api"}
    assert all(p["slots"] >= 1 and "concurrent" in p["description"] for p in settings["pools"].values())
    assert settings["variables"] == {}  # the Astro template's empty placeholder is skipped


def test_the_rest_example_is_the_sandbox_emulators_main_company_and_fake_key():
    from include.sandbox.config import FacturaDirectaConfig

    sandbox = FacturaDirectaConfig()
    rest = read_settings(SETTINGS)["connections"]["facturadirecta_rest"]
    assert rest == {
        "conn_type": "facturadirecta",
        "host": "http://127.0.0.1:8703",  # the sandbox serves both FacturaDirecta APIs on one port
        "password": sandbox.rest_api_key,
        "extra": {"api": "rest", "company_id": sandbox.rest_company_id, "plan": sandbox.rest_plan},
    }


def test_pools_and_connections_match_the_integration_config():
    from clientify_sync.integrations import load_integrations

    config = load_integrations()
    settings = read_settings(SETTINGS)
    assert {config.clientify_pool} | {p.pool for p in config.platforms} <= set(settings["pools"])
    assert {config.clientify_conn_id} | {p.conn_id for p in config.platforms} <= set(settings["connections"])


def test_connection_env_is_json_airflow_understands(monkeypatch):
    from airflow.sdk import BaseHook

    env = connection_env(SETTINGS, hosts={"clientify_default": "http://127.0.0.1:9999"})
    assert set(env) == {"AIRFLOW_CONN_FACTURAMA_DEFAULT", "AIRFLOW_CONN_CLIENTIFY_DEFAULT",
                        "AIRFLOW_CONN_FACTURADIRECTA_DEFAULT", "AIRFLOW_CONN_FACTURADIRECTA_REST"}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conn = BaseHook.get_connection("clientify_default")
    assert (conn.conn_type, conn.host, conn.password) == (
        "clientify",
        "http://127.0.0.1:9999",
        "fake-clientify-sandbox-token",
    )
    assert BaseHook.get_connection("facturama_default").login == "sandbox-user"


def test_connection_env_overrides_any_field():
    env = connection_env(SETTINGS, overrides={"clientify_default": {"password": "revoked"}})
    assert json.loads(env["AIRFLOW_CONN_CLIENTIFY_DEFAULT"])["password"] == "revoked"
    assert json.loads(env["AIRFLOW_CONN_FACTURAMA_DEFAULT"])["password"] == "sandbox-password-fake"


def test_the_api_hooks_accept_the_shipped_connections(monkeypatch):
    from clientify_sync.api.settings import FacturaDirectaRestSettings
    from clientify_sync.hooks.clientify import ClientifyHook
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from clientify_sync.hooks.facturama import FacturamaHook

    for name, value in connection_env(SETTINGS).items():
        monkeypatch.setenv(name, value)
    assert FacturamaHook().get_settings().base_url == "http://127.0.0.1:8701"
    assert ClientifyHook().get_settings().base_url == "http://127.0.0.1:8702"
    assert FacturaDirectaHook().get_settings().base_url == "http://127.0.0.1:8703"
    rest = FacturaDirectaHook(facturadirecta_conn_id="facturadirecta_rest").get_settings()
    assert isinstance(rest, FacturaDirectaRestSettings)
    assert (rest.base_url, rest.company_id, rest.requests_per_minute) == (
        "http://127.0.0.1:8703",
        "com_5a1d7c3e-2b4f-4e6a-8c9d-0f1e2d3c4b5a",
        600,  # Diamante's, the sandbox company's plan
    )


def test_the_shipped_rest_connection_passes_the_test_button_on_the_sandbox(clean_sandbox, monkeypatch):
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook

    hosts = {"facturadirecta_rest": clean_sandbox.facturadirecta_url}
    monkeypatch.setenv(
        "AIRFLOW_CONN_FACTURADIRECTA_REST",
        connection_env(SETTINGS, hosts=hosts)["AIRFLOW_CONN_FACTURADIRECTA_REST"],
    )
    success, message = FacturaDirectaHook(facturadirecta_conn_id="facturadirecta_rest").test_connection()
    assert success and message.startswith("Connected to FacturaDirecta (REST API)"), message


def test_uri_extras_survive_as_env_vars_and_reach_the_hook(tmp_path, monkeypatch):
    from clientify_sync.hooks.facturama import FacturamaHook

    path = write(tmp_path, {"airflow": {"connections": [{"conn_id": "facturama_uri", "conn_uri": URI}]}})
    env = connection_env(path)
    assert env == {"AIRFLOW_CONN_FACTURAMA_URI": URI}  # Airflow parses the URI itself
    monkeypatch.setenv("AIRFLOW_CONN_FACTURAMA_URI", env["AIRFLOW_CONN_FACTURAMA_URI"])
    settings = FacturamaHook(facturama_conn_id="facturama_uri").get_settings()
    assert (settings.requests_per_minute, settings.api_prefix, settings.password) == (60, "/api", "p@ss")
    # Repointing a URI connection (the sandbox's port) goes through Airflow's own parser, extras kept.
    moved = json.loads(
        connection_env(path, hosts={"facturama_uri": "http://127.0.0.1:9000"})["AIRFLOW_CONN_FACTURAMA_URI"]
    )
    assert (moved["host"], moved["login"], moved["password"]) == ("http://127.0.0.1:9000", "api-user", "p@ss")
    assert moved["extra"] == EXTRAS


def test_out_writes_the_files_airflows_import_commands_take(tmp_path):
    from airflow.secrets.local_filesystem import load_connections_dict, load_variables

    path = write(tmp_path, {"airflow": {
        "connections": [{"conn_id": "facturama_uri", "conn_uri": URI},
                        {"conn_id": "x", "conn_type": "clientify", "conn_host": "h", "conn_port": 8443, "conn_extra": '{"page_size": 50}'}],
        "pools": [{"pool_name": "p", "pool_slot": 2, "pool_description": "d"}],
        "variables": [{"variable_name": "v", "variable_value": {"k": 1}}, {"variable_name": None, "variable_value": None}],
    }})  # fmt: skip
    assert main([str(path), "--out", str(tmp_path / "out")]) == 0
    connections = load_connections_dict(str(tmp_path / "out" / "connections.json"))
    assert connections["facturama_uri"].extra_dejson == EXTRAS
    assert (connections["x"].port, connections["x"].extra_dejson) == (8443, {"page_size": 50})
    assert json.loads((tmp_path / "out" / "pools.json").read_text()) == {
        "p": {"slots": 2, "description": "d"}
    }
    assert load_variables(str(tmp_path / "out" / "variables.json")) == {"v": {"k": 1}}


def test_the_import_runs_airflows_commands_and_overwrites(airflow_db, tmp_path):
    import os

    from airflow.configuration import conf
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import delete, select

    with create_session() as session:
        session.execute(
            delete(Connection).where(Connection.conn_id.in_(["facturama_uri", "clientify_default"]))
        )
    # The subprocesses must encrypt with the key this process decrypts with.
    env = {**os.environ, "AIRFLOW__CORE__FERNET_KEY": conf.get("core", "fernet_key")}

    def load(body: dict) -> None:
        done = subprocess.run([sys.executable, "-m", "include.load_settings", str(write(tmp_path, body))], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "sandbox-password-fake" not in done.stdout + done.stderr

    # An older definition first, then the shipped one: the second import replaces it.
    load(
        {
            "airflow": {
                "connections": [{"conn_id": "clientify_default", "conn_type": "http", "conn_password": "old"}]
            }
        }
    )
    body = yaml.safe_load(SETTINGS.read_text())
    body["airflow"]["connections"].append({"conn_id": "facturama_uri", "conn_uri": URI})
    body["airflow"]["pools"][0]["pool_slot"] = 7
    body["airflow"]["variables"] = [{"variable_name": "clientify_sync_note", "variable_value": "hello"}]
    load(body)
    with create_session() as session:
        conns = {c.conn_id: c for c in session.scalars(select(Connection))}
        assert (conns["clientify_default"].conn_type, conns["clientify_default"].password) == (
            "clientify",
            "fake-clientify-sandbox-token",
        )
        assert conns["facturama_uri"].extra_dejson == EXTRAS
        assert session.scalar(select(Pool).where(Pool.pool == "facturama_api")).slots == 7
    assert Variable.get("clientify_sync_note") == "hello"


def test_env_flag_prints_exports():
    done = subprocess.run([sys.executable, "-m", "include.load_settings", str(SETTINGS), "--env"],
                          capture_output=True, text=True, cwd=ROOT, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("export AIRFLOW_CONN_") for line in lines)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {"airflow": {"connections": [{"conn_id": "x", "conn_typo": "http"}]}}, "unknown key", id="typo"
        ),
        pytest.param({"airflow": {"dags": []}}, "unknown key", id="unknown-section"),
    ],
)
def test_malformed_settings_are_rejected(tmp_path, body, message):
    with pytest.raises(ValueError, match=message):
        read_settings(write(tmp_path, body))
