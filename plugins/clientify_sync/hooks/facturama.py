"""Airflow hook for Facturama: host + login/password (HTTP Basic)."""

from __future__ import annotations

import httpx

from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import FacturamaSettings
from clientify_sync.hooks.base import ApiHook


class FacturamaHook(ApiHook[FacturamaClient]):
    """Connection: host (``https://api.facturama.mx`` by default), login = API user, password.

    Extras: page_size (<= 100), timeout, connect_timeout, requests_per_minute, concurrency,
    max_retries, backoff_base, backoff_max, retry_after_max, estimates_path ("Estimate"),
    api_prefix ("" or "/api").
    """

    conn_name_attr = "facturama_conn_id"
    conn_type = "facturama"  # registered by this distribution (provider.py); "http" connections work too
    default_conn_name = "facturama_default"
    hook_name = "Facturama"
    settings_class = FacturamaSettings
    client_class = FacturamaClient

    def __init__(
        self, facturama_conn_id: str = "facturama_default", *, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__(facturama_conn_id, transport=transport)
