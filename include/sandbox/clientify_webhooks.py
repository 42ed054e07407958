"""Clientify webhook emission: which changes notify, and the delivery job of one event.

Why here and not in the routes: the rule "writes made with the account's own API key do not come back,
except bulk actions and imports" (realtime.md §1.1) decides *whether* a change notifies, and both the
API routes (never, unless ``webhook_echo_api_writes``) and the control surface's simulated UI edits,
bulk actions and imports (always) ask it. Delivery: unsigned, ``Content-Type: application/json`` plus
the headers registered with the slot, ``webhook_timeout_s`` (5 s), retried only when nothing answers
(``CLIENTIFY_POLICY``); no delivery id, no order.
"""

from __future__ import annotations

import copy
from typing import Any

from include.sandbox import jsonio
from include.sandbox.clock import format_timestamp
from include.sandbox.config import ClientifyConfig
from include.sandbox.context import ApiContext
from include.sandbox.errors import drf_detail, json_error
from include.sandbox.models import clientify as model
from include.sandbox.models import clientify_webhooks as slots
from include.sandbox.models.clientify import Kind
from include.sandbox.models.clientify_render import Renderer
from include.sandbox.store import Row
from include.sandbox.webhook_hub import CLIENTIFY_POLICY, Job, hub_for

API = "clientify"
SOURCES = ("api", "ui", "bulk", "import")
USER_AGENT = "Clientify-Webhooks (sandbox)"


def _config(context: ApiContext) -> ClientifyConfig:
    cfg = context.config
    assert isinstance(cfg, ClientifyConfig)
    return cfg


def renderer(context: ApiContext, base_url: str) -> Renderer:
    cfg = _config(context)
    return Renderer(
        cfg,
        cfg.public_base_url.rstrip("/") or base_url,
        lambda micros: format_timestamp(micros, cfg.timezone),
    )


def notifies(context: ApiContext, source: str) -> bool:
    """API writes with our own key are not echoed (switch ``webhook_echo_api_writes``); the rest are."""
    return source != "api" or _config(context).webhook_echo_api_writes


def emit(context: ApiContext, kind: Kind, record: dict[str, Any], action: str, source: str) -> int | None:
    """Queue ``<entity>.<action>`` for a rendered record when its slot is registered and active and the
    source notifies; returns the delivery number (None: nothing to send)."""
    if not notifies(context, source) or kind.name not in slots.SLOTS:
        return None
    with context.store.session() as s:
        row = slots.slot(s, kind.name)
    if row is None or not row.body["is_active"]:
        return None
    event = f"{slots.SLOTS[kind.name]}.{action}"
    body = jsonio.dumps(slots.payload(row, event, record)).encode()
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **row.body["headers"]}
    cfg = _config(context)
    job = Job(
        api=API,
        event=event,
        ref=f"{kind.name}/{record.get('id')}",
        target=row.body["target"],
        policy=CLIENTIFY_POLICY,
        scale=cfg.webhook_time_scale,
        timeout_s=cfg.webhook_timeout_s,
        prepare=lambda: (body, headers),
    )
    return hub_for(context.store).submit(job)


def edit_as_user(
    context: ApiContext,
    base_url: str,
    kind: Kind,
    ids: list[int],
    action: str,
    changes: Any,
    source: str,
) -> list[dict[str, Any]]:
    """Save (with optional ``changes``, applied as a PATCH would) or delete records the way the web app,
    a bulk action or an import does, and emit their events. Raises the DRF 400/404 on bad input."""
    if action not in slots.ACTIONS:
        raise json_error(400, {"action": [f"must be one of {list(slots.ACTIONS)}"]})
    cfg = _config(context)
    render = renderer(context, base_url)
    done: list[tuple[Row, dict[str, Any]]] = []
    with context.store.session(write=True) as s:
        for ident in ids:
            row = s.get(kind.table, seq=ident)
            if row is None:
                raise drf_detail(404, f"{kind.name} {ident}: Not found.")
            if action == "deleted":
                done.append((row, render.render(kind, row)))  # the record as it was just before deletion
                s.delete(kind.table, row.seq)
                continue
            w = model.WriteContext.open(cfg, s, context.clock.tick)
            record = copy.deepcopy(row.body)
            errors = model.apply(kind, record, changes or {}, w, creating=False)
            if errors:
                raise json_error(400, errors)
            row.body, row.modified = record, context.clock.tick()
            s.replace(
                kind.table, row.seq, model.new_row(kind, record, row.created or row.modified, row.modified)
            )
            w.ids.flush()
            done.append((row, render.render(kind, row)))
    out = []
    for row, record in done:
        delivery = emit(context, kind, record, action, source)
        out.append(
            {
                "entity": kind.name,
                "id": row.seq,
                "event": f"{slots.SLOTS[kind.name]}.{action}",
                "delivery": delivery,
            }
        )
    return out
