"""Typed settings from Airflow connection fields."""

from __future__ import annotations

import pytest

from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_connection import facturadirecta_client_from_connection
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.settings import (
    ClientifySettings,
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    FacturamaSettings,
    facturadirecta_settings_from_connection,
)
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


# -- FacturaDirecta: the connection chooses the API (extra ``api``: classic | rest) ------------------

REST_KEY = "aB3cD9.xY7zN2qK4mP8rT5sJ1hF6gL0vW3uE"  # the docs' example
COMPANY = "com_3a7e8d29-1b2c-4d5e-8f90-a1b2c3d4e5f6"


def test_a_connection_without_api_stays_classic_and_unchanged() -> None:
    settings = facturadirecta_settings_from_connection(
        host="acme.facturadirecta.com", login=None, password="tok-in-password-0001", extra={"page_size": 100}
    )
    assert type(settings) is FacturaDirectaSettings
    assert (settings.base_url, settings.token, settings.page_size) == (
        "https://acme.facturadirecta.com",
        "tok-in-password-0001",
        100,
    )
    explicit = facturadirecta_settings_from_connection(
        host="acme.facturadirecta.com", login=None, password="tok-in-password-0001", extra={"api": "classic"}
    )
    assert explicit == FacturaDirectaSettings.from_connection(
        host="acme.facturadirecta.com", login=None, password="tok-in-password-0001", extra={}
    )


def test_api_rest_gives_the_rest_settings_with_the_company_and_plan() -> None:
    settings = facturadirecta_settings_from_connection(
        host=None,
        login=None,
        password=REST_KEY,
        extra={"api": "rest", "company_id": COMPANY, "plan": "bronce"},
    )
    assert isinstance(settings, FacturaDirectaRestSettings)
    assert settings.base_url == "https://app.facturadirecta.com"
    assert settings.company_root == f"/api/{COMPANY}"
    assert (settings.api_key, settings.plan, settings.requests_per_minute) == (REST_KEY, "bronce", 60.0)
    assert (settings.page_size, settings.idempotency, settings.link_attribute, settings.sort_by) == (
        500,
        "on",
        "ID_CRM",
        "creationDate",
    )
    assert REST_KEY not in repr(settings)


@pytest.mark.parametrize(
    ("host", "extra", "rate"),
    [
        pytest.param("https://app.facturadirecta.com/api/", {}, 30.0, id="no-plan-starts-at-the-lowest"),
        pytest.param("app.facturadirecta.com", {"requests_per_minute": 45}, 45.0, id="explicit-start"),
        pytest.param(
            "http://127.0.0.1:8703", {"plan": "diamante", "idempotency": "off"}, 600.0, id="sandbox"
        ),
    ],
)
def test_rest_hosts_and_starting_budget(host: str, extra: dict, rate: float) -> None:
    settings = facturadirecta_settings_from_connection(
        host=host, login=REST_KEY, password=None, extra={"api": "rest", "company_id": COMPANY, **extra}
    )
    assert isinstance(settings, FacturaDirectaRestSettings) and settings.requests_per_minute == rate
    assert not settings.base_url.endswith("/api")


@pytest.mark.parametrize(
    ("host", "password", "extra", "message"),
    [
        pytest.param(
            "app.facturadirecta.com",
            "tok-in-password-0001",
            {},
            "set the extra api to 'rest'",
            id="classic-on-the-rest-host",
        ),
        pytest.param(
            "acme.facturadirecta.com",
            "tok-in-password-0001",
            {"company_id": COMPANY},
            "set the extra api to 'rest'",
            id="classic-with-a-company",
        ),
        pytest.param(None, REST_KEY, {"api": "soap"}, "extra api must be one of", id="unknown-api"),
        pytest.param(None, REST_KEY, {"api": "rest"}, "company_id", id="rest-without-company"),
        pytest.param(None, REST_KEY, {"api": "rest", "company_id": "acme"}, "company_id", id="bad-company"),
        pytest.param(
            None,
            "tok-in-password-0001",
            {"api": "rest", "company_id": COMPANY},
            "aB3cD9",
            id="classic-token-on-rest",
        ),
        pytest.param(None, None, {"api": "rest", "company_id": COMPANY}, "API key", id="no-key"),
        pytest.param(
            None,
            REST_KEY,
            {"api": "rest", "company_id": COMPANY, "plan": "platino"},
            "plan",
            id="unknown-plan",
        ),
        pytest.param(
            None,
            REST_KEY,
            {"api": "rest", "company_id": COMPANY, "page_size": 501},
            "page_size",
            id="page-cap",
        ),
        pytest.param(
            None,
            REST_KEY,
            {"api": "rest", "company_id": COMPANY, "auth_style": "query"},
            "unknown extra key",
            id="classic-extra-on-rest",
        ),
    ],
)
def test_a_facturadirecta_connection_names_what_to_fix(
    host: str | None, password: str | None, extra: dict, message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        facturadirecta_settings_from_connection(host=host, login=None, password=password, extra=extra)


def test_the_connection_builds_the_matching_client() -> None:
    classic = facturadirecta_client_from_connection(
        host="acme.facturadirecta.com", login=None, password="tok-in-password-0001", extra={}
    )
    rest = facturadirecta_client_from_connection(
        host=None, login=None, password=REST_KEY, extra={"api": "rest", "company_id": COMPANY}
    )
    try:
        assert type(classic) is FacturaDirectaClient and type(rest) is FacturaDirectaRestClient
        assert rest.clients.list_route == f"/api/{COMPANY}/contacts"
        assert classic.api_name == rest.api_name == "facturadirecta"  # same DAGs, assets and reports
    finally:
        classic.close()
        rest.close()
