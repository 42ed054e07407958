"""Facturama's client and product mappings on literal records: what ``read`` makes of each field, and
the bodies a create or a full-object update sends. (Empty strings, the e-mail Facturama requires and the
product's CFDI defaults are in tests/engine/test_documents.py; every read's output is pinned by the
golden corpus, tests/engine/mapping/golden.)"""

from __future__ import annotations

import pytest

from clientify_sync.engine.mapping.facturama import (
    FacturamaClientMapper,
    FacturamaProductMapper,
    compose_street,
)
from clientify_sync.engine.vocabulary import Side

COMPANY = {
    "Id": "C1",
    "Rfc": "cpb-130412-ih9",  # as typed by a user: separators and lower case
    "Name": "  COMERCIAL   PB  ",
    "Email": "Ventas@PB.example.MX",
    "CfdiUse": "G01",
    "FiscalRegime": "612",
    "TaxZipCode": "06600",
    "Address": {"Street": "Reforma", "ExteriorNumber": "222", "InteriorNumber": "4B", "Neighborhood": "Juárez",
                "Municipality": "Cuauhtémoc", "Locality": "Ciudad de México", "State": "CDMX", "ZipCode": "06600",
                "Country": "MEXICO"},
}  # fmt: skip
CLIENTS = FacturamaClientMapper()
PRODUCTS = FacturamaProductMapper()


# -- clients: read -----------------------------------------------------------------------------------
def test_a_client_reads_into_canonical_fields():
    record = CLIENTS.read("client", COMPANY)
    assert record.data == {
        "tax_id": "CPB130412IH9",
        "name": "COMERCIAL PB",
        "email": "ventas@pb.example.mx",
        "street": "Reforma 222 Int. 4B",  # the neighbourhood is not synced
        "city": "Cuauhtémoc",
        "state": "CDMX",
        "postal_code": "06600",
        "country": "MX",
    }
    assert (record.side, record.rtype, record.rid) == (Side.INVOICING, "client", "C1")
    assert (record.key, record.kind, record.problem, record.link) == ("CPB130412IH9", "company", None, None)
    assert record.raw is COMPANY  # kept whole for the next read-modify-write


def test_the_city_falls_back_to_the_locality_and_the_postal_code_to_the_address():
    raw = {**COMPANY, "TaxZipCode": None, "Address": {"Locality": "León", "ZipCode": "37000"}}
    data = CLIENTS.read("client", raw).data
    assert (data["city"], data["postal_code"], data["street"], data["country"]) == ("León", "37000", "", "")


@pytest.mark.parametrize(
    ("rfc", "kind", "problem"),
    [
        ("DIRV680925MN4", "person", None),  # 13 characters
        ("CPB130412IH9", "company", None),  # 12
        ("XAXX010101000", None, "generic_tax_id"),  # the public's generic RFC: never matched on
        ("B21910682", None, "other_platform"),  # a Spanish NIF belongs to the FacturaDirecta integration
        ("", None, "no_tax_id"),
    ],
)
def test_the_rfc_decides_person_company_or_why_not(rfc, kind, problem):
    record = CLIENTS.read("client", {**COMPANY, "Rfc": rfc})
    assert (record.kind, record.problem) == (kind, problem)


def test_compose_street_leaves_out_what_is_missing():
    assert compose_street({"Street": "Reforma", "InteriorNumber": "4B"}) == "Reforma Int. 4B"
    assert compose_street({"ExteriorNumber": "222"}) == "222"
    assert compose_street({}) == ""


# -- clients: bodies ---------------------------------------------------------------------------------
def data(**changes: str) -> dict[str, str]:
    return CLIENTS.read("client", COMPANY).data | changes


@pytest.mark.parametrize(("rfc", "regime"), [("CPB130412IH9", "601"), ("DIRV680925MN4", "616")])
def test_a_create_carries_the_fiscal_regime_of_a_company_or_a_person(rfc, regime):
    body = CLIENTS.create_body("client", data(tax_id=rfc), link="990")
    assert (body["Rfc"], body["FiscalRegime"], body["CfdiUse"]) == (rfc, regime, "G03")
    assert body["Address"] == {"Street": "Reforma 222 Int. 4B", "ExteriorNumber": None, "InteriorNumber": None,
                               "Municipality": "Cuauhtémoc", "State": "CDMX", "ZipCode": "06600",
                               "Country": "MEX"}  # fmt: skip
    assert (body["Name"], body["Email"], body["TaxZipCode"]) == (
        "COMERCIAL PB",
        "ventas@pb.example.mx",
        "06600",
    )
    assert "990" not in str(body)  # Facturama has no field for the link


