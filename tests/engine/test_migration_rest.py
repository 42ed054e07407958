"""Moving a FacturaDirecta account from the classic API to the REST API (issue 24): the ids change
(numeric → ``con_…``), the links are established again by tax ID, SKU and our estimate reference
(``engine/api_change.py``), and nothing is created twice."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.meta import Meta
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.errors import ConfigurationError
from include.sandbox import fd_rest_seed
from include.sandbox.config import FacturaDirectaConfig
from tests.engine.conftest import World
from tests.engine.test_sync_contacts import Crash
from tests.engine.test_sync_rest import rest_world  # noqa: F401 (fixture)

FD = Platform.FACTURADIRECTA
COMPUTED = {"title", "linesTotal", "totalBeforeTaxes", "taxes", "total"}  # what a PUT leaves out (§9)


def crm_links(world: World) -> Counter[str]:
    field = world.clientify.settings.link_field_facturadirecta
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    values = [
        next((c["value"] for c in p.get("custom_fields") or [] if c["field"] == field), "") for p in parties
    ]
    return Counter("rest" if v.startswith("con_") else "classic" if v.isdigit() else "none" for v in values)


def test_a_full_run_on_the_rest_api_relinks_by_key_and_creates_nothing(world: World, rest_world: World):  # noqa: F811
    classic, rest = world, rest_world
    rest.ledger_url = classic.ledger_url  # one deployment: the same ledger, the connection switched
    classic.sandbox.seed("facturadirecta", target="both", clients=8, products=3, estimates=0, seed=31)
    for entity in (Entity.CONTACTS, Entity.PRODUCTS, Entity.ESTIMATES):
        assert classic.sync(FD, entity, mode=Mode.FULL)["failures"] == []
    parties = sum(crm_links(classic).values())
    products = len(list(classic.clientify.products.iter_records()))
    rest_clients = len(list(rest.facturadirecta.clients.iter_records()))
    assert crm_links(classic)["classic"] == parties > 0

    with pytest.raises(ConfigurationError, match="mode=full"):
        rest.sync(FD, Entity.CONTACTS)  # a modified run sees part of Clientify only: refused
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        report = rest.sync(FD, entity, mode=Mode.FULL)
        assert report["failures"] == [] and "created" not in report["counts"].get("invoicing→clientify", {})
        assert "created" not in report["counts"].get("clientify→invoicing", {}), report["counts"]
    assert sum(crm_links(rest).values()) == parties and crm_links(rest)["rest"] == parties  # links rewritten
    assert len(list(rest.clientify.products.iter_records())) == products
    assert len(list(rest.facturadirecta.clients.iter_records())) == rest_clients
    rest.sandbox.reset_stats()
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        rest.sync(FD, entity)
    assert rest.writes("clientify") == 0 and rest.writes("facturadirecta") == 0
    assert rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)["failures"] == []  # no estimate link to move


# -- estimates (issue 24): re-linked by our reference, the budget id every linked estimate carries ---------


def rest_link_field(world: World) -> str:
    """The REST custom field our reference lives in: the account's ``ID_CRM`` attribute, as the REST API
    shows it (the definition the sync itself would ensure)."""
    return str(world.facturadirecta.custom_fields.ensure("ID_CRM", ["contact", "estimate"])["id"])


def classic_reference(estimate: dict[str, Any]) -> str | None:
    return next((a["value"] for a in estimate.get("customAttributes") or [] if a["label"] == "ID_CRM"), None)


def move_estimates(classic: World, rest: World, seeded: dict[str, str]) -> None:
    """The account's estimates as its REST API shows them after the move: the seeded ones are already
    there (``target: both``, paired by ``seeded``), the ones the sync made on the classic API are made
    the same way; each carries its ``ID_CRM`` value in the custom field of that title."""
    field = rest_link_field(rest)
    tax_ids = {
        str(c["id"]): str(c.get("taxCode") or "").upper()
        for c in classic.facturadirecta.clients.iter_records()
    }
    contacts = {str(c["content"]["main"].get("fiscalId") or "").upper(): c["content"]["uuid"]
                for c in rest.facturadirecta.clients.iter_records()}  # fmt: skip
    products = {
        p["content"]["main"].get("sku"): p["content"]["uuid"]
        for p in rest.facturadirecta.products.iter_records()
    }
    for estimate in classic.facturadirecta.estimates.iter_records():
        reference = classic_reference(estimate)
        assert reference, estimate["id"]  # the sync put it on every estimate it linked
        if estimate["id"] in seeded:
            record = rest.facturadirecta.estimates.get(seeded[estimate["id"]])
            main = {k: v for k, v in record["content"]["main"].items() if k not in COMPUTED}
            for line in main["lines"]:
                line.pop("lineTotal", None)
            main["customFields"] = {**(main.get("customFields") or {}), field: reference}
            rest.facturadirecta.estimates.update(
                seeded[estimate["id"]], {"content": {"type": "estimate", "main": main}}
            )
        else:
            contact = contacts[tax_ids[str(estimate["client"]["id"])]]
            converted = fd_rest_seed.estimate_main(estimate, contact, products, FacturaDirectaConfig())
            main = json.loads(json.dumps(converted, default=float))  # the seed's Decimals as JSON numbers
            main["customFields"] = {field: reference}
            if estimate.get("notes"):
                main["notes"] = estimate["notes"]  # where the seed puts them (fd_rest_seed.insert)
            rest.facturadirecta.estimates.create({"content": {"type": "estimate", "main": main}})


def crm_estimate_links(world: World) -> dict[str, str]:
    """Each budget's link field value, by budget id."""
    field = world.clientify.settings.link_field_facturadirecta
    return {
        str(b["id"]): next((c["value"] for c in b.get("custom_fields") or [] if c["field"] == field), "")
        for b in world.clientify.budgets.iter_records()
    }


