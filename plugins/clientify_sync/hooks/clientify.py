"""Airflow hook for Clientify: host + password (the API key)."""

from __future__ import annotations

import httpx

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.hooks.base import ApiHook


class ClientifyHook(ApiHook[ClientifyClient]):
    """Connection: host (``https://api.clientify.net`` by default), password = API key.

    Extras: page_size (<= 100), timeout, connect_timeout, requests_per_minute, concurrency,
    max_retries, backoff_base, backoff_max, retry_after_max, budgets_path ("/v1/budgets/"),
    link_field_facturama ("in_facturama"), link_field_facturadirecta ("in_facturadirecta").
    """

    conn_name_attr = "clientify_conn_id"
    conn_type = "clientify"  # registered by this distribution (provider.py); "http" connections work too
    default_conn_name = "clientify_default"
    hook_name = "Clientify"
    settings_class = ClientifySettings
    client_class = ClientifyClient

    def __init__(
        self, clientify_conn_id: str = "clientify_default", *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(clientify_conn_id, transport=transport)
