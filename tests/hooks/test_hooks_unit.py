"""Hooks: connection -> typed settings -> API client, with connections from AIRFLOW_CONN_* variables."""

from __future__ import annotations

import json

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.errors import ConfigurationError
from clientify_sync.hooks.clientify import ClientifyHook
from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
from clientify_sync.hooks.facturama import FacturamaHook


def set_connection(monkeypatch: pytest.MonkeyPatch, conn_id: str, **fields: object) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))


@pytest.mark.parametrize(
    ("hook_class", "conn_name_attr", "default"),
    [
        pytest.param(FacturamaHook, "facturama_conn_id", "facturama_default", id="facturama"),
        pytest.param(ClientifyHook, "clientify_conn_id", "clientify_default", id="clientify"),
        pytest.param(
            FacturaDirectaHook, "facturadirecta_conn_id", "facturadirecta_default", id="facturadirecta"
        ),
    ],
)
def test_hooks_follow_airflow_hook_conventions(hook_class: type, conn_name_attr: str, default: str) -> None:
    # The provider registers these connection types (clientify_sync.provider).
    assert (hook_class.conn_name_attr, hook_class.default_conn_name, hook_class.conn_type) == (
        conn_name_attr,
        default,
        default.removesuffix("_default"),
    )
    assert hook_class.hook_name
    hook = hook_class(**{conn_name_attr: "other_conn"})
    assert getattr(hook, conn_name_attr) == "other_conn"
    assert hook_class().conn_id == default


def test_the_connection_is_read_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    hook = FacturamaHook()  # no connection defined yet: constructing must not look it up
    set_connection(
        monkeypatch,
        "facturama_default",
        host="https://apisandbox.facturama.mx",
        login="pruebas",
        password="pw",
    )
    assert isinstance(hook.get_conn(), FacturamaClient)
    assert hook.get_conn() is hook.get_conn()


def test_facturama_settings_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        "facturama_default",
        host="https://apisandbox.facturama.mx",
        login="pruebas",
        password="pw",
        extra={"page_size": 50, "timeout": 7, "connect_timeout": 2, "requests_per_minute": 300, "concurrency": 2,
               "max_retries": 1, "backoff_base": 0.1, "backoff_max": 1, "estimates_path": "Quote", "api_prefix": "/api"},
    )  # fmt: skip
    settings = FacturamaHook().get_settings()
    assert (settings.base_url, settings.username, settings.password) == (
        "https://apisandbox.facturama.mx",
        "pruebas",
        "pw",
    )
    assert (settings.page_size, settings.timeout, settings.connect_timeout, settings.requests_per_minute) == (
        50,
        7,
        2,
        300,
    )
    assert (settings.concurrency, settings.max_retries, settings.backoff_base, settings.backoff_max) == (
        2,
        1,
        0.1,
        1,
    )
    assert (settings.estimates_path, settings.api_prefix) == ("Quote", "/api")


def test_clientify_settings_from_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch,
        "crm",
        host="https://api.clientify.net",
        password="the-key",
        extra={
            "budgets_path": "/v1/quotes/",
            "link_field_facturama": "fm_id",
            "link_field_facturadirecta": "fd_id",
        },
    )
    settings = ClientifyHook(clientify_conn_id="crm").get_settings()
    assert (settings.api_key, settings.budgets_path) == ("the-key", "/v1/quotes/")
    assert (settings.link_field_facturama, settings.link_field_facturadirecta) == ("fm_id", "fd_id")


def test_clientify_host_defaults_to_the_public_api(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "clientify_default", password="the-key")
    assert ClientifyHook().get_settings().base_url == "https://api.clientify.net"


@pytest.mark.parametrize(
    ("fields", "token"),
    [
        pytest.param({"password": "token-in-password"}, "token-in-password", id="password"),
        pytest.param({"login": "token-in-login-field"}, "token-in-login-field", id="login"),
    ],
)
def test_facturadirecta_token_from_password_or_login(
    monkeypatch: pytest.MonkeyPatch, fields: dict, token: str
) -> None:
    set_connection(monkeypatch, "facturadirecta_default", host="acme.facturadirecta.com",
                   extra={"link_attribute": "CRM", "auth_style": "query"}, **fields)  # fmt: skip
    settings = FacturaDirectaHook().get_settings()
    assert (settings.base_url, settings.token) == ("https://acme.facturadirecta.com", token)
    assert (settings.link_attribute, settings.auth_style, settings.page_size) == ("CRM", "query", 250)
    assert isinstance(FacturaDirectaHook().get_conn(), FacturaDirectaClient)


@pytest.mark.parametrize(
    ("hook_class", "extra"),
    [
        pytest.param(FacturamaHook, {"verify": False}, id="facturama-unknown"),
        pytest.param(ClientifyHook, {"estimates_path": "Estimate"}, id="clientify-other-api-key"),
        pytest.param(FacturaDirectaHook, {"page_size": 1000}, id="facturadirecta-too-big"),
    ],
)
def test_unknown_or_bad_extras_are_rejected(
    monkeypatch: pytest.MonkeyPatch, hook_class: type, extra: dict
) -> None:
    set_connection(monkeypatch, hook_class.default_conn_name, host="https://h.test", login="u", password="p-123456789",
                   extra=extra)  # fmt: skip
    with pytest.raises(ConfigurationError):
        hook_class().get_conn()
    success, message = hook_class().test_connection()
    assert not success and ("extra" in message or "page_size" in message)


def test_test_connection_through_an_injected_transport(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "clientify_default", host="https://c.test", password="the-key")

    def users(request: httpx.Request) -> httpx.Response:
        if request.headers.get("Authorization") != "Token the-key":
            return httpx.Response(401, json={"detail": "Invalid token."})
        return httpx.Response(200, json={"count": 1, "next": None, "results": [{"id": 1}]})

    hook = ClientifyHook(transport=httpx.MockTransport(users))
    assert hook.test_connection() == (True, "Connected to Clientify at https://c.test (1 users)")
    assert isinstance(hook.get_conn(), ClientifyClient)
    hook.close()


def test_test_connection_of_a_missing_connection_reports_instead_of_raising() -> None:
    success, message = FacturamaHook(facturama_conn_id="does_not_exist").test_connection()
    assert not success and "does_not_exist" in message