def crm_party_url(world: World) -> str:
    base = world.clientify.settings.base_url
    for collection, resource in (
        ("companies", world.clientify.companies),
        ("contacts", world.clientify.contacts),
    ):
        for party in resource.iter_records():
            return f"{base}/v1/{collection}/{party['id']}/"
    raise AssertionError("no synced customer")


def synced_classic_account(
    classic: World,
) -> tuple[dict[str, str], dict[Any, dict[str, Any]], dict[str, Any]]:
    """Four estimates made in FacturaDirecta and one budget made in Clientify, synced on the classic API;
    returns the seeded classic → REST estimate ids, the budgets by id and the Clientify-made budget."""
    seed = classic.sandbox.seed("facturadirecta", target="both", clients=6, products=3, estimates=4, seed=41)
    seeded = dict(zip(seed["ids"]["estimates"], seed["ids"]["rest_estimates"], strict=True))
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        assert classic.sync(FD, entity, mode=Mode.FULL)["failures"] == []
    sku = next(p["sku"] for p in classic.clientify.products.iter_records() if p.get("sku"))
    [product] = classic.clientify.products.find_by_sku(sku)
    item = {"product": f"{classic.clientify.settings.base_url}/v1/products/{product['id']}/", "quantity": "2.00",
            "price": "120.50", "discount": "0.00", "tax": "21.00"}  # fmt: skip
    party = crm_party_url(classic)
    key = "company" if "/companies/" in party else "contact"
    mine = classic.clientify.budgets.create({"name": "Desde Clientify", key: party, "currency": "EUR",
                                             "date": "2026-05-04", "status": "pending", "items": [item]})  # fmt: skip
    report = classic.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    assert report["failures"] == [] and report["counts"]["invoicing→clientify"]["created"] == 4
    assert report["counts"]["clientify→invoicing"]["created"] == 1
    classic.sync(FD, Entity.ESTIMATES)
    budgets_before = {b["id"]: b for b in classic.clientify.budgets.iter_records()}
    assert len(budgets_before) == 5
    assert sum(1 for b in budgets_before.values() if b["code"].startswith("FD-")) == 4
    return seeded, budgets_before, mine


def assert_relinked_with_nothing_created(
    rest: World, report: dict[str, Any], budgets_before: dict[Any, Any]
) -> dict[str, str]:
    """No create on either side, the same budgets, and each linked (ledger and link field) to the REST
    estimate that carries its id; returns the links, REST estimate id by budget id."""
    assert report["failures"] == [], report["failures"]
    assert "created" not in report["counts"].get("invoicing→clientify", {}), report["counts"]
    assert "created" not in report["counts"].get("clientify→invoicing", {}), report["counts"]
    estimates = {e["content"]["uuid"]: e for e in rest.facturadirecta.estimates.iter_records()}
    after = {b["id"]: b for b in rest.clientify.budgets.iter_records()}
    assert len(estimates) == 5 and set(after) == set(budgets_before)
    field = rest_link_field(rest)
    links = crm_estimate_links(rest)
    assert {str(estimates[v]["content"]["main"]["customFields"][field]) for v in links.values()} == set(links)
    ledger = Ledger.open(rest.ledger_url, "facturadirecta", "estimates")
    pairs = set((inv_id, crm_id) for _, inv_id, _, crm_id in ledger.links.pairs())
    ledger.close()
    assert pairs == {(est_id, budget_id) for budget_id, est_id in links.items()}
    return links


def test_a_crash_in_the_first_run_after_the_move_loses_no_link(
    world: World,
    rest_world: World,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
):
    """The run dies after the ledger forgot the classic ids, before it noted the new API: the next full run
    forgets again (nothing left), keeps the re-link entries and creates nothing."""
    classic, rest = world, rest_world
    rest.ledger_url = classic.ledger_url
    seeded, budgets_before, _ = synced_classic_account(classic)
    move_estimates(classic, rest, seeded)
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        rest.sync(FD, entity, mode=Mode.FULL)
    noted = Meta.set

    def die_noting_the_api(self: Meta, key: str, value: str | None, *args: Any, **kwargs: Any) -> None:
        if key == "invoicing_api:facturadirecta:estimates":
            raise Crash()
        noted(self, key, value, *args, **kwargs)

    monkeypatch.setattr(Meta, "set", die_noting_the_api)
    with pytest.raises(Crash):
        rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    monkeypatch.undo()
    report = rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    assert_relinked_with_nothing_created(rest, report, budgets_before)


