"""``/_sandbox/webhooks`` on the Clientify and FacturaDirecta ports: what was delivered, the delivery rules,
and edits made "in the web app" that emit events.

- ``GET ""``: registrations (Clientify slots or FacturaDirecta endpoints, never their secrets), counts,
  status codes received, the last attempts (``?limit=50``), the rules; ``?wait_idle_s=5`` first waits
  (bounded, at most 60 s) until nothing is queued, held or in flight, and says whether it got there
  (``idle``).
- ``DELETE ""``: forget counts and attempts (registrations and rules stay).
- ``GET/PUT/DELETE /rules``: ``{"seed": 7, "rules": [...]}`` (``webhook_rules``).
- ``POST /flush``: release a held reorder batch now.
- ``POST /emit``: Clientify ``{"entity": "contacts", "id": 1000001 | "ids": [...], "action":
  "saved"|"deleted", "changes": {...}, "source": "ui"|"bulk"|"import"}``; FacturaDirecta ``{"id": "con_…",
  "action": "updated"|"archived"|"unarchived", "changes": {<content.main fields>}, "tags": [...]}``.
- Clientify only: ``POST /slots/{entity}/deactivate`` switches a slot off as Clientify may (re-enabled
  by the API's ``activate``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from include.sandbox import clientify_webhooks, fd_rest_webhooks, jsonio
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import VendorError, json_error, json_response
from include.sandbox.fd_rest_errors import RestError
from include.sandbox.models import clientify_webhooks as slots
from include.sandbox.models import facturadirecta_rest_webhooks as hooks
from include.sandbox.models.clientify import KINDS as CLIENTIFY_KINDS
from include.sandbox.store import Where
from include.sandbox.webhook_hub import hub_for
from include.sandbox.webhook_rules import RuleError, RuleSet

WEBHOOK_APIS = ("clientify", "facturadirecta")
MAX_WAIT_S = 60.0


def _error(message: str, status: int = 400) -> VendorError:
    return json_error(status, {"error": message})


def _json(body: bytes) -> Any:
    try:
        payload = jsonio.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise _error(f"invalid JSON: {exc}") from None
    return payload


def _plain(value: Any) -> Any:
    """Decimals from the JSON parser as floats (rules take numbers; record changes keep their Decimals)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return float(value)
    return value


def registrations(context: ApiContext) -> list[dict[str, Any]]:
    with context.store.session() as s:
        if context.name == "clientify":
            out = []
            for entity in slots.SLOTS:
                row = slots.slot(s, entity)
                if row is not None:
                    out.append(
                        {
                            **slots.render(entity, row),
                            "hook_id": row.seq,
                            "header_names": sorted(row.body["headers"]),
                        }
                    )
            return out
        rows = s.select(hooks.ENDPOINTS, Where(hooks.ENDPOINTS))
        return [
            {**hooks.endpoint_json(r), "company": r.body["company"], "deleted": r.body["deleted"]}
            for r in rows
        ]


def build_router(api: str) -> APIRouter:
    router = APIRouter(tags=["sandbox control (webhooks)"])

    @router.get("")
    async def state(request: Request, limit: int = 50, wait_idle_s: float = 0) -> Response:
        context = ctx(request)
        hub = hub_for(context.store)
        idle = True
        if wait_idle_s > 0:
            idle = await run_in_threadpool(hub.wait_idle, api, min(wait_idle_s, MAX_WAIT_S))
        snapshot = hub.snapshot(api, max(0, min(limit, 500)))
        found = await run_in_threadpool(registrations, context)
        return json_response(
            {"api": api, "idle": idle and snapshot["outstanding"] == 0, "registrations": found, **snapshot}
        )

    @router.delete("")
    def clear(request: Request) -> Response:
        hub_for(ctx(request).store).clear_log(api)
        return json_response({"api": api, "cleared": True})

    @router.get("/rules")
    def get_rules(request: Request) -> Response:
        return json_response(hub_for(ctx(request).store).rules(api))

    @router.put("/rules")
    def put_rules(request: Request, body: bytes = Depends(raw_body)) -> Response:
        try:
            rules = RuleSet.parse(_plain(_json(body)))
        except RuleError as exc:
            raise _error(str(exc)) from None
        hub = hub_for(ctx(request).store)
        hub.set_rules(api, rules)
        return json_response(hub.rules(api))

    @router.delete("/rules")
    def delete_rules(request: Request) -> Response:
        hub = hub_for(ctx(request).store)
        hub.set_rules(api, RuleSet())
        return json_response(hub.rules(api))

    @router.post("/flush")
    def flush(request: Request) -> Response:
        return json_response({"released": hub_for(ctx(request).store).flush(api)})

    @router.post("/emit")
    def emit(request: Request, body: bytes = Depends(raw_body)) -> Response:
        payload = _json(body)
        if not isinstance(payload, dict):
            raise _error("the body must be an object")
        context = ctx(request)
        if api == "clientify":
            return json_response({"emitted": _clientify_emit(context, request, payload)})
        try:
            out = fd_rest_webhooks.edit_as_user(
                context,
                str(payload.get("id") or ""),
                str(payload.get("action") or "updated"),
                payload.get("changes"),
                payload.get("tags"),
            )
        except RestError as exc:
            raise _error(exc.message, exc.status) from None
        return json_response({"emitted": [out]})

    if api == "clientify":

        @router.post("/slots/{entity}/deactivate")
        def deactivate(entity: str, request: Request) -> Response:
            with ctx(request).store.session(write=True) as s:
                row = slots.slot(s, entity) if entity in slots.SLOTS else None
                if row is None:
                    raise _error(f"no registered slot {entity!r}", 404)
                slots.set_active(s, row, False)
                return json_response(slots.render(entity, slots.slot(s, entity)))

    return router


def _clientify_emit(context: ApiContext, request: Request, payload: dict[str, Any]) -> list[dict[str, Any]]:
    unknown = sorted(set(payload) - {"entity", "id", "ids", "action", "changes", "source"})
    if unknown:
        raise _error(f"unknown keys {unknown}")
    kind = CLIENTIFY_KINDS.get(str(payload.get("entity") or ""))
    if kind is None:
        raise _error(f"entity must be one of {sorted(CLIENTIFY_KINDS)}")
    ids = payload.get("ids", [payload["id"]] if "id" in payload else [])
    if (
        not isinstance(ids, list)
        or not ids
        or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
    ):
        raise _error("give the record's integer id (id) or a list of them (ids)")
    source = payload.get("source", "ui")
    if source not in ("ui", "bulk", "import"):
        raise _error("source must be ui, bulk or import")
    base = f"{request.url.scheme}://{request.url.netloc}"
    return clientify_webhooks.edit_as_user(
        context, base, kind, ids, str(payload.get("action") or "saved"), payload.get("changes"), source
    )
