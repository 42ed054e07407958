"""Serves the FacturaDirecta REST API beside the classic XML API, on the same port and context.

Why one port: both APIs front the same FacturaDirecta accounts (facturadirecta-rest-api.md §1), and
their paths never collide — the classic API lives at ``/api/<resource>.xml`` and
``/api/<resource>/<id>.xml``, the REST API at ``/api/profile`` and ``/api/com_<uuid>/…``. So the
FacturaDirecta app is wrapped in a path switch: REST paths (and ``/_sandbox/rest/…``) go to a second
FastAPI app with JSON errors, its own ``Stats(Faults(Gate(app)))`` stack sharing the context's fault
injector and stats, everything else to the classic app unchanged. ``/_sandbox/reset``, ``seed``,
``config``, ``faults``, ``latency`` and ``stats`` on that port therefore act on both APIs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from include.sandbox import fd_rest_store as db
from include.sandbox import fd_rest_webhooks, jsonio
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import json_error, json_response
from include.sandbox.faults import FaultMiddleware
from include.sandbox.fd_rest_errors import RestError
from include.sandbox.fd_rest_gate import RestGate, companies
from include.sandbox.fd_rest_runtime import RestRuntime, runtime_for
from include.sandbox.models import facturadirecta_rest as model
from include.sandbox.routers import facturadirecta_rest, facturadirecta_rest_webhooks
from include.sandbox.stats import StatsMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REST_PATH = re.compile(r"^(/api/profile(/|$)|/api/com_[^/]*(/|$)|/_sandbox/rest(/|$))")


def is_rest_path(path: str) -> bool:
    return REST_PATH.match(path) is not None


def fault_body(status: int) -> tuple[bytes, str]:
    """Injected status faults in the REST error shape."""
    return json.dumps({"statusCode": status, "message": _reason(status)}).encode(), "application/json"


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class ApiSwitch:
    """Routes each request to the REST or the classic app by its path."""

    def __init__(self, classic: ASGIApp, rest: ASGIApp) -> None:
        self.classic = classic
        self.rest = rest

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_rest_path(scope["path"]):
            await self.rest(scope, receive, send)
        else:
            await self.classic(scope, receive, send)


def with_rest_api(classic: ASGIApp, context: ApiContext) -> ASGIApp:
    """The FacturaDirecta served app: the classic one plus the REST API (``app.py`` flavour hook)."""
    runtime = runtime_for(context.store)
    app = FastAPI(
        title="facturadirecta REST sandbox",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    app.state.ctx = context
    app.state.rest = runtime
    app.include_router(facturadirecta_rest.router)
    app.include_router(facturadirecta_rest_webhooks.router)
    app.include_router(control_router(), prefix="/_sandbox/rest")

    async def rest_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RestError)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = "Not Found" if exc.status_code == 404 else str(exc.detail)
        return RestError(exc.status_code, message).response()

    async def server_error(request: Request, exc: Exception) -> Response:
        return RestError(500, "Internal Server Error").response()

    app.add_exception_handler(RestError, rest_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, server_error)
    gate = RestGate(app, context, runtime)
    served = StatsMiddleware(
        FaultMiddleware(gate, context.injector, "json", error_body=fault_body),
        context.stats,
    )
    return ApiSwitch(classic, served)


# -- /_sandbox/rest: the REST emulator's own controls ----------------------------------------------


def _body(raw: bytes) -> dict[str, Any]:
    try:
        payload = jsonio.loads(raw) if raw.strip() else {}
    except ValueError as exc:
        raise json_error(400, {"error": f"invalid JSON: {exc}"}) from None
    if not isinstance(payload, dict):
        raise json_error(400, {"error": "the body must be an object"})
    return payload


def _clock_json(runtime: RestRuntime) -> dict[str, Any]:
    state = runtime.clock_state()
    return {
        "now": model.iso(state["now_ms"] * 1000),
        "now_ms": state["now_ms"],
        "frozen": state["frozen"],
        "offset_ms": state["offset_ms"],
    }


def control_router() -> APIRouter:
    router = APIRouter(tags=["sandbox control (FacturaDirecta REST)"])

    def runtime_of(request: Request) -> RestRuntime:
        runtime: RestRuntime = request.app.state.rest
        runtime.sync()
        return runtime

    @router.get("")
    def info(request: Request) -> Response:
        """Companies (id, plan, API key, scopes), the sandbox clock and held requests."""
        cfg = ctx(request).config
        assert isinstance(cfg, FacturaDirectaConfig)
        runtime = runtime_of(request)
        return json_response(
            {
                "companies": [
                    {
                        "id": c.id,
                        "name": c.name,
                        "plan": c.plan,
                        "api_key": c.key,
                        "scopes": sorted(c.scopes),
                        "rate_limit": c.rate_limit(cfg),
                    }
                    for c in companies(cfg).values()
                ],
                "clock": _clock_json(runtime),
                "held": runtime.held(),
            }
        )

    @router.get("/clock")
    def get_clock(request: Request) -> Response:
        return json_response(_clock_json(runtime_of(request)))

    @router.put("/clock")
    def put_clock(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """``{"advance_s": 86400}``, ``{"frozen": true}``, ``{"now": "2026-05-04T10:00:00.000Z"}`` (forward only)."""
        payload = _body(body)
        unknown = set(payload) - {"advance_s", "frozen", "now"}
        if unknown:
            raise json_error(400, {"error": f"unknown clock keys: {sorted(unknown)}"})
        runtime = runtime_of(request)
        try:
            advance = float(payload.get("advance_s", 0))
            frozen = payload.get("frozen")
            if frozen is not None and not isinstance(frozen, bool):
                raise ValueError("frozen must be true or false")
            now = model.parse_iso_ms(payload["now"]) // 1000 if "now" in payload else None
            runtime.set_clock(advance_s=advance, frozen=frozen, now_ms=now)
        except (ValueError, TypeError) as exc:
            raise json_error(400, {"error": str(exc)}) from None
        return json_response(_clock_json(runtime))

    @router.put("/hold")
    async def arm_hold(request: Request) -> Response:
        """``{"method": "POST", "path": "/contacts$", "count": 1, "timeout_s": 30}``: the next matching write
        with an ``Idempotency-Key`` waits, registered as in flight, until ``DELETE /_sandbox/rest/hold``."""
        payload = _body(await request.body())
        runtime = runtime_of(request)
        try:
            runtime.arm(
                str(payload.get("method", "*")),
                str(payload.get("path", ".*")),
                int(payload.get("count", 1)),
                float(payload.get("timeout_s", 30)),
            )
        except (ValueError, TypeError, re.error) as exc:
            raise json_error(400, {"error": str(exc)}) from None
        return json_response({"armed": True, "held": runtime.held()})

    @router.get("/hold")
    async def held(request: Request, wait_s: float = 0) -> Response:
        """How many requests are held; ``?wait_s=5`` waits until one is (a bounded wait, no polling)."""
        runtime: RestRuntime = request.app.state.rest
        count = await runtime.wait_held(min(wait_s, 30)) if wait_s > 0 else runtime.held()
        return json_response({"held": count})

    @router.delete("/hold")
    async def release(request: Request) -> Response:
        runtime: RestRuntime = request.app.state.rest
        return json_response({"released": runtime.release()})

    @router.post("/unarchive")
    def unarchive(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """``{"id": "con_…"}``: recover a deleted record as the web app does (the API cannot): activity
        ``unarchived``, and the record is listed again."""
        payload = _body(body)
        rid = str(payload.get("id") or "")
        kind = next((k for k in model.KINDS.values() if rid.startswith(k.prefix)), None)
        if kind is None:
            raise json_error(400, {"error": "id must be a con_, pro_ or est_ id"})
        context = ctx(request)
        runtime = runtime_of(request)
        cfg = context.config
        assert isinstance(cfg, FacturaDirectaConfig)
        with context.store.session(write=True) as s:
            row = s.get(kind.table, rid=rid)
            if row is None or not row.body.get("archived"):
                raise json_error(404, {"error": f"no deleted record {rid}"})
            company = row.body["_company"]
            db.set_archived(
                s,
                kind,
                company,
                row,
                False,
                runtime.now_us(),
                username="ami@facturadirecta.com",
                request=None,
            )
            fd_rest_webhooks.changed(context, s, kind, company, rid, "unarchived", row, source="ui")
        return json_response({"id": rid, "unarchived": True})

    return router
