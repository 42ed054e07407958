"""Facts about the outside world that both the HTTP clients (``api/``) and the engine rely on.

Defined once, below both layers, so neither imports the other for them: the engine's rules never
reach into an HTTP client, and a client never into the engine. Only documented facts belong here
(a tax rule, a record shape the APIs publish), never behaviour of ours. Imports nothing of the package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["GENERIC_RFCS", "custom_field_value"]

# SAT's two generic RFCs (RMF rule 2.7.1.26): "público en general" and "residente en el extranjero".
# They identify no one, so no record is ever matched on them (Facturama's search, the engine's keys).
GENERIC_RFCS = frozenset({"XAXX010101000", "XEXX010101000"})


def custom_field_value(record: dict[str, Any], name: str) -> str | None:
    """The value of Clientify custom field ``name`` on a record (``[{"field": name, "value": v}]``),
    whitespace collapsed; ``None`` when absent, empty, or ``"--"`` (what Clientify's web client saves
    for "empty"). The sync's link fields are custom fields: the client filters on them, the mappers
    read them."""
    for item in record.get("custom_fields") or []:
        if isinstance(item, dict) and (item.get("field") or item.get("name")) == name:
            value = " ".join(("" if item.get("value") is None else str(item.get("value"))).split())
            return value if value and value != "--" else None
    return None
