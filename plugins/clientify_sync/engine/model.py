"""The canonical record: what both sides of a sync are compared in, hashed and merged.

Each API's records are mapped to a flat dict of strings (``SideRecord.data``) whose fields are
declared per entity in an ``EntitySchema`` (the compared fields, the natural key and the default
conflict policy), in the way DiffSync models declare ``_identifiers`` and ``_attributes``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from clientify_sync.engine.vocabulary import Entity, Side


@dataclass(frozen=True)
class EntitySchema:
    """The fields that take part in comparison and merge, and who wins a same-field conflict."""

    entity: Entity
    fields: tuple[str, ...]
    key_field: str
    invoicing_wins: frozenset[str]

    @property
    def duplicate_reason(self) -> str:
        """Why a record whose key another record holds too is quarantined: the reason names the key
        (``duplicate_tax_id``, ``duplicate_sku``, ``duplicate_reference``), so the report says which."""
        return f"duplicate_{self.key_field}"

    def conflict_policy(self) -> dict[str, list[str]]:
        """Which side wins each field both sides changed since the last sync, in field order: what the
        run report shows (the integration config's ``conflicts`` may have changed the default)."""
        return {
            Side.INVOICING.value: [f for f in self.fields if f in self.invoicing_wins],
            Side.CLIENTIFY.value: [f for f in self.fields if f not in self.invoicing_wins],
        }


CONTACT_SCHEMA = EntitySchema(
    entity=Entity.CONTACTS,
    fields=("tax_id", "name", "email", "street", "city", "state", "postal_code", "country"),
    key_field="tax_id",
    # Fiscal fields: what a CFDI / factura is issued with. The rest is CRM data.
    invoicing_wins=frozenset({"tax_id", "name", "postal_code"}),
)
PRODUCT_SCHEMA = EntitySchema(
    entity=Entity.PRODUCTS,
    fields=("sku", "name", "price"),
    key_field="sku",
    invoicing_wins=frozenset({"sku", "price"}),
)

ESTIMATE_SCHEMA = EntitySchema(
    entity=Entity.ESTIMATES,
    # The lines are one field: a document is merged as a whole, its lines never one by one.
    # ``total``: what the side shows, a rounding line of ours included (documents.RoundingPolicy); it
    # follows the lines, so it wins where they win.
    fields=("customer", "date", "expiration_date", "currency", "status", "notes", "lines", "total"),
    key_field="reference",
    invoicing_wins=frozenset({"customer", "currency", "lines", "total"}),
)

SCHEMAS = {
    Entity.CONTACTS: CONTACT_SCHEMA,
    Entity.PRODUCTS: PRODUCT_SCHEMA,
    Entity.ESTIMATES: ESTIMATE_SCHEMA,
}


@dataclass
class SideRecord:
    """One record as read from one side, already mapped to canonical fields.

    ``key`` is the normalised natural key (tax ID, SKU or document reference), empty when the record
    has none; ``problem`` is the skip reason when it cannot sync; ``link`` is the other side's id as
    stored on this record (Clientify custom field, FacturaDirecta custom attribute); ``raw`` is the
    API's own record, kept for read-modify-write updates.
    """

    side: Side
    rtype: str
    rid: str
    data: dict[str, Any]
    key: str = ""
    kind: str | None = None
    problem: str | None = None
    link: str | None = None
    modified: str | None = None
    raw: dict[str, Any] | None = field(default=None, repr=False)
    # A document's rounding line of ours as read (documents.RoundingPolicy); never part of ``data``.
    rounding: Decimal = Decimal("0")

    @property
    def content_hash(self) -> str:
        return content_hash(self.data, self.link)


def content_hash(data: dict[str, Any], link: str | None) -> str:
    """A stable hash of the mapped fields and the link: equal hashes mean nothing to sync."""
    payload = json.dumps({"d": data, "l": link or ""}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


# What an API field holds once read: the parameter type of the helpers below, so that reading a field a
# typed record does not declare (``object``, mapping/records.py) is a type error where it is used.
Scalar = str | int | float | Decimal | None


def text(value: Scalar) -> str:
    """Canonical text: None is empty, white space trimmed and folded."""
    if value is None:
        return ""
    return " ".join(str(value).split())


def money(value: Scalar, places: str = "0.01") -> str:
    """Canonical amount: a decimal string rounded half-up as the APIs round (2 places by default)."""
    if value is None or value == "":
        return ""
    try:
        return str(Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        return text(value)


COUNTRY_ALIASES = {
    "MX": "MX", "MEX": "MX", "MEXICO": "MX", "MÉXICO": "MX",
    "ES": "ES", "ESP": "ES", "ESPAÑA": "ES", "ESPANA": "ES", "SPAIN": "ES",
}  # fmt: skip


def country(value: Scalar) -> str:
    """ISO 3166 alpha-2 where the spelling is known (Facturama accepts "MEX", "Mex", "MEXICO")."""
    cleaned = text(value).upper()
    return COUNTRY_ALIASES.get(cleaned, cleaned)


def split_person_name(full_name: str) -> tuple[str, str]:
    """First name(s) and surnames from a full name, for APIs that keep them apart.

    Mexican and Spanish names carry two surnames last, so with three or more words the last two are
    the surnames. ``" ".join`` of the result gives the name back, so a round trip never changes it.
    """
    words = full_name.split()
    if len(words) >= 3:
        return " ".join(words[:-2]), " ".join(words[-2:])
    if len(words) == 2:
        return words[0], words[1]
    return full_name, ""
