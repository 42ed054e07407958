"""Estimate money: Decimal end to end, each API's rounding rule, totals checked on read."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from clientify_sync.engine.documents import Directory, canonical_line, totals_per_document, totals_per_line
from clientify_sync.engine.mapping.estimates import ClientifyBudgetMapper, FacturamaEstimateMapper


def many_lines(n: int = 40) -> list[dict[str, str]]:
    return [
        canonical_line(f"SKU-{i}", f"line {i}", Decimal("1.5") + i % 3, Decimal("33.33") + i, Decimal(i % 5) / 3, 16)
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
    assert record.data == data and record.key == "FM-abc" and record.link == "abc" and record.problem is None
