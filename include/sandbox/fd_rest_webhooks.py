"""FacturaDirecta REST webhook emission and delivery bookkeeping (facturadirecta-rest-api.md §12).

``changed`` is called by every REST write inside its store session (``_write``, ``_put_tags``,
``_archive``, the web-app ``unarchive`` control and the simulated UI edits): it stores one ``pending``
event per subscribed endpoint in the same transaction as the change (an outbox: no event for a write
that rolls back, none lost for one that commits) and queues its delivery on the hub. Each attempt is
built when it is sent: the payload stored with the event, signed with the endpoint's *current* secret
and the sandbox clock's time (``Webhook-Signature: t=<ts>,v1=<hex>``, ``Webhook-Timestamp``), so a
retry hours later is still inside the receiver's 5-minute window and a ``rotateSecret`` applies at once.
A disabled or deleted endpoint's queued events are not sent. Every attempt updates the event
(``attempts``, ``lastAttempt``, ``status``) and adds a ``webhook`` activity record (activity.md@03f4cd9).
"""

from __future__ import annotations

from typing import Any

from include.sandbox import fd_rest_store as db
from include.sandbox import jsonio
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ApiContext
from include.sandbox.fd_rest_errors import RestError
from include.sandbox.fd_rest_runtime import runtime_for
from include.sandbox.models import facturadirecta_rest as model
from include.sandbox.models import facturadirecta_rest_webhooks as hooks
from include.sandbox.models.facturadirecta_rest import ACTIVITY_TABLE, Kind
from include.sandbox.store import NewRow, Row, Session, Where
from include.sandbox.webhook_hub import FACTURADIRECTA_POLICY, Job, Settlement, hub_for

API = "facturadirecta"
USER_AGENT = "FacturaDirecta-Webhooks (sandbox)"
SYSTEM_USER = "ami@facturadirecta.com"
NOT_SENT = {
    "dropped": "dropped by a sandbox rule",
    "cancelled": "endpoint disabled or deleted",
    "refused": "target is not a loopback address",
    "overflow": "sandbox delivery queue full",
}


def _cfg(context: ApiContext) -> FacturaDirectaConfig:
    cfg = context.config
    assert isinstance(cfg, FacturaDirectaConfig)
    return cfg


def _object(kind: Kind, row: Row, company: str, cfg: FacturaDirectaConfig, defs: dict[str, Any]) -> Any:
    envelope = model.js(
        model.envelope(kind, row.rid, row.body, row.created, row.modified, company, cfg, defs, related={})
    )
    return envelope["content"] if cfg.rest_webhook_object == "content" else envelope


def changed(
    context: ApiContext,
    s: Session,
    kind: Kind,
    company: str,
    rid: str,
    action: str,
    previous: Row | None = None,
    *,
    source: str = "api",
    tags_only: bool = False,
) -> list[str]:
    """Store and queue ``<kind>.<action>`` for each subscribed endpoint; returns the event ids."""
    cfg = _cfg(context)
    if source == "api" and not cfg.rest_webhook_echo_api_writes:
        return []
    if tags_only and not cfg.rest_webhook_tag_updates:
        return []
    event_type = f"{kind.name}.{action}"
    endpoints = hooks.subscribed(s, company, event_type)
    row = s.get(kind.table, rid=rid)
    if not endpoints or row is None:
        return []
    defs = db.definitions(s, company)
    data: dict[str, Any] = {"object": _object(kind, row, company, cfg, defs)}
    if action == "updated" and previous is not None:
        data["previous_attributes"] = hooks.previous_attributes(
            _object(kind, previous, company, cfg, defs), data["object"]
        )
    now_us = runtime_for(context.store).now_us()
    queued = []
    for endpoint in endpoints:
        event_id = model.new_id(hooks.EVENT_PREFIX)
        payload = {
            "id": event_id,
            "type": event_type,
            "object_type": kind.name,
            "created": now_us // 1_000_000,
            "livemode": cfg.rest_webhook_livemode,
            "company_id": company,
            "data": data,
        }
        body = {
            "type": event_type,
            "endpointId": endpoint.rid,
            "company": company,
            "status": "pending",
            "attempts": 0,
            "payload": payload,
            "lastAttempt": None,
            "nextAttemptDate": model.iso(now_us),
            "manual": False,
        }
        s.insert(hooks.EVENTS, [hooks.event_row(event_id, company, body, now_us)])
        queued.append((event_id, endpoint))
    for event_id, endpoint in queued:
        queue(context, event_id, endpoint.rid, endpoint.body["url"], event_type)
    return [event_id for event_id, _ in queued]


