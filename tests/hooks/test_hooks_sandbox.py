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
