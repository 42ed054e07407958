"""FacturaDirecta REST mappings (mapping/facturadirecta_rest.py): literal REST records in, canonical data
out; canonical data in, bodies out; round trips; a full-replace PUT that erases nothing of the user's; our
rounding line; and the same canonical data as the classic mappers for the same account's records, which is
what lets an account move from the classic API to the REST API and re-link without duplicates.

The last tests send the bodies to the sandbox's strict REST emulator over loopback and read them back.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from clientify_sync.engine.documents import Directory, RoundingPolicy, canonical_line, totals_per_line
from clientify_sync.engine.mapping.estimates import FacturaDirectaEstimateMapper
from clientify_sync.engine.mapping.facturadirecta import (
    FacturaDirectaClientMapper,
    FacturaDirectaProductMapper,
)
from clientify_sync.engine.mapping.facturadirecta_rest import (
    FacturaDirectaRestContactMapper,
    FacturaDirectaRestEstimateMapper,
    FacturaDirectaRestProductMapper,
    vat_rate,
)
from clientify_sync.engine.model import CONTACT_SCHEMA, ESTIMATE_SCHEMA, PRODUCT_SCHEMA
from clientify_sync.engine.taxid import Kind
from clientify_sync.errors import (
    DependencyMissingError,
    DiscountNotRepresentableError,
    TotalsNotRepresentableError,
    UnsupportedTaxMixError,
)
from include.sandbox.models.facturadirecta_rest_totals import Line, compute
from tests.api.sandbox_clients import facturadirecta_for
from tests.fixtures.sandbox import SandboxHandle

LINK = "cfi_1f6f2ec8-7c2b-4c71-9c4f-2257ed34878a"  # our link field
OTHER = "cfi_0a3c5e7f-1b2d-4e6f-8a9b-0c1d2e3f4a5b"  # a field of the user's
CON = "con_2c4f8e21-7b3a-4d9c-9e1f-a8b7c6d5e4f3"
PERSON = "con_7d1e2f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a"
EST = "est_9b8a7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
WEB, SEO, LIB = (f"pro_{n}1a2b3c4-d5e6-4f70-8a9b-c0d1e2f3a4b5" for n in "345")
LABEL = RoundingPolicy().label
MODIFIED = "2026-04-02T08:15:00.000Z"


def envelope(kind: str, rid: str, main: dict[str, Any], tags: list[str] | None = None) -> dict[str, Any]:
    """A record as the REST API serves it (§4: envelope, dates, ``webUrl``)."""
    return {"content": {"type": kind, "uuid": rid, "main": main}, "tags": tags or [],
            "creationDate": "2025-11-14T10:22:31.000Z", "modificationDate": MODIFIED,
            "related": {}, "webUrl": f"https://app.facturadirecta.com/com_x/{kind}s/{rid}"}  # fmt: skip


REST_COMPANY = envelope("contact", CON, {
    "name": "Acme Diseño S.L.", "title": "Acme Diseño", "fiscalId": "B12345674", "fiscalIdCountry": "ES",
    "vatEU": "ESB12345674", "email": "Hola@Acme.es", "phone": "+34910000000", "address": "Calle Mayor 1, 2º B",
    "zipcode": "28013", "city": "Madrid", "region": "Madrid", "country": "ES", "currency": "EUR",
    "accounts": {"client": "4300001", "clientCredit": "4380001"},
    "customFields": {LINK: "812", OTHER: "PO-2026-0042"},
}, tags=["vip"])  # fmt: skip
REST_PERSON = envelope("contact", PERSON, {
    "name": "María  García López", "title": "María García López", "fiscalId": "12345678Z",
    "email": "maria@example.es", "address": "Calle Sol 3", "zipcode": "41001", "city": "Sevilla",
    "region": "Sevilla", "country": "España", "accounts": {"client": "4300002", "clientCredit": "4380002"},
})  # fmt: skip
CLASSIC_COMPANY = {
    "id": "17", "legalType": "J", "name": "Acme Diseño S.L.", "taxCode": "B-12345674", "email": "hola@acme.es",
    "phone": "+34910000000", "address": {"line1": "Calle Mayor 1", "line2": "2º B", "city": "Madrid",
    "province": "Madrid", "zipcode": "28013", "country": "ES"},
    "customAttributes": [{"label": "ID_CRM", "value": "812"}],
}  # fmt: skip
CLASSIC_PERSON = {
    "id": "18", "legalType": "F", "personName": "María", "personSurname": "García López", "taxCode": "12345678Z",
    "email": "maria@example.es", "address": {"line1": "Calle Sol 3", "line2": "", "city": "Sevilla",
    "province": "Sevilla", "zipcode": "41001", "country": "ESPAÑA"},
}  # fmt: skip


def rest_product(rid: str, sku: str, name: str, price: Any, **extra: Any) -> dict[str, Any]:
    return envelope("product", rid, {"name": name, "title": name, "currency": "EUR", "sku": sku,
                                     "sales": {"tax": ["S_IVA_21"], "account": "7050000", "price": price}, **extra})  # fmt: skip


PRODUCTS = {
    "WEB-001": rest_product(WEB, "WEB-001", "Diseño web", 1800),
    "SEO-002": rest_product(SEO, "SEO-002", "SEO mensual", 33.33),
    "LIB-003": rest_product(LIB, "LIB-003", "Libro de estilo", 19.99),
}


def directory() -> Directory:
    """The REST side's contacts and products, linked to Clientify (``inv`` ids are REST ids)."""
    return Directory(
        customers={"B12345674": {"inv": CON, "crm": ("company", "7")}, "12345678Z": {"inv": PERSON, "crm": ("contact", "9")}},
        products={sku: {"inv": raw["content"]["uuid"], "crm": str(70 + i)} for i, (sku, raw) in enumerate(PRODUCTS.items())},
        inv_customer_keys={CON: "B12345674", PERSON: "12345678Z"},
        inv_products_raw={sku: raw for sku, raw in PRODUCTS.items()},
    )  # fmt: skip


