"""Clientify API v2 webhook slots (realtime.md §1.1): six fixed slots, one target each.

Sources: Clientify's own n8n package ``ClientifySL/n8n-nodes-clientify`` 0.3.0 (TRIGGERS_REFERENCE,
CHANGELOG, ``test/lifecycle.test.cjs``). A slot is stored as one row of ``clientify_webhooks`` (``rid`` =
the entity, ``seq`` = the hook id the payload carries as ``hook.id``); a free slot has no row. Each slot
sends both events of its entity, ``<entity>.saved`` (create or update) and ``<entity>.deleted``, and
the payload is django-rest-hooks' ``{"hook": {id, event, target}, "data": <record>}``.
"""

from __future__ import annotations

import re
from typing import Any

from include.sandbox.store import NewRow, Row, Session
from include.sandbox.webhook_targets import target_problem

TABLE = "clientify_webhooks"
# Slot (URL segment) -> event prefix ("EVENT_PREFIX_TO_ENTITY" in the node, read the other way).
SLOTS = {
    "contacts": "contact",
    "companies": "company",
    "deals": "deal",
    "tasks": "task",
    "budgets": "budget",
    "products": "product",
}
ACTIONS = ("saved", "deleted")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
MAX_HEADERS = 20


def events(entity: str) -> list[str]:
    return [f"{SLOTS[entity]}.{action}" for action in ACTIONS]


def slot(s: Session, entity: str) -> Row | None:
    return s.get(TABLE, rid=entity)


def render(entity: str, row: Row | None) -> dict[str, Any]:
    """``GET /v2/webhooks/{entity}/``: a free slot is ``target: ""``, ``is_active: false`` (lifecycle test)."""
    if row is None:
        return {"entity": entity, "target": "", "is_active": False, "events": events(entity)}
    return {
        "entity": entity,
        "target": row.body["target"],
        "is_active": row.body["is_active"],
        "events": events(entity),
    }


def read_registration(payload: Any) -> tuple[str, dict[str, str], dict[str, list[str]]]:
    """``{"target": url, "headers": {...}}`` -> target, headers and DRF-style field errors."""
    errors: dict[str, list[str]] = {}
    if not isinstance(payload, dict):
        return "", {}, {"non_field_errors": ["Invalid data. Expected a dictionary, but got str."]}
    target = payload.get("target")
    if target is None or target == "":
        errors["target"] = ["This field is required."]
    else:
        problem = target_problem(target)
        if problem is not None:
            errors["target"] = [problem]
    raw_headers = payload.get("headers", {})
    headers: dict[str, str] = {}
    if raw_headers is None:
        raw_headers = {}
    if not isinstance(raw_headers, dict):
        errors["headers"] = [f'Expected a dictionary of items but got type "{type(raw_headers).__name__}".']
    else:
        if len(raw_headers) > MAX_HEADERS:
            errors["headers"] = [f"Ensure this field has no more than {MAX_HEADERS} elements."]
        for name, value in raw_headers.items():
            if (
                not HEADER_NAME.match(str(name))
                or not isinstance(value, str)
                or "\r" in value
                or "\n" in value
            ):
                errors.setdefault("headers", []).append(f"Invalid header {str(name)[:40]!r}.")
            else:
                headers[str(name)] = value
    return (target if isinstance(target, str) else ""), headers, errors


def register(s: Session, entity: str, target: str, headers: dict[str, str]) -> Row:
    body = {"entity": entity, "target": target.strip(), "headers": headers, "is_active": True}
    seq = s.insert(TABLE, [NewRow(body=body, rid=entity)])[0]
    row = s.get(TABLE, seq=seq)
    assert row is not None
    return row


def set_active(s: Session, row: Row, active: bool) -> None:
    s.replace(TABLE, row.seq, NewRow(body={**row.body, "is_active": active}, rid=row.rid))


def payload(row: Row, event: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"hook": {"id": row.seq, "event": event, "target": row.body["target"]}, "data": data}