def queue(context: ApiContext, event_id: str, endpoint_id: str, url: str, event_type: str) -> int:
    """Hand one event to the hub; what is sent is read when each attempt starts (``prepare``)."""
    cfg = _cfg(context)
    store = context.store
    runtime = runtime_for(store)

    def prepare() -> tuple[bytes, dict[str, str]] | None:
        with store.session() as s:
            event = s.get(hooks.EVENTS, rid=event_id)
            endpoint = s.get(hooks.ENDPOINTS, rid=endpoint_id)
        if event is None or endpoint is None or endpoint.body["deleted"] or not endpoint.body["enabled"]:
            return None
        payload = event.body["payload"]
        if event.body.get("manual") and _cfg(context).rest_webhook_retry_livemode == "false":
            payload = {**payload, "livemode": False}
        raw = jsonio.dumps(payload).encode()
        headers = hooks.signed_headers(endpoint.body["secret"], runtime.now_ms() // 1000, raw)
        return raw, {**headers, "User-Agent": USER_AGENT}

    job = Job(
        api=API,
        event=event_type,
        ref=event_id,
        target=url,
        policy=FACTURADIRECTA_POLICY,
        scale=cfg.rest_webhook_time_scale,
        timeout_s=cfg.rest_webhook_timeout_s,
        prepare=prepare,
        settle=lambda settlement: settle(context, event_id, settlement),
    )
    return hub_for(store).submit(job)


def settle(context: ApiContext, event_id: str, settlement: Settlement) -> None:
    """Record one attempt (or why none was made) on the event, and the attempt in the activity feed."""
    store = context.store
    now_us = runtime_for(store).now_us()
    with store.session(write=True) as s:
        row = s.get(hooks.EVENTS, rid=event_id)
        if row is None:
            return
        body = dict(row.body)
        company = body["company"]
        outcome = settlement.outcome
        if settlement.state in NOT_SENT:
            if body["status"] != "pending":
                return
            body.update(
                status="failed",
                nextAttemptDate=None,
                lastAttempt={
                    "date": model.iso(now_us),
                    "responseStatus": None,
                    "success": False,
                    "error": NOT_SENT[settlement.state],
                },
            )
        else:
            success = settlement.state == "delivered"
            status = outcome.status if outcome else None
            body["attempts"] += 1
            body["lastAttempt"] = {
                "date": model.iso(now_us),
                "responseStatus": status,
                "success": success,
                "error": outcome.error if outcome else None,
            }
            body["status"] = {"delivered": "delivered", "retrying": "pending"}.get(settlement.state, "failed")
            next_in = settlement.next_in_s
            body["nextAttemptDate"] = (
                None if next_in is None else model.iso(now_us + int(next_in * 1_000_000))
            )
            _log_activity(s, company, now_us, body, success, status)
        s.replace(hooks.EVENTS, row.seq, hooks.event_row(row.rid, company, body, row.created or now_us))


def _log_activity(
    s: Session, company: str, now_us: int, event: dict[str, Any], success: bool, status: int | None
) -> None:
    """A ``webhook`` activity record (``url``, ``success``, ``responseStatus``), with no document."""
    url = ""
    endpoint = s.get(hooks.ENDPOINTS, rid=event["endpointId"])
    if endpoint is not None:
        url = endpoint.body["url"]
    body = {
        "type": "webhook",
        "subtype": None,
        "username": SYSTEM_USER,
        "description": f"Webhook {event['type']} {'entregado' if success else 'fallido'}",
        "document": None,
        "request": None,
        "details": {
            "url": url,
            "success": success,
            "responseStatus": status,
            "eventId": event["payload"]["id"],
            "eventType": event["type"],
        },
    }
    row = NewRow(body=body, rid=f"act:{s.next_seq(ACTIVITY_TABLE)}", k1=company, k3="webhook", created=now_us)
    s.insert(ACTIVITY_TABLE, [row])


def fail_pending(s: Session, endpoint_id: str, reason: str, now_us: int) -> int:
    """A disabled or deleted endpoint's queued events are not sent (§12): mark them failed."""
    rows = s.select(hooks.EVENTS, Where(hooks.EVENTS).eq("k2", endpoint_id).eq("k3", "pending"))
    for row in rows:
        body = {
            **row.body,
            "status": "failed",
            "nextAttemptDate": None,
            "lastAttempt": {
                "date": model.iso(now_us),
                "responseStatus": None,
                "success": False,
                "error": reason,
            },
        }
        s.replace(
            hooks.EVENTS, row.seq, hooks.event_row(row.rid, body["company"], body, row.created or now_us)
        )
    return len(rows)


def resume(context: ApiContext) -> int:
    """Queue again the events a previous process left ``pending`` (jobs live in memory, events in the
    store): at start-up each gets a new schedule from now. Returns how many were queued."""
    with context.store.session() as s:
        rows = s.select(hooks.EVENTS, Where(hooks.EVENTS).eq("k3", "pending"))
        targets = {row.rid: s.get(hooks.ENDPOINTS, rid=row.body["endpointId"]) for row in rows}
    queued = 0
    for row in rows:
        endpoint = targets[row.rid]
        if endpoint is not None and endpoint.body["enabled"] and not endpoint.body["deleted"]:
            queue(context, row.rid, endpoint.rid, endpoint.body["url"], row.body["type"])
            queued += 1
    return queued


def retry(context: ApiContext, company: str, event_id: str) -> Row:
    """``POST …/webhooks/events/{id}/retry``: re-queue it, even when already delivered (a new schedule)."""
    now_us = runtime_for(context.store).now_us()
    with context.store.session(write=True) as s:
        row = s.get(hooks.EVENTS, rid=event_id)
        if row is None or row.body["company"] != company:
            raise RestError(404, "Not Found")
        endpoint = s.get(hooks.ENDPOINTS, rid=row.body["endpointId"])
        if endpoint is None or endpoint.body["deleted"]:
            raise RestError(409, "The endpoint of this event was deleted")
        body = {**row.body, "status": "pending", "manual": True, "nextAttemptDate": model.iso(now_us)}
        s.replace(hooks.EVENTS, row.seq, hooks.event_row(row.rid, company, body, row.created or now_us))
        saved = s.get(hooks.EVENTS, rid=event_id)
    assert saved is not None
    queue(context, event_id, endpoint.rid, endpoint.body["url"], body["type"])
    return saved


# -- the web app (control surface) ---------------------------------------------------------------------


def edit_as_user(context: ApiContext, rid: str, action: str, changes: Any, tags: Any) -> dict[str, Any]:
    """Change a record the way the web app does and emit its event: ``updated`` (``changes`` merged into
    ``content.main``, ``tags`` replacing the set; nothing recomputed), ``archived`` or ``unarchived``."""
    kind = next((k for k in model.KINDS.values() if rid.startswith(k.prefix)), None)
    if kind is None:
        raise RestError(400, "id must be a con_, pro_ or est_ id")
    if action not in ("updated", "archived", "unarchived"):
        raise RestError(400, "action must be updated, archived or unarchived")
    if changes is not None and not isinstance(changes, dict):
        raise RestError(400, "changes must be an object of content.main fields")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise RestError(400, "tags must be a list of strings")
    cfg = _cfg(context)
    runtime = runtime_for(context.store)
    runtime.sync()
    with context.store.session(write=True) as s:
        row = s.get(kind.table, rid=rid)
        if row is None:
            raise RestError(404, f"no record {rid}")
        company = row.body["_company"]
        archived = bool(row.body.get("archived"))
        now_us = runtime.now_us()
        if action == "updated":
            if archived:
                raise RestError(409, f"{rid} is deleted")
            body = {k: v for k, v in row.body.items() if k != "_company"}
            body["main"] = {**body["main"], **(changes or {})}
            if tags is not None:
                body["tags"] = list(tags)
            db.save(s, kind, company, rid, body, now_us, previous=row, username=cfg.owner_email, request=None)
        else:
            if archived == (action == "archived"):
                raise RestError(409, f"{rid} is already {action}")
            db.set_archived(
                s, kind, company, row, action == "archived", now_us, username=cfg.owner_email, request=None
            )
        events = changed(context, s, kind, company, rid, action, row, source="ui")
    return {"id": rid, "event": f"{kind.name}.{action}", "events": events}