def classic_directory() -> Directory:
    return Directory(inv_customer_keys={"17": "B12345674", "18": "12345678Z"})


# Three lines (21 % with a 10 % discount rate, 21 %, untaxed) and our rounding line:
# nets 1800 + 89.99 + 39.98 + 0.01; VAT 21 % once over 1889.99 = 396.90; total 2326.88.
REST_ESTIMATE = envelope("estimate", EST, {
    "contact": CON, "date": "2026-05-03", "dueDate": "2026-06-02", "currency": "EUR", "baseState": "accepted",
    "notes": "Web y SEO", "series": "default", "docNumber": "2026/0041", "owner": "ana@acme.es",
    "title": "Presupuesto 2026/0041 — Acme Diseño", "taxIncludedPrices": False, "isProforma": False,
    "lines": [
        {"text": "Diseño web", "quantity": 1, "unitPrice": 1800, "tax": ["S_IVA_21"], "document": WEB,
         "account": "7050001", "lineTotal": 1800},
        {"text": "SEO mensual", "quantity": 3, "unitPrice": 33.33, "discountRate": 10, "tax": ["S_IVA_21"],
         "document": SEO, "account": "7050000", "lineTotal": 89.99},
        {"text": "Libro de estilo", "quantity": 2, "unitPrice": 19.99, "tax": [], "document": LIB,
         "account": "7050000", "lineTotal": 39.98},
        {"text": LABEL, "quantity": 1, "unitPrice": 0.01, "tax": [], "account": "7000000", "lineTotal": 0.01},
    ],
    "linesTotal": 1929.98, "totalBeforeTaxes": 1929.98,
    "taxes": [{"id": "S_IVA_21", "base": 1889.99, "amount": 396.9, "companyCurrencyBase": 1889.99,
               "companyCurrencyAmount": 396.9}],
    "total": 2326.88, "customFields": {LINK: "812", OTHER: "PO-2026-0042"},
}, tags=["web"])  # fmt: skip
CLASSIC_ESTIMATE = {
    "id": "41", "estimateNumber": "41", "estimateDate": "20260503", "expirationDate": "20260602",
    "client": {"id": "17"}, "currency": "EUR", "notes": "Web y SEO", "status": "accepted",
    "tax1": {"name": "IVA", "rate": "21.00"},
    "estimateLines": [
        {"productCode": "WEB-001", "description": "Diseño web", "quantity": "1.00", "unitPrice": "1800.00",
         "discountRate": "0.00", "applyTax1": "true"},
        {"productCode": "SEO-002", "description": "SEO mensual", "quantity": "3.00", "unitPrice": "33.33",
         "discountRate": "10.00", "applyTax1": "true"},
        {"productCode": "LIB-003", "description": "Libro de estilo", "quantity": "2.00", "unitPrice": "19.99",
         "discountRate": "0.00", "applyTax1": "false"},
        {"productCode": "", "description": LABEL, "quantity": "1.00", "unitPrice": "0.01", "discountRate": "0.00",
         "applyTax1": "false"},
    ],
    "totalNetAmount": "1929.98", "totalTax1": "396.90", "totalAmount": "2326.88",
    "customAttributes": [{"label": "ID_CRM", "value": "812"}],
}  # fmt: skip
CANONICAL_LINES = [
    canonical_line("WEB-001", "Diseño web", 1, 1800, 0, 21),
    canonical_line("SEO-002", "SEO mensual", 3, "33.33", 10, 21),
    canonical_line("LIB-003", "Libro de estilo", 2, "19.99", 0, 0),
]


def estimates(**settings: Any) -> FacturaDirectaRestEstimateMapper:
    return FacturaDirectaRestEstimateMapper(directory(), **{"link_field_id": LINK, **settings})


