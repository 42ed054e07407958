"""Scripted-response transports and fast settings for client tests (no sockets, no sleeping)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from clientify_sync.api.settings import ClientifySettings, FacturaDirectaSettings, FacturamaSettings

FAST = {"backoff_base": 0.0, "backoff_max": 0.01, "max_retries": 3}
FACTURAMA_PASSWORD = "facturama-secret-pw-123"
CLIENTIFY_KEY = "clientify-secret-key-456"
FD_TOKEN = "fd-secret-token-789abcdef"

Scripted = httpx.Response | Exception


@dataclass
class Script:
    """Pops one scripted response (or raises one scripted exception) per request, and keeps the requests."""

    responses: list[Scripted]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if not self.responses:
            raise AssertionError(f"unexpected extra request {request.method} {request.url.path}")
        item = self.responses.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    @property
    def left(self) -> int:
        return len(self.responses)


def handler_transport(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    """A transport from a routing handler (reads the body first so tests can inspect it)."""

    def read_then_handle(request: httpx.Request) -> httpx.Response:
        request.read()
        return handler(request)

    return httpx.MockTransport(read_then_handle)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json", **(headers or {})},
    )


def xml_response(status: int, body: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(
        status,
        content=body.encode(),
        headers={"content-type": "application/xml; charset=UTF-8", **(headers or {})},
    )


def facturama_settings(**overrides: Any) -> FacturamaSettings:
    return FacturamaSettings(
        base_url="https://facturama.test",
        username="api-user",
        password=FACTURAMA_PASSWORD,
        **{**FAST, **overrides},
    )


def clientify_settings(**overrides: Any) -> ClientifySettings:
    return ClientifySettings(
        base_url="https://clientify.test", api_key=CLIENTIFY_KEY, **{**FAST, **overrides}
    )


def facturadirecta_settings(**overrides: Any) -> FacturaDirectaSettings:
    return FacturaDirectaSettings(
        base_url="https://acme.facturadirecta.test", token=FD_TOKEN, **{**FAST, **overrides}
    )


class Sleeps(list[float]):
    """An injectable ``sleep`` that records the waits instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
