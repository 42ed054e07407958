"""Builds the three ASGI apps: FastAPI (vendor router + control router + vendor error handlers),
wrapped as ``Paths(Stats(Faults(app)))``.

- Faults sit right around the app, so an injected 503 never reaches a handler.
- Stats sit outside faults and count what the client actually received.
- The path layer (Facturama case/prefix folding, Clientify budgets path) is outermost, so faults and
  stats see one canonical path whatever spelling the client used.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match

from include.sandbox import control, webhook_control
from include.sandbox.clock import MonotonicClock
from include.sandbox.config import CONFIG_TYPES, ApiConfig
from include.sandbox.context import ApiContext
from include.sandbox.errors import (
    HTML,
    VendorError,
    django_not_found,
    drf_detail,
    facturama_message,
    fd_status,
)
from include.sandbox.faults import FaultInjector, FaultMiddleware, xml_error_body
from include.sandbox.fd_rest_app import with_rest_api
from include.sandbox.routers import clientify, clientify_webhooks, facturadirecta, facturama
from include.sandbox.stats import RequestStats, StatsMiddleware
from include.sandbox.store import TABLES, Store

ASGIApp = Callable[..., Any]


@dataclass
class Sandbox:
    """The three contexts and their ready-to-serve ASGI apps, keyed by API name."""

    contexts: dict[str, ApiContext]
    apps: dict[str, ASGIApp]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


# -- Facturama -------------------------------------------------------------------------------------


def _facturama_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        raw = request.scope.get("raw_path") or request.url.path.encode()
        query = request.url.query
        uri = f"{request.url.scheme}://{request.url.netloc}{raw.decode('latin-1')}" + (
            f"?{query}" if query else ""
        )
        return facturama_message(
            404, f"No HTTP resource was found that matches the request URI '{uri}'."
        ).response()
    if exc.status_code == 405:
        return facturama_message(
            405, f"The requested resource does not support http method '{request.method}'."
        ).response()
    return facturama_message(exc.status_code, str(exc.detail)).response()


def _facturama_fault_body(status: int) -> tuple[bytes, str]:
    message = "An error has occurred." if status == 500 else _reason(status)
    return json.dumps({"Message": message}).encode(), "application/json; charset=utf-8"


# -- Clientify -------------------------------------------------------------------------------------


def _clientify_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        path = request.scope.get("sandbox.original_path", request.url.path)
        if request.method in ("GET", "HEAD") and not request.url.path.endswith("/"):
            probe = {**request.scope, "path": request.url.path + "/", "method": "GET"}
            if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
                query = request.url.query
                target = f"{path}/" + (f"?{query}" if query else "")
                return RedirectResponse(target, status_code=301)
        return django_not_found(path).response()
    if exc.status_code == 405:
        return drf_detail(405, f'Method "{request.method}" not allowed.').response()
    return drf_detail(exc.status_code, str(exc.detail)).response()


def _clientify_fault_body(status: int) -> tuple[bytes, str]:
    detail = {429: "Request was throttled.", 504: "Gateway Timeout"}.get(status, _reason(status))
    if status == 500:
        return b"<h1>Server Error (500)</h1>", HTML
    return json.dumps({"detail": detail}).encode(), "application/json"


# -- FacturaDirecta --------------------------------------------------------------------------------


def _facturadirecta_http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    return fd_status(exc.status_code).response()


# -- assembly --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flavour:
    router: APIRouter
    body_kind: str
    http_error: Callable[[Request, Exception], Response]
    server_error: Callable[[], VendorError]
    fault_body: Callable[[int], tuple[bytes, str]]
    wrap: Callable[[ASGIApp, ApiContext], ASGIApp] | None = None


FLAVOURS: dict[str, _Flavour] = {
    "facturama": _Flavour(
        facturama.router,
        "json",
        _facturama_http_error,
        lambda: facturama_message(500, "An error has occurred."),
        _facturama_fault_body,
        facturama.FacturamaPaths,
    ),
    "clientify": _Flavour(
        clientify.router,
        "json",
        _clientify_http_error,
        lambda: VendorError(500, "<h1>Server Error (500)</h1>", HTML),
        _clientify_fault_body,
        clientify.ClientifyPaths,
    ),
    # The REST/JSON API is served on the same port (fd_rest_app.py says why).
    "facturadirecta": _Flavour(
        facturadirecta.router,
        "xml",
        _facturadirecta_http_error,
        lambda: fd_status(500),
        xml_error_body,
        with_rest_api,
    ),
}


def build_app(context: ApiContext) -> ASGIApp:
    """The served ASGI app of one API."""
    flavour = FLAVOURS[context.name]
    app = FastAPI(
        title=f"{context.name} sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.ctx = context
    app.include_router(flavour.router)
    if context.name == "clientify":
        app.include_router(clientify_webhooks.router)  # API v2 webhook slots (realtime.md §1.1)
    app.include_router(control.build_router(context.name), prefix="/_sandbox")
    if context.name in webhook_control.WEBHOOK_APIS:
        app.include_router(webhook_control.build_router(context.name), prefix="/_sandbox/webhooks")

    async def vendor_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, VendorError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        return flavour.http_error(request, exc)

    async def server_error(request: Request, exc: Exception) -> Response:
        return flavour.server_error().response()

    app.add_exception_handler(VendorError, vendor_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    served: ASGIApp = StatsMiddleware(
        FaultMiddleware(app, context.injector, flavour.body_kind, error_body=flavour.fault_body),  # type: ignore[arg-type]
        context.stats,
    )
    return flavour.wrap(served, context) if flavour.wrap else served


def build_sandbox(
    store: Store,
    configs: dict[str, ApiConfig] | None = None,
    latency_ms: float = 0,
    latency_profile: str = "none",
    latency_scale: float = 1.0,
) -> Sandbox:
    """Contexts sharing one store and one monotonic clock, and their apps (with the start-up latency profile)."""
    with store.session() as s:
        clock = MonotonicClock(s.max_modified(TABLES))
    baseline = [{"method": "*", "path": ".*", "latency_ms": latency_ms}] if latency_ms else []
    contexts: dict[str, ApiContext] = {}
    for name, config_type in CONFIG_TYPES.items():
        defaults = (configs or {}).get(name) or config_type()
        context = ApiContext(
            name=name,
            store=store,
            clock=clock,
            defaults=defaults,
            config=defaults.copy(),
            injector=FaultInjector(baseline),
            stats=RequestStats(),
            baseline_faults=list(baseline),
            install_defaults=control.DEFAULT_INSTALLERS.get(name),
            startup_profile=(latency_profile, latency_scale),
        )
        context.set_latency_profile(latency_profile, latency_scale)
        if context.install_defaults is not None:
            context.install_defaults(context)
        contexts[name] = context
    return Sandbox(contexts=contexts, apps={name: build_app(c) for name, c in contexts.items()})
