"""FacturaDirecta clients and products (classic XML API as nested dicts, partial PUT).

The link to Clientify is a custom attribute (``ID_CRM`` by default). Only our own label is ever sent,
so the account's other custom attributes stay untouched (absent attributes are not modified).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, cast

from clientify_sync.engine.mapping import PartialUpdateMapper
from clientify_sync.engine.mapping.records import FacturaDirectaClient, FacturaDirectaProduct
from clientify_sync.engine.model import SideRecord, country, money, split_person_name, text
from clientify_sync.engine.taxid import Kind, classify_nif
from clientify_sync.engine.vocabulary import Side


def custom_attribute(raw: dict[str, Any], label: str) -> str | None:
    for item in raw.get("customAttributes") or []:
        if item.get("label") == label:
            return text(item.get("value")) or None
    return None


def link_patch(raw: dict[str, Any], label: str | None, link: str | None) -> dict[str, Any]:
    """The body part that (re)writes our custom attribute; the others are absent, so untouched."""
    if not label or link is None or custom_attribute(raw, label) == link:
        return {}
    return {"customAttributes": [{"label": label, "value": link}]}


@dataclass
class FacturaDirectaClientMapper(PartialUpdateMapper):
    """FacturaDirecta ``client`` ↔ canonical contact; ``legalType`` F/J agrees with the NIF kind."""

    identity: ClassVar[tuple[str | None, str] | None] = ("client", "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    link_attribute: str | None = "ID_CRM"

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        client = cast(FacturaDirectaClient, raw)
        tax = classify_nif(client.get("taxCode"))
        address = client.get("address") or {}
        if client.get("legalType") == "F":
            name = text(f"{client.get('personName') or ''} {client.get('personSurname') or ''}")
        else:
            name = text(client.get("name"))
        street = ", ".join(p for p in (text(address.get("line1")), text(address.get("line2"))) if p)
        data = {
            "tax_id": tax.key,
            "name": name,
            "email": text(client.get("email")).lower(),
            "street": street,
            "city": text(address.get("city")),
            "state": text(address.get("province")),
            "postal_code": text(address.get("zipcode")),
            "country": country(address.get("country")),
        }
        link = custom_attribute(raw, self.link_attribute) if self.link_attribute else None
        return SideRecord(
            side=Side.INVOICING, rtype="client", rid=str(client["id"]), data=data, key=tax.key,
            kind=tax.kind, problem=tax.problem, link=link, raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "client"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        legal_type = "J" if classify_nif(data["tax_id"]).kind == Kind.COMPANY else "F"
        return self.update_body(rtype, {"legalType": legal_type}, data, set(data), link) | {
            "legalType": legal_type
        }

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "name" in changed:
            if raw.get("legalType") == "F":
                body["personName"], body["personSurname"] = split_person_name(data["name"])
            else:
                body["name"] = data["name"]
        if "tax_id" in changed:
            body["taxCode"] = data["tax_id"]
        if "email" in changed:
            body["email"] = data["email"]
        address: dict[str, Any] = {}
        if "street" in changed:
            address.update(line1=data["street"], line2="")
        for canonical, element in (("city", "city"), ("state", "province"), ("postal_code", "zipcode")):
            if canonical in changed:
                address[element] = data[canonical]
        if "country" in changed:
            address["country"] = data["country"]
        if address:
            body["address"] = address  # merged element-wise by the API
        return body | link_patch(raw, self.link_attribute, link)


@dataclass
class FacturaDirectaProductMapper(PartialUpdateMapper):
    """FacturaDirecta ``product`` ↔ canonical product; the SKU is ``productCode``."""

    identity: ClassVar[tuple[str | None, str] | None] = ("product", "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    link_attribute: str | None = "ID_CRM"

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        product = cast(FacturaDirectaProduct, raw)
        sku = text(product.get("productCode"))
        data = {"sku": sku, "name": text(product.get("name")), "price": money(product.get("price"))}
        link = custom_attribute(raw, self.link_attribute) if self.link_attribute else None
        return SideRecord(
            side=Side.INVOICING, rtype="product", rid=str(product["id"]), data=data, key=sku.upper(),
            problem=None if sku else "no_sku", link=link, raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "product"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = super().create_body(rtype, data, link)
        body.setdefault("description", data["name"])
        return body

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        names = {"sku": "productCode", "name": "name", "price": "price"}
        body = {names[f]: data[f] for f in names if f in changed}
        return body | link_patch(raw, self.link_attribute, link)