def test_the_regime_and_use_are_settings():
    mapper = FacturamaClientMapper(cfdi_use="S01", fiscal_regime_company="603")
    body = mapper.create_body("client", data(), link=None)
    assert (body["CfdiUse"], body["FiscalRegime"]) == ("S01", "603")


def test_an_update_sends_the_whole_object_with_only_the_changed_fields_replaced():
    body = CLIENTS.update_body("client", COMPANY, data(name="COMERCIAL PB SA"), {"name"}, link=None)
    assert body["Name"] == "COMERCIAL PB SA"
    # What is not synced travels back as Facturama holds it: a full PUT would erase it otherwise.
    assert (body["CfdiUse"], body["FiscalRegime"], body["Rfc"]) == ("G01", "612", "cpb-130412-ih9")
    assert body["Address"] == COMPANY["Address"]
    assert COMPANY["Name"] == "  COMERCIAL   PB  "  # the stored raw record is not touched


def test_a_new_street_replaces_the_numbers_and_an_emptied_field_is_cleared():
    changed = {"street", "state", "country"}
    body = CLIENTS.update_body(
        "client", COMPANY, data(street="Insurgentes 10", state="", country="MX"), changed, None
    )
    address = body["Address"]
    assert (address["Street"], address["ExteriorNumber"], address["InteriorNumber"]) == (
        "Insurgentes 10",
        None,
        None,
    )
    assert (address["State"], address["Country"], address["Neighborhood"]) == (None, "MEX", "Juárez")


def test_a_postal_code_change_travels_in_both_fields():
    body = CLIENTS.update_body("client", COMPANY, data(postal_code="01000"), {"postal_code"}, None)
    assert (body["TaxZipCode"], body["Address"]["ZipCode"]) == ("01000", "01000")


# -- products ----------------------------------------------------------------------------------------
PRODUCT = {"Id": "P1", "Name": "Sitio web", "IdentificationNumber": "web-003", "Price": 1500.5, "Unit": "Servicio",
           "UnitCode": "E48", "CodeProdServ": "81112100", "TaxObject": "02", "CuentaPredial": None,
           "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}]}  # fmt: skip


def test_a_product_reads_its_sku_as_the_key_and_its_price_to_the_cent():
    record = PRODUCTS.read("product", PRODUCT)
    assert record.data == {"sku": "web-003", "name": "Sitio web", "price": "1500.50"}
    assert (record.rtype, record.rid, record.key, record.problem) == ("product", "P1", "WEB-003", None)


def test_a_product_without_sku_cannot_be_matched():
    record = PRODUCTS.read("product", {**PRODUCT, "IdentificationNumber": " "})
    assert (record.key, record.problem) == ("", "no_sku")


def test_a_product_create_sends_the_price_as_a_json_number_and_the_default_taxes():
    body = PRODUCTS.create_body("product", {"sku": "WEB-9", "name": "Hosting", "price": "99.90"}, link=None)
    assert (body["IdentificationNumber"], body["Name"], body["Price"]) == ("WEB-9", "Hosting", 99.9)
    assert isinstance(body["Price"], float)
    assert (body["UnitCode"], body["CodeProdServ"]) == ("E48", "01010101")
    assert body["Taxes"] == [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}]
    body["Taxes"].clear()  # each body gets its own copy of the defaults
    assert PRODUCTS.create_body("product", {"sku": "X", "name": "Y", "price": "1.00"}, None)["Taxes"]


def test_a_product_update_replaces_the_changed_fields_and_keeps_an_unknown_price():
    new = {"sku": "WEB-003", "name": "Sitio", "price": ""}
    body = PRODUCTS.update_body("product", PRODUCT, new, {"sku", "name", "price"}, link=None)
    assert (body["IdentificationNumber"], body["Name"]) == ("WEB-003", "Sitio")
    assert body["Price"] == 1500.5  # no price to send: the one Facturama holds stays
    assert (body["CodeProdServ"], body["Taxes"]) == ("81112100", PRODUCT["Taxes"])
