"""The ``/_sandbox/`` control surface, the same on every port (JSON, no auth, never faulted or counted).

``POST reset`` · ``POST seed`` · ``GET/PUT config`` · ``GET/PUT/DELETE faults`` · ``GET/PUT/DELETE
latency`` · ``GET/DELETE stats`` · ``GET health``; plus ``custom-fields`` on Clientify and ``custom-attributes`` on FacturaDirecta.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import jsonio, seeding
from include.sandbox.config import ConfigError
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import VendorError, json_error, json_response
from include.sandbox.models import clientify_fields as crm
from include.sandbox.models import facturadirecta as fd
from include.sandbox.routers.clientify import base_url, save_definition
from include.sandbox.webhook_hub import hub_for

FD_DEFAULT_ATTRIBUTES = {"clients": ["ID_CRM"], "products": ["ID_CRM"], "estimates": ["ID_CRM"]}
FD_DEFAULTS_KEY = "facturadirecta:defaults-installed"


def install_facturadirecta_defaults(context: ApiContext) -> None:
    """Define ``ID_CRM`` on clients, products and estimates once per database (and after each reset)."""
    with context.store.session(write=True) as s:
        if s.meta(FD_DEFAULTS_KEY):
            return
        for resource, labels in FD_DEFAULT_ATTRIBUTES.items():
            for label in labels:
                s.define("facturadirecta", resource, label, {"label": label})
        s.set_meta(FD_DEFAULTS_KEY, "1")


DEFAULT_INSTALLERS = {"facturadirecta": install_facturadirecta_defaults}


def _error(message: str, status: int = 400) -> VendorError:
    return json_error(status, {"error": message})


def _json(body: bytes, default: Any = None) -> Any:
    if not body.strip():
        return default
    try:
        return jsonio.loads(body)
    except ValueError as exc:
        raise _error(f"invalid JSON: {exc}") from None


def _plain(value: Any) -> Any:
    """Decimals from the JSON parser back to floats for the fault and config layers."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def build_router(api: str) -> APIRouter:
    """The control router of one API (mounted at ``/_sandbox``)."""
    router = APIRouter(tags=["sandbox control"])

    @router.get("/health")
    def health(request: Request) -> Response:
        return json_response({"api": api, "ok": True})

    @router.post("/reset")
    def reset(request: Request) -> Response:
        ctx(request).reset()
        hub_for(ctx(request).store).reset(api)  # queued deliveries, rules and the delivery log
        return json_response({"api": api, "reset": True})

    @router.post("/seed")
    def seed(request: Request, body: bytes = Depends(raw_body)) -> Response:
        payload = _plain(_json(body, {}))
        if not isinstance(payload, dict):
            raise _error("the seed body must be an object")
        try:
            return json_response(seeding.seed(ctx(request), payload))
        except (seeding.SeedError, ValueError) as exc:
            raise _error(str(exc)) from None

    @router.get("/config")
    def get_config(request: Request) -> Response:
        return json_response(ctx(request).config.as_dict())

    @router.put("/config")
    def put_config(request: Request, body: bytes = Depends(raw_body)) -> Response:
        changes = _plain(_json(body, {}))
        if not isinstance(changes, dict):
            raise _error("the config body must be an object of changes")
        try:
            ctx(request).config.update(changes)
        except ConfigError as exc:
            raise _error(str(exc)) from None
        return json_response(ctx(request).config.as_dict())

    @router.get("/faults")
    def get_faults(request: Request) -> Response:
        return json_response({"rules": ctx(request).injector.rules()})

    @router.put("/faults")
    def put_faults(request: Request, body: bytes = Depends(raw_body)) -> Response:
        payload = _plain(_json(body, []))
        rules = payload.get("rules", []) if isinstance(payload, dict) else payload
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise _error('faults must be a list of rule objects (or {"rules": [...]})')
        try:
            ctx(request).injector.configure(rules)
        except (ValueError, TypeError) as exc:
            raise _error(str(exc)) from None
        return json_response({"rules": ctx(request).injector.rules()})

    @router.delete("/faults")
    def delete_faults(request: Request) -> Response:
        ctx(request).injector.clear()
        return json_response({"rules": []})

    def latency_state(context: ApiContext) -> dict[str, Any]:
        return {
            **context.injector.profile(),
            "scale": context.latency_scale,
            "counters": context.injector.counters(),
        }

    @router.get("/latency")
    def get_latency(request: Request) -> Response:
        """The latency profile in force, its rules (with ``delayed``/``delay_ms``) and the applied delays."""
        return json_response(latency_state(ctx(request)))

    @router.put("/latency")
    def put_latency(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """``{"profile": "realistic", "scale": 1.0}``: switch this API's profile (``reset`` restores start-up's)."""
        payload = _plain(_json(body, {}))
        if not isinstance(payload, dict) or set(payload) - {"profile", "scale"}:
            raise _error('the latency body must be {"profile": ..., "scale": ...}')
        scale = payload.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float):
            raise _error("scale must be a number")
        try:
            ctx(request).set_latency_profile(str(payload.get("profile", "none")), float(scale))
        except ValueError as exc:
            raise _error(str(exc)) from None
        ctx(request).injector.reset_counters()
        return json_response(latency_state(ctx(request)))

    @router.delete("/latency")
    def delete_latency(request: Request) -> Response:
        """Zero the applied-delay counters (the profile stays)."""
        ctx(request).injector.reset_counters()
        return json_response(latency_state(ctx(request)))

    @router.get("/stats")
    def get_stats(request: Request) -> Response:
        return json_response(ctx(request).stats.snapshot())

    @router.delete("/stats")
    def delete_stats(request: Request) -> Response:
        ctx(request).stats.reset()
        return json_response(ctx(request).stats.snapshot())

    if api == "clientify":
        _clientify_definitions(router)
    if api == "facturadirecta":
        _facturadirecta_definitions(router)
    return router


