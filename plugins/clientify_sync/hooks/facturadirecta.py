"""Airflow hook for FacturaDirecta: the classic XML API or the REST API, as the connection's extra ``api`` says."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_connection import facturadirecta_client
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.settings import (
    COMMON_EXTRAS,
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    HttpSettings,
    facturadirecta_settings_from_connection,
)
from clientify_sync.hooks.base import ApiHook

# The settings class of each value of the extra ``api`` (the connection form offers both sets of extras).
API_SETTINGS: dict[str, type[HttpSettings]] = {
    "classic": FacturaDirectaSettings,
    "rest": FacturaDirectaRestSettings,
}


class FacturaDirectaHook(ApiHook[FacturaDirectaClient | FacturaDirectaRestClient]):
    """Connection, classic API (extra ``api`` empty or ``classic``): host ``https://ACCOUNT.facturadirecta.com``,
    password = API token (login accepted). Extras: link_attribute ("ID_CRM"), auth_style ("basic" or "query").

    REST API (extra ``api`` = ``rest``): host empty (``https://app.facturadirecta.com``), password = the API
    key from Ajustes → API keys (login accepted), extra ``company_id`` (``com_…``); optional extras plan,
    link_attribute, sort_by, api_version, idempotency.

    Both: page_size (classic <= 250, REST <= 500), timeout, connect_timeout, requests_per_minute,
    concurrency, max_retries, backoff_base, backoff_max, retry_after_max.
    """

    conn_name_attr = "facturadirecta_conn_id"
    conn_type = "facturadirecta"  # registered by this distribution (provider.py); "http" connections work too
    default_conn_name = "facturadirecta_default"
    hook_name = "FacturaDirecta"
    settings_class = FacturaDirectaSettings  # the classic API's; get_settings picks by the extra ``api``
    client_class = FacturaDirectaClient

    def __init__(
        self,
        facturadirecta_conn_id: str = "facturadirecta_default",
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(facturadirecta_conn_id, transport=transport)

    def get_settings(self) -> FacturaDirectaSettings | FacturaDirectaRestSettings:
        """The connection's settings for the API its extra ``api`` names (``classic`` when absent).

        Raises:
            ConfigurationError: missing credentials, an unknown ``api``, bad values, an extra of the other
                API set to something of its own, or a REST connection without ``company_id``.
        """
        conn = self.get_connection(self.conn_id)
        return facturadirecta_settings_from_connection(
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=chosen_api_extras(conn.extra_dejson),
            port=conn.port,
            schema=conn.schema,
        )

    def get_conn(self) -> FacturaDirectaClient | FacturaDirectaRestClient:
        """The classic or the REST client for this connection (built once per hook)."""
        if self._client is None:
            self._client = facturadirecta_client(self.get_settings(), transport=self._transport)
        return self._client


def chosen_api_extras(extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` without the other API's extras that a saved form left empty or at their defaults.

    The connection form shows the extras of both APIs and Airflow's form saves untouched fields with
    their defaults (or empty): a classic connection saved from it carries ``company_id: ""``,
    ``idempotency: "on"``..., a REST one ``auth_style: "basic"``. Those say nothing and are dropped; an
    extra of the other API set to a value of its own is kept, so the settings refuse it by name.
    """
    api = extra.get("api") or "classic"
    chosen = API_SETTINGS.get(api)
    if chosen is None:
        return dict(extra)  # the settings name the valid values
    accepted = {*COMMON_EXTRAS, *chosen.api_extras}
    defaults = {
        f.name: f.default
        for other in API_SETTINGS.values()
        if other is not chosen
        for f in dataclasses.fields(other)
        if f.default is not dataclasses.MISSING
    }
    return {
        key: value
        for key, value in extra.items()
        if key in accepted or (value not in (None, "") and value != defaults.get(key, dataclasses.MISSING))
    }
