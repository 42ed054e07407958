"""Typed settings from Airflow connection fields."""

from __future__ import annotations

import pytest

from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings
from clientify_sync.errors import ConfigurationError


def test_facturama_settings_from_connection_with_typed_extras() -> None:
    settings = FacturamaSettings.from_connection(
        host="https://apisandbox.facturama.mx/",
        login="pruebas",
        password="pw",
        extra={
            "page_size": "50",
            "timeout": 5,
            "requests_per_minute": 120,
            "api_prefix": "/api",
            "estimates_path": "Quote",
        },
    )
    assert settings.base_url == "https://apisandbox.facturama.mx"
    assert (settings.username, settings.password) == ("pruebas", "pw")
    assert (settings.page_size, settings.timeout, settings.requests_per_minute) == (50, 5.0, 120.0)
    assert (settings.api_prefix, settings.estimates_path) == ("/api", "Quote")
    assert (settings.concurrency, settings.max_retries) == (4, 5)


def test_host_without_scheme_gets_https_and_the_connection_port() -> None:
    settings = ClientifySettings.from_connection(
        host="127.0.0.1", login=None, password="key", extra={}, port=8702, schema="http"
    )
    assert settings.base_url == "http://127.0.0.1:8702"


def test_clientify_defaults_and_v1_suffix_is_dropped() -> None:
    settings = ClientifySettings.from_connection(
        host="https://api.clientify.net/v1/", login=None, password="key", extra={}
    )
    assert settings.base_url == "https://api.clientify.net"
    assert (settings.budgets_path, settings.link_field_facturama, settings.link_field_facturadirecta) == (
        "/v1/budgets/",
        "in_facturama",
        "in_facturadirecta",
    )


@pytest.mark.parametrize(
    ("login", "password", "token"),
    [
        pytest.param(None, "tok-in-password-0001", "tok-in-password-0001", id="password"),
        pytest.param("tok-in-login-000001", None, "tok-in-login-000001", id="login"),
        pytest.param("tok-in-login-000001", "x", "tok-in-login-000001", id="curl-style-token-x"),
    ],
)
def test_facturadirecta_token_from_password_or_login(
    login: str | None, password: str | None, token: str
) -> None:
    settings = FacturaDirectaSettings.from_connection(
        host="acme.facturadirecta.com", login=login, password=password, extra={}
    )
    assert settings.token == token
    assert (settings.page_size, settings.auth_style, settings.link_attribute) == (250, "basic", "ID_CRM")


@pytest.mark.parametrize(
    ("settings_class", "extra", "message"),
    [
        pytest.param(FacturamaSettings, {"pagesize": 10}, "unknown extra key", id="typo"),
        pytest.param(FacturamaSettings, {"budgets_path": "/v1/x/"}, "unknown extra key", id="other-api-key"),
        pytest.param(FacturamaSettings, {"page_size": 101}, "page_size must be 1..100", id="page-size-cap"),
        pytest.param(
            FacturaDirectaSettings, {"page_size": 251}, "page_size must be 1..250", id="fd-page-cap"
        ),
        pytest.param(FacturamaSettings, {"timeout": "soon"}, "must be a float", id="not-a-number"),
        pytest.param(FacturamaSettings, {"concurrency": True}, "boolean", id="bool-is-not-int"),
        pytest.param(FacturamaSettings, {"api_prefix": "/v2"}, "api_prefix", id="prefix"),
        pytest.param(FacturaDirectaSettings, {"auth_style": "bearer"}, "auth_style", id="auth-style"),
        pytest.param(ClientifySettings, {"budgets_path": "v1/budgets"}, "budgets_path", id="budgets-path"),
        pytest.param(ClientifySettings, {"max_retries": 2.5}, "whole number", id="fractional-int"),
    ],
)
def test_bad_or_unknown_extras_are_rejected(settings_class: type, extra: dict, message: str) -> None:
    host = "https://acme.facturadirecta.com"
    with pytest.raises(ConfigurationError, match=message):
        settings_class.from_connection(host=host, login="user", password="secret-password", extra=extra)


def test_missing_credentials_are_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="login"):
        FacturamaSettings.from_connection(host=None, login="user", password=None, extra={})


def test_credentials_embedded_in_the_host_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="credentials"):
        ClientifySettings.from_connection(
            host="https://me:key@api.clientify.net", login=None, password="k", extra={}
        )


def test_settings_repr_hides_secrets() -> None:
    facturama = FacturamaSettings(base_url="https://f.test", username="u", password="hunter2-secret")
    clientify = ClientifySettings(base_url="https://c.test", api_key="api-key-secret")
    factura_directa = FacturaDirectaSettings(base_url="https://d.test", token="token-secret")
    shown = repr(facturama) + repr(clientify) + repr(factura_directa)
    assert "secret" not in shown