def test_estimates_move_to_the_rest_api_relinked_by_our_reference_with_nothing_created(
    world: World,
    rest_world: World,  # noqa: F811
):
    classic, rest = world, rest_world
    rest.ledger_url = classic.ledger_url
    seeded, budgets_before, mine = synced_classic_account(classic)

    move_estimates(classic, rest, seeded)
    assert len(list(rest.facturadirecta.estimates.iter_records())) == 5
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        assert rest.sync(FD, entity, mode=Mode.FULL)["failures"] == []
    with pytest.raises(ConfigurationError, match="mode=full"):
        rest.sync(FD, Entity.ESTIMATES)  # a modified run sees part of Clientify only: refused
    report = rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    links = assert_relinked_with_nothing_created(rest, report, budgets_before)
    estimates = {e["content"]["uuid"]: e for e in rest.facturadirecta.estimates.iter_records()}
    # nothing the users see changed on a budget (notes, total, status, date): both APIs read them alike
    after = {b["id"]: b for b in rest.clientify.budgets.iter_records()}
    shown = ("comments", "total", "status", "date")
    assert {i: [b[k] for k in shown] for i, b in after.items()} == {
        i: [b[k] for k in shown] for i, b in budgets_before.items()
    }
    assert any(b["comments"] for b in after.values())  # the seed's notes are among them

    rest.sync(FD, Entity.ESTIMATES)  # the link write-backs of the full run, read once through the feed
    rest.sandbox.reset_stats()
    rest.sync(FD, Entity.ESTIMATES)
    assert rest.writes("clientify") == 0 and rest.writes("facturadirecta") == 0

    # edits after the move flow both ways: a line in FacturaDirecta, the notes in Clientify
    fd_born = next(b for b in budgets_before.values() if b["code"].startswith("FD-"))
    est_id = links[str(fd_born["id"])]
    main = {k: v for k, v in estimates[est_id]["content"]["main"].items() if k not in COMPUTED}
    main["lines"] = [{k: v for k, v in main["lines"][0].items() if k != "lineTotal"} | {"quantity": 7}]
    rest.facturadirecta.estimates.update(est_id, {"content": {"type": "estimate", "main": main}})
    rest.clientify.budgets.update(mine["id"], {"comments": "revisado tras el cambio"})
    report = rest.sync(FD, Entity.ESTIMATES)
    assert report["failures"] == [] and report["counts"]["invoicing→clientify"]["updated"] == 1
    assert report["counts"]["clientify→invoicing"]["updated"] == 1
    budget = rest.clientify.budgets.get(fd_born["id"])
    assert [Decimal(i["quantity"]) for i in budget["items"]] == [Decimal(7)]
    assert Decimal(str(budget["total"])) == Decimal(
        str(rest.facturadirecta.estimates.get(est_id)["content"]["main"]["total"])
    )
    assert (
        rest.facturadirecta.estimates.get(links[str(mine["id"])])["content"]["main"]["notes"]
        == "revisado tras el cambio"
    )
    assert (
        len(list(rest.clientify.budgets.iter_records())) == 5
        and len(list(rest.facturadirecta.estimates.iter_records())) == 5
    )


def test_estimates_that_do_not_carry_our_reference_are_not_moved_and_nothing_is_forgotten(
    world: World,
    rest_world: World,  # noqa: F811
):
    """The account's ID_CRM attribute was removed from estimates after they were linked (its values no
    longer shown): nothing could find them after the move, so the first run on the REST API refuses before
    it forgets a link, and no budget is made twice."""
    classic, rest = world, rest_world
    rest.ledger_url = classic.ledger_url
    classic.sandbox.seed("facturadirecta", target="both", clients=4, products=2, estimates=2, seed=43)
    for entity in (Entity.CONTACTS, Entity.PRODUCTS, Entity.ESTIMATES):
        assert classic.sync(FD, entity, mode=Mode.FULL)["failures"] == []
    attribute = {"resource": "estimates", "label": "ID_CRM"}
    classic.sandbox.control("facturadirecta", "DELETE", "custom-attributes", attribute)
    classic.sync(FD, Entity.ESTIMATES)  # the last classic run reads them without it (its write-backs fail)
    for entity in (Entity.CONTACTS, Entity.PRODUCTS):
        rest.sync(FD, entity, mode=Mode.FULL)
    rest.sandbox.reset_stats()
    with pytest.raises(ConfigurationError, match="2 of 2 linked estimates carry no Clientify budget id"):
        rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    assert rest.writes("clientify") == 0 and rest.writes("facturadirecta") == 0
    ledger = Ledger.open(rest.ledger_url, "facturadirecta", "estimates")
    assert len(list(ledger.links.pairs())) == 2  # still linked: switching back to classic goes on as before
    ledger.close()
    assert len(list(rest.clientify.budgets.iter_records())) == 2
