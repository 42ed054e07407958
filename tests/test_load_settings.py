"""include/load_settings.py: airflow_settings.yaml (Astro format) into plain Airflow and env vars."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from include.load_settings import (
    SettingsError,
    apply_settings,
    cli_commands,
    connection_env,
    main,
    read_settings,
)

ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ROOT / "airflow_settings.yaml"


@pytest.fixture(scope="module")
def airflow_db():
    from tests.dags.conftest import ensure_airflow_db

    ensure_airflow_db()


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def test_shipped_settings_are_the_sandbox_defaults():
    settings = read_settings(SETTINGS)
    conns = {c.conn_id: c for c in settings.connections}
    assert set(conns) == {"facturama_default", "clientify_default", "facturadirecta_default"}
    assert conns["facturama_default"].host == "http://127.0.0.1:8701"
    assert (conns["facturama_default"].login, conns["facturama_default"].password) == (
        "sandbox-user",
        "sandbox-password-fake",
    )
    assert conns["clientify_default"].host == "http://127.0.0.1:8702"
    assert conns["clientify_default"].password == "fake-clientify-sandbox-token"
    assert conns["facturadirecta_default"].host == "http://127.0.0.1:8703"
    assert conns["facturadirecta_default"].password == "fake-facturadirecta-sandbox-token"
    assert all(c.conn_type == "http" for c in conns.values())
    pools = {p.name: p for p in settings.pools}
    assert set(pools) == {"facturama_api", "clientify_api", "facturadirecta_api"}
    assert all(p.slots >= 1 and "concurrent" in p.description for p in pools.values())
    assert settings.variables == ()  # the Astro template's empty placeholder is skipped


def test_pools_match_the_integration_config():
    from clientify_sync.integrations import load_integrations

    config = load_integrations()
    declared = {p.name for p in read_settings(SETTINGS).pools}
    used = {config.clientify_pool} | {p.pool for p in config.platforms}
    assert used <= declared


def test_connections_match_the_integration_config():
    from clientify_sync.integrations import load_integrations

    config = load_integrations()
    declared = {c.conn_id for c in read_settings(SETTINGS).connections}
    assert {config.clientify_conn_id} | {p.conn_id for p in config.platforms} <= declared


def test_connection_env_is_json_airflow_understands(monkeypatch):
    from airflow.sdk import BaseHook

    env = connection_env(SETTINGS, hosts={"clientify_default": "http://127.0.0.1:9999"})
    assert set(env) == {
        "AIRFLOW_CONN_FACTURAMA_DEFAULT",
        "AIRFLOW_CONN_CLIENTIFY_DEFAULT",
        "AIRFLOW_CONN_FACTURADIRECTA_DEFAULT",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    conn = BaseHook.get_connection("clientify_default")
    assert (conn.conn_type, conn.host, conn.password) == (
        "http",
        "http://127.0.0.1:9999",
        "fake-clientify-sandbox-token",
    )
    facturama = BaseHook.get_connection("facturama_default")
    assert (facturama.host, facturama.login) == ("http://127.0.0.1:8701", "sandbox-user")


def test_connection_env_overrides_any_field():
    env = connection_env(SETTINGS, overrides={"clientify_default": {"password": "revoked"}})
    assert json.loads(env["AIRFLOW_CONN_CLIENTIFY_DEFAULT"])["password"] == "revoked"
    assert json.loads(env["AIRFLOW_CONN_FACTURAMA_DEFAULT"])["password"] == "sandbox-password-fake"


def test_the_api_hooks_accept_the_shipped_connections(monkeypatch):
    """The hooks validate host/login/password/extra strictly: the sandbox defaults must pass."""
    from clientify_sync.hooks.clientify import ClientifyHook
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from clientify_sync.hooks.facturama import FacturamaHook

    for name, value in connection_env(SETTINGS).items():
        monkeypatch.setenv(name, value)
    assert FacturamaHook().get_settings().base_url == "http://127.0.0.1:8701"
    assert ClientifyHook().get_settings().base_url == "http://127.0.0.1:8702"
    assert FacturaDirectaHook().get_settings().base_url == "http://127.0.0.1:8703"


def test_extras_port_schema_and_uri_forms(tmp_path):
    path = write(
        tmp_path,
        {
            "airflow": {
                "connections": [
                    {
                        "conn_id": "a",
                        "conn_type": "http",
                        "conn_host": "example.test",
                        "conn_schema": "https",
                        "conn_port": "8443",
                        "conn_extra": '{"page_size": 50}',
                    },
                    {"conn_id": "b", "conn_type": "http", "conn_extra": {"timeout": 5}},
                    {"conn_id": "c", "conn_uri": "postgresql://user:p%40ss@db:5432/ledger"},
                ],
                "pools": [{"pool_name": "p", "pool_slot": 2, "pool_description": "d"}],
                "variables": [{"variable_name": "v", "variable_value": {"k": 1}}],
            }
        },
    )
    settings = read_settings(path)
    a, b, c = settings.connections
    assert (a.host, a.schema, a.port, a.extra) == ("example.test", "https", 8443, {"page_size": 50})
    assert b.extra == {"timeout": 5}
    assert (c.conn_type, c.host, c.login, c.password, c.port, c.schema) == (
        "postgresql",
        "db",
        "user",
        "p@ss",
        5432,
        "ledger",
    )
    assert settings.variables == (("v", '{"k": 1}'),)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        pytest.param(
            {"airflow": {"connections": [{"conn_id": "x", "conn_typo": "http"}]}}, "unknown key", id="typo"
        ),
        pytest.param({"airflow": {"connections": [{"conn_id": "x"}]}}, "conn_type is required", id="no-type"),
        pytest.param(
            {"airflow": {"pools": [{"pool_name": "p", "pool_slot": "many"}]}}, "pool_slot", id="slots"
        ),
        pytest.param(
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_extra": "{bad"}]}},
            "not valid JSON",
            id="extra-json",
        ),
        pytest.param(
            {"airflow": {"connections": [{"conn_type": "http"}]}}, "conn_id is required", id="no-id"
        ),
        pytest.param({"airflow": {"dags": []}}, "unknown key", id="unknown-section"),
    ],
)
def test_malformed_settings_are_rejected(tmp_path, body, message):
    with pytest.raises(SettingsError, match=message):
        read_settings(write(tmp_path, body))


def test_apply_settings_creates_then_updates(airflow_db, tmp_path):
    from airflow.models.connection import Connection
    from airflow.models.pool import Pool
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    first = read_settings(SETTINGS)
    log = apply_settings(first)
    assert "connection facturama_default created" in log or "connection facturama_default updated" in log
    changed = yaml.safe_load(SETTINGS.read_text())
    changed["airflow"]["connections"][1]["conn_password"] = "rotated-fake-token"
    changed["airflow"]["pools"][0]["pool_slot"] = 7
    changed["airflow"]["variables"] = [{"variable_name": "clientify_sync_note", "variable_value": "hello"}]
    log = apply_settings(read_settings(write(tmp_path, changed)))
    assert "connection clientify_default updated" in log
    with create_session() as session:
        conn = session.scalar(select(Connection).where(Connection.conn_id == "clientify_default"))
        assert (conn.host, conn.password) == ("http://127.0.0.1:8702", "rotated-fake-token")
        pool = session.scalar(select(Pool).where(Pool.pool == "facturama_api"))
        assert pool.slots == 7 and "Facturama" in pool.description
        assert session.scalar(select(Pool).where(Pool.pool == "clientify_api")).slots == 4
    assert Variable.get("clientify_sync_note") == "hello"
    # The CLI entry point applies the file as shipped (idempotently).
    assert main([str(SETTINGS)]) == 0
    with create_session() as session:
        assert session.scalar(select(Pool).where(Pool.pool == "facturama_api")).slots == 4


def test_cli_commands_are_idempotent_airflow_calls():
    commands = cli_commands(read_settings(SETTINGS), airflow="airflow")
    adds = [c for c in commands if c[1:3] == ["connections", "add"]]
    assert len(adds) == 3
    for command in adds:
        assert command[4] == "--conn-json"
        assert json.loads(command[5])["conn_type"] == "http"
    deletes = [c for c in commands if c[1:3] == ["connections", "delete"]]
    assert [c[3] for c in deletes] == [c[3] for c in adds]
    assert ["airflow", "pools", "set", "clientify_api", "4"] == [
        c for c in commands if c[1:3] == ["pools", "set"] and c[3] == "clientify_api"
    ][0][:5]


def test_env_flag_prints_exports():
    done = subprocess.run(
        [sys.executable, "-m", "include.load_settings", str(SETTINGS), "--env"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("export AIRFLOW_CONN_") for line in lines)


def test_missing_file_is_a_clean_error(tmp_path, capsys):
    assert main([str(tmp_path / "absent.yaml")]) == 2
    assert "absent.yaml" in capsys.readouterr().err
