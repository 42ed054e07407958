"""The FacturaDirecta client a connection asks for: the classic XML API or the REST API.

One ``facturadirecta`` connection type serves both; its extra ``api`` (``classic`` by default, or ``rest``)
chooses, through ``settings.facturadirecta_settings_from_connection``. The two clients offer the same
resources (``clients``, ``products``, ``estimates``), so DAG ids, assets and reports do not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.settings import (
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    facturadirecta_settings_from_connection,
)


def facturadirecta_client(
    settings: FacturaDirectaSettings | FacturaDirectaRestSettings,
    transport: httpx.BaseTransport | None = None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> FacturaDirectaClient | FacturaDirectaRestClient:
    """The client for these settings."""
    if isinstance(settings, FacturaDirectaRestSettings):
        return FacturaDirectaRestClient(settings, transport, sleep=sleep)
    return FacturaDirectaClient(settings, transport, sleep=sleep)


def facturadirecta_client_from_connection(
    *,
    host: str | None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any],
    port: int | None = None,
    schema: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> FacturaDirectaClient | FacturaDirectaRestClient:
    """The client for an Airflow connection's fields (``Connection.extra_dejson`` as ``extra``).

    Raises:
        ConfigurationError: missing credentials, an unknown ``api`` or extra, a REST connection without
            ``company_id``, or a classic connection that names the REST host.
    """
    settings = facturadirecta_settings_from_connection(
        host=host, login=login, password=password, extra=extra, port=port, schema=schema
    )
    return facturadirecta_client(settings, transport)
