"""API clients pointed at the test sandbox, with small timeouts and backoffs so fault tests run fast."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings

QUICK = {"backoff_base": 0.01, "backoff_max": 0.05, "max_retries": 3, "timeout": 5.0, "connect_timeout": 2.0}


def facturama_for(
    sandbox: Any, *, transport: httpx.BaseTransport | None = None, **overrides: Any
) -> FacturamaClient:
    settings = FacturamaSettings(
        base_url=sandbox.facturama_url,
        username=sandbox.facturama_user,
        password=overrides.pop("password", sandbox.facturama_password),
        **{**QUICK, **overrides},
    )
    return FacturamaClient(settings, transport)


def clientify_for(
    sandbox: Any,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
    **overrides: Any,
) -> ClientifyClient:
    """``sleep`` replaces the waits between retries (a test records them instead of waiting)."""
    settings = ClientifySettings(
        base_url=sandbox.clientify_url,
        api_key=overrides.pop("api_key", sandbox.clientify_token),
        **{**QUICK, **overrides},
    )
    return ClientifyClient(settings, transport, sleep=sleep)


def facturadirecta_for(
    sandbox: Any, *, transport: httpx.BaseTransport | None = None, **overrides: Any
) -> FacturaDirectaClient:
    settings = FacturaDirectaSettings(
        base_url=sandbox.facturadirecta_url,
        token=overrides.pop("token", sandbox.facturadirecta_token),
        **{**QUICK, **overrides},
    )
    return FacturaDirectaClient(settings, transport)


def sent(sandbox: Any, api: str, method: str) -> int:
    """Requests with ``method`` the sandbox received (whatever their outcome)."""
    return sandbox.stats(api)["by_method"].get(method, 0)


def wait_for_timeouts_to_end(sandbox: Any, api: str, count: int = 1, *, within_s: float = 10.0) -> None:
    """Wait (bounded) until ``count`` injected ``timeout`` faults have let go of their requests.

    A request the client abandoned when its own timeout fired is counted in the sandbox's stats only
    when the fault lets go of it, after the client has moved on.
    """
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        counters = sandbox.latency(api)["counters"]
        if counters["timeouts_completed"] + counters["timeouts_abandoned"] >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{api}: the injected timeout did not end within {within_s} s")
