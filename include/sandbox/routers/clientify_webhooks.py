"""Clientify API v2 webhook slots: ``GET/POST/DELETE /v2/webhooks/{entity}/`` and ``POST …/activate/``.

The real API lives on another host (``https://api-plus.clientify.com/v2``) with the same ``Authorization:
Token`` key (realtime.md §1.1); the sandbox serves it on the Clientify port. Shapes from Clientify's own
n8n package (``test/lifecycle.test.cjs``): GET answers ``{entity, target, is_active, events}`` (a free slot
``target: ""``, ``is_active: false``); POST ``{"target", "headers"}`` answers 201, 409 ``{"detail":
"Already configured"}`` when the slot holds a target, 400 ``{"target": ["Enter a valid URL."]}``; activate
answers 200 ``{}``; DELETE 204. An entity without a slot is a 404; a key that is not an administrator's
with the API add-on is a 403 (``webhook_admin_key``). Targets must be loopback (``webhook_targets``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import jsonio
from include.sandbox.auth import clientify_auth
from include.sandbox.config import ClientifyConfig
from include.sandbox.context import ctx, raw_body
from include.sandbox.errors import drf_detail, json_error, json_response
from include.sandbox.models import clientify_webhooks as slots


def _admin(request: Request) -> None:
    cfg = ctx(request).config
    assert isinstance(cfg, ClientifyConfig)
    if not cfg.webhook_admin_key:
        raise drf_detail(403, "You do not have permission to perform this action.")


router = APIRouter(
    prefix="/v2/webhooks",
    tags=["clientify webhooks"],
    dependencies=[Depends(clientify_auth), Depends(_admin)],
)


def _entity(entity: str) -> str:
    if entity not in slots.SLOTS:
        raise drf_detail(404, "Not found.")
    return entity


@router.get("/{entity}/")
def get_slot(entity: str, request: Request) -> Response:
    with ctx(request).store.session() as s:
        return json_response(slots.render(_entity(entity), slots.slot(s, entity)))


@router.post("/{entity}/")
def register(entity: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    _entity(entity)
    try:
        payload = jsonio.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise drf_detail(400, f"JSON parse error - {exc}") from None
    target, headers, errors = slots.read_registration(payload)
    with ctx(request).store.session(write=True) as s:
        if slots.slot(s, entity) is not None:
            raise drf_detail(409, "Already configured")
        if errors:
            raise json_error(400, errors)
        row = slots.register(s, entity, target, headers)
    return json_response(slots.render(entity, row), 201)


@router.post("/{entity}/activate/")
def activate(entity: str, request: Request) -> Response:
    with ctx(request).store.session(write=True) as s:
        row = slots.slot(s, _entity(entity))
        if row is None:
            raise drf_detail(404, "Not found.")
        slots.set_active(s, row, True)
    return json_response({})


@router.delete("/{entity}/")
def unregister(entity: str, request: Request) -> Response:
    with ctx(request).store.session(write=True) as s:
        row = slots.slot(s, _entity(entity))
        if row is None:
            raise drf_detail(404, "Not found.")
        s.delete(slots.TABLE, row.seq)
    return Response(status_code=204)