def _items(payload: Any, key: str) -> list[dict[str, Any]]:
    """One definition object, a list of them, or ``{key: [...]}``."""
    if isinstance(payload, dict) and key in payload:
        payload = payload[key]
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(i, dict) for i in items):
        raise _error("expected an object or a list of objects")
    return items


def _clientify_definitions(router: APIRouter) -> None:
    @router.get("/custom-fields")
    def list_fields(request: Request) -> Response:
        with ctx(request).store.session() as s:
            definitions = s.definitions("clientify")
        base = base_url(request, ctx(request).config)  # type: ignore[arg-type]
        return json_response([crm.render_definition(i, body, base) for i, _, _, body in definitions])

    @router.post("/custom-fields")
    def define_fields(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """``{"name": "in_facturama", "content_type": "contacts"}`` (or a list); existing ones are kept."""
        context = ctx(request)
        base = base_url(request, context.config)  # type: ignore[arg-type]
        out = []
        for item in _items(_json(body, {}), "fields"):
            label = crm.content_label(str(item.get("content_type") or ""))
            with context.store.session() as s:
                existing = [
                    d for d in s.definitions("clientify") if d[1] == label and d[2] == item.get("name")
                ]
            if existing:
                def_id, saved = existing[0][0], existing[0][3]
            else:
                def_id, saved = save_definition(context, item)
            out.append(crm.render_definition(def_id, saved, base))
        return json_response(out, 201)

    @router.delete("/custom-fields")
    def undefine_fields(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """Remove definitions by ``{"name", "content_type"}`` (or a list)."""
        context = ctx(request)
        removed = 0
        with context.store.session(write=True) as s:
            for item in _items(_json(body, {}), "fields"):
                label = crm.content_label(str(item.get("content_type") or ""))
                for def_id, resource, name, _ in s.definitions("clientify"):
                    if resource == label and name == item.get("name"):
                        removed += s.undefine("clientify", def_id)
        return json_response({"removed": removed})


def _facturadirecta_definitions(router: APIRouter) -> None:
    def _resource(item: dict[str, Any]) -> str:
        resource = str(item.get("resource") or "")
        if resource not in fd.RESOURCES:
            raise _error(f"resource must be one of {sorted(fd.RESOURCES)}")
        label = str(item.get("label") or "").strip()
        if not label:
            raise _error("label is required")
        return resource

    @router.get("/custom-attributes")
    def list_attributes(request: Request) -> Response:
        with ctx(request).store.session() as s:
            definitions = s.definitions("facturadirecta")
        out: dict[str, list[str]] = {name: [] for name in fd.RESOURCES}
        for _, resource, label, _ in definitions:
            out.setdefault(resource, []).append(label)
        return json_response(out)

    @router.post("/custom-attributes")
    def define_attributes(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """``{"resource": "clients", "label": "Campo 1"}`` (or a list); defining twice is harmless."""
        items = _items(_json(body, {}), "attributes")
        with ctx(request).store.session(write=True) as s:
            for item in items:
                resource = _resource(item)
                label = str(item["label"]).strip()
                if not any(d[2] == label for d in s.definitions("facturadirecta", resource)):
                    s.define("facturadirecta", resource, label, {"label": label})
        return list_attributes(request)

    @router.delete("/custom-attributes")
    def undefine_attributes(request: Request, body: bytes = Depends(raw_body)) -> Response:
        """Remove ``{"resource", "label"}`` definitions (values stay stored but are no longer shown)."""
        with ctx(request).store.session(write=True) as s:
            for item in _items(_json(body, {}), "attributes"):
                resource = _resource(item)
                for def_id, _, label, _ in s.definitions("facturadirecta", resource):
                    if label == str(item["label"]).strip():
                        s.undefine("facturadirecta", def_id)
        return list_attributes(request)
