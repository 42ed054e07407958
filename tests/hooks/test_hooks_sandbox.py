"""Hooks against the sandbox: connection from AIRFLOW_CONN_*, test_connection true and false."""

from __future__ import annotations

import json

import pytest

from clientify_sync.hooks.clientify import ClientifyHook
from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
from clientify_sync.hooks.facturama import FacturamaHook


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))


def test_facturama_hook_test_connection(clean_sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "facturama_default", host=clean_sandbox.facturama_url, login=clean_sandbox.facturama_user,
            password=clean_sandbox.facturama_password, extra={"timeout": 5, "max_retries": 1})  # fmt: skip
    connect(
        monkeypatch,
        "facturama_bad",
        host=clean_sandbox.facturama_url,
        login=clean_sandbox.facturama_user,
        password="nope",
    )
    success, message = FacturamaHook().test_connection()
    assert success and message.startswith("Connected to Facturama")
    success, message = FacturamaHook(facturama_conn_id="facturama_bad").test_connection()
    assert not success and "HTTP 401" in message


def test_clientify_hook_test_connection_and_client(clean_sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    connect(monkeypatch, "clientify_default", host=clean_sandbox.clientify_url, password=clean_sandbox.clientify_token,
            extra={"link_field_facturama": "fm_link"})  # fmt: skip
    connect(monkeypatch, "clientify_bad", host=clean_sandbox.clientify_url, password="bogus123")
    hook = ClientifyHook()
    assert hook.test_connection()[0] is True
    assert hook.get_conn().settings.link_field_facturama == "fm_link"
    assert ClientifyHook(clientify_conn_id="clientify_bad").test_connection() == (
        False,
        "Clientify rejected the credentials (HTTP 401): Invalid token.",
    )


@pytest.mark.parametrize("auth_style", ["basic", "query"])
def test_facturadirecta_hook_with_token_in_login_or_password(
    clean_sandbox, monkeypatch: pytest.MonkeyPatch, auth_style: str
) -> None:
    connect(monkeypatch, "facturadirecta_default", host=clean_sandbox.facturadirecta_url, password=clean_sandbox.facturadirecta_token,
            extra={"auth_style": auth_style})  # fmt: skip
    connect(monkeypatch, "fd_login", host=clean_sandbox.facturadirecta_url, login=clean_sandbox.facturadirecta_token,
            extra={"auth_style": auth_style})  # fmt: skip
    connect(monkeypatch, "fd_bad", host=clean_sandbox.facturadirecta_url, password="wrong-token-123456")
    assert FacturaDirectaHook().test_connection()[0] is True
    assert FacturaDirectaHook(facturadirecta_conn_id="fd_login").test_connection()[0] is True
    success, message = FacturaDirectaHook(facturadirecta_conn_id="fd_bad").test_connection()
    assert not success and "HTTP 401" in message


def test_unreachable_host_reports_false(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fixtures.sandbox import free_ports

    (port,) = free_ports(1)
    connect(monkeypatch, "facturama_default", host=f"http://127.0.0.1:{port}", login="u", password="p",
            extra={"max_retries": 0, "connect_timeout": 0.5})  # fmt: skip
    success, message = FacturamaHook().test_connection()
    assert not success and "ConnectError" in message


def rest_connection(
    monkeypatch: pytest.MonkeyPatch, sandbox, conn_id: str = "facturadirecta_default"
) -> dict:
    """A REST connection to the sandbox's emulator: its main company and key (``_sandbox/config``)."""
    config = sandbox.config("facturadirecta")
    connect(monkeypatch, conn_id, host=sandbox.facturadirecta_url, password=config["rest_api_key"],
            extra={"api": "rest", "company_id": config["rest_company_id"], "plan": "diamante"})  # fmt: skip
    return config


def test_facturadirecta_rest_hook_test_connection(clean_sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient

    clean_sandbox.seed("facturadirecta", clients=2, target="rest")
    config = rest_connection(monkeypatch, clean_sandbox)
    hook = FacturaDirectaHook()
    assert isinstance(hook.get_conn(), FacturaDirectaRestClient)
    success, message = hook.test_connection()
    assert success, message
    assert message == (f"Connected to FacturaDirecta (REST API) at {clean_sandbox.facturadirecta_url} "
                       f"(company {config['rest_company_id']}, 2 contacts)")  # fmt: skip
    hook.close()


def test_facturadirecta_rest_hook_reports_a_bad_key_and_another_companys_key(
    clean_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = rest_connection(monkeypatch, clean_sandbox)
    connect(monkeypatch, "fd_rest_bad", host=clean_sandbox.facturadirecta_url, password="wrongK." + "0" * 32,
            extra={"api": "rest", "company_id": config["rest_company_id"]})  # fmt: skip
    connect(monkeypatch, "fd_rest_other", host=clean_sandbox.facturadirecta_url, password=config["rest_other_api_key"],
            extra={"api": "rest", "company_id": config["rest_company_id"]})  # fmt: skip
    success, message = FacturaDirectaHook(facturadirecta_conn_id="fd_rest_bad").test_connection()
    assert not success and "rejected the credentials (HTTP 401)" in message
    success, message = FacturaDirectaHook(facturadirecta_conn_id="fd_rest_other").test_connection()
    # A key acts on its own company only.
    assert not success and "rejected the credentials (HTTP 403)" in message
    assert config["rest_other_api_key"] not in message


def test_facturadirecta_rest_hook_names_the_missing_scopes(
    clean_sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    from clientify_sync.api.facturadirecta_rest import REQUIRED_SCOPES

    rest_connection(monkeypatch, clean_sandbox)
    lacking = [s for s in REQUIRED_SCOPES if s not in ("estimates:write", "activity:read")]
    clean_sandbox.config("facturadirecta", rest_scopes=",".join(lacking))
    success, message = FacturaDirectaHook().test_connection()
    assert not success
    assert "(HTTP 403): the API key lacks the scopes estimates:write, activity:read" in message
    assert "Ajustes → API keys" in message
