"""API clients pointed at the test sandbox, with small timeouts and backoffs so fault tests run fast."""

from __future__ import annotations

from typing import Any

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings

QUICK = {"backoff_base": 0.01, "backoff_max": 0.05, "max_retries": 3, "timeout": 5.0, "connect_timeout": 2.0}


def facturama_for(sandbox: Any, **overrides: Any) -> FacturamaClient:
    settings = FacturamaSettings(
        base_url=sandbox.facturama_url,
        username=sandbox.facturama_user,
        password=overrides.pop("password", sandbox.facturama_password),
        **{**QUICK, **overrides},
    )
    return FacturamaClient(settings)


def clientify_for(sandbox: Any, **overrides: Any) -> ClientifyClient:
    settings = ClientifySettings(
        base_url=sandbox.clientify_url,
        api_key=overrides.pop("api_key", sandbox.clientify_token),
        **{**QUICK, **overrides},
    )
    return ClientifyClient(settings)


def facturadirecta_for(sandbox: Any, **overrides: Any) -> FacturaDirectaClient:
    settings = FacturaDirectaSettings(
        base_url=sandbox.facturadirecta_url,
        token=overrides.pop("token", sandbox.facturadirecta_token),
        **{**QUICK, **overrides},
    )
    return FacturaDirectaClient(settings)


def sent(sandbox: Any, api: str, method: str) -> int:
    """Requests with ``method`` the sandbox received (whatever their outcome)."""
    return sandbox.stats(api)["by_method"].get(method, 0)
