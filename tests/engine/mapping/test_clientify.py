"""Clientify's contact, company and product mappings on literal records: ``read``, the partial-PUT bodies
(only the changed fields, lists rebuilt so nothing of the user's is lost) and our link field. (Budgets:
tests/engine/test_documents.py; every read's output is pinned by the golden corpus.)"""

from __future__ import annotations

import pytest

from clientify_sync.engine.mapping.clientify import (
    BILLING_ADDRESS,
    MAIN_ADDRESS,
    MAIN_EMAIL,
    ClientifyContactMapper,
    ClientifyProductMapper,
    link_patch,
    pick_address,
    pick_email,
    utc_iso,
)
from clientify_sync.engine.taxid import classify_nif, classify_rfc
from clientify_sync.engine.vocabulary import Side

LINK = "in_facturama"
CONTACTS = ClientifyContactMapper(classify=classify_rfc, link_field=LINK)
OTHER_EMAIL, OTHER_ADDRESS = 1, 2  # "Work" e-mail, "Office" address: the user's, never ours

PERSON = {
    "id": 10,
    "first_name": "Verónica",
    "last_name": "Guzmán  Castillo",
    "taxpayer_identification_number": "dirv680925mn4",
    "emails": [{"type": OTHER_EMAIL, "email": "vero@work.example"}, {"type": MAIN_EMAIL, "email": "Vero@Example.MX"}],
    "addresses": [
        {"type": OTHER_ADDRESS, "street": "Oficina 1", "city": "Culiacán", "state": "Sinaloa", "postal_code": "80000",
         "country": "Mexico"},
        {"type": BILLING_ADDRESS, "street": "Independencia 6190", "city": "Culiacán", "state": "Sinaloa",
         "postal_code": "80499", "country": "México"},
    ],
    "custom_fields": [{"field": "other", "value": "x"}, {"field": LINK, "value": " FM-1 "}],
    "modified": "2026-05-03T10:30:15.000500+02:00",
}  # fmt: skip
COMPANY = {"id": 20, "name": "Comercial PB", "taxpayer_identification_number": "CPB130412IH9", "emails": [],
           "addresses": [], "custom_fields": [], "modified": "2026-05-03T08:00:00Z"}  # fmt: skip


# -- helpers --------------------------------------------------------------------------------------
def test_modified_becomes_sortable_utc_with_microseconds():
    assert utc_iso("2026-05-03T10:30:15.5+02:00") == "2026-05-03T08:30:15.500000+00:00"
    assert utc_iso("2026-05-03T08:00:00Z") == "2026-05-03T08:00:00.000000+00:00"
    assert utc_iso(None) is None and utc_iso("") is None
    with pytest.raises(ValueError, match="naive timestamp"):
        utc_iso("2026-05-03T08:00:00")  # no zone: it could be any hour


def test_the_billing_address_is_ours_else_the_main_one_else_the_first():
    main, billing, office = {"type": MAIN_ADDRESS}, {"type": BILLING_ADDRESS}, {"type": OTHER_ADDRESS}
    assert pick_address([office, main, billing]) == (2, billing)
    assert pick_address([office, main]) == (1, main)
    assert pick_address([office]) == (0, office)
    assert pick_address([]) == (None, {})


def test_the_main_email_is_ours_else_the_first():
    assert pick_email(PERSON["emails"]) == (1, "vero@example.mx")
    assert pick_email([{"type": OTHER_EMAIL, "email": " A@B.example "}]) == (0, "a@b.example")
    assert pick_email([]) == (None, "")


def test_the_link_field_is_sent_only_when_the_record_does_not_hold_it_yet():
    assert link_patch(PERSON, LINK, "FM-1") == {}  # held already (white space aside)
    assert link_patch(PERSON, LINK, "FM-2") == {"custom_fields": [{"field": LINK, "value": "FM-2"}]}
    assert link_patch(PERSON, LINK, None) == {}


# -- contacts and companies: read -----------------------------------------------------------------
def test_a_person_reads_into_canonical_fields():
    record = CONTACTS.read("contact", PERSON)
    assert record.data == {
        "tax_id": "DIRV680925MN4",
        "name": "Verónica Guzmán Castillo",
        "email": "vero@example.mx",  # the main one, not the first
        "street": "Independencia 6190",  # the billing address, not the first
        "city": "Culiacán",
        "state": "Sinaloa",
        "postal_code": "80499",
        "country": "MX",
    }
    assert (record.side, record.rtype, record.rid, record.key, record.kind) == (
        Side.CLIENTIFY, "contact", "10", "DIRV680925MN4", "person",
    )  # fmt: skip
    assert (record.link, record.modified) == ("FM-1", "2026-05-03T08:30:15.000500+00:00")


def test_a_company_reads_its_name_and_an_empty_record_reads_empty_fields():
    record = CONTACTS.read("company", COMPANY)
    assert (record.data["name"], record.kind, record.link) == ("Comercial PB", "company", None)
    assert record.data["email"] == record.data["street"] == record.data["country"] == ""


def test_the_tax_id_rule_is_the_paired_platforms():
    spanish = ClientifyContactMapper(classify=classify_nif, link_field="in_facturadirecta")
    nif = {**COMPANY, "taxpayer_identification_number": "B21910682"}
    assert (spanish.read("company", nif).kind, spanish.read("company", nif).problem) == ("company", None)
    assert CONTACTS.read("company", nif).problem == "other_platform"  # not Facturama's customer


