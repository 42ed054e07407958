"""FacturaDirecta REST webhook routes (facturadirecta-rest-api.md §12, webhooks.md@03f4cd9).

Endpoints: ``POST /{companyId}/webhooks/endpoints`` ``{name, url, events[]}`` → ``{content,
signing_secret}`` (the secret shown once); ``GET`` list (unpaged ``{items}``) and one (``{content}``);
``PUT …/{id}`` partial (``events`` replaced); ``DELETE`` → ``{result: true}`` (history kept, pending events
not sent); ``POST …/enable``, ``…/disable`` (queued events dropped), ``…/rotateSecret`` → ``{signing_secret}``
(the old one invalid at once; 409 on a deleted endpoint). Events: ``GET /webhooks/events`` (cursor,
newest first, filters ``endpointId``, ``type``, ``status``), ``GET …/{id}`` (payload and last attempt),
``POST …/{id}/retry`` (allowed for delivered events too). Scopes ``webhooks:read``/``webhooks:write``,
authentication, rate limits and idempotency happen in ``fd_rest_gate``. A url must be a loopback address
(``webhook_targets``; the real API demands HTTPS, and 400 is its answer to either).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import jsonio
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.fd_rest_errors import Problems, RestError, not_found, validation
from include.sandbox.fd_rest_runtime import runtime_for
from include.sandbox.fd_rest_webhooks import fail_pending, retry
from include.sandbox.models import facturadirecta_rest_webhooks as hooks
from include.sandbox.routers.facturadirecta_rest import Query, decode_cursor, encode_cursor, rest_json
from include.sandbox.store import Row, Session, Where

router = APIRouter(prefix="/api", tags=["facturadirecta-rest webhooks"])


def _cfg(context: ApiContext) -> FacturaDirectaConfig:
    cfg = context.config
    assert isinstance(cfg, FacturaDirectaConfig)
    return cfg


def _payload(body: bytes) -> Any:
    try:
        return jsonio.loads(body) if body.strip() else None
    except ValueError as exc:
        raise validation(
            [{"path": "", "message": f"Unexpected token in JSON body: {exc}", "code": "invalid_json"}]
        ) from None


def _now(context: ApiContext) -> int:
    return runtime_for(context.store).now_us()


def _live(s: Session, company: str, endpoint_id: str) -> Row:
    row = hooks.endpoint(s, company, endpoint_id)
    if row is None or row.body["deleted"]:
        raise not_found()
    return row


def _actionable(s: Session, company: str, endpoint_id: str) -> Row:
    """enable / disable / rotateSecret: unknown → 404, deleted → 409 (§12)."""
    row = hooks.endpoint(s, company, endpoint_id)
    if row is None:
        raise not_found()
    if row.body["deleted"]:
        raise RestError(409, "The webhook endpoint was deleted")
    return row


# -- endpoints -------------------------------------------------------------------------------------------


@router.post("/{company_id}/webhooks/endpoints")
def create_endpoint(company_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    context = ctx(request)
    p = Problems()
    fields = hooks.read_endpoint(_payload(body), p, creating=True)
    p.check()
    with context.store.session(write=True) as s:
        row, secret = hooks.create_endpoint(s, company_id, fields, _now(context))
    return rest_json(
        {"content": hooks.endpoint_json(row), "signing_secret": secret}, _cfg(context).rest_create_status
    )


@router.get("/{company_id}/webhooks/endpoints")
def list_endpoints(company_id: str, request: Request) -> Response:
    Query(request, set())
    with ctx(request).store.session() as s:
        rows = s.select(hooks.ENDPOINTS, Where(hooks.ENDPOINTS).eq("k1", company_id))
    return rest_json({"items": [hooks.endpoint_json(r) for r in rows if not r.body["deleted"]]})


@router.get("/{company_id}/webhooks/endpoints/{endpoint_id}")
def get_endpoint(company_id: str, endpoint_id: str, request: Request) -> Response:
    Query(request, set())
    with ctx(request).store.session() as s:
        return rest_json({"content": hooks.endpoint_json(_live(s, company_id, endpoint_id))})


@router.put("/{company_id}/webhooks/endpoints/{endpoint_id}")
def update_endpoint(
    company_id: str, endpoint_id: str, request: Request, body: bytes = Depends(raw_body)
) -> Response:
    """Partial: only ``name``, ``url`` and ``events`` sent change (``events`` replaces the list)."""
    context = ctx(request)
    p = Problems()
    fields = hooks.read_endpoint(_payload(body), p, creating=False)
    p.check()
    with context.store.session(write=True) as s:
        row = _live(s, company_id, endpoint_id)
        row = hooks.save_endpoint(s, row, company_id, {**row.body, **fields}, _now(context))
    return rest_json({"content": hooks.endpoint_json(row)})


@router.delete("/{company_id}/webhooks/endpoints/{endpoint_id}")
def delete_endpoint(company_id: str, endpoint_id: str, request: Request) -> Response:
    context = ctx(request)
    now = _now(context)
    with context.store.session(write=True) as s:
        row = _live(s, company_id, endpoint_id)
        hooks.save_endpoint(s, row, company_id, {**row.body, "deleted": True}, now)
        fail_pending(s, endpoint_id, "endpoint deleted", now)
    return rest_json({"result": True})


def _set_enabled(request: Request, company_id: str, endpoint_id: str, enabled: bool) -> Response:
    context = ctx(request)
    now = _now(context)
    with context.store.session(write=True) as s:
        row = _actionable(s, company_id, endpoint_id)
        row = hooks.save_endpoint(s, row, company_id, {**row.body, "enabled": enabled}, now)
        if not enabled:
            fail_pending(s, endpoint_id, "endpoint disabled", now)
    return rest_json({"content": hooks.endpoint_json(row)})


@router.post("/{company_id}/webhooks/endpoints/{endpoint_id}/enable")
def enable_endpoint(company_id: str, endpoint_id: str, request: Request) -> Response:
    return _set_enabled(request, company_id, endpoint_id, True)


@router.post("/{company_id}/webhooks/endpoints/{endpoint_id}/disable")
def disable_endpoint(company_id: str, endpoint_id: str, request: Request) -> Response:
    return _set_enabled(request, company_id, endpoint_id, False)


@router.post("/{company_id}/webhooks/endpoints/{endpoint_id}/rotateSecret")
def rotate_secret(company_id: str, endpoint_id: str, request: Request) -> Response:
    """A new secret, shown once; the old one stops signing at once (§12)."""
    context = ctx(request)
    secret = hooks.new_secret()
    with context.store.session(write=True) as s:
        row = _actionable(s, company_id, endpoint_id)
        hooks.save_endpoint(s, row, company_id, {**row.body, "secret": secret}, _now(context))
    return rest_json({"signing_secret": secret})


# -- events ----------------------------------------------------------------------------------------------


@router.get("/{company_id}/webhooks/events")
def list_events(company_id: str, request: Request) -> Response:
    """Cursor paging like activity (``limit`` 1-100, default 50), newest first."""
    q = Query(request, {"limit", "cursor", "endpointId", "type", "status"})
    limit = q.integer("limit", 50, 1, 100)
    where = Where(hooks.EVENTS).eq("k1", company_id)
    if q.text("endpointId"):
        where.eq("k2", q.params["endpointId"])
    status = q.text("status")
    if status is not None:
        if status not in hooks.STATUSES:
            q.p.add(
                "status",
                f"must be equal to one of the allowed values: {', '.join(hooks.STATUSES)}",
                "invalid_enum",
            )
        where.eq("k3", status)
    types = q.many("type")
    if types:
        where.raw(f"json_extract(body, '$.type') IN ({','.join('?' * len(types))})", types)
    cursor = q.text("cursor")
    if cursor is not None:
        seq, created = decode_cursor(company_id, cursor)
        where.raw("(created < ? OR (created = ? AND seq < ?))", [created, created, seq])
    q.p.check()
    with ctx(request).store.session() as s:
        rows = s.select(hooks.EVENTS, where, order="-created", limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = (
        encode_cursor(company_id, rows[-1].seq, rows[-1].created or 0) if rows and has_more else None
    )
    return rest_json(
        {"items": [hooks.event_json(r) for r in rows], "hasMore": has_more, "nextCursor": next_cursor}
    )


@router.get("/{company_id}/webhooks/events/{event_id}")
def get_event(company_id: str, event_id: str, request: Request) -> Response:
    Query(request, set())
    with ctx(request).store.session() as s:
        row = s.get(hooks.EVENTS, rid=event_id)
    if row is None or row.body["company"] != company_id:
        raise not_found()
    return rest_json({"content": hooks.event_json(row, with_payload=True)})


@router.post("/{company_id}/webhooks/events/{event_id}/retry")
def retry_event(company_id: str, event_id: str, request: Request) -> Response:
    return rest_json({"content": hooks.event_json(retry(ctx(request), company_id, event_id))})
