"""Contacts and companies, both integrations, end to end against the sandbox (issue 5 scenarios)."""

from __future__ import annotations

from typing import Any

import pytest

from clientify_sync.engine.apply import Applier
from clientify_sync.engine.job import Entity, Mode, Platform
from clientify_sync.engine.ledger import Ledger
from tests.engine.conftest import PLATFORMS, World

CUSTOMERS = {
    Platform.FACTURAMA: {
        "person": ("CACX7605101P8", "XOCHILT CASAS CHAVEZ"),
        "company": ("URE180429TM6", "UNIVERSIDAD ROBOTICA ESPAÑOLA"),
        "other": ("EKU9003173C9", "ESCUELA KEMPER URGATE"),
        "invalid": "GODE560231GR8",  # 31 February: the API pattern accepts it, stdnum does not
        "crm_person": ("GARR900630G98", "RAUL GARCIA RODRIGUEZ"),
    },
    Platform.FACTURADIRECTA: {
        "person": ("12345678Z", "Juan Pérez García"),
        "company": ("B12345674", "Ferretería Pérez SL"),
        "other": ("A58818501", "Talleres Vic SA"),
        "invalid": "12345678A",
        "crm_person": ("X6089822C", "Ana Ruiz Soler"),
    },
}


def link_field(platform: Platform) -> str:
    return "in_facturama" if platform is Platform.FACTURAMA else "in_facturadirecta"


def create_customer(world: World, platform: Platform, tax_id: str, name: str, **extra: Any) -> str:
    """Create a customer on the invoicing side through its API; return its id."""
    if platform is Platform.FACTURAMA:
        body = {"Rfc": tax_id, "Name": name, "Email": extra.get("email", "ventas@example.mx"), "CfdiUse": "G03",
                "FiscalRegime": "601" if len(tax_id) == 12 else "612", "TaxZipCode": "86991",
                "Address": {"Street": "Calle de Pruebas", "ExteriorNumber": "123", "ZipCode": "86991",
                            "Municipality": "León", "State": "GUANAJUATO", "Country": "MEX"}}  # fmt: skip
        return str(world.facturama.clients.create(body)["Id"])
    first, _, last = name.partition(" ")
    company = tax_id[0].isalpha() and tax_id[0] not in "XYZKLM"
    body = {"legalType": "J" if company else "F", "taxCode": tax_id, "email": extra.get("email", "hola@example.es"),
            "address": {"line1": "Carrer Major 1", "city": "Vic", "province": "Barcelona", "zipcode": "08500",
                        "country": "ES"}}  # fmt: skip
    body |= {"name": name} if company else {"personName": first, "personSurname": last}
    return str(world.facturadirecta.clients.create(body)["id"])


def crm_parties(world: World) -> list[tuple[str, dict[str, Any]]]:
    contacts = [("contact", r) for r in world.clientify.contacts.iter_records()]
    return contacts + [("company", r) for r in world.clientify.companies.iter_records()]


def cf(record: dict[str, Any], name: str) -> str | None:
    return next((c["value"] for c in record.get("custom_fields") or [] if c["field"] == name), None)


