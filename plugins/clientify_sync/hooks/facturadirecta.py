"""Airflow hook for FacturaDirecta (classic XML API): host + the API token."""

from __future__ import annotations

import httpx

from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.settings import FacturaDirectaSettings
from clientify_sync.hooks.base import ApiHook


class FacturaDirectaHook(ApiHook[FacturaDirectaClient]):
    """Connection: host (``https://ACCOUNT.facturadirecta.com``), password = API token (login accepted).

    Extras: page_size (<= 250), timeout, connect_timeout, requests_per_minute, concurrency,
    max_retries, backoff_base, backoff_max, retry_after_max, link_attribute ("ID_CRM"),
    auth_style ("basic" or "query").
    """

    conn_name_attr = "facturadirecta_conn_id"
    conn_type = "facturadirecta"  # registered by this distribution (provider.py); "http" connections work too
    default_conn_name = "facturadirecta_default"
    hook_name = "FacturaDirecta"
    settings_class = FacturaDirectaSettings
    client_class = FacturaDirectaClient

    def __init__(
        self,
        facturadirecta_conn_id: str = "facturadirecta_default",
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(facturadirecta_conn_id, transport=transport)
