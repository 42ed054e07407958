"""Clientify contacts, companies and products (DRF JSON, partial PUT, custom fields by name)."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, cast

from clientify_sync.engine.mapping import PartialUpdateMapper
from clientify_sync.engine.mapping.records import ClientifyCustomer, ClientifyProduct
from clientify_sync.engine.model import SideRecord, country, money, split_person_name, text
from clientify_sync.engine.taxid import Kind, TaxId
from clientify_sync.engine.vocabulary import Side
from clientify_sync.facts import custom_field_value


def linked_id(raw: dict[str, Any], field: str, pattern: str | None) -> str | None:
    """The invoicing id a Clientify record's link field holds; None when it holds none, or one that is
    no id of the API the integration now uses (``pattern``: a regular expression of its ids). Why: an
    account moved from FacturaDirecta's classic API (numeric ids) to its REST API (``con_…``) still has
    classic ids in Clientify; read as links they would hide the record from matching by tax ID or SKU
    and the other side's record would be created again."""
    value = custom_field_value(raw, field)
    if value and pattern and not re.fullmatch(pattern, value):
        return None
    return value


MAIN_EMAIL = 4  # e-mail type "Main"
BILLING_ADDRESS = 3  # address type "Billing": the fiscal address we keep in step
MAIN_ADDRESS = 5

AddressT = TypeVar("AddressT", bound=Mapping[str, Any])  # a typed address as read, or a plain dict


def utc_iso(value: str | None) -> str | None:
    """Clientify's local-offset timestamp as ISO-8601 UTC with microseconds (sortable as text)."""
    if not value:
        return None
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"naive timestamp from Clientify: {value!r}")
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def link_patch(raw: dict[str, Any], name: str, link: str | None) -> dict[str, Any]:
    """The body part that (re)writes our link field, when the record does not hold it yet.

    Custom fields merge by name on PUT, so only ours is sent and the others stay as they are.
    """
    if link is None or custom_field_value(raw, name) == link:
        return {}
    return {"custom_fields": [{"field": name, "value": link}]}


def pick_address(addresses: Sequence[AddressT]) -> tuple[int | None, AddressT | dict[str, Any]]:
    """The address we sync: the billing one, else the main one, else the first."""
    for wanted in (BILLING_ADDRESS, MAIN_ADDRESS):
        for index, address in enumerate(addresses):
            if address.get("type") == wanted:
                return index, address
    return (0, addresses[0]) if addresses else (None, {})


def pick_email(emails: Sequence[Mapping[str, Any]]) -> tuple[int | None, str]:
    for index, item in enumerate(emails):
        if item.get("type") == MAIN_EMAIL:
            return index, text(item.get("email")).lower()
    return (0, text(emails[0].get("email")).lower()) if emails else (None, "")


@dataclass
class ClientifyContactMapper(PartialUpdateMapper):
    """Clientify contact (a person) or company ↔ canonical contact.

    ``classify`` is the tax-ID rule of the invoicing platform this integration pairs with (RFC for
    Facturama, NIF for FacturaDirecta); ``link_field`` is the custom field holding its id.
    """

    identity: ClassVar[tuple[str | None, str] | None] = (None, "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    classify: Callable[[str | None], TaxId]
    link_field: str
    link_pattern: str | None = None  # see linked_id

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        customer = cast(ClientifyCustomer, raw)
        tax = self.classify(customer.get("taxpayer_identification_number"))
        _, address = pick_address(customer.get("addresses") or [])
        if rtype == "contact":
            name = text(f"{customer.get('first_name') or ''} {customer.get('last_name') or ''}")
        else:
            name = text(customer.get("name"))
        data = {
            "tax_id": tax.key,
            "name": name,
            "email": pick_email(customer.get("emails") or [])[1],
            "street": text(address.get("street")),
            "city": text(address.get("city")),
            "state": text(address.get("state")),
            "postal_code": text(address.get("postal_code")),
            "country": country(address.get("country")),
        }
        return SideRecord(
            side=Side.CLIENTIFY, rtype=rtype, rid=str(customer["id"]), data=data, key=tax.key, kind=tax.kind,
            problem=tax.problem, link=linked_id(raw, self.link_field, self.link_pattern),
            modified=utc_iso(customer.get("modified")), raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "company" if kind == Kind.COMPANY else "contact"

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "name" in changed:
            if rtype == "contact":
                body["first_name"], body["last_name"] = split_person_name(data["name"])
            else:
                body["name"] = data["name"]
        if "tax_id" in changed:
            body["taxpayer_identification_number"] = data["tax_id"]
        if "email" in changed:
            body["emails"] = self._emails(raw.get("emails") or [], data["email"])
        if changed & {"street", "city", "state", "postal_code", "country"}:
            body["addresses"] = self._addresses(raw.get("addresses") or [], data)
        return body | link_patch(raw, self.link_field, link)

    @staticmethod
    def _emails(current: list[dict[str, Any]], email: str) -> list[dict[str, Any]]:
        """The e-mail list with our main address replaced; the others are kept (PUT replaces lists)."""
        kept = [{"type": e.get("type"), "email": e.get("email")} for e in current]
        index, _ = pick_email(current)
        if index is None:
            return [{"type": MAIN_EMAIL, "email": email}] if email else []
        if not email:
            return kept[:index] + kept[index + 1 :]
        kept[index]["email"] = email
        return kept

    @staticmethod
    def _addresses(current: list[dict[str, Any]], data: dict[str, Any]) -> list[dict[str, Any]]:
        fields = ("street", "city", "state", "postal_code", "country")
        kept = [{k: a.get(k) for k in (*fields, "type")} for a in current]
        ours = {k: data[k] for k in fields}
        index, _ = pick_address(current)
        if index is None:
            return [{**ours, "type": BILLING_ADDRESS}] if any(ours.values()) else []
        kept[index].update(ours)
        return kept


@dataclass
class ClientifyProductMapper(PartialUpdateMapper):
    """Clientify product ↔ canonical product; joined on ``sku``."""

    identity: ClassVar[tuple[str | None, str] | None] = ("product", "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    link_field: str
    # The product our rounding lines reference (documents.RoundingPolicy.sku): ours, never synced.
    rounding_sku: str = "AJUSTE-REDONDEO"
    link_pattern: str | None = None  # see linked_id

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        product = cast(ClientifyProduct, raw)
        sku = text(product.get("sku"))
        data = {"sku": sku, "name": text(product.get("name")), "price": money(product.get("price"))}
        problem = (
            "no_sku" if not sku else "rounding_product" if sku.upper() == self.rounding_sku.upper() else None
        )
        return SideRecord(
            side=Side.CLIENTIFY, rtype="product", rid=str(product["id"]), data=data, key=sku.upper(),
            problem=problem, link=linked_id(raw, self.link_field, self.link_pattern),
            modified=utc_iso(product.get("modified")), raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "product"

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body = {field: data[field] for field in ("sku", "name", "price") if field in changed}
        return body | link_patch(raw, self.link_field, link)