def by_tax_id(world: World, tax_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [(t, r) for t, r in crm_parties(world) if r.get("taxpayer_identification_number") == tax_id]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_persons_become_contacts_companies_become_companies(world: World, platform: Platform):
    people = CUSTOMERS[platform]
    person_id = create_customer(world, platform, *people["person"])
    company_id = create_customer(world, platform, *people["company"])
    create_customer(world, platform, people["invalid"], "SIN RFC VALIDO")
    report = world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)

    [(person_type, person)] = by_tax_id(world, people["person"][0])
    [(company_type, company)] = by_tax_id(world, people["company"][0])
    assert (person_type, company_type) == ("contact", "company")
    assert cf(person, link_field(platform)) == person_id and cf(company, link_field(platform)) == company_id
    assert f"{person['first_name']} {person['last_name']}" == people["person"][1]
    assert company["name"] == people["company"][1]
    assert report["reasons"].get("skipped:invalid_tax_id") == 1
    assert report["counts"]["invoicing→clientify"]["created"] == 2
    if platform is Platform.FACTURADIRECTA:  # the link is kept on both sides where the API allows
        attrs = world.facturadirecta.clients.get(company_id)["customAttributes"]
        assert {"label": "ID_CRM", "value": company["id"] if isinstance(company["id"], str) else str(company["id"])} in [
            {"label": a["label"], "value": a["value"]} for a in attrs
        ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_clientify_contact_without_tax_id_is_skipped_and_with_one_is_created(world: World, platform: Platform):
    tax_id, name = CUSTOMERS[platform]["crm_person"]
    first, _, last = name.partition(" ")
    created = world.clientify.contacts.create(
        {"first_name": first, "last_name": last, "taxpayer_identification_number": tax_id, "email": "x@example.com"}
    )
    world.clientify.contacts.create({"first_name": "Lead", "last_name": "Sin NIF", "email": "lead@example.com"})
    report = world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    assert report["reasons"].get("skipped:no_tax_id") == 1
    invoicing = list(world.invoicing(platform).clients.iter_records())
    [record] = [r for r in invoicing if (r.get("Rfc") or r.get("taxCode")) == tax_id]
    new_id = str(record.get("Id") or record.get("id"))
    assert cf(world.clientify.contacts.get(created["id"]), link_field(platform)) == new_id


@pytest.mark.parametrize("platform", PLATFORMS)
def test_existing_clientify_record_is_matched_by_tax_id_not_duplicated(world: World, platform: Platform):
    tax_id, name = CUSTOMERS[platform]["company"]
    existing = world.clientify.companies.create({"name": name, "taxpayer_identification_number": tax_id})
    inv_id = create_customer(world, platform, tax_id, name)
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(platform, Entity.CONTACTS)
    [(_, company)] = by_tax_id(world, tax_id)
    assert company["id"] == existing["id"] and cf(company, link_field(platform)) == inv_id
    assert len(list(world.invoicing(platform).clients.iter_records())) == 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_idle_rerun_makes_zero_writes(world: World, platform: Platform):
    for role in ("person", "company"):
        create_customer(world, platform, *CUSTOMERS[platform][role])
    world.clientify.companies.create({"name": "CRM ONLY", "taxpayer_identification_number": CUSTOMERS[platform]["other"][0],
                                      "email": "crm.only@example.com"})  # fmt: skip
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    world.sandbox.reset_stats()
    report = world.sync(platform, Entity.CONTACTS)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0
    assert report["counts"] == {} and report["unchanged"] == 3


def edit_invoicing(world: World, platform: Platform, inv_id: str, **fields: str) -> None:
    if platform is Platform.FACTURAMA:
        record = world.facturama.clients.get(inv_id)
        record.update({"Name": fields.get("name", record["Name"]), "Email": fields.get("email", record["Email"])})
        world.facturama.clients.update(inv_id, record)
    else:
        body = {"email": fields["email"]} if "email" in fields else {}
        if "name" in fields:
            body["name"] = fields["name"]
        world.facturadirecta.clients.update(inv_id, body)


@pytest.mark.parametrize("platform", PLATFORMS)
def test_edits_to_different_fields_on_both_sides_both_survive(world: World, platform: Platform):
    tax_id, name = CUSTOMERS[platform]["company"]
    inv_id = create_customer(world, platform, tax_id, name)
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    [(_, company)] = by_tax_id(world, tax_id)
    edit_invoicing(world, platform, inv_id, email="facturas@nuevo.example")
    address = dict(company["addresses"][0], city="Irapuato")
    world.clientify.companies.update(company["id"], {"addresses": [address]})
    world.sync(platform, Entity.CONTACTS)

    [(_, company)] = by_tax_id(world, tax_id)
    assert company["emails"][0]["email"] == "facturas@nuevo.example"
    inv = world.invoicing(platform).clients.get(inv_id)
    city = inv["Address"]["Municipality"] if platform is Platform.FACTURAMA else inv["address"]["city"]
    assert city == "Irapuato"
    world.sandbox.reset_stats()
    world.sync(platform, Entity.CONTACTS)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0  # no ping-pong


@pytest.mark.parametrize("platform", PLATFORMS)
def test_same_field_conflict_follows_the_policy_and_is_recorded(world: World, platform: Platform):
    tax_id, name = CUSTOMERS[platform]["company"]
    inv_id = create_customer(world, platform, tax_id, name)
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    [(_, company)] = by_tax_id(world, tax_id)
    edit_invoicing(world, platform, inv_id, name="NOMBRE FISCAL NUEVO", email="inv@example.com")
    world.clientify.companies.update(company["id"], {"name": "Nombre Comercial", "emails": [{"type": 4, "email": "crm@example.com"}]})
    world.sync(platform, Entity.CONTACTS)

    [(_, company)] = by_tax_id(world, tax_id)
    inv = world.invoicing(platform).clients.get(inv_id)
    assert company["name"] == "NOMBRE FISCAL NUEVO"  # fiscal field: the invoicing side wins
    assert (inv.get("Email") or inv.get("email")) == "crm@example.com"  # CRM field: Clientify wins
    ledger = Ledger.open(world.ledger_url, platform.value, "contacts")
    recorded = {(c["field"], c["invoicing_value"], c["clientify_value"], c["winner"]) for c in ledger.conflicts()}
    ledger.close()
    assert ("name", "NOMBRE FISCAL NUEVO", "Nombre Comercial", "invoicing") in recorded
    assert ("email", "inv@example.com", "crm@example.com", "clientify") in recorded


class Crash(BaseException):
    """Stands for the task process being killed: nothing after it runs, no handler catches it."""


@pytest.mark.parametrize("platform", PLATFORMS)
def test_crash_after_the_post_before_the_ledger_write_leaves_no_duplicate(
    world: World, platform: Platform, monkeypatch: pytest.MonkeyPatch
):
    for role in ("person", "company", "other"):
        create_customer(world, platform, *CUSTOMERS[platform][role])

    def crash(self, item, written, pending_id):  # the POST went through; the ledger never hears of it
        raise Crash()

    monkeypatch.setattr(Applier, "_succeed", crash)
    with pytest.raises(Crash):
        world.sync(platform, Entity.CONTACTS)
    monkeypatch.undo()
    assert len(crm_parties(world)) >= 1
    world.sync(platform, Entity.CONTACTS)
    world.sync(platform, Entity.CONTACTS)
    for role in ("person", "company", "other"):
        assert len(by_tax_id(world, CUSTOMERS[platform][role][0])) == 1
    assert len(list(world.invoicing(platform).clients.iter_records())) == 3


@pytest.mark.parametrize("platform", PLATFORMS)
def test_duplicate_tax_ids_in_clientify_are_quarantined(world: World, platform: Platform):
    tax_id, name = CUSTOMERS[platform]["company"]
    for suffix in ("A", "B"):
        world.clientify.companies.create({"name": f"{name} {suffix}", "taxpayer_identification_number": tax_id})
    create_customer(world, platform, tax_id, name)
    report = world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    assert len(by_tax_id(world, tax_id)) == 2
    assert report["reasons"]["quarantined:duplicate_tax_id"] == 3
    assert all(cf(r, link_field(platform)) is None for _, r in by_tax_id(world, tax_id))


@pytest.mark.parametrize("platform", PLATFORMS)
def test_dry_run_writes_nothing_and_shows_the_plan(world: World, platform: Platform):
    for role in ("person", "company"):
        create_customer(world, platform, *CUSTOMERS[platform][role])
    world.sandbox.reset_stats()
    report = world.sync(platform, Entity.CONTACTS, mode=Mode.FULL, dry_run=True)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0
    assert report["counts"]["invoicing→clientify"]["would_create"] == 2
    assert report["watermark_out"] is None
    assert crm_parties(world) == []
