"""FacturaDirecta's classic (XML) client and product mappings on literal records: ``read``, the partial-PUT
bodies and the link kept in a custom attribute. (The classic API read alike the REST one:
tests/engine/mapping/test_facturadirecta_rest.py; every read's output is pinned by the golden corpus.)"""

from __future__ import annotations

import pytest

from clientify_sync.engine.mapping.facturadirecta import (
    FacturaDirectaClientMapper,
    FacturaDirectaProductMapper,
    custom_attribute,
    link_patch,
)
from clientify_sync.engine.vocabulary import Side

PERSON = {
    "id": "1",
    "legalType": "F",
    "personName": "Paula",
    "personSurname": "Sanz  Ruiz",
    "name": "",
    "taxCode": "05403227-k",
    "email": "Paula.Sanz@Correo.Example.NET",
    "address": {"line1": "Calle Real, 106", "line2": "2º B", "city": "Lugo", "province": "Lugo", "zipcode": "27794",
                "country": "ESPAÑA"},
    "customAttributes": [{"label": "OTRO", "value": "x"}, {"label": "ID_CRM", "value": " 1000040 "}],
}  # fmt: skip
COMPANY = {"id": "2", "legalType": "J", "name": "Comercial Guadalquivir SL", "taxCode": "B21910682",
           "email": "", "address": {"line1": "Calle Santiago, 110", "line2": "", "city": "Huelva",
                                    "province": "Huelva", "zipcode": "21264", "country": "ES"}}  # fmt: skip
CLIENTS = FacturaDirectaClientMapper()


def test_our_custom_attribute_is_read_and_sent_alone():
    assert custom_attribute(PERSON, "ID_CRM") == "1000040"
    assert custom_attribute(PERSON, "NADA") is None and custom_attribute(COMPANY, "ID_CRM") is None
    assert link_patch(PERSON, "ID_CRM", "1000040") == {}  # held already
    assert link_patch(PERSON, "ID_CRM", "1000041") == {
        "customAttributes": [{"label": "ID_CRM", "value": "1000041"}]
    }
    assert link_patch(PERSON, None, "1000041") == {} and link_patch(PERSON, "ID_CRM", None) == {}


# -- clients: read -----------------------------------------------------------------------------------
def test_a_person_reads_name_and_surnames_and_both_address_lines():
    record = CLIENTS.read("client", PERSON)
    assert record.data == {
        "tax_id": "05403227K",
        "name": "Paula Sanz Ruiz",
        "email": "paula.sanz@correo.example.net",
        "street": "Calle Real, 106, 2º B",
        "city": "Lugo",
        "state": "Lugo",  # the province
        "postal_code": "27794",
        "country": "ES",
    }
    assert (record.side, record.rtype, record.rid, record.key, record.kind, record.problem, record.link) == (
        Side.INVOICING, "client", "1", "05403227K", "person", None, "1000040",
    )  # fmt: skip


def test_a_company_reads_its_name_and_a_single_address_line():
    record = CLIENTS.read("client", COMPANY)
    assert (record.data["name"], record.data["street"], record.kind, record.link) == (
        "Comercial Guadalquivir SL", "Calle Santiago, 110", "company", None,
    )  # fmt: skip


def test_without_a_link_attribute_no_link_is_read():
    assert FacturaDirectaClientMapper(link_attribute=None).read("client", PERSON).link is None
    assert FacturaDirectaClientMapper(link_attribute="OTRO").read("client", PERSON).link == "x"


@pytest.mark.parametrize(
    ("tax_code", "problem"),
    [("", "no_tax_id"), ("CPB130412IH9", "other_platform"), ("B2191068X", "invalid_tax_id")],
)
def test_a_tax_code_that_cannot_be_matched_says_why(tax_code, problem):
    assert CLIENTS.read("client", {**COMPANY, "taxCode": tax_code}).problem == problem


# -- clients: bodies ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tax_id", "name", "legal_type", "names"),
    [
        ("B21910682", "Comercial Guadalquivir SL", "J", {"name": "Comercial Guadalquivir SL"}),
        ("05403227K", "Paula Sanz Ruiz", "F", {"personName": "Paula", "personSurname": "Sanz Ruiz"}),
    ],
)
def test_a_create_tells_a_company_from_a_person_by_the_tax_id(tax_id, name, legal_type, names):
    data = CLIENTS.read("client", COMPANY).data | {"tax_id": tax_id, "name": name}
    body = CLIENTS.create_body("client", data, link="2000034")
    assert body["legalType"] == legal_type and body["taxCode"] == tax_id
    assert {k: body[k] for k in names} == names and ("name" in body) == (legal_type == "J")
    assert body["address"] == {"line1": "Calle Santiago, 110", "line2": "", "city": "Huelva", "province": "Huelva",
                               "zipcode": "21264", "country": "ES"}  # fmt: skip
    assert body["customAttributes"] == [{"label": "ID_CRM", "value": "2000034"}]


def test_an_update_sends_only_the_changed_fields_and_address_elements():
    data = CLIENTS.read("client", PERSON).data | {
        "name": "Paula Sanz",
        "city": "Monforte",
        "email": "p@x.example",
    }
    body = CLIENTS.update_body("client", PERSON, data, {"name", "city", "email"}, link="1000040")
    assert body == {
        "personName": "Paula",
        "personSurname": "Sanz",
        "email": "p@x.example",
        "address": {"city": "Monforte"},  # merged element by element by the API
    }  # the link is held: not sent


def test_a_new_street_is_one_line_and_clears_the_second():
    data = CLIENTS.read("client", PERSON).data | {"street": "Rúa Nova, 1"}
    body = CLIENTS.update_body("client", PERSON, data, {"street"}, link="1000041")
    assert body == {"address": {"line1": "Rúa Nova, 1", "line2": ""},
                    "customAttributes": [{"label": "ID_CRM", "value": "1000041"}]}  # fmt: skip


# -- products ----------------------------------------------------------------------------------------
PRODUCTS = FacturaDirectaProductMapper()
PRODUCT = {"id": "5", "productCode": "seo-002", "name": "Auditoría SEO", "description": "Informe", "price": "450.5",
           "customAttributes": [{"label": "ID_CRM", "value": "3000007"}]}  # fmt: skip


def test_a_product_reads_its_code_as_the_sku_and_its_link():
    record = PRODUCTS.read("product", PRODUCT)
    assert record.data == {"sku": "seo-002", "name": "Auditoría SEO", "price": "450.50"}
    assert (record.rid, record.key, record.problem, record.link) == ("5", "SEO-002", None, "3000007")
    assert PRODUCTS.read("product", {**PRODUCT, "productCode": ""}).problem == "no_sku"


def test_a_product_create_describes_it_by_its_name_and_an_update_sends_the_changes():
    data = {"sku": "SEO-003", "name": "Auditoría", "price": "99.00"}
    assert PRODUCTS.create_body("product", data, link="3000008") == {
        "productCode": "SEO-003", "name": "Auditoría", "price": "99.00", "description": "Auditoría",
        "customAttributes": [{"label": "ID_CRM", "value": "3000008"}],
    }  # fmt: skip
    assert PRODUCTS.update_body("product", PRODUCT, data, {"price"}, link="3000007") == {"price": "99.00"}
