"""FacturaDirecta REST webhook endpoints and events (facturadirecta-rest-api.md §12, webhooks.md@03f4cd9).

Endpoints (``facturadirecta_rest_webhook_endpoints``, ``k1`` = company): ``{name, url, events[]}``, a
``whsec_<hex>`` signing secret shown once (at creation and at ``rotateSecret``), enabled or disabled,
deleted softly (history kept; the docs answer 409 for ``rotateSecret`` on a deleted endpoint, so it
stays addressable). Events (``facturadirecta_rest_webhook_events``, ``k1`` company, ``k2`` endpoint,
``k3`` status): one per change **per subscribed endpoint**, id ``whe_<uuid>`` stable across retries,
status ``pending|delivered|failed``. Field names the docs do not show (``enabled``, ``attempts``,
``lastAttempt``, ``nextAttemptDate``…) are the sandbox's and docs/sandbox.md lists them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from include.sandbox.fd_rest_errors import Problems
from include.sandbox.models.facturadirecta_rest import iso, new_id
from include.sandbox.store import NewRow, Row, Session, Where
from include.sandbox.webhook_targets import target_problem

ENDPOINTS = "facturadirecta_rest_webhook_endpoints"
EVENTS = "facturadirecta_rest_webhook_events"
# Ids: events are "whe_…"; the docs' endpoint examples reuse "whe_" too (§15.11), so endpoints do as well.
EVENT_PREFIX = "whe_"
ENDPOINT_PREFIX = "whe_"
SECRET_PREFIX = "whsec_"
STATUSES = ("pending", "delivered", "failed")
STANDARD_ACTIONS = ("created", "updated", "archived", "unarchived")
# §12 catalogue ("subscribe explicitly to each type"; no wildcards).
CATALOGUE = frozenset(
    [
        f"{obj}.{action}"
        for obj in (
            "contact",
            "product",
            "estimate",
            "invoice",
            "expense",
            "delivery_note",
            "client_order",
            "purchase_order",
            "transaction",
        )
        for action in STANDARD_ACTIONS
    ]
    + ["invoice.sent", "invoice.voided", "invoice.verifactu_sent", "verifactu_batch.sent", "inbox.scanned"]
)
MAX_NAME = 255


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    """``v1`` = HMAC-SHA256 keyed with the whole ``whsec_…`` string over ``"<t>.<raw body>"`` (Stripe's way;
    §15.10 leaves the key form open)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256).hexdigest()


def signed_headers(secret: str, timestamp: int, raw: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Webhook-Signature": f"t={timestamp},v1={signature(secret, timestamp, raw)}",
        "Webhook-Timestamp": str(timestamp),
    }


# -- endpoints -----------------------------------------------------------------------------------------


def read_endpoint(payload: Any, p: Problems, *, creating: bool) -> dict[str, Any]:
    """``{name, url, events[]}``: all three on creation, any of them on the partial PUT."""
    if not isinstance(payload, dict):
        p.add("", "must be object", "invalid_type")
        return {}
    out: dict[str, Any] = {}
    for key in ("name", "url", "events"):
        if key not in payload:
            if creating:
                p.add(key, f"must have required property '{key}'", "required")
            continue
        value = payload[key]
        if key == "name":
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
                p.add("name", f"must be a non-empty string of at most {MAX_NAME} characters", "invalid")
            else:
                out["name"] = value.strip()
        elif key == "url":
            problem = target_problem(value)
            if problem is not None:
                p.add("url", problem, "invalid_url")
            else:
                out["url"] = value.strip()
        else:
            if not isinstance(value, list) or not value:
                p.add("events", "must be a non-empty array of event types", "invalid")
                continue
            for i, event in enumerate(value):
                if event not in CATALOGUE:
                    p.add(f"events.{i}", f"unknown event type '{str(event)[:60]}'", "unknown_event_type")
            out["events"] = list(dict.fromkeys(e for e in value if e in CATALOGUE))
    return out


def endpoint_json(row: Row) -> dict[str, Any]:
    body = row.body
    return {
        "id": row.rid,
        "name": body["name"],
        "url": body["url"],
        "events": list(body["events"]),
        "enabled": body["enabled"],
        "creationDate": iso(row.created),
        "modificationDate": iso(row.modified),
    }


def endpoint_row(rid: str, company: str, body: dict[str, Any], created: int, modified: int) -> NewRow:
    return NewRow(body=body, rid=rid, k1=company, created=created, modified=modified)


def create_endpoint(s: Session, company: str, fields: dict[str, Any], now_us: int) -> tuple[Row, str]:
    secret = new_secret()
    rid = new_id(ENDPOINT_PREFIX)
    body = {**fields, "enabled": True, "deleted": False, "secret": secret, "company": company}
    s.insert(ENDPOINTS, [endpoint_row(rid, company, body, now_us, now_us)])
    row = s.get(ENDPOINTS, rid=rid)
    assert row is not None
    return row, secret


def endpoint(s: Session, company: str, rid: str) -> Row | None:
    """Any endpoint of the company, deleted ones included (another company's is unknown)."""
    row = s.get(ENDPOINTS, rid=rid)
    return row if row is not None and row.body.get("company") == company else None


def save_endpoint(s: Session, row: Row, company: str, body: dict[str, Any], now_us: int) -> Row:
    s.replace(ENDPOINTS, row.seq, endpoint_row(row.rid, company, body, row.created or now_us, now_us))
    saved = s.get(ENDPOINTS, rid=row.rid)
    assert saved is not None
    return saved


def subscribed(s: Session, company: str, event_type: str) -> list[Row]:
    """Enabled, undeleted endpoints of the company subscribed to ``event_type``."""
    rows = s.select(ENDPOINTS, Where(ENDPOINTS).eq("k1", company))
    return [r for r in rows if r.body["enabled"] and not r.body["deleted"] and event_type in r.body["events"]]


# -- events ---------------------------------------------------------------------------------------------


def event_row(rid: str, company: str, body: dict[str, Any], created: int) -> NewRow:
    return NewRow(body=body, rid=rid, k1=company, k2=body["endpointId"], k3=body["status"], created=created)


def event_json(row: Row, with_payload: bool = False) -> dict[str, Any]:
    body = row.body
    out: dict[str, Any] = {
        "id": row.rid,
        "type": body["type"],
        "endpointId": body["endpointId"],
        "status": body["status"],
        "created": iso(row.created),
        "attempts": body["attempts"],
        "nextAttemptDate": body.get("nextAttemptDate"),
        "lastAttempt": body.get("lastAttempt"),
    }
    if with_payload:
        out["payload"] = body["payload"]
    return out


def previous_attributes(before: Any, after: Any) -> dict[str, Any]:
    """The previous values of what changed, nested like the object (Stripe's ``previous_attributes``)."""
    out: dict[str, Any] = {}
    if not isinstance(before, dict) or not isinstance(after, dict):
        return out
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            out[key] = previous_attributes(old, new)
        else:
            out[key] = old
    return out
