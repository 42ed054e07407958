"""HTTP clients for Facturama, Clientify and FacturaDirecta (no Airflow imports here)."""

from __future__ import annotations

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.paging import Page
from clientify_sync.api.settings import (
    ClientifySettings,
    FacturaDirectaRestSettings,
    FacturaDirectaSettings,
    FacturamaSettings,
    HttpSettings,
)
from clientify_sync.api.stats import CallStats

__all__ = [
    "CallStats",
    "ClientifyClient",
    "ClientifySettings",
    "FacturaDirectaClient",
    "FacturaDirectaRestClient",
    "FacturaDirectaRestSettings",
    "FacturaDirectaSettings",
    "FacturamaClient",
    "FacturamaSettings",
    "HttpSettings",
    "Page",
]
