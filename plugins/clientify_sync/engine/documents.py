"""Estimates as canonical documents: lines, money, totals rules, and the customers/products they need.

Money is ``Decimal`` end to end, rounded half-up to cents as each API rounds. Each API computes its
totals in its own way (Facturama and Clientify per line, FacturaDirecta per document); a document
read from an API is checked against a recomputation with that API's rule, and a mismatch fails the
record with a reason instead of being written anywhere. A document's canonical ``total`` is the total
its side shows; a target that would round the same lines to another total gets a labelled rounding
adjustment line of ours (``RoundingPolicy``), so both sides show the same amount to the cent.

An estimate refers to a customer and to products. Across systems the customer is its tax ID and a
product its SKU; the ``Directory`` turns them into each side's ids through the contacts and products
links, and says when one is not linked yet (the estimate is then deferred: ``dependency_missing``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from clientify_sync.engine.model import Scalar, money, text
from clientify_sync.errors import LineWithoutSkuError, TotalsNotRepresentableError

CENT = Decimal("0.01")
KeyRow = tuple[str, str, str, str | None]  # a staged record: rtype, rid, key, problem
LinkRow = tuple[str, str, str, str]  # a link: inv_type, inv_id, crm_type, crm_id
LINE_FIELDS = ("sku", "description", "quantity", "unit_price", "discount", "tax_rate")


def dec(value: Scalar) -> Decimal:
    """A Decimal from an API value (JSON number, decimal string, empty)."""
    if value is None or value == "":
        return Decimal("0")
    return Decimal(str(value))


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def canonical_line(
    sku: Scalar, description: Scalar, quantity: Scalar, unit_price: Scalar, discount: Scalar, tax_rate: Scalar
) -> dict[str, str]:
    """One line in canonical form: strings with two decimals, ``discount`` an amount, ``tax_rate`` a %."""
    return {
        "sku": text(sku),
        "description": text(description),
        "quantity": money(dec(quantity)),
        "unit_price": money(dec(unit_price)),
        "discount": money(dec(discount)),
        "tax_rate": money(dec(tax_rate)),
    }


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    tax: Decimal
    total: Decimal


def totals_per_line(lines: Iterable[dict[str, str]]) -> Totals:
    """Facturama and Clientify: net and tax rounded per line, then summed."""
    subtotal = tax = Decimal("0")
    for line in lines:
        net = cents(dec(line["quantity"]) * dec(line["unit_price"]) - dec(line["discount"]))
        subtotal += net
        tax += cents(net * dec(line["tax_rate"]) / 100)
    return Totals(subtotal, tax, subtotal + tax)


def totals_per_document(lines: Iterable[dict[str, str]]) -> Totals:
    """FacturaDirecta: line nets rounded, tax rounded once per rate over the document."""
    subtotal = Decimal("0")
    by_rate: dict[Decimal, Decimal] = {}
    for line in lines:
        net = cents(dec(line["quantity"]) * dec(line["unit_price"]) - dec(line["discount"]))
        subtotal += net
        rate = dec(line["tax_rate"])
        by_rate[rate] = by_rate.get(rate, Decimal("0")) + net
    tax = sum((cents(net * rate / 100) for rate, net in by_rate.items()), Decimal("0"))
    return Totals(subtotal, tax, subtotal + tax)


# How each API computes a document's totals, and its name in messages.
TOTALS_RULES: dict[str, Callable[[Iterable[dict[str, str]]], Totals]] = {
    "facturama": totals_per_line,
    "clientify": totals_per_line,
    "facturadirecta": totals_per_document,
}
API_NAMES = {"facturama": "Facturama", "clientify": "Clientify", "facturadirecta": "FacturaDirecta"}
TotalsRule = Callable[[Iterable[dict[str, str]]], Totals]
RULE_NAMES: dict[TotalsRule, str] = {
    totals_per_line: "VAT rounded per line",
    totals_per_document: "VAT rounded once per document",
}


@dataclass(frozen=True)
class RoundingPolicy:
    """How a document whose total the target would round differently is still written to the cent.

    FacturaDirecta rounds VAT once per document, Clientify and Facturama once per line, so the same
    lines can total 545.10 on one side and 545.11 on the other. With ``enabled`` (the default), the
    target gets one extra line of ours, ``label``, with no tax, for the difference; it is recognised on
    read-back (by ``sku`` on Clientify, which needs a product on every line; by ``label`` on a
    FacturaDirecta line with no product and no tax) and never becomes part of the canonical lines, so
    it never travels back, and it is recomputed on every write of the lines. Off: today's refusal
    (``totals_not_representable``).

    A difference larger than one cent per line is no rounding: it is refused either way.
    """

    enabled: bool = True
    label: str = "Ajuste de redondeo"
    sku: str = "AJUSTE-REDONDEO"

    def limit(self, lines: list[dict[str, str]]) -> Decimal:
        """The largest difference rounding can explain: half a cent per line, rounded up, plus one."""
        return CENT * max(1, len(lines))


def rounding_adjustment(
    lines: list[dict[str, str]], total: Any, *, target: str, policy: RoundingPolicy
) -> Decimal:
    """What the target must add, beside ``lines``, for its own total to equal ``total`` (the document's
    total as the source shows it); zero when its rule gives that total already.

    Raises:
        TotalsNotRepresentableError: the difference is not zero and adjustments are off, the target
            takes none (``facturama``: it rounds per line like Clientify, so a difference there is never
            rounding), or it is larger than rounding explains.
    """
    rule = TOTALS_RULES[target]
    ours = rule(lines).total
    wanted = ours if total is None or total == "" else cents(dec(total))
    difference = wanted - ours
    if not difference:
        return Decimal("0")
    because = (
        "rounding adjustments are off"
        if not policy.enabled
        else f"{API_NAMES[target]} takes no rounding adjustment"
        if target == "facturama"
        else f"more than rounding explains (at most {policy.limit(lines)} for {len(lines)} lines)"
        if abs(difference) > policy.limit(lines)
        else ""
    )
    if because:
        raise TotalsNotRepresentableError(
            f"the total {wanted} would be {ours} on {API_NAMES[target]} ({RULE_NAMES[rule]}), a difference "
            f"of {difference}: {because}; adjust a line so both agree, or edit the document on one side only"
        )
    return difference


def first_line_without_sku(lines: list[dict[str, str]]) -> int | None:
    """The 1-based number of the first line that names no product SKU, or None."""
    return next((number for number, line in enumerate(lines, 1) if not line["sku"]), None)


def require_skus(lines: list[dict[str, str]], target: str) -> None:
    """Every line must reference a product by SKU before a document is written anywhere.

    Raises:
        LineWithoutSkuError: a line has no SKU (it could only be sent as ``product: null``, which the
            API refuses on every retry).
    """
    number = first_line_without_sku(lines)
    if number is not None:
        raise LineWithoutSkuError(
            f"line {number} has no product SKU, so it cannot reference a product on {API_NAMES[target]}; "
            "give the line a product with a SKU"
        )


@dataclass
class Directory:
    """Customers by tax ID and products by SKU, with their ids on each side and whether they are linked."""

    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    inv_customer_keys: dict[str, str] = field(default_factory=dict)
    crm_customer_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # Clientify customers this integration does not sync (e.g. an RFC seen by the FacturaDirecta one).
    crm_customers_out_of_scope: set[tuple[str, str]] = field(default_factory=set)
    crm_product_skus: dict[str, str] = field(default_factory=dict)
    inv_products_raw: dict[str, dict[str, Any]] = field(default_factory=dict)
    _fingerprint: str | None = field(default=None, repr=False, compare=False)  # built once: see fingerprint()
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        contacts_inv: Iterable[KeyRow],
        contacts_crm: Iterable[KeyRow],
        contact_links: Iterable[LinkRow],
        products_inv: Iterable[KeyRow],
        products_crm: Iterable[KeyRow],
        product_links: Iterable[LinkRow],
        inv_products_raw: dict[str, dict[str, Any]] | None = None,
    ) -> Directory:
        """The directory from the contacts' and products' records ``(rtype, rid, key, problem)`` and links
        ``(inv_type, inv_id, crm_type, crm_id)``, read as streams (no frame of every customer in memory)."""
        directory = cls(inv_products_raw=inv_products_raw or {})
        inv_key = directory.inv_customer_keys
        crm_key = directory.crm_customer_keys
        for _, rid, key, _ in contacts_inv:
            inv_key[rid] = key
        for rtype, rid, key, problem in contacts_crm:
            crm_key[(rtype, rid)] = key
            if problem is not None:
                directory.crm_customers_out_of_scope.add((rtype, rid))
        for _, inv_id, crm_type, crm_id in contact_links:
            customer = inv_key.get(inv_id) or crm_key.get((crm_type, crm_id))
            if customer:
                directory.customers[customer] = {"inv": inv_id, "crm": (crm_type, crm_id)}
        inv_sku = {rid: key for _, rid, key, _ in products_inv}
        directory.crm_product_skus = {rid: key for _, rid, key, _ in products_crm}
        for _, inv_id, _, crm_id in product_links:
            sku = inv_sku.get(inv_id) or directory.crm_product_skus.get(crm_id)
            if sku:
                directory.products[sku] = {"inv": inv_id, "crm": crm_id}
        return directory

    def fingerprint(self) -> str:
        """A digest of everything a document mapping can read here, independent of the order rows came in.

        Why: a document's mapping depends on its record and on this directory, so an unchanged record
        read under an unchanged directory maps to what is stored and need not be mapped again
        (``staging.mapping_fingerprint``); any change here (a customer linked, a product renamed) maps
        every document again. Fed to the digest entry by entry (the same CPU as one ``repr`` of it
        all, without that 12 MB string and its 12 MB of bytes at 100k customers). Computed once,
        under a lock: both extract steps ask, possibly at once.
        """
        with self._lock:
            if self._fingerprint is None:
                digest = hashlib.blake2b(digest_size=16)
                for part in (
                    self.customers.items(),
                    self.products.items(),
                    self.inv_customer_keys.items(),
                    self.crm_customer_keys.items(),
                    self.crm_customers_out_of_scope,
                    self.crm_product_skus.items(),
                    self.inv_products_raw.items(),
                ):
                    for entry in sorted(part):
                        digest.update(repr(entry).encode())
                        digest.update(b"\n")
                    digest.update(b"\f")  # where one part ends: entries cannot move between parts
                self._fingerprint = digest.hexdigest()
            return self._fingerprint

    def missing(self, data: dict[str, Any], side: str) -> list[str]:
        """What the document needs on ``side`` ("invoicing"/"clientify") that is not linked yet."""
        wanted = "inv" if side == "invoicing" else "crm"
        missing = (
            [] if self.customers.get(data["customer"], {}).get(wanted) else [f"customer {data['customer']}"]
        )
        for line in data["lines"]:
            if line["sku"] and not self.products.get(line["sku"].upper(), {}).get(wanted):
                missing.append(f"product {line['sku']}")
        return missing
