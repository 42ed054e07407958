"""Estimate money: Decimal end to end, each API's rounding rule, totals checked on read."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest

from clientify_sync.engine.documents import (
    Directory,
    RoundingPolicy,
    canonical_line,
    rounding_adjustment,
    totals_per_document,
    totals_per_line,
)
from clientify_sync.engine.mapping.estimates import ClientifyBudgetMapper, FacturamaEstimateMapper
from clientify_sync.engine.mapping.facturama import FacturamaClientMapper, FacturamaProductMapper
from clientify_sync.errors import LineWithoutSkuError, MissingEmailError, TotalsNotRepresentableError


def many_lines(n: int = 40) -> list[dict[str, str]]:
    return [
        canonical_line(
            f"SKU-{i}", f"line {i}", Decimal("1.5") + i % 3, Decimal("33.33") + i, Decimal(i % 5) / 3, 16
        )
        for i in range(n)
    ]


def test_canonical_line_rounds_half_up_to_cents():
    line = canonical_line(" WEB003 ", "Sitio", "2", 6500, "0.005", "16")
    assert line == {"sku": "WEB003", "description": "Sitio", "quantity": "2.00", "unit_price": "6500.00",
                    "discount": "0.01", "tax_rate": "16.00"}  # fmt: skip


def test_totals_with_many_lines_and_discounts_are_exact_to_the_cent():
    lines = many_lines()
    per_line, per_document = totals_per_line(lines), totals_per_document(lines)
    expected_subtotal = sum(
        (
            (Decimal(line["quantity"]) * Decimal(line["unit_price"]) - Decimal(line["discount"])).quantize(
                Decimal("0.01"), rounding=ROUND_HALF_UP
            )
            for line in lines
        ),
        Decimal(0),
    )
    assert per_line.subtotal == per_document.subtotal == expected_subtotal
    assert per_line.total == per_line.subtotal + per_line.tax
    assert abs(per_line.tax - per_document.tax) <= Decimal("0.01") * len(lines)
    assert per_line.total.as_tuple().exponent == -2


def test_facturama_estimate_with_wrong_total_fails_with_a_reason():
    mapper = FacturamaEstimateMapper(Directory())
    raw = {"Id": "X" * 23, "Folio": "", "Date": "2026-05-03T10:00:00", "Currency": "MXN", "Status": "Pending",
           "Receiver": {"Id": "c", "Rfc": "URE180429TM6"},
           "Items": [{"IdentificationNumber": "WEB003", "Description": "Sitio", "Quantity": 2, "UnitPrice": 6500,
                      "Discount": 0, "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False}]}],
           "Total": 15080.00}  # fmt: skip
    record = mapper.read("estimate", raw)
    assert record.problem is None and record.key == f"FM-{'X' * 23}"
    assert record.data["lines"][0]["tax_rate"] == "16.00"
    assert mapper.read("estimate", raw | {"Total": 15080.01}).problem == "totals_mismatch"


def test_budget_round_trip_keeps_the_document():
    directory = Directory(
        customers={"URE180429TM6": {"inv": "c1", "crm": ("company", "7")}},
        products={"WEB003": {"inv": "p1", "crm": "77"}},
        crm_customer_keys={("company", "7"): "URE180429TM6"},
        crm_product_skus={"77": "WEB003"},
    )
    mapper = ClientifyBudgetMapper(directory, "in_facturama", "http://127.0.0.1:8702", "FM-")
    data = {"customer": "URE180429TM6", "date": "2026-05-03", "expiration_date": "", "currency": "MXN",
            "status": "pending", "notes": "web", "lines": many_lines(3)}  # fmt: skip
    for line in data["lines"]:
        line["sku"] = "WEB003"
    body = mapper.create_body("budget", data, link="abc")
    assert body["company"].endswith("/v1/companies/7/") and body["code"] == "FM-abc"
    served = {"id": 812, "code": body["code"], "company": body["company"], "date": "2026-05-03", "currency": "MXN",
              "status": "pending", "comments": "web", "custom_fields": [{"field": "in_facturama", "value": "abc"}],
              "items": [{**item, "product_id": 77, "sku": "WEB003"} for item in body["items"]],
              "total": str(totals_per_line(data["lines"]).total), "modified": "2026-05-03T10:00:00+02:00"}  # fmt: skip
    record = mapper.read("budget", served)
    total = str(totals_per_line(data["lines"]).total)
    assert record.data == data | {"total": total} and record.key == "FM-abc" and record.link == "abc"
    assert record.problem is None and record.rounding == 0


# -- issue 12: refusals raised before any call, and the Facturama bodies the strict API takes -----------


def lines_of(*nets: str) -> list[dict[str, str]]:
    """One line a net, quantity 1, at 21 % VAT."""
    return [canonical_line(f"SKU-{i}", "", 1, net, 0, 21) for i, net in enumerate(nets)]


# Each 2.50 at 21 % is 0.525 of VAT: 0.53 rounded per line, half a cent more than its share of the
# document's VAT; each 0.69 is 0.1449: 0.14 per line, half a cent less. So n such lines put per-line
# and per-document totals n/2 cents apart.
APART = {
    Decimal("0.01"): lines_of("2.50", "2.50"),
    Decimal("0.02"): lines_of(*["2.50"] * 4),
    Decimal("0.05"): lines_of(*["2.50"] * 10),
    Decimal("-0.01"): lines_of("0.69", "0.69"),
    Decimal("-0.02"): lines_of(*["0.69"] * 4),
}


@pytest.mark.parametrize("apart", list(APART), ids=str)
def test_the_adjustment_makes_each_target_total_equal_the_source_to_the_cent(apart: Decimal):
    lines = APART[apart]
    per_line, per_document = totals_per_line(lines).total, totals_per_document(lines).total
    assert per_line - per_document == apart  # the literal documents are what they claim
    # Clientify (per line) -> FacturaDirecta (per document), and back.
    to_fd = rounding_adjustment(lines, per_line, target="facturadirecta", policy=RoundingPolicy())
    to_crm = rounding_adjustment(lines, per_document, target="clientify", policy=RoundingPolicy())
    assert per_document + to_fd == per_line and per_line + to_crm == per_document
    assert (to_fd, to_crm) == (apart, -apart)
    # Nothing to adjust where the target rounds as the source does.
    assert rounding_adjustment(lines, per_line, target="facturama", policy=RoundingPolicy()) == 0
    assert rounding_adjustment(lines, per_document, target="facturadirecta", policy=RoundingPolicy()) == 0


def test_no_adjustment_when_the_rules_agree_or_the_total_is_unknown():
    even = lines_of("100.00")
    assert rounding_adjustment(even, "121.00", target="clientify", policy=RoundingPolicy()) == 0
    assert rounding_adjustment(APART[Decimal("0.05")], None, target="clientify", policy=RoundingPolicy()) == 0


def test_adjustments_off_is_the_refusal_naming_both_totals():
    lines = [canonical_line("A", "", 1, "100.03", 0, 21), canonical_line("B", "", 1, "257.60", 0, 21)]
    with pytest.raises(TotalsNotRepresentableError) as caught:
        rounding_adjustment(lines, "432.73", target="clientify", policy=RoundingPolicy(enabled=False))
    assert caught.value.reason == "totals_not_representable" and caught.value.outcome == "failed"
    assert (
        "432.73" in caught.value.detail and "432.74" in caught.value.detail and "off" in caught.value.detail
    )


def test_a_difference_rounding_cannot_explain_is_refused_even_with_adjustments_on():
    lines = APART[Decimal("0.01")]  # two lines: at most 0.02 of rounding
    with pytest.raises(TotalsNotRepresentableError) as caught:
        rounding_adjustment(lines, totals_per_line(lines).total + Decimal("0.03"), target="facturadirecta",
                            policy=RoundingPolicy())  # fmt: skip
    assert "more than rounding explains" in caught.value.detail
    with pytest.raises(TotalsNotRepresentableError, match="takes no rounding adjustment"):
        rounding_adjustment(
            lines, totals_per_document(lines).total, target="facturama", policy=RoundingPolicy()
        )


def test_a_line_without_sku_is_skipped_on_read_and_refused_on_write():
    raw = {"Id": "e1", "Receiver": {"Rfc": "URE180429TM6"}, "Date": "2026-05-03T10:00:00", "Currency": "MXN",
           "Items": [{"IdentificationNumber": "WEB003", "Quantity": 1, "UnitPrice": 10, "Taxes": []},
                     {"IdentificationNumber": None, "Quantity": 1, "UnitPrice": 5, "Taxes": []}]}  # fmt: skip
    record = FacturamaEstimateMapper(Directory()).read("estimate", raw)
    assert record.problem == "line_without_sku"
    mapper = ClientifyBudgetMapper(Directory(), "in_facturama", "https://api.clientify.net", "FM-")
    with pytest.raises(LineWithoutSkuError) as caught:
        mapper.update_body("budget", {}, record.data, {"lines"}, None)
    assert caught.value.outcome == "skipped" and "line 2" in caught.value.detail


def test_facturama_client_update_strips_empty_strings_and_needs_an_email():
    raw = {"Id": "c1", "Rfc": "URE180429TM6", "Name": "X", "Email": "a@example.mx", "EmailOp1": "",
           "TaxZipCode": "86991", "Address": {"Street": "Calle", "InteriorNumber": "", "ZipCode": None}}  # fmt: skip
    mapper = FacturamaClientMapper()
    data = mapper.read("client", raw).data
    body = mapper.update_body("client", raw, data | {"city": "León"}, {"city"}, None)
    assert "EmailOp1" not in body and "InteriorNumber" not in body["Address"]
    assert (body["TaxZipCode"], body["Address"]["ZipCode"], body["Address"]["Municipality"]) == (
        "86991",
        "86991",
        "León",
    )
    with pytest.raises(MissingEmailError) as caught:
        mapper.update_body("client", raw, data | {"email": ""}, {"email"}, None)
    assert caught.value.reason == "missing_email" and caught.value.outcome == "skipped"
    with pytest.raises(MissingEmailError):
        mapper.create_body("client", data | {"email": ""}, None)


def test_facturama_products_carry_tax_object_and_unit():
    mapper = FacturamaProductMapper()
    created = mapper.create_body("product", {"sku": "WEB003", "name": "Sitio", "price": "10.00"}, None)
    assert (created["TaxObject"], created["Unit"], created["Description"]) == ("02", "Servicio", "Sitio")
    old = {"Id": "p1", "Name": "Viejo", "IdentificationNumber": "OLD", "Price": 1, "Unit": "", "CuentaPredial": "",
           "Taxes": []}  # fmt: skip
    body = mapper.update_body(
        "product", old, {"sku": "OLD", "name": "Nuevo", "price": "1.00"}, {"name"}, None
    )
    assert (body["TaxObject"], body["Unit"], body["Name"]) == ("01", "Servicio", "Nuevo")  # untaxed: "01"
    assert "CuentaPredial" not in body
