"""Hooks: connection -> typed settings -> API client, with connections from AIRFLOW_CONN_* variables."""

from __future__ import annotations

import json

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import FacturaDirectaRestSettings, FacturaDirectaSettings
from clientify_sync.errors import ConfigurationError
from clientify_sync.hooks.clientify import ClientifyHook
from clientify_sync.hooks.facturadirecta import FacturaDirectaHook, chosen_api_extras
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


# -- FacturaDirecta: one connection type, two APIs (extra ``api``) ------------------------------------

REST_KEY = "aB3cD9.xY7zN2qK4mP8rT5sJ1hF6gL0vW3uE"  # the shape of the docs' example; not a real key
COMPANY = "com_3a7e8d29-0000-4000-8000-000000000000"


def test_a_rest_connection_builds_the_rest_client(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, "facturadirecta_default", password=REST_KEY,
                   extra={"api": "rest", "company_id": COMPANY, "plan": "bronce"})  # fmt: skip
    hook = FacturaDirectaHook()
    settings = hook.get_settings()
    assert isinstance(settings, FacturaDirectaRestSettings)
    assert (settings.base_url, settings.company_id, settings.api_key) == (
        "https://app.facturadirecta.com",
        COMPANY,
        REST_KEY,
    )
    assert settings.requests_per_minute == 60  # Bronce's, until the API's headers say otherwise
    client = hook.get_conn()
    assert isinstance(client, FacturaDirectaRestClient) and client is hook.get_conn()
    hook.close()


def test_a_connection_without_api_stays_on_the_classic_api(monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(
        monkeypatch, "facturadirecta_default", host="acme.facturadirecta.com", password="token-of-the-xml-api"
    )
    assert isinstance(FacturaDirectaHook().get_settings(), FacturaDirectaSettings)
    assert isinstance(FacturaDirectaHook().get_conn(), FacturaDirectaClient)


@pytest.mark.parametrize("api", ["classic", "rest"])
def test_the_other_apis_extras_left_at_the_forms_defaults_are_ignored(
    monkeypatch: pytest.MonkeyPatch, api: str
) -> None:
    """Airflow's form saves every field, the other API's too: empty or at their defaults, they say nothing."""
    saved = {"api": api, "company_id": COMPANY if api == "rest" else "", "plan": "", "sort_by": "creationDate",
             "api_version": "", "idempotency": "on", "auth_style": "basic", "link_attribute": "ID_CRM",
             "page_size": None, "timeout": 30.0}  # fmt: skip
    host, password = (
        ("acme.facturadirecta.com", "token-of-the-xml-api") if api == "classic" else (None, REST_KEY)
    )
    set_connection(monkeypatch, "facturadirecta_default", host=host, password=password, extra=saved)
    expected = FacturaDirectaSettings if api == "classic" else FacturaDirectaRestSettings
    assert isinstance(FacturaDirectaHook().get_settings(), expected)
    assert chosen_api_extras(saved).keys() == (
        {"api", "auth_style", "link_attribute", "page_size", "timeout"} if api == "classic"
        else {"api", "company_id", "plan", "sort_by", "api_version", "idempotency", "link_attribute", "page_size", "timeout"}
    )  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "extra", "message"),
    [
        pytest.param(
            {"host": "acme.facturadirecta.com", "password": "token-of-the-xml-api"},
            {"company_id": COMPANY},
            "set the extra api to 'rest'",
            id="classic-with-a-company",
        ),
        pytest.param(
            {"host": "app.facturadirecta.com", "password": "token-of-the-xml-api"},
            {},
            "set the extra api to 'rest'",
            id="classic-on-the-rest-host",
        ),
        pytest.param(
            {"password": REST_KEY}, {"api": "rest"}, "needs the extra company_id", id="rest-without-company"
        ),
        pytest.param(
            {"password": "token-of-the-xml-api"},
            {"api": "rest", "company_id": COMPANY},
            "a FacturaDirecta REST API key looks like",
            id="rest-with-a-classic-token",
        ),
        pytest.param(
            {"password": REST_KEY},
            {"api": "rest", "company_id": COMPANY, "auth_style": "query"},
            "auth_style",
            id="rest-with-a-classic-extra-set",
        ),
        pytest.param(
            {"host": "acme.facturadirecta.com", "password": "token-of-the-xml-api"},
            {"idempotency": "off"},
            "idempotency",
            id="classic-with-a-rest-extra-set",
        ),
        pytest.param(
            {"password": REST_KEY}, {"api": "graphql"}, "extra api must be one of", id="unknown-api"
        ),
    ],
)
def test_a_wrong_facturadirecta_connection_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, fields: dict, extra: dict, message: str
) -> None:
    set_connection(monkeypatch, "facturadirecta_default", extra=extra, **fields)
    with pytest.raises(ConfigurationError, match=message):
        FacturaDirectaHook().get_conn()
    success, text = FacturaDirectaHook().test_connection()
    assert not success and message in text
    assert REST_KEY not in text and "token-of-the-xml-api" not in text  # the Test button never echoes a key


def rest_api(scopes: list[str], *, key: str = REST_KEY) -> httpx.MockTransport:
    """A REST API that knows one key: ``apiKeyInfo`` with ``scopes``, empty listings, 401 for other keys."""

    def answer(request: httpx.Request) -> httpx.Response:
        headers = {
            "X-RateLimit-Limit": "600",
            "X-RateLimit-Remaining": "599",
            "X-RateLimit-Reset": "1893456000",
        }
        if request.headers.get("facturadirecta-api-key") != key:
            return httpx.Response(
                401, json={"statusCode": 401, "message": "Invalid API key", "type": "unauthorized"}
            )
        if request.url.path.endswith("/apiKeyInfo"):
            return httpx.Response(200, json={"scopes": scopes}, headers=headers)
        if request.url.path.endswith("/activity"):
            return httpx.Response(
                200, json={"items": [], "hasMore": False, "nextCursor": None}, headers=headers
            )
        return httpx.Response(200, json={"pagination": {"total": 0}, "items": []}, headers=headers)

    return httpx.MockTransport(answer)


def test_the_rest_test_button_names_missing_scopes_and_a_bad_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from clientify_sync.api.facturadirecta_rest import REQUIRED_SCOPES

    set_connection(monkeypatch, "facturadirecta_default", password=REST_KEY,
                   extra={"api": "rest", "company_id": COMPANY, "plan": "diamante"})  # fmt: skip
    success, message = FacturaDirectaHook(transport=rest_api(list(REQUIRED_SCOPES))).test_connection()
    assert success and message.startswith(
        "Connected to FacturaDirecta (REST API) at https://app.facturadirecta.com"
    )
    assert COMPANY in message
    lacking = [s for s in REQUIRED_SCOPES if s not in ("activity:read", "customFields:write")]
    success, message = FacturaDirectaHook(transport=rest_api(lacking)).test_connection()
    assert not success and "lacks the scopes customFields:write, activity:read" in message
    assert "Ajustes → API keys" in message
    success, message = FacturaDirectaHook(
        transport=rest_api(list(REQUIRED_SCOPES), key="other.key")
    ).test_connection()
    assert not success and "rejected the credentials (HTTP 401)" in message and REST_KEY not in message
