"""Facturama Client and Product records (PascalCase JSON, full-object PUT, no custom fields)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, cast

from clientify_sync.engine.mapping import FullObjectMapper
from clientify_sync.engine.mapping.records import FacturamaAddress, FacturamaClient, FacturamaProduct
from clientify_sync.engine.model import SideRecord, country, money, text
from clientify_sync.engine.taxid import classify_rfc
from clientify_sync.engine.vocabulary import Side
from clientify_sync.errors import MissingEmailError

# CFDI 4.0 c_ObjetoImp: "02" the product carries taxes, "01" it is not subject to tax.
TAX_OBJECT_TAXED = "02"
TAX_OBJECT_UNTAXED = "01"
DEFAULT_UNIT = "Servicio"


def compose_street(address: FacturamaAddress) -> str:
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

    identity: ClassVar[tuple[str | None, str] | None] = ("client", "Id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    cfdi_use: str = "G03"
    fiscal_regime_person: str = "616"
    fiscal_regime_company: str = "601"

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        client = cast(FacturamaClient, raw)
        address = client.get("Address") or {}
        tax = classify_rfc(client.get("Rfc"))
        data = {
            "tax_id": tax.key,
            "name": text(client.get("Name")),
            "email": text(client.get("Email")).lower(),
            "street": compose_street(address),
            "city": text(address.get("Municipality")) or text(address.get("Locality")),
            "state": text(address.get("State")),
            "postal_code": text(client.get("TaxZipCode")) or text(address.get("ZipCode")),
            "country": country(address.get("Country")),
        }
        return SideRecord(
            side=Side.INVOICING, rtype="client", rid=str(client["Id"]), data=data, key=tax.key,
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
        self._complete(body)
        return body

    def _complete(self, body: dict[str, Any]) -> None:
        """Facturama refuses a client write without ``Email`` and keeps the postal code only when it
        travels in ``Address.ZipCode`` as well as ``TaxZipCode`` (its MCP server's findings)."""
        if not body.get("Email"):
            raise MissingEmailError(
                "Facturama requires an e-mail on every client write and this customer has none; "
                "add one in Clientify and the next run syncs it"
            )
        address = body.setdefault("Address", {})
        zip_code = body.get("TaxZipCode") or address.get("ZipCode")
        if zip_code:
            body["TaxZipCode"] = address["ZipCode"] = zip_code

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

    identity: ClassVar[tuple[str | None, str] | None] = ("product", "Id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    defaults: dict[str, Any] = field(
        default_factory=lambda: {
            "Unit": DEFAULT_UNIT,
            "UnitCode": "E48",
            "CodeProdServ": "01010101",
            "TaxObject": TAX_OBJECT_TAXED,
            "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}],
        }
    )

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        product = cast(FacturamaProduct, raw)
        sku = text(product.get("IdentificationNumber"))
        data = {"sku": sku, "name": text(product.get("Name")), "price": money(product.get("Price"))}
        return SideRecord(
            side=Side.INVOICING, rtype="product", rid=str(product["Id"]), data=data, key=sku.upper(),
            problem=None if sku else "no_sku", raw=raw,
        )  # fmt: skip

    def rtype_for(self, kind: str | None) -> str:
        return "product"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = copy.deepcopy(self.defaults)
        body["Description"] = data["name"]
        self._apply(body, data, set(data))
        self._complete(body)
        return body

    def _complete(self, body: dict[str, Any]) -> None:
        """CFDI 4.0 products need the free-text ``Unit`` and ``TaxObject`` (``"02"`` when taxed) on
        every write; a product created before them (or elsewhere) gets them on its next update."""
        if not body.get("Unit"):
            body["Unit"] = self.defaults.get("Unit") or DEFAULT_UNIT
        if not body.get("TaxObject"):
            taxed = any(
                not tax.get("IsRetention") for tax in body.get("Taxes") or [] if isinstance(tax, dict)
            )
            body["TaxObject"] = TAX_OBJECT_TAXED if taxed else TAX_OBJECT_UNTAXED
        if not body.get("Description") and body.get("Name"):
            body["Description"] = body["Name"]

    @staticmethod
    def _apply(body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        if "sku" in changed:
            body["IdentificationNumber"] = data["sku"]
        if "name" in changed:
            body["Name"] = data["name"]
        if "price" in changed and data["price"]:
            body["Price"] = float(Decimal(data["price"]))  # a JSON number, as the SDKs send it
