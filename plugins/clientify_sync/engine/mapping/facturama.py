"""Facturama Client and Product records (PascalCase JSON, full-object PUT, no custom fields)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from clientify_sync.engine.mapping import FullObjectMapper
from clientify_sync.engine.model import Side, SideRecord, country, money, text
from clientify_sync.engine.taxid import classify_rfc


def compose_street(address: dict[str, Any]) -> str:
    """One address line from Facturama's parts; the neighbourhood (colonia) is not synced."""
    interior = text(address.get("InteriorNumber"))
    parts = [text(address.get("Street")), text(address.get("ExteriorNumber"))]
    if interior:
        parts.append(f"Int. {interior}")
    return " ".join(p for p in parts if p)


def facturama_country(value: str) -> str:
    return "MEX" if value == "MX" else value


@dataclass
class FacturamaClientMapper(FullObjectMapper):
    """Facturama ``Client`` ↔ canonical contact. The RFC decides person (13) or company (12)."""

    cfdi_use: str = "G03"
    fiscal_regime_person: str = "616"
    fiscal_regime_company: str = "601"

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        address = raw.get("Address") or {}
        tax = classify_rfc(raw.get("Rfc"))
        data = {
            "tax_id": tax.key,
            "name": text(raw.get("Name")),
            "email": text(raw.get("Email")).lower(),
            "street": compose_street(address),
            "city": text(address.get("Municipality")) or text(address.get("Locality")),
            "state": text(address.get("State")),
            "postal_code": text(raw.get("TaxZipCode")) or text(address.get("ZipCode")),
            "country": country(address.get("Country")),
        }
        return SideRecord(
            side=Side.INVOICING, rtype="client", rid=str(raw["Id"]), data=data, key=tax.key,
            kind=tax.kind, problem=tax.problem, raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "client"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        regime = self.fiscal_regime_company if len(data["tax_id"]) == 12 else self.fiscal_regime_person
        body: dict[str, Any] = {
            "Rfc": data["tax_id"],
            "Name": data["name"],
            "CfdiUse": self.cfdi_use,
            "FiscalRegime": regime,
            "Address": {},
        }
        self._apply(body, data, set(data))
        return body

    @staticmethod
    def _apply(body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        address = body.get("Address") or {}
        body["Address"] = address
        simple = {"tax_id": "Rfc", "name": "Name", "email": "Email"}
        for canonical, api in simple.items():
            if canonical in changed:
                body[api] = data[canonical] or None
        if "street" in changed:
            # One line replaces the parts: the canonical address has no separate numbers.
            address.update(Street=data["street"] or None, ExteriorNumber=None, InteriorNumber=None)
        if "city" in changed:
            address["Municipality"] = data["city"] or None
        if "state" in changed:
            address["State"] = data["state"] or None
        if "postal_code" in changed:
            body["TaxZipCode"] = data["postal_code"] or None
            address["ZipCode"] = data["postal_code"] or None
        if "country" in changed:
            address["Country"] = facturama_country(data["country"]) or None


@dataclass
class FacturamaProductMapper(FullObjectMapper):
    """Facturama ``Product`` ↔ canonical product; the SKU is ``IdentificationNumber``."""

    defaults: dict[str, Any] = field(
        default_factory=lambda: {
            "Unit": "Servicio",
            "UnitCode": "E48",
            "CodeProdServ": "01010101",
            "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}],
        }
    )

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        sku = text(raw.get("IdentificationNumber"))
        data = {"sku": sku, "name": text(raw.get("Name")), "price": money(raw.get("Price"))}
        return SideRecord(
            side=Side.INVOICING, rtype="product", rid=str(raw["Id"]), data=data, key=sku.upper(),
            problem=None if sku else "no_sku", raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "product"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = copy.deepcopy(self.defaults)
        body["Description"] = data["name"]
        self._apply(body, data, set(data))
        return body

    @staticmethod
    def _apply(body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        if "sku" in changed:
            body["IdentificationNumber"] = data["sku"]
        if "name" in changed:
            body["Name"] = data["name"]
        if "price" in changed and data["price"]:
            body["Price"] = float(Decimal(data["price"]))  # a JSON number, as the SDKs send it
