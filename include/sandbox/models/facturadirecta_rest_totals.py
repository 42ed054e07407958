"""FacturaDirecta REST estimate amounts: the tax catalogue and the totals the server computes.

Why the server computes: estimates.md@afc30cc says ``linesTotal``, ``totalBeforeTaxes``, ``taxes`` and
``total`` are computed from the lines (send them empty and read them back), and a mismatch in the default
``mode: "calcTotal"`` is a 400 (taxes.md@6f7d643). Rounding is not documented (§15 question 6); by
default VAT is rounded once per tax of the document, half-up to cents, exactly as the classic API
emulator does (models/facturadirecta.py ``_totals``: rounded line nets, one rounding per tax), so both
APIs of one account agree on every amount. ``line`` rounds each line's tax instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from include.sandbox.money import q2


@dataclass(frozen=True)
class Tax:
    """A catalogue entry; ``value`` is base 1 (taxes.md@6f7d643), negative for withholdings."""

    id: str
    name: str
    value: Decimal
    auto_applied: bool = False


# Only S_IVA_21 and S_IRPF_15 are named in the reference; the rest follow the same pattern (inferred).
SALES_TAXES: dict[str, Tax] = {
    t.id: t
    for t in (
        Tax("S_IVA_21", "IVA 21%", Decimal("0.21")),
        Tax("S_IVA_10", "IVA 10%", Decimal("0.10")),
        Tax("S_IVA_5", "IVA 5%", Decimal("0.05")),
        Tax("S_IVA_4", "IVA 4%", Decimal("0.04")),
        Tax("S_IVA_0", "IVA 0%", Decimal("0")),
        Tax("S_IRPF_15", "IRPF 15%", Decimal("-0.15")),
        Tax("S_IRPF_7", "IRPF 7%", Decimal("-0.07")),
        Tax("S_IRPF_19", "IRPF 19%", Decimal("-0.19")),
        Tax("S_RE_5_2", "Recargo de equivalencia 5,2%", Decimal("0.052"), auto_applied=True),
        Tax("S_RE_1_4", "Recargo de equivalencia 1,4%", Decimal("0.014"), auto_applied=True),
    )
}
PURCHASE_TAXES: dict[str, Tax] = {
    t.id: t
    for t in (
        Tax("P_IVA_21", "IVA soportado 21%", Decimal("0.21")),
        Tax("P_IVA_10", "IVA soportado 10%", Decimal("0.10")),
        Tax("P_IVA_4", "IVA soportado 4%", Decimal("0.04")),
        Tax("P_IVA_0", "IVA soportado 0%", Decimal("0")),
        Tax("P_IRPF_15", "IRPF 15%", Decimal("-0.15")),
        Tax("P_IRPF_7", "IRPF 7%", Decimal("-0.07")),
    )
}
# The classic API's VAT rates (tax1 "IVA" rate) as sales tax ids, for seeding the same data on both APIs.
VAT_BY_RATE = {
    Decimal(21): "S_IVA_21",
    Decimal(10): "S_IVA_10",
    Decimal(5): "S_IVA_5",
    Decimal(4): "S_IVA_4",
    Decimal(0): "S_IVA_0",
}


def catalogue_items(taxes: dict[str, Tax]) -> list[dict[str, Any]]:
    """``GET /{companyId}/settings/taxes/sales|purchases`` items."""
    return [
        {"id": t.id, "name": t.name, "value": t.value, "autoApplied": t.auto_applied} for t in taxes.values()
    ]


@dataclass(frozen=True)
class Line:
    """One validated line: amounts as decimals, taxes as catalogue ids."""

    quantity: Decimal
    unit_price: Decimal
    discount_rate: Decimal
    discount: Decimal
    taxes: tuple[str, ...]


@dataclass(frozen=True)
class Totals:
    line_totals: list[Decimal]
    lines_total: Decimal
    before_taxes: Decimal
    taxes: list[dict[str, Any]]
    total: Decimal


def compute(lines: Sequence[Line], *, percent_discounts: bool, tax_included: bool, per_line: bool) -> Totals:
    """``lineTotal = q2(quantity × unitPrice × (1 − rate) − discount)`` (invoices.md@004fd9b; ``rate`` is
    ``discountRate/100`` unless fractions are configured); tax bases per tax id are sums of line totals.

    With ``tax_included`` the prices hold the line's taxes: the net line total is the gross one divided by
    ``1 + Σ values`` (inferred; the docs only say tax is computed backwards).
    """
    line_totals: list[Decimal] = []
    bases: dict[str, Decimal] = {}
    line_amounts: dict[str, Decimal] = {}
    for line in lines:
        rate = line.discount_rate / 100 if percent_discounts else line.discount_rate
        gross = line.quantity * line.unit_price * (1 - rate) - line.discount
        if tax_included:
            gross = gross / (1 + sum((SALES_TAXES[t].value for t in line.taxes), Decimal(0)))
        net = q2(gross)
        line_totals.append(net)
        for tax_id in line.taxes:
            bases[tax_id] = bases.get(tax_id, Decimal(0)) + net
            line_amounts[tax_id] = line_amounts.get(tax_id, Decimal(0)) + q2(net * SALES_TAXES[tax_id].value)
    lines_total = sum(line_totals, Decimal(0))
    taxes: list[dict[str, Any]] = []
    amounts: list[Decimal] = []
    for tax_id, base in bases.items():
        amount = line_amounts[tax_id] if per_line else q2(base * SALES_TAXES[tax_id].value)
        amounts.append(amount)
        taxes.append(
            {
                "id": tax_id,
                "base": q2(base),
                "amount": amount,
                "companyCurrencyBase": q2(base),
                "companyCurrencyAmount": amount,
            }
        )
    total = lines_total + sum(amounts, Decimal(0))
    return Totals(line_totals, q2(lines_total), q2(lines_total), taxes, q2(total))
