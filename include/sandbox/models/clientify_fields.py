"""Clientify custom-field definitions (clientify-api.md §7): content types, input and output shape."""

from __future__ import annotations

from typing import Any

from include.sandbox.models.clientify import Errors, scalar

CONTENT_LABELS = {"contacts", "companies", "products", "budgets", "deals"}
_SINGULAR = {
    "contact": "contacts",
    "company": "companies",
    "product": "products",
    "budget": "budgets",
    "deal": "deals",
    "oportunidad": "deals",
}


def content_label(value: str) -> str | None:
    """``"contacts | contact"``, ``"contacts"`` or ``"contact"`` -> ``"contacts"`` (keyed on the part before ``|``)."""
    head = value.split("|")[0].strip().lower()
    head = _SINGULAR.get(head, head)
    return head if head in CONTENT_LABELS else None


def content_type_display(label: str) -> str:
    model = {v: k for k, v in _SINGULAR.items() if k != "oportunidad"}.get(label, label)
    return f"{label} | {model}"


FIELD_TYPES = {1: "Dropdown", 2: "Number", 3: "Text", 4: "Date", 5: "Checkbox"}


def definition_body(payload: dict[str, Any], current: dict[str, Any] | None = None) -> tuple[dict, Errors]:
    """A custom-field definition (§7) from a request body; ``current`` for partial updates."""
    body = dict(
        current
        or {"help_text": "", "field_type": 3, "default_value": "", "dropdown_choices": [], "visible": True}
    )
    errors: Errors = {}
    if "name" in payload or current is None:
        name = str(payload.get("name") or "").strip()
        if not name:
            errors["name"] = ["This field is required."]
        body["name"] = name
    if "content_type" in payload or current is None:
        label = content_label(str(payload.get("content_type") or ""))
        if label is None:
            errors["content_type"] = ["Invalid content type."]
        body["label"] = label
    for key in ("help_text", "default_value"):
        if key in payload:
            body[key] = str(payload[key] or "")
    if "field_type" in payload:
        value, message = scalar("int", False, payload["field_type"])
        if message:
            errors["field_type"] = [message]
        else:
            body["field_type"] = value
    if "dropdown_choices" in payload and isinstance(payload["dropdown_choices"], list):
        body["dropdown_choices"] = payload["dropdown_choices"]
    if "visible" in payload:
        body["visible"] = bool(payload["visible"])
    return body, errors


def render_definition(def_id: int, body: dict[str, Any], base_url: str) -> dict[str, Any]:
    return {
        "url": f"{base_url}/v1/custom-fields/{def_id}/",
        "id": def_id,
        "user_company": "SANDBOX",
        "content_type": content_type_display(body["label"]),
        "name": body["name"],
        "help_text": body.get("help_text", ""),
        "field_type": body.get("field_type", 3),
        "field_type_display": FIELD_TYPES.get(body.get("field_type", 3), "Text"),
        "default_value": body.get("default_value", ""),
        "dropdown_choices": body.get("dropdown_choices", []),
        "visible": body.get("visible", True),
    }