def test_the_record_type_follows_the_kind():
    assert (CONTACTS.rtype_for("company"), CONTACTS.rtype_for("person"), CONTACTS.rtype_for(None)) == (
        "company", "contact", "contact",
    )  # fmt: skip


# -- contacts and companies: bodies ------------------------------------------------------------------
def person(**changes: str) -> dict[str, str]:
    return CONTACTS.read("contact", PERSON).data | changes


def test_a_person_name_is_split_with_two_surnames_last():
    body = CONTACTS.update_body("contact", PERSON, person(name="Ana María López Ruiz"), {"name"}, link="FM-1")
    assert body == {"first_name": "Ana María", "last_name": "López Ruiz"}  # the link is held: not sent


def test_a_company_name_is_one_field():
    body = CONTACTS.update_body("company", COMPANY, {"name": "Comercial PB SA"}, {"name"}, link=None)
    assert body == {"name": "Comercial PB SA"}


def test_a_new_email_replaces_ours_and_keeps_the_users_other_addresses():
    body = CONTACTS.update_body("contact", PERSON, person(email="nueva@example.mx"), {"email"}, link="FM-1")
    assert body["emails"] == [
        {"type": OTHER_EMAIL, "email": "vero@work.example"},
        {"type": MAIN_EMAIL, "email": "nueva@example.mx"},
    ]


def test_an_emptied_email_removes_ours_only_and_a_first_one_is_added_as_main():
    emptied = CONTACTS.update_body("contact", PERSON, person(email=""), {"email"}, link="FM-1")
    assert emptied["emails"] == [{"type": OTHER_EMAIL, "email": "vero@work.example"}]
    added = CONTACTS.update_body("company", COMPANY, {"email": "a@pb.example"}, {"email"}, link=None)
    assert added["emails"] == [{"type": MAIN_EMAIL, "email": "a@pb.example"}]


def test_an_address_change_rewrites_ours_and_keeps_the_others():
    body = CONTACTS.update_body("contact", PERSON, person(city="Mazatlán"), {"city"}, link="FM-1")
    office, billing = body["addresses"]
    assert office == {**PERSON["addresses"][0]}  # the user's office address, as it was
    assert billing == {"street": "Independencia 6190", "city": "Mazatlán", "state": "Sinaloa", "postal_code": "80499",
                       "country": "MX", "type": BILLING_ADDRESS}  # fmt: skip


def test_a_first_address_is_added_as_billing_and_an_empty_one_is_not_added():
    full = {"street": "Reforma 222", "city": "CDMX", "state": "", "postal_code": "06600", "country": "MX"}
    body = CONTACTS.update_body("company", COMPANY, full, {"street"}, link=None)
    assert body["addresses"] == [{**full, "type": BILLING_ADDRESS}]
    empty = dict.fromkeys(full, "")
    assert CONTACTS.update_body("company", COMPANY, empty, {"street"}, link=None)["addresses"] == []


def test_a_create_is_every_field_from_nothing_with_our_link():
    data = person()
    body = CONTACTS.create_body("contact", data, link="FM-7")
    assert (body["first_name"], body["last_name"]) == ("Verónica", "Guzmán Castillo")  # two surnames last
    assert body["taxpayer_identification_number"] == "DIRV680925MN4"
    assert body["emails"] == [{"type": MAIN_EMAIL, "email": "vero@example.mx"}]
    assert body["addresses"] == [{"street": "Independencia 6190", "city": "Culiacán", "state": "Sinaloa",
                                  "postal_code": "80499", "country": "MX", "type": BILLING_ADDRESS}]  # fmt: skip
    assert body["custom_fields"] == [{"field": LINK, "value": "FM-7"}]  # ours alone: the rest merge by name


def test_nothing_changed_and_the_link_held_is_an_empty_body():
    assert CONTACTS.update_body("contact", PERSON, person(), set(), link="FM-1") == {}


# -- products ----------------------------------------------------------------------------------------
PRODUCTS = ClientifyProductMapper(link_field=LINK, rounding_sku="AJUSTE-REDONDEO")
PRODUCT = {"id": 30, "name": " Sitio  web ", "sku": "web-003", "price": "1500.5", "modified": "2026-05-03T08:00:00Z",
           "custom_fields": [{"field": LINK, "value": "P1"}]}  # fmt: skip


def test_a_product_reads_its_sku_as_the_key():
    record = PRODUCTS.read("product", PRODUCT)
    assert record.data == {"sku": "web-003", "name": "Sitio web", "price": "1500.50"}
    assert (record.rid, record.key, record.problem, record.link) == ("30", "WEB-003", None, "P1")
    assert record.modified == "2026-05-03T08:00:00.000000+00:00"


@pytest.mark.parametrize(("sku", "problem"), [("", "no_sku"), ("ajuste-redondeo", "rounding_product")])
def test_a_product_without_sku_or_our_rounding_product_is_not_synced(sku, problem):
    assert PRODUCTS.read("product", {**PRODUCT, "sku": sku}).problem == problem


def test_a_product_body_is_the_changed_fields_and_our_link():
    data = {"sku": "WEB-003", "name": "Sitio", "price": "99.00"}
    assert PRODUCTS.update_body("product", PRODUCT, data, {"price"}, link="P1") == {"price": "99.00"}
    assert PRODUCTS.create_body("product", data, link="P2") == {
        **data, "custom_fields": [{"field": LINK, "value": "P2"}],
    }  # fmt: skip
