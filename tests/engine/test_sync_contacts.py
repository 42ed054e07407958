"""Contacts and companies, both integrations, end to end against the sandbox (issue 5 scenarios)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from clientify_sync.api.clientify import ISO_SLACK
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.plan import PlanItem
from clientify_sync.engine.vocabulary import Entity, Mode, Platform, SyncOptions
from clientify_sync.watermark import format_timestamp, parse_timestamp
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
        assert {
            "label": "ID_CRM",
            "value": company["id"] if isinstance(company["id"], str) else str(company["id"]),
        } in [{"label": a["label"], "value": a["value"]} for a in attrs]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_clientify_contact_without_tax_id_is_skipped_and_with_one_is_created(
    world: World, platform: Platform
):
    tax_id, name = CUSTOMERS[platform]["crm_person"]
    first, _, last = name.partition(" ")
    created = world.clientify.contacts.create(
        {
            "first_name": first,
            "last_name": last,
            "taxpayer_identification_number": tax_id,
            "email": "x@example.com",
        }
    )
    world.clientify.contacts.create(
        {"first_name": "Lead", "last_name": "Sin NIF", "email": "lead@example.com"}
    )
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
        record.update(
            {"Name": fields.get("name", record["Name"]), "Email": fields.get("email", record["Email"])}
        )
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
    world.clientify.companies.update(
        company["id"], {"name": "Nombre Comercial", "emails": [{"type": 4, "email": "crm@example.com"}]}
    )
    world.sync(platform, Entity.CONTACTS)

    [(_, company)] = by_tax_id(world, tax_id)
    inv = world.invoicing(platform).clients.get(inv_id)
    assert company["name"] == "NOMBRE FISCAL NUEVO"  # fiscal field: the invoicing side wins
    assert (inv.get("Email") or inv.get("email")) == "crm@example.com"  # CRM field: Clientify wins
    ledger = Ledger.open(world.ledger_url, platform.value, "contacts")
    recorded = {
        (c["field"], c["invoicing_value"], c["clientify_value"], c["winner"]) for c in ledger.conflicts.list()
    }
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
        world.clientify.companies.create(
            {"name": f"{name} {suffix}", "taxpayer_identification_number": tax_id}
        )
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


# -- issue 12: what the strict APIs refuse, and links brought from Clientify's native integration -----


def plan_items(world: World, platform: Platform, run_id: str) -> list[PlanItem]:
    """Every plan item of one contacts run, with its outcome, reason and detail."""
    ledger = Ledger.open(world.ledger_url, platform.value, Entity.CONTACTS.value)
    try:
        return [item for chunk in ledger.plan.iter(run_id) for item in chunk]
    finally:
        ledger.close()


def test_clientify_customer_without_email_is_skipped_for_facturama_and_the_clientify_side_still_syncs(
    world: World,
):
    platform = Platform.FACTURAMA
    tax_id, name = CUSTOMERS[platform]["company"]
    inv_id = create_customer(world, platform, tax_id, name)
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    [(_, company)] = by_tax_id(world, tax_id)
    person_tax_id, person_name = CUSTOMERS[platform]["crm_person"]
    first, _, last = person_name.partition(" ")
    lead = world.clientify.contacts.create({"first_name": first, "last_name": last,
                                            "taxpayer_identification_number": person_tax_id})  # fmt: skip
    world.clientify.companies.update(company["id"], {"emails": []})  # the linked company loses its e-mail
    edit_invoicing(world, platform, inv_id, name="NOMBRE FISCAL NUEVO")
    world.sandbox.reset_stats()
    report = world.sync(platform, Entity.CONTACTS)

    assert world.writes("facturama") == 0  # nothing Facturama would refuse (400 Email required) was sent
    assert [c["Rfc"] for c in world.facturama.clients.iter_records()] == [tax_id]
    [(_, company)] = by_tax_id(world, tax_id)
    assert company["name"] == "NOMBRE FISCAL NUEVO"  # the Facturama -> Clientify direction still syncs
    skipped = [i for i in plan_items(world, platform, report["run_id"]) if i.outcome == "skipped"]
    assert sorted((str(i.action), i.crm_id, i.reason) for i in skipped) == sorted(
        [("create", str(lead["id"]), "missing_email"), ("update", str(company["id"]), "missing_email")]
    )
    assert all("requires an e-mail" in (i.detail or "") for i in skipped)
    assert report["counts"]["clientify→invoicing"]["skipped"] == 2
    assert report["failures"] == []  # a known limit of the target, not a failure to retry

    # An e-mail added in Clientify brings the customer across on the next run.
    world.clientify.contacts.update(lead["id"], {"emails": [{"type": 4, "email": "raul@example.mx"}]})
    report = world.sync(platform, Entity.CONTACTS)
    [created] = [c for c in world.facturama.clients.iter_records() if c["Rfc"] == person_tax_id]
    assert created["Email"] == "raul@example.mx"


def test_an_edit_to_a_facturama_client_whose_get_holds_empty_strings_is_accepted(world: World):
    platform = Platform.FACTURAMA
    tax_id, name = CUSTOMERS[platform]["company"]
    body = {"Rfc": tax_id, "Name": name, "Email": "ventas@example.mx", "CfdiUse": "G03", "FiscalRegime": "601",
            "TaxZipCode": "86991", "EmailOp1": "", "NumRegIdTrib": "", "TaxResidence": "",
            "Address": {"Street": "Calle de Pruebas", "ExteriorNumber": "123", "InteriorNumber": "",
                        "Neighborhood": "", "ZipCode": "86991", "Municipality": "León", "Country": "MEX"}}  # fmt: skip
    inv_id = str(world.facturama.clients.create(body)["Id"])
    held = world.facturama.clients.get(inv_id)
    assert (
        held["EmailOp1"] == "" and held["Address"]["InteriorNumber"] == ""
    )  # the GET copy a PUT starts from
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    [(_, company)] = by_tax_id(world, tax_id)
    world.clientify.companies.update(company["id"], {"emails": [{"type": 4, "email": "compras@example.mx"}]})
    report = world.sync(platform, Entity.CONTACTS)

    assert report["failures"] == [] and report["counts"]["clientify→invoicing"]["updated"] == 1
    updated = world.facturama.clients.get(inv_id)
    assert updated["Email"] == "compras@example.mx"
    assert (updated["TaxZipCode"], updated["Address"]["ZipCode"]) == ("86991", "86991")  # the zip survived


def test_a_link_from_clientifys_native_facturama_integration_is_honoured_not_duplicated(world: World):
    platform = Platform.FACTURAMA
    for content_type in ("contacts", "companies"):  # the native integration defined the field already
        world.sandbox.define_custom_field("in_facturama", content_type)
    tax_id, name = CUSTOMERS[platform]["company"]
    inv_id = create_customer(world, platform, tax_id, name)
    person_tax_id, person_name = CUSTOMERS[platform]["person"]
    native = world.clientify.companies.create({
        "name": "Universidad Robótica (CRM)", "taxpayer_identification_number": tax_id,
        "emails": [{"type": 4, "email": "crm@example.mx"}],
        "custom_fields": [{"field": "in_facturama", "value": inv_id}],
    })  # fmt: skip
    first, _, last = person_name.partition(" ")
    stale = world.clientify.contacts.create({
        "first_name": first, "last_name": last, "taxpayer_identification_number": person_tax_id,
        "email": "x@example.mx", "custom_fields": [{"field": "in_facturama", "value": "NoSuchFacturamaId0000002"}],
    })  # fmt: skip
    report = world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)

    assert report["matched"] == 1 and report["reasons"].get("skipped:linked_record_missing") == 1
    [(kind, company)] = by_tax_id(world, tax_id)
    assert (kind, company["id"], cf(company, "in_facturama")) == ("company", native["id"], inv_id)
    assert company["name"] == name  # first match: the fiscal name follows the invoicing side
    assert [c["Id"] for c in world.facturama.clients.iter_records()] == [inv_id]  # nothing duplicated
    assert cf(world.clientify.contacts.get(stale["id"]), "in_facturama") == "NoSuchFacturamaId0000002"
    world.sandbox.reset_stats()
    world.sync(platform, Entity.CONTACTS)
    assert world.writes("clientify") == 0 and world.writes("facturama") == 0


def test_an_ignored_modified_filter_is_detected_and_nothing_is_missed(world: World):
    platform = Platform.FACTURAMA
    world.clientify.contacts.create({"first_name": "Lead", "last_name": "Antiguo", "email": "a@example.com"})
    world.clientify.contacts.create({"first_name": "Lead", "last_name": "Reciente", "email": "r@example.com"})
    tax_id, name = CUSTOMERS[platform]["company"]
    inv_id = create_customer(world, platform, tax_id, name)
    options = SyncOptions(lookback=timedelta(0))
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL, options=options)
    assert world.clientify.ignored_filters() == []
    # The leads are older than the carried watermark by more than the second of slack an ISO filter
    # gets, as records an hour old would be: the watermark is moved on, not the clock waited for.
    key = (platform, Entity.CONTACTS)
    world.watermarks[key] = format_timestamp(parse_timestamp(world.watermarks[key]) + 2 * ISO_SLACK)
    world.sandbox.config("clientify", modified_filter="ignored")
    [(_, company)] = by_tax_id(world, tax_id)
    world.clientify.companies.update(company["id"], {"emails": [{"type": 4, "email": "nuevo@example.mx"}]})
    world.sandbox.reset_stats()
    report = world.sync(platform, Entity.CONTACTS, options=options)

    ignored = {i.route for i in world.clientify.ignored_filters()}
    assert "/v1/contacts/" in ignored  # the lead older than the watermark came back
    assert all("full read" in i.message for i in world.clientify.ignored_filters())
    assert report["extract"]["extract_clientify"]["records"] == 3  # every record read: a full read
    assert world.facturama.clients.get(inv_id)["Email"] == "nuevo@example.mx"  # the edit went through
    assert world.writes("facturama") == 1 and world.writes("clientify") == 0  # and nothing else was written
