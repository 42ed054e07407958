"""Estimates on each API ↔ the canonical document (Facturama estimate, FacturaDirecta estimate,
Clientify budget). Every shape here follows the references' **assumed** models; see the README.

Identity: a document created by the sync carries our reference, so it is found again after a crash
even where the API has no link field: Facturama ``Folio`` "CLI-<budget id>", Clientify ``code``
"FM-<id>"/"FD-<id>", FacturaDirecta the ``ID_CRM`` custom attribute. A document's ``key`` is that
reference, the same string on both sides of a pair.

Rounding: a document's ``total`` is the total its side shows. Writing the lines to a side that rounds
VAT another way adds our rounding adjustment line (``documents.RoundingPolicy``): FacturaDirecta takes
a line with no product and no tax, Clientify a line of a product reserved for it (created on first
use, skipped by the product sync). Reading a document sets that line apart (``SideRecord.rounding``),
so it is never one of the canonical lines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, ClassVar, cast

from clientify_sync.engine.documents import (
    CENT,
    Directory,
    RoundingPolicy,
    canonical_line,
    cents,
    dec,
    first_line_without_sku,
    require_skus,
    rounding_adjustment,
    totals_per_line,
)
from clientify_sync.engine.mapping import FullObjectMapper, PartialUpdateMapper
from clientify_sync.engine.mapping.clientify import link_patch as crm_link_patch
from clientify_sync.engine.mapping.clientify import linked_id, utc_iso
from clientify_sync.engine.mapping.facturadirecta import custom_attribute
from clientify_sync.engine.mapping.facturadirecta import link_patch as fd_link_patch
from clientify_sync.engine.mapping.records import (
    ClientifyBudget,
    FacturaDirectaEstimate,
    FacturaDirectaEstimateLine,
    FacturamaEstimate,
)
from clientify_sync.engine.model import Scalar, SideRecord, money, text
from clientify_sync.engine.taxid import TaxProblem, classify_rfc
from clientify_sync.engine.vocabulary import Side
from clientify_sync.errors import (
    DependencyMissingError,
    DiscountNotRepresentableError,
    UnsupportedTaxMixError,
)

CRM_PREFIX = "CLI-"
CRM_COLLECTIONS = {"contact": "contacts", "company": "companies"}
STATUSES = ("pending", "accepted", "rejected", "closed")


def _linked_id(directory: Directory, kind: str, key: str, side: str) -> Any:
    """A customer's or product's id on one side (``side`` "inv"/"crm"); the dependency check runs
    first, so a gap here means it was unlinked meanwhile: the document waits, it is not half-written."""
    table = directory.customers if kind == "customer" else directory.products
    found = table.get(key if kind == "customer" else key.upper(), {}).get(side)
    if not found:
        raise DependencyMissingError(f"{kind} {key} is not linked on this side yet")
    return found


def _status(value: Scalar) -> str:
    cleaned = text(value).lower()
    return cleaned if cleaned in STATUSES else "pending"


def _single_tax_rate(lines: list[dict[str, str]]) -> Decimal:
    """FacturaDirecta carries one VAT rate per document (``tax1``) with a per-line on/off switch."""
    rates = {dec(line["tax_rate"]) for line in lines} - {Decimal("0")}
    if len(rates) > 1:
        raise UnsupportedTaxMixError(f"FacturaDirecta has one VAT rate per document, got {sorted(rates)}")
    return rates.pop() if rates else Decimal("0")


def _document(record: SideRecord, expected: Decimal, reported: Scalar, problem: str | None) -> SideRecord:
    """Fail a document whose reported total disagrees with the recomputation (never written on), and
    skip one with a line that names no product SKU (no other side can reference that line).

    ``expected``: the side's own rule over the canonical lines plus ``record.rounding``; it is the
    document's canonical ``total``.
    """
    record.data["total"] = money(expected)
    if problem is None and reported not in (None, "") and cents(dec(reported)) != cents(expected):
        record.problem = "totals_mismatch"
    elif problem is None and first_line_without_sku(record.data["lines"]) is not None:
        record.problem = "line_without_sku"
    return record


@dataclass
class FacturamaEstimateMapper(FullObjectMapper):
    """Facturama's assumed ``Estimate`` resource (PascalCase, full-object PUT)."""

    # Also reads the directory: the directory's fingerprint is part of the mapping's (staging.py).
    identity: ClassVar[tuple[str | None, str] | None] = ("estimate", "Id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    directory: Directory

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        estimate = cast(FacturamaEstimate, raw)
        receiver = estimate.get("Receiver") or {}
        lines = []
        for item in estimate.get("Items") or []:
            rate = sum(
                (dec(t.get("Rate")) for t in item.get("Taxes") or [] if not t.get("IsRetention")), Decimal(0)
            )
            lines.append(canonical_line(item.get("IdentificationNumber"), item.get("Description"), item.get("Quantity"),
                                        item.get("UnitPrice"), item.get("Discount"), rate * 100))  # fmt: skip
        folio = text(estimate.get("Folio"))
        key = folio if folio.startswith(CRM_PREFIX) else f"FM-{estimate['Id']}"
        data = {
            "customer": classify_rfc(receiver.get("Rfc")).key,
            "date": text(estimate.get("Date"))[:10],
            "expiration_date": text(estimate.get("ExpirationDate"))[:10],
            "currency": text(estimate.get("Currency")).upper(),
            "status": _status(estimate.get("Status")),
            "notes": text(estimate.get("Observations")),
            "lines": lines,
        }
        record = SideRecord(Side.INVOICING, "estimate", str(estimate["Id"]), data, key=key, raw=raw)
        return _document(record, totals_per_line(lines).total, estimate.get("Total"), None)

    def rtype_for(self, kind: str | None) -> str:
        return "estimate"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = {"Folio": f"{CRM_PREFIX}{link}" if link else None}
        self._apply(body, data, set(data))
        return body

    def _apply(self, body: dict[str, Any], data: dict[str, Any], changed: set[str]) -> None:
        if "customer" in changed:
            body["Receiver"] = {"Id": _linked_id(self.directory, "customer", data["customer"], "inv"),
                                "Rfc": data["customer"]}  # fmt: skip
        if "date" in changed:
            body["Date"] = f"{data['date']}T00:00:00"
        if "expiration_date" in changed:
            body["ExpirationDate"] = (
                f"{data['expiration_date']}T00:00:00" if data["expiration_date"] else None
            )
        if "currency" in changed:
            body["Currency"] = data["currency"] or "MXN"
        if "status" in changed:
            body["Status"] = data["status"].capitalize()
        if "notes" in changed:
            body["Observations"] = data["notes"]
        if changed & {"lines", "total"}:
            require_skus(data["lines"], "facturama")
            # Facturama rounds per line as Clientify does: any difference is refused, never adjusted.
            rounding_adjustment(data["lines"], data.get("total"), target="facturama", policy=RoundingPolicy())
            body["Items"] = [self._item(line) for line in data["lines"]]

    def _item(self, line: dict[str, str]) -> dict[str, Any]:
        product = self.directory.inv_products_raw.get(line["sku"].upper(), {})
        rate = dec(line["tax_rate"]) / 100
        taxes = (
            [{"Name": "IVA", "Rate": float(rate), "IsRetention": False, "IsFederalTax": True}] if rate else []
        )
        return {
            "ProductCode": product.get("CodeProdServ") or "01010101", "IdentificationNumber": line["sku"] or None,
            "Description": line["description"], "Unit": product.get("Unit") or "Servicio",
            "UnitCode": product.get("UnitCode") or "E48", "Quantity": float(dec(line["quantity"])),
            "UnitPrice": float(dec(line["unit_price"])), "Discount": float(dec(line["discount"])), "Taxes": taxes,
        }  # fmt: skip


@dataclass
class FacturaDirectaEstimateMapper(PartialUpdateMapper):
    """FacturaDirecta ``estimate`` (assumed element names; ``estimateLines`` replaces all lines on PUT)."""

    # Also reads the directory: the directory's fingerprint is part of the mapping's (staging.py).
    identity: ClassVar[tuple[str | None, str] | None] = ("estimate", "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    directory: Directory
    link_attribute: str | None = "ID_CRM"
    rounding: RoundingPolicy = field(default_factory=RoundingPolicy)

    def _is_rounding(self, line: FacturaDirectaEstimateLine) -> bool:
        """Our adjustment line: the policy's label, no product, no tax."""
        return (
            text(line.get("description")) == self.rounding.label
            and not text(line.get("productCode"))
            and text(line.get("applyTax1") or "true").lower() == "false"
        )

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        estimate = cast(FacturaDirectaEstimate, raw)
        tax1 = dec((estimate.get("tax1") or {}).get("rate"))
        lines, expected_net, adjustment = [], Decimal(0), Decimal(0)
        for line in estimate.get("estimateLines") or []:
            if self._is_rounding(line):
                adjustment += cents(dec(line.get("quantity")) * dec(line.get("unitPrice")))
                continue
            gross = dec(line.get("quantity")) * dec(line.get("unitPrice"))
            net = cents(gross * (1 - dec(line.get("discountRate")) / 100))  # FacturaDirecta rounds the net
            expected_net += net
            applies = text(line.get("applyTax1") or "true").lower() == "true"
            # The discount is what makes our net equal FacturaDirecta's (rounding the discount
            # itself instead differs by a cent whenever it ends in half a cent).
            lines.append(canonical_line(line.get("productCode"), line.get("description"), line.get("quantity"),
                                        line.get("unitPrice"), cents(gross) - net,
                                        tax1 if applies else 0))  # fmt: skip
        link = custom_attribute(raw, self.link_attribute) if self.link_attribute else None
        client_id = text((estimate.get("client") or {}).get("id"))
        date = text(estimate.get("estimateDate"))
        expiration = text(estimate.get("expirationDate"))
        data = {
            "customer": self.directory.inv_customer_keys.get(client_id, f"facturadirecta-client:{client_id}"),
            "date": f"{date[:4]}-{date[4:6]}-{date[6:8]}" if len(date) == 8 else date,
            "expiration_date": f"{expiration[:4]}-{expiration[4:6]}-{expiration[6:8]}"
            if len(expiration) == 8
            else "",
            "currency": text(estimate.get("currency")).upper(),
            "status": _status(estimate.get("status")),
            "notes": text(estimate.get("notes")),
            "lines": lines,
        }
        key = f"{CRM_PREFIX}{link}" if link else f"FD-{estimate['id']}"
        record = SideRecord(Side.INVOICING, "estimate", str(estimate["id"]), data, key=key, link=link, raw=raw,
                            rounding=adjustment)  # fmt: skip
        expected = expected_net + adjustment + cents(_taxed_net(estimate, self._is_rounding) * tax1 / 100)
        return _document(record, expected, estimate.get("totalAmount"), None)

    def rtype_for(self, kind: str | None) -> str:
        return "estimate"

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "customer" in changed:
            body["client"] = {"id": _linked_id(self.directory, "customer", data["customer"], "inv")}
        if "date" in changed:
            body["estimateDate"] = data["date"].replace("-", "")
        if "expiration_date" in changed:
            body["expirationDate"] = data["expiration_date"].replace("-", "")
        for name in ("currency", "status", "notes"):
            if name in changed:
                body[name] = data[name]
        if changed & {"lines", "total"}:
            require_skus(data["lines"], "facturadirecta")
            rate = _single_tax_rate(data["lines"])
            lines = [_fd_line(line) for line in data["lines"]]
            adjustment = rounding_adjustment(
                data["lines"], data.get("total"), target="facturadirecta", policy=self.rounding
            )
            if adjustment:
                lines.append({"productCode": "", "description": self.rounding.label, "quantity": "1.00",
                              "unitPrice": money(adjustment), "discountRate": "0.00", "applyTax1": "false"})  # fmt: skip
            body["tax1"] = {"name": "IVA", "rate": money(rate)}
            body["estimateLines"] = lines
        return body | fd_link_patch(raw, self.link_attribute, link)


def _taxed_net(
    estimate: FacturaDirectaEstimate, is_rounding: Callable[[FacturaDirectaEstimateLine], bool]
) -> Decimal:
    """The net of the lines that carry tax1, rounded per line as FacturaDirecta does."""
    total = Decimal(0)
    for line in estimate.get("estimateLines") or []:
        if text(line.get("applyTax1") or "true").lower() == "true" and not is_rounding(line):
            gross = dec(line.get("quantity")) * dec(line.get("unitPrice"))
            total += cents(gross * (1 - dec(line.get("discountRate")) / 100))
    return total


def _fd_line(line: dict[str, str]) -> dict[str, Any]:
    """A FacturaDirecta line: its discount is a rate with two decimals, so an amount must map exactly."""
    gross = dec(line["quantity"]) * dec(line["unit_price"])
    discount = dec(line["discount"])
    rate = (discount / gross * 100).quantize(CENT) if gross else Decimal(0)
    if cents(gross) - cents(gross * (1 - rate / 100)) != discount:
        raise DiscountNotRepresentableError(
            f"a discount of {discount} on {cents(gross)} is no 2-decimal rate (FacturaDirecta keeps rates)",
        )
    return {
        "productCode": line["sku"], "description": line["description"], "quantity": line["quantity"],
        "unitPrice": line["unit_price"], "discountRate": str(rate), "applyTax1": "true" if dec(line["tax_rate"]) else "false",
    }  # fmt: skip


@dataclass
class ClientifyBudgetMapper(PartialUpdateMapper):
    """Clientify's assumed ``budget`` (contact/company and products referenced by URL)."""

    # Also reads the directory: the directory's fingerprint is part of the mapping's (staging.py).
    identity: ClassVar[tuple[str | None, str] | None] = ("budget", "id")
    MAPPING_VERSION: ClassVar[int] = 1  # bump when read() maps anything differently (staging.py, golden test)

    directory: Directory
    link_field: str
    base_url: str
    code_prefix: str  # "FM-" (Facturama) or "FD-" (FacturaDirecta): budgets created from that side
    rounding: RoundingPolicy = field(default_factory=RoundingPolicy)
    link_pattern: str | None = None  # mapping.clientify.linked_id
    # The id of the product our rounding line references, found or created on first use (I/O: the
    # Clientify side gives it; sides.build_sides). Not a setting: it does not change what is read.
    _rounding_product: Callable[[], str] | None = None

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        budget = cast(ClientifyBudget, raw)
        customer = self._customer(budget)
        lines, adjustment = [], Decimal(0)
        for item in budget.get("items") or []:
            sku = text(item.get("sku")) or self.directory.crm_product_skus.get(
                text(item.get("product_id")), ""
            )
            if sku.upper() == self.rounding.sku.upper():
                adjustment += cents(
                    dec(item.get("quantity")) * dec(item.get("price")) - dec(item.get("discount"))
                )
                continue
            lines.append(canonical_line(sku, item.get("description") or item.get("name"), item.get("quantity"),
                                        item.get("price"), item.get("discount"), item.get("tax")))  # fmt: skip
        code = text(budget.get("code"))
        key = code if code.startswith(self.code_prefix) else f"{CRM_PREFIX}{budget['id']}"
        data = {
            "customer": customer,
            "date": text(budget.get("date"))[:10],
            "expiration_date": text(budget.get("expiration_date"))[:10],
            "currency": text(budget.get("currency")).upper(),
            "status": _status(budget.get("status")),
            "notes": text(budget.get("comments")),
            "lines": lines,
        }
        record = SideRecord(Side.CLIENTIFY, "budget", str(budget["id"]), data, key=key,
                            link=linked_id(raw, self.link_field, self.link_pattern), modified=utc_iso(budget.get("modified")),
                            raw=raw, rounding=adjustment)  # fmt: skip
        # A budget for a customer this integration does not sync (say, a Mexican company seen by the
        # FacturaDirecta integration) belongs to the other integration: skipped, not deferred forever.
        # The same reason as for the customer itself (taxid.TaxProblem.OTHER_PLATFORM).
        out_of_scope = self._customer_ref(budget) in self.directory.crm_customers_out_of_scope
        problem = TaxProblem.OTHER_PLATFORM.value if out_of_scope else None
        record.problem = problem
        return _document(record, totals_per_line(lines).total + adjustment, budget.get("total"), problem)

    @staticmethod
    def _customer_ref(budget: ClientifyBudget) -> tuple[str, str] | None:
        for rtype, ref in (("contact", budget.get("contact")), ("company", budget.get("company"))):
            if ref:
                return rtype, str(ref).rstrip("/").rsplit("/", 1)[-1]
        return None

    def _customer(self, budget: ClientifyBudget) -> str:
        ref = self._customer_ref(budget)
        if ref is None:
            return ""
        return self.directory.crm_customer_keys.get(ref, f"clientify-{ref[0]}:{ref[1]}")

    def rtype_for(self, kind: str | None) -> str:
        return "budget"

    def create_body(self, rtype: str, data: dict[str, Any], link: str | None) -> dict[str, Any]:
        body = super().create_body(rtype, data, link)
        body["name"] = data["notes"][:100] or f"{self.code_prefix}{link}"
        body["code"] = f"{self.code_prefix}{link}" if link else None
        return body

    def update_body(
        self, rtype: str, raw: dict[str, Any], data: dict[str, Any], changed: set[str], link: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "customer" in changed:
            crm_type, crm_id = _linked_id(self.directory, "customer", data["customer"], "crm")
            other = "company" if crm_type == "contact" else "contact"
            body[crm_type] = f"{self.base_url}/v1/{CRM_COLLECTIONS[crm_type]}/{crm_id}/"
            body[other] = None
        for name in ("date", "expiration_date", "currency", "status"):
            if name in changed:
                body[name] = data[name] or None  # an empty date is null, not ""
        if "notes" in changed:
            body["comments"] = data["notes"]
        if changed & {"lines", "total"}:
            require_skus(data["lines"], "clientify")
            items = [self._item(line) for line in data["lines"]]
            adjustment = rounding_adjustment(
                data["lines"], data.get("total"), target="clientify", policy=self.rounding
            )
            if adjustment:
                items.append(self._rounding_item(adjustment))
            body["items"] = items
        return body | crm_link_patch(raw, self.link_field, link)

    def _rounding_item(self, amount: Decimal) -> dict[str, Any]:
        """Our rounding line: the reserved product, one unit at the difference, no tax, no discount."""
        if self._rounding_product is None:
            raise TypeError("a budget mapper that writes rounding lines needs its rounding product")
        return {
            "product": f"{self.base_url}/v1/products/{self._rounding_product()}/",
            "description": self.rounding.label, "quantity": "1.00", "price": money(amount),
            "discount": "0.00", "tax": "0.00",
        }  # fmt: skip

    def _item(self, line: dict[str, str]) -> dict[str, Any]:
        product_id = _linked_id(self.directory, "product", line["sku"], "crm")
        return {
            "product": f"{self.base_url}/v1/products/{product_id}/",
            "description": line["description"], "quantity": line["quantity"], "price": line["unit_price"],
            "discount": line["discount"], "tax": line["tax_rate"],
        }  # fmt: skip