def served(body: dict[str, Any], rid: str, *, before: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the server answers a write with: totals computed as the emulator computes them (per tax of the
    document, discount rates in percent), envelope and computed title; PUT keeps numbering (§9)."""
    main = copy.deepcopy(body["content"]["main"])
    if body["content"]["type"] == "estimate":
        lines = [Line(Decimal(str(x["quantity"])), Decimal(str(x["unitPrice"])), Decimal(str(x.get("discountRate", 0))),
                      Decimal(str(x.get("discount", 0))), tuple(x["tax"])) for x in main["lines"]]  # fmt: skip
        totals = compute(lines, percent_discounts=True, tax_included=False, per_line=False)
        for line, total in zip(main["lines"], totals.line_totals, strict=True):
            line["lineTotal"] = float(total)
        main.update(linesTotal=float(totals.lines_total), totalBeforeTaxes=float(totals.before_taxes),
                    total=float(totals.total), taxes=[{**t, "base": float(t["base"]), "amount": float(t["amount"])}
                                                      for t in totals.taxes])  # fmt: skip
        for name in ("series", "docNumber"):
            if before and name not in main:
                main[name] = before["content"]["main"][name]
    main["title"] = main["name"] if "name" in main else "Presupuesto"
    return envelope(body["content"]["type"], rid, main, body.get("tags"))


# -- contacts ------------------------------------------------------------------------------------------


def test_contact_reads_into_canonical_fields_with_the_link_from_its_custom_field():
    record = FacturaDirectaRestContactMapper(link_field_id=LINK).read("client", REST_COMPANY)
    assert record.data == {
        "tax_id": "B12345674", "name": "Acme Diseño S.L.", "email": "hola@acme.es", "street": "Calle Mayor 1, 2º B",
        "city": "Madrid", "state": "Madrid", "postal_code": "28013", "country": "ES",
    }  # fmt: skip
    assert (record.rtype, record.rid, record.key, record.kind, record.problem) == (
        "client", CON, "B12345674", Kind.COMPANY, None)  # fmt: skip
    assert record.link == "812" and record.modified == "2026-04-02T08:15:00.000000+00:00"
    assert set(record.data) == set(CONTACT_SCHEMA.fields)


def test_person_or_company_is_told_by_the_tax_id():
    mapper = FacturaDirectaRestContactMapper()
    person = mapper.read("client", REST_PERSON)
    assert person.kind == Kind.PERSON and person.data["name"] == "María García López"
    assert person.data["country"] == "ES" and person.link is None
    missing = copy.deepcopy(REST_PERSON)
    del missing["content"]["main"]["fiscalId"]
    assert mapper.read("client", missing).problem == "no_tax_id"
    missing["content"]["main"]["fiscalId"] = "B1234567X"
    assert mapper.read("client", missing).problem == "invalid_tax_id"


def test_contact_create_body_is_a_rest_envelope_with_our_link():
    data = FacturaDirectaRestContactMapper().read("client", REST_COMPANY).data | {"city": ""}
    body = FacturaDirectaRestContactMapper(link_field_id=LINK).create_body("client", data, link="812")
    assert body == {"content": {"type": "contact", "main": {
        "name": "Acme Diseño S.L.", "email": "hola@acme.es", "address": "Calle Mayor 1, 2º B", "region": "Madrid",
        "zipcode": "28013", "country": "ES", "fiscalId": "B12345674", "fiscalIdCountry": "ES",
        "customFields": {LINK: "812"}}}, "tags": []}  # fmt: skip
    without_link = FacturaDirectaRestContactMapper().create_body("client", data, link="812")
    assert "customFields" not in without_link["content"]["main"]


def test_contact_update_replaces_only_the_changed_fields_and_erases_nothing_of_the_users():
    """PUT replaces the whole record (§7): every field we do not map must be sent back as it was read."""
    mapper = FacturaDirectaRestContactMapper(link_field_id=LINK)
    record = mapper.read("client", REST_COMPANY)
    data = record.data | {"email": "ventas@acme.es", "street": ""}
    body = mapper.update_body("client", REST_COMPANY, data, {"email", "street"}, link="812")
    main = body["content"]["main"]
    before = REST_COMPANY["content"]["main"]
    assert main["email"] == "ventas@acme.es" and "address" not in main
    for unmapped in ("phone", "vatEU", "currency", "accounts", "fiscalIdCountry"):
        assert main[unmapped] == before[unmapped], unmapped
    assert main["customFields"] == {LINK: "812", OTHER: "PO-2026-0042"}
    assert body["tags"] == ["vip"] and "title" not in main  # tags would be erased; title is computed
    assert REST_COMPANY["content"]["main"]["email"] == "Hola@Acme.es"  # the record read is not modified
    relinked = mapper.update_body("client", REST_COMPANY, record.data, set(), link="900")
    assert relinked["content"]["main"]["customFields"] == {LINK: "900", OTHER: "PO-2026-0042"}


def test_contact_round_trip_through_a_create_and_an_update():
    mapper = FacturaDirectaRestContactMapper(link_field_id=LINK)
    data = mapper.read("client", REST_PERSON).data
    created = served(mapper.create_body("client", data, link="9"), PERSON)
    again = mapper.read("client", created)
    assert again.data == data and again.link == "9" and again.kind == Kind.PERSON
    changed = data | {"name": "María García Pérez", "tax_id": "X1234567L"}
    updated = mapper.read(
        "client", served(mapper.update_body("client", created, changed, {"name", "tax_id"}, "9"), PERSON)
    )
    assert updated.data == changed and updated.key == "X1234567L"


# -- products ------------------------------------------------------------------------------------------


def test_product_reads_sku_name_and_sales_price():
    record = FacturaDirectaRestProductMapper().read("product", PRODUCTS["SEO-002"])
    assert record.data == {"sku": "SEO-002", "name": "SEO mensual", "price": "33.33"}
    assert (record.rtype, record.rid, record.key, record.link) == ("product", SEO, "SEO-002", None)
    assert set(record.data) == set(PRODUCT_SCHEMA.fields)
    no_sku = rest_product(SEO, "", "Sin código", 1)
    assert FacturaDirectaRestProductMapper().read("product", no_sku).problem == "no_sku"


def test_product_create_body_is_a_sales_product_and_never_has_custom_fields():
    body = FacturaDirectaRestProductMapper().create_body(
        "product", {"sku": "WEB-001", "name": "Diseño web", "price": "1800.00"}, link="77"
    )
    assert body == {"content": {"type": "product", "main": {
        "name": "Diseño web", "sku": "WEB-001", "currency": "EUR",
        "sales": {"tax": ["S_IVA_21"], "account": "7000000", "price": 1800, "description": "Diseño web"}}},
        "tags": []}  # fmt: skip
    assert isinstance(body["content"]["main"]["sales"]["price"], int)
    cents = FacturaDirectaRestProductMapper().create_body(
        "product", {"sku": "A", "name": "A", "price": "0.10"}, None
    )
    assert cents["content"]["main"]["sales"]["price"] == 0.1


def test_product_update_keeps_facets_stock_and_external_id():
    raw = rest_product(SEO, "SEO-002", "SEO mensual", 33.33, externalId="erp-17",
                       purchases={"tax": ["P_IVA_21"], "account": "6000000", "price": 20},
                       stock={"enabled": True, "minimum": 2})  # fmt: skip
    raw["content"]["main"]["sales"]["description"] = "Posicionamiento"
    mapper = FacturaDirectaRestProductMapper()
    data = {"sku": "SEO-002", "name": "SEO mensual", "price": "35.50"}
    main = mapper.update_body("product", raw, data, {"price"}, link="71")["content"]["main"]
    assert main["sales"] == {
        "tax": ["S_IVA_21"],
        "account": "7050000",
        "price": 35.5,
        "description": "Posicionamiento",
    }
    assert main["purchases"] == raw["content"]["main"]["purchases"] and main["stock"] == {
        "enabled": True,
        "minimum": 2,
    }
    assert main["externalId"] == "erp-17" and "customFields" not in main and "title" not in main
    purchases_only = copy.deepcopy(raw)
    del purchases_only["content"]["main"]["sales"]
    added = mapper.update_body("product", purchases_only, data, {"price"}, None)["content"]["main"]
    assert added["sales"] == {"tax": ["S_IVA_21"], "account": "7000000", "price": 35.5}
    assert (
        mapper.read("product", served({"content": {"type": "product", "main": main}, "tags": []}, SEO)).data
        == data
    )


# -- estimates: read -----------------------------------------------------------------------------------


def test_estimate_reads_lines_by_sku_with_the_rounding_line_set_apart():
    record = estimates().read("estimate", REST_ESTIMATE)
    assert record.problem is None
    assert record.data == {
        "customer": "B12345674", "date": "2026-05-03", "expiration_date": "2026-06-02", "currency": "EUR",
        "status": "accepted", "notes": "Web y SEO", "lines": CANONICAL_LINES, "total": "2326.88",
    }  # fmt: skip
    assert record.rounding == Decimal("0.01") and set(record.data) == set(ESTIMATE_SCHEMA.fields)
    assert (record.rtype, record.rid, record.key, record.link) == ("estimate", EST, "CLI-812", "812")
    assert record.modified == "2026-04-02T08:15:00.000000+00:00"


def test_estimate_key_without_a_link_keeps_the_fd_prefix_and_an_unknown_contact_is_named():
    raw = copy.deepcopy(REST_ESTIMATE)
    raw["content"]["main"]["contact"] = "con_00000000-0000-4000-8000-000000000000"
    record = estimates(link_field_id=None).read("estimate", raw)
    assert record.key == f"FD-{EST}" and record.link is None
    assert record.data["customer"] == "facturadirecta-client:con_00000000-0000-4000-8000-000000000000"


def test_estimate_total_is_checked_against_the_servers_rule():
    raw = copy.deepcopy(REST_ESTIMATE)
    raw["content"]["main"]["total"] = 2326.89
    assert estimates().read("estimate", raw).problem == "totals_mismatch"
    lines = raw["content"]["main"]["lines"]
    lines[0]["document"] = "pro_99999999-0000-4000-8000-000000000000"  # a product the directory does not know
    raw["content"]["main"]["total"] = 2326.88
    assert estimates().read("estimate", raw).problem == "line_without_sku"


def test_estimate_discount_as_amount_or_rate_in_either_scale():
    raw = copy.deepcopy(REST_ESTIMATE)
    seo = raw["content"]["main"]["lines"][1]
    del seo["discountRate"]
    seo["discount"] = 10  # 99.99 − 10
    raw["content"]["main"].update(total=2326.89)  # nets 1800 + 89.99 + 39.98 + 0.01, VAT over 1889.99
    assert estimates().read("estimate", raw).data["lines"][1]["discount"] == "10.00"
    del seo["discount"]
    seo["discountRate"] = 0.1
    raw["content"]["main"].update(total=2326.88)
    fraction = estimates(discount_scale="fraction").read("estimate", raw)
    assert fraction.problem is None and fraction.data["lines"] == CANONICAL_LINES


@pytest.mark.parametrize(
    ("taxes", "rate"),
    [([], "0"), (["S_IVA_21"], "21"), (["S_IVA_10"], "10"), (["S_IVA_4"], "4"), (["S_IVA_0"], "0"),
     (["S_IVA_21", "S_IRPF_15"], None), (["S_IRPF_15"], None), (["S_IVA_99"], None)],
)  # fmt: skip
def test_vat_rate_table(taxes: list[str], rate: str | None):
    assert vat_rate(taxes) == (None if rate is None else Decimal(rate))


def test_estimate_with_a_withholding_or_tax_included_prices_is_not_synced():
    raw = copy.deepcopy(REST_ESTIMATE)
    raw["content"]["main"]["lines"][0]["tax"] = ["S_IVA_21", "S_IRPF_15"]
    assert estimates().read("estimate", raw).problem == "unsupported_tax_mix"
    raw = copy.deepcopy(REST_ESTIMATE)
    raw["content"]["main"]["taxIncludedPrices"] = True
    assert estimates().read("estimate", raw).problem == "not_representable"


# -- estimates: write ----------------------------------------------------------------------------------


def twos(n: int) -> list[dict[str, str]]:
    """n lines of 2.50 at 21 %: VAT per line is n/2 cents above VAT once per document."""
    return [canonical_line("WEB-001" if i % 2 else "SEO-002", "Línea", 1, "2.50", 0, 21) for i in range(n)]


def document(lines: list[dict[str, str]], total: Any = None, **fields: str) -> dict[str, Any]:
    data = {"customer": "B12345674", "date": "2026-05-03", "expiration_date": "", "currency": "EUR",
            "status": "pending", "notes": "", "lines": lines}  # fmt: skip
    return data | {"total": "" if total is None else str(total)} | fields


def test_estimate_create_body_names_contact_products_and_tax_ids():
    data = document(CANONICAL_LINES, notes="Web y SEO", expiration_date="2026-06-02")
    data["lines"] = [CANONICAL_LINES[0], canonical_line("SEO-002", "SEO mensual", 3, "33.33", "10.00", 10)]
    body = estimates().create_body("estimate", data, link="812")
    assert body == {"content": {"type": "estimate", "main": {
        "contact": CON, "date": "2026-05-03", "dueDate": "2026-06-02", "currency": "EUR", "baseState": "pending",
        "notes": "Web y SEO",
        "lines": [
            {"text": "Diseño web", "quantity": 1, "unitPrice": 1800, "tax": ["S_IVA_21"], "document": WEB},
            {"text": "SEO mensual", "quantity": 3, "unitPrice": 33.33, "tax": ["S_IVA_10"], "document": SEO,
             "discount": 10},
        ],
        "customFields": {LINK: "812"}}}, "tags": []}  # fmt: skip


def test_estimate_written_from_a_per_line_total_gets_our_rounding_line():
    lines = twos(2)
    clientify_total = totals_per_line(lines).total  # 6.06; FacturaDirecta alone would show 6.05
    body = estimates().create_body("estimate", document(lines, clientify_total), link="812")
    assert body["content"]["main"]["lines"][-1] == {
        "text": LABEL,
        "quantity": 1,
        "unitPrice": 0.01,
        "tax": [],
    }
    record = estimates().read("estimate", served(body, EST))
    assert record.problem is None and record.data["lines"] == lines
    assert record.rounding == Decimal("0.01") and record.data["total"] == str(clientify_total)
    exact = estimates().create_body("estimate", document(lines, "6.05"), link=None)
    assert all(line["text"] != LABEL for line in exact["content"]["main"]["lines"])


def test_estimate_totals_that_no_adjustment_explains_are_refused():
    with pytest.raises(TotalsNotRepresentableError):
        estimates().create_body("estimate", document(twos(2), "6.10"), link=None)
    with pytest.raises(TotalsNotRepresentableError):
        estimates(rounding=RoundingPolicy(enabled=False)).create_body(
            "estimate", document(twos(2), "6.06"), None
        )


def test_estimate_lines_the_rest_api_cannot_hold_are_refused_before_any_call():
    with pytest.raises(UnsupportedTaxMixError):
        estimates().create_body("estimate", document([canonical_line("WEB-001", "x", 1, 10, 0, 16)]), None)
    with pytest.raises(DiscountNotRepresentableError):
        estimates().create_body("estimate", document([canonical_line("WEB-001", "x", 1, 10, -1, 21)]), None)
    with pytest.raises(DependencyMissingError):
        estimates().create_body("estimate", document([canonical_line("NOPE", "x", 1, 10, 0, 21)]), None)
    with pytest.raises(DependencyMissingError):
        estimates().create_body("estimate", document(twos(1), customer="A58818501"), None)


def test_estimate_update_keeps_every_field_of_the_users_and_drops_what_the_server_computes():
    """PUT replaces the whole estimate (§9): owner, numbering, the user's custom field, tags, a line's
    account all survive; totals are left to the server."""
    mapper = estimates()
    record = mapper.read("estimate", REST_ESTIMATE)
    lines = [*CANONICAL_LINES[:2], canonical_line("LIB-003", "Libro de estilo", 5, "19.99", 0, 0)]
    data = record.data | {"status": "rejected", "lines": lines, "total": ""}
    body = mapper.update_body("estimate", REST_ESTIMATE, data, {"status", "lines"}, link="812")
    main, before = body["content"]["main"], REST_ESTIMATE["content"]["main"]
    assert main["baseState"] == "rejected" and body["tags"] == ["web"]
    for unmapped in ("owner", "series", "docNumber", "isProforma", "taxIncludedPrices", "contact", "notes"):
        assert main[unmapped] == before[unmapped], unmapped
    assert main["customFields"] == {LINK: "812", OTHER: "PO-2026-0042"}
    assert not {"title", "linesTotal", "totalBeforeTaxes", "taxes", "total"} & set(main)
    assert [line.get("account") for line in main["lines"]] == ["7050001", "7050000", "7050000"]
    assert all("lineTotal" not in line and "discountRate" not in line for line in main["lines"])
    assert main["lines"][1]["discount"] == 10 and main["lines"][2]["quantity"] == 5
    again = mapper.read("estimate", served(body, EST, before=REST_ESTIMATE))
    assert again.problem is None and again.data["lines"] == lines and again.rounding == 0
    status_only = mapper.update_body("estimate", REST_ESTIMATE, record.data, {"status"}, link="812")
    assert status_only["content"]["main"]["lines"] == [
        {k: v for k, v in line.items() if k != "lineTotal"} for line in before["lines"]
    ]  # the lines as read, our rounding line included


def test_notes_may_live_in_a_custom_field():
    notes = "cfi_5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
    raw = copy.deepcopy(REST_ESTIMATE)
    raw["content"]["main"]["customFields"][notes] = "Entrega en junio"
    mapper = estimates(notes_field=notes)
    record = mapper.read("estimate", raw)
    assert record.data["notes"] == "Entrega en junio"
    body = mapper.update_body("estimate", raw, record.data | {"notes": ""}, {"notes"}, link="812")
    assert body["content"]["main"]["customFields"] == {LINK: "812", OTHER: "PO-2026-0042"}
    assert body["content"]["main"]["notes"] == "Web y SEO"  # a main field of the user's, untouched


# -- the same account on both APIs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("classic", "rest"), [(CLASSIC_COMPANY, REST_COMPANY), (CLASSIC_PERSON, REST_PERSON)]
)
def test_contacts_read_alike_on_both_apis(classic: dict[str, Any], rest: dict[str, Any]):
    old = FacturaDirectaClientMapper().read("client", classic)
    new = FacturaDirectaRestContactMapper(link_field_id=LINK).read("client", rest)
    assert new.data == old.data and new.content_hash == old.content_hash
    assert (new.rtype, new.key, new.kind, new.problem, new.link) == (
        old.rtype,
        old.key,
        old.kind,
        old.problem,
        old.link,
    )


def test_products_read_alike_on_both_apis():
    classic = {"id": "5", "productCode": "SEO-002", "name": "SEO mensual", "description": "SEO mensual",
               "price": "33.33", "applyTax1": "true"}  # fmt: skip
    old = FacturaDirectaProductMapper(link_attribute=None).read("product", classic)
    new = FacturaDirectaRestProductMapper().read("product", PRODUCTS["SEO-002"])
    assert new.data == old.data and (new.rtype, new.key, new.problem) == (old.rtype, old.key, old.problem)


def test_estimates_read_alike_on_both_apis():
    old = FacturaDirectaEstimateMapper(classic_directory()).read("estimate", CLASSIC_ESTIMATE)
    new = estimates().read("estimate", REST_ESTIMATE)
    assert old.problem is None and new.data == old.data and new.content_hash == old.content_hash
    assert (new.rtype, new.key, new.rounding, new.link) == (old.rtype, old.key, old.rounding, old.link)


def test_what_one_api_writes_the_other_reads_alike():
    """A document the sync wrote through the classic API and one it writes through the REST API, from the
    same canonical data, read back the same (our rounding line included)."""
    lines = twos(3)
    data = document(lines, totals_per_line(lines).total, notes="Tres líneas")
    classic_mapper = FacturaDirectaEstimateMapper(
        Directory(customers={"B12345674": {"inv": "17", "crm": ("company", "7")}}, inv_customer_keys={"17": "B12345674"})
    )  # fmt: skip
    classic_body = classic_mapper.create_body("estimate", data, link="812")
    classic_lines = [line | {"applyTax2": "false"} for line in classic_body["estimateLines"]]
    nets = [Decimal(x["quantity"]) * Decimal(x["unitPrice"]) for x in classic_lines]
    taxed = sum(n for n, x in zip(nets, classic_lines, strict=True) if x["applyTax1"] == "true")
    classic = {"id": "42", "estimateDate": "20260503", "client": {"id": "17"}, "currency": "EUR",
               "status": "pending", "notes": "Tres líneas", "tax1": classic_body["tax1"], "estimateLines": classic_lines,
               "totalAmount": str(sum(nets) + (taxed * Decimal("0.21")).quantize(Decimal("0.01"))),
               "customAttributes": classic_body["customAttributes"]}  # fmt: skip
    rest = served(estimates().create_body("estimate", data, link="812"), EST)
    old, new = classic_mapper.read("estimate", classic), estimates().read("estimate", rest)
    assert old.problem is None and new.problem is None
    assert new.data == old.data and (new.key, new.rounding) == (old.key, old.rounding) == (
        "CLI-812",
        Decimal("0.01"),
    )


# -- against the sandbox's strict REST emulator --------------------------------------------------------


class Rest:
    """The REST API of the sandbox's main company (tests/sandbox/test_facturadirecta_rest_contract.py)."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        cfg = sandbox.config("facturadirecta")
        self.http = httpx.Client(base_url=f"{sandbox.facturadirecta_url}/api/{cfg['rest_company_id']}",
                                 headers={"facturadirecta-api-key": cfg["rest_api_key"]}, timeout=30)  # fmt: skip

    def send(self, method: str, path: str, body: Any = None, **kwargs: Any) -> dict[str, Any]:
        response = self.http.request(method, path, json=body, **kwargs)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def field(self, title: str, doc_types: list[str]) -> str:
        return str(
            self.send("POST", "/customFields", {"title": title, "docTypes": doc_types})["content"]["id"]
        )


@pytest.fixture
def rest(clean_sandbox: SandboxHandle) -> Iterator[Rest]:
    clean_sandbox.config("facturadirecta", rest_unknown_fields="reject")  # nothing undocumented is sent
    client = Rest(clean_sandbox)
    yield client
    client.http.close()


def test_sandbox_accepts_our_bodies_and_an_update_erases_nothing(rest: Rest):
    link, other = rest.field("ID_CRM", ["contact", "estimate"]), rest.field("Pedido", ["contact"])
    mapper = FacturaDirectaRestContactMapper(link_field_id=link)
    data = mapper.read("client", REST_COMPANY).data
    created = rest.send("POST", "/contacts", mapper.create_body("client", data, link="812"))
    assert mapper.read("client", created).data == data
    # The user adds what we do not map, in the web app.
    rid, main = created["content"]["uuid"], copy.deepcopy(created["content"]["main"])
    main.update(
        phone="+34910000000", vatEU="ESB12345674", customFields={**main["customFields"], other: "PO-1"}
    )
    read = rest.send(
        "PUT", f"/contacts/{rid}", {"content": {"type": "contact", "main": main}, "tags": ["vip"]}
    )
    record = mapper.read("client", read)
    rest.send(
        "PUT",
        f"/contacts/{rid}",
        mapper.update_body("client", read, data | {"city": "Getafe"}, {"city"}, "812"),
    )
    after = rest.send("GET", f"/contacts/{rid}")
    assert mapper.read("client", after).data == record.data | {"city": "Getafe"}
    kept = after["content"]["main"]
    assert (kept["phone"], kept["vatEU"], kept["customFields"], after["tags"]) == (
        "+34910000000", "ESB12345674", {link: "812", other: "PO-1"}, ["vip"])  # fmt: skip
    assert kept["accounts"] == created["content"]["main"]["accounts"]


def test_sandbox_computes_the_total_our_rounding_line_aims_at(rest: Rest):
    link = rest.field("ID_CRM", ["contact", "estimate"])
    contacts = FacturaDirectaRestContactMapper(link_field_id=link)
    products = FacturaDirectaRestProductMapper()
    contact = rest.send(
        "POST", "/contacts", contacts.create_body("client", contacts.read("client", REST_COMPANY).data, "7")
    )
    made = {sku: rest.send("POST", "/products", products.create_body("product", products.read("product", raw).data, None))
            for sku, raw in PRODUCTS.items()}  # fmt: skip
    directory = Directory(
        customers={"B12345674": {"inv": contact["content"]["uuid"], "crm": ("company", "7")}},
        products={sku: {"inv": raw["content"]["uuid"], "crm": "70"} for sku, raw in made.items()},
        inv_customer_keys={contact["content"]["uuid"]: "B12345674"}, inv_products_raw=made,
    )  # fmt: skip
    mapper = FacturaDirectaRestEstimateMapper(
        directory, link_field_id=link, notes_field=rest.field("Notas", ["estimate"])
    )
    lines = twos(5) + [canonical_line("LIB-003", "Libro", 2, "19.99", "1.99", 0)]
    data = document(lines, totals_per_line(lines).total, notes="Cinco líneas")
    created = rest.send("POST", "/estimates", mapper.create_body("estimate", data, link="812"))
    record = mapper.read("estimate", created)
    assert record.problem is None and record.rounding == Decimal("0.02")
    assert record.data == data | {"total": str(totals_per_line(lines).total)}
    assert Decimal(str(created["content"]["main"]["total"])) == totals_per_line(lines).total
    rid = created["content"]["uuid"]
    fewer = document(lines[:2], totals_per_line(lines[:2]).total, notes="Dos líneas")
    rest.send(
        "PUT",
        f"/estimates/{rid}",
        mapper.update_body("estimate", created, fewer, {"lines", "total", "notes"}, "812"),
    )
    after = rest.send("GET", f"/estimates/{rid}")
    again = mapper.read("estimate", after)
    assert again.data == fewer and again.rounding == Decimal("0.01") and again.key == "CLI-812"
    assert after["content"]["main"]["docNumber"] == created["content"]["main"]["docNumber"]


def rest_listing(rest: Rest, resource: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        page = rest.send("GET", f"/{resource}", None, params={"offset": len(items), "limit": 500})
        items += page["items"]
        if len(items) >= page["pagination"]["total"]:
            return items


def canonical(records: list[Any], *, without: tuple[str, ...] = ()) -> list[str]:
    """A side's canonical records as a sorted list (ids differ between the APIs, and so may the order)."""
    return sorted(
        json.dumps(
            [
                r.key if r.rtype != "estimate" else "",
                r.kind,
                r.problem,
                {k: v for k, v in r.data.items() if k not in without},
            ],
            sort_keys=True,
        )  # fmt: skip
        for r in records
    )


def test_the_same_seeded_account_reads_alike_on_both_apis(rest: Rest, clean_sandbox: SandboxHandle):
    """The sandbox seeds the same generated account into both APIs (different ids): every client, product
    and estimate maps to the same canonical data whichever API it is read through, notes included (the
    seed adds an estimate's notes once the REST model has read it)."""
    clean_sandbox.seed("facturadirecta", target="both", seed=11, clients=40, products=15, estimates=25,
                       client_options={"invalid_rfc": 0.05, "no_rfc": 0.05})  # fmt: skip
    classic = facturadirecta_for(clean_sandbox)
    old_contacts = [FacturaDirectaClientMapper().read("client", r) for r in classic.clients.iter_records()]
    old_products = [FacturaDirectaProductMapper().read("product", r) for r in classic.products.iter_records()]
    new_contacts = [
        FacturaDirectaRestContactMapper().read("client", r) for r in rest_listing(rest, "contacts")
    ]
    new_products = [
        FacturaDirectaRestProductMapper().read("product", r) for r in rest_listing(rest, "products")
    ]
    assert len(new_contacts) == 40 and canonical(new_contacts) == canonical(old_contacts)
    assert len(new_products) == 15 and canonical(new_products) == canonical(old_products)
    old_directory = Directory(inv_customer_keys={r.rid: r.key for r in old_contacts})
    new_directory = Directory(inv_customer_keys={r.rid: r.key for r in new_contacts},
                              inv_products_raw={r.key: r.raw or {} for r in new_products if r.key})  # fmt: skip
    old_estimates = [FacturaDirectaEstimateMapper(old_directory).read("estimate", r)
                     for r in classic.estimates.iter_records()]  # fmt: skip
    new_estimates = [FacturaDirectaRestEstimateMapper(new_directory).read("estimate", r)
                     for r in rest_listing(rest, "estimates")]  # fmt: skip
    assert len(new_estimates) == 25 and all(r.problem is None for r in new_estimates)
    assert canonical(new_estimates) == canonical(old_estimates)
