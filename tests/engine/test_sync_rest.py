"""The sync on FacturaDirecta's REST API (issue 24): the same engine, matching, merge and crash-safe
creates as on the classic API, through the REST client and mappers, against the sandbox's emulator."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.api.ratelimit_headers import RateLimitGate
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.sides import InvoicingSide
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import FAST, World, make_clients
from tests.engine.test_sync_contacts import Crash

FD = Platform.FACTURADIRECTA


class Unmetered:
    def acquire(self) -> float:
        return 0.0


@pytest.fixture
def rest_world(clean_sandbox, tmp_path) -> Iterator[World]:
    facturama, clientify, _ = make_clients(clean_sandbox)
    cfg = clean_sandbox.config("facturadirecta")
    settings = FacturaDirectaRestSettings(base_url=clean_sandbox.facturadirecta_url, api_key=cfg["rest_api_key"],
                                          company_id=cfg["rest_company_id"], **FAST)  # fmt: skip
    rest = FacturaDirectaRestClient(settings, gate=RateLimitGate(Unmetered(), sleep=lambda _s: None))
    world = World(clean_sandbox, facturama, clientify, rest, f"sqlite:///{tmp_path}/ledger.db")
    yield world
    for client in (facturama, clientify, rest):
        client.close()


def rest_fiscal_ids(world: World) -> Counter[str]:
    return Counter(
        str(r["content"]["main"].get("fiscalId") or "").upper()
        for r in world.facturadirecta.clients.iter_records()
    )


def crm_fiscal_ids(world: World) -> Counter[str]:
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    return Counter(str(p.get("taxpayer_identification_number") or "").upper() for p in parties)


def test_contacts_sync_both_ways_on_the_rest_api_and_an_idle_run_writes_nothing(rest_world: World):
    world = rest_world
    world.sandbox.seed("facturadirecta", target="rest", clients=12, products=4, estimates=0, seed=11)
    world.sandbox.seed("clientify", companies=3, contacts=3, seed=12, country="ES")
    report = world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    assert report["failures"] == [], report["failures"]
    assert report["counts"]["invoicing→clientify"]["created"] >= 1
    fd, crm = rest_fiscal_ids(world), crm_fiscal_ids(world)
    assert [k for k, n in fd.items() if n > 1] == [] and [k for k, n in crm.items() if n > 1] == []
    assert {k for k in fd if k} <= set(crm)  # every FacturaDirecta customer reached Clientify
    world.sandbox.reset_stats()
    again = world.sync(FD, Entity.CONTACTS)
    assert again["failures"] == [] and world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def test_a_create_whose_answer_was_lost_is_replayed_by_its_key_not_made_twice(rest_world: World, monkeypatch):
    """The POST reaches FacturaDirecta, the answer is lost, the step is retried: the same plan item sends
    the same Idempotency-Key, which the API answers from its store."""
    world = rest_world
    world.sandbox.seed("clientify", companies=4, seed=13, country="ES")
    keys: list[str | None] = []
    create = InvoicingSide.create

    def record_key(
        self, rtype: str, data: dict[str, Any], link: str | None, idempotency_key: str | None = None
    ):
        keys.append(idempotency_key)
        return create(self, rtype, data, link, idempotency_key)

    monkeypatch.setattr(InvoicingSide, "create", record_key)
    world.sandbox.faults(
        "facturadirecta", [{"method": "POST", "path": "/contacts$", "rates": {"truncate": 1.0}, "count": 1}]
    )
    report = world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    world.sandbox.clear_faults()
    assert world.facturadirecta.replayed >= 1  # the lost answer's create came back from the API's key store
    assert all(k and k.startswith("cs-") for k in keys) and len(set(keys)) == len(keys)
    world.sync(FD, Entity.CONTACTS)
    fd = rest_fiscal_ids(world)
    assert [k for k, n in fd.items() if n > 1] == [], (fd, report["failures"])
    assert sum(n for k, n in fd.items() if k) == 4


def fd_calls(world: World) -> dict[str, int]:
    calls: dict[str, int] = {}
    for row in world.sandbox.stats("facturadirecta")["by_route"]:
        key = f"{row['method']} {row['route']}"
        calls[key] = calls.get(key, 0) + row["count"]
    return calls


def edit_rest_contact(world: World, rid: str, **main: Any) -> None:
    """A user's edit in FacturaDirecta: the record read, changed and PUT whole (the API replaces it)."""
    record = world.facturadirecta.clients.get(rid)
    world.facturadirecta.clients.update(
        rid, {"content": {**record["content"], "main": {**record["content"]["main"], **main}}}
    )


def synced_rest_account(world: World) -> list[dict[str, Any]]:
    world.sandbox.seed("facturadirecta", target="rest", clients=8, products=2, estimates=0, seed=21)
    world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    return list(world.facturadirecta.clients.iter_records())


def test_an_idle_modified_run_reads_the_activity_feed_not_the_listing(rest_world: World):
    world = rest_world
    synced_rest_account(world)
    # The full run's own link write-backs are in the feed: the next run reads each once (recognised by
    # hash, nothing written); from then on an idle run reads the feed alone.
    world.sync(FD, Entity.CONTACTS)
    world.sandbox.reset_stats()
    report = world.sync(FD, Entity.CONTACTS)
    calls = fd_calls(world)
    assert report["extract"]["extract_invoicing"]["feed"] == "activity"
    assert (
        sum(n for k, n in calls.items() if k.startswith("GET") and k.rstrip("/").endswith("/contacts")) == 0
    )
    assert sum(calls.values()) <= 3, (
        calls
    )  # the feed's page, the custom field's definition: issue 24's target
    assert world.writes("facturadirecta") == 0 and world.writes("clientify") == 0


def test_an_edit_in_facturadirecta_is_read_through_the_feed_and_reaches_clientify(rest_world: World):
    world = rest_world
    [first, *_] = synced_rest_account(world)
    world.sync(FD, Entity.CONTACTS)  # settles the full run's own write-backs (see above)
    edit_rest_contact(world, first["content"]["uuid"], email="nuevo@taller.es")
    world.sandbox.reset_stats()
    report = world.sync(FD, Entity.CONTACTS)
    assert report["extract"]["extract_invoicing"]["records"] == 1 and report["failures"] == []
    fiscal_id = first["content"]["main"]["fiscalId"]
    parties = [*world.clientify.contacts.iter_records(), *world.clientify.companies.iter_records()]
    [party] = [
        p for p in parties if str(p.get("taxpayer_identification_number") or "").upper() == fiscal_id.upper()
    ]
    assert [e["email"] for e in party.get("emails") or []] == ["nuevo@taller.es"]


def test_the_feed_position_moves_only_when_the_run_commits(rest_world: World, monkeypatch):
    world = rest_world
    [first, *_] = synced_rest_account(world)
    world.sync(FD, Entity.CONTACTS)
    edit_rest_contact(world, first["content"]["uuid"], email="una@taller.es")

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("worker lost")

    from clientify_sync.engine.job import SyncJob

    monkeypatch.setattr(SyncJob, "apply_clientify", fail)
    with pytest.raises(RuntimeError):
        world.sync(FD, Entity.CONTACTS)
    monkeypatch.undo()
    report = world.sync(FD, Entity.CONTACTS)  # reads the same event again: the failed run stored nothing
    assert report["extract"]["extract_invoicing"]["records"] == 1
    assert report["counts"]["invoicing→clientify"]["updated"] == 1


# -- estimates on the REST API (issue 24): the classic scenarios of test_sync_estimates.py ---------------

COMPANY = ("B12345674", "Ferretería Pérez SL")
OTHER = ("A58818501", "Talleres Vic SA")
PRODUCTS = {"WEB003": ("Sitio Web CMS", "6500.00"), "HOST01": ("Hosting anual", "1999.99")}


def rest_contact(world: World, fiscal_id: str, name: str) -> str:
    main = {"name": name, "fiscalId": fiscal_id, "fiscalIdCountry": "ES", "email": "hola@example.es",
            "country": "ES"}  # fmt: skip
    return str(
        world.facturadirecta.clients.create({"content": {"type": "contact", "main": main}})["content"]["uuid"]
    )


def rest_product(world: World, sku: str) -> str:
    name, price = PRODUCTS[sku]
    main = {"name": name, "sku": sku, "currency": "EUR",
            "sales": {"tax": ["S_IVA_21"], "account": "7000000", "price": float(price), "description": name}}  # fmt: skip
    return str(
        world.facturadirecta.products.create({"content": {"type": "product", "main": main}})["content"][
            "uuid"
        ]
    )


def rest_lines(products: dict[str, str], lines: list[tuple[str, int, str, str]]) -> list[dict[str, Any]]:
    """lines: (sku, quantity, unit price, discount rate %) as a user types them in FacturaDirecta."""
    out = []
    for sku, quantity, price, rate in lines:
        line: dict[str, Any] = {"text": f"Linea {sku}", "quantity": quantity, "unitPrice": float(price),
                                "tax": ["S_IVA_21"], "document": products[sku]}  # fmt: skip
        if Decimal(rate):
            line["discountRate"] = float(rate)
        out.append(line)
    return out


def rest_estimate(
    world: World, contact: str, products: dict[str, str], lines: list[tuple[str, int, str, str]]
) -> str:
    main = {"contact": contact, "date": "2026-05-03", "currency": "EUR", "baseState": "pending",
            "lines": rest_lines(products, lines)}  # fmt: skip
    created = world.facturadirecta.estimates.create({"content": {"type": "estimate", "main": main}})
    return str(created["content"]["uuid"])


def edit_rest_estimate(world: World, rid: str, **main: Any) -> None:
    """A user's edit in FacturaDirecta: read, change, PUT whole, less what the server computes."""
    record = world.facturadirecta.estimates.get(rid)
    computed = {"title", "linesTotal", "totalBeforeTaxes", "taxes", "total"}
    body = {k: v for k, v in record["content"]["main"].items() if k not in computed} | main
    for line in body.get("lines") or []:
        line.pop("lineTotal", None)
    world.facturadirecta.estimates.update(
        rid, {"content": {"type": "estimate", "main": body}, "tags": record.get("tags") or []}
    )


def rest_estimates(world: World) -> list[dict[str, Any]]:
    return list(world.facturadirecta.estimates.iter_records())


def budgets(world: World) -> list[dict[str, Any]]:
    return list(world.clientify.budgets.iter_records())


def crm_url(world: World, collection: str, record_id: Any) -> str:
    return f"{world.clientify.settings.base_url}/v1/{collection}/{record_id}/"


def crm_item(world: World, sku: str, quantity: str, price: str, discount: str = "0.00") -> dict[str, Any]:
    [product] = world.clientify.products.find_by_sku(sku)
    return {"product": crm_url(world, "products", product["id"]), "quantity": quantity, "price": price,
            "discount": discount, "tax": "21.00"}  # fmt: skip


def crm_budget(world: World, tax_id: str, items: list[dict[str, Any]], name: str = "Web") -> dict[str, Any]:
    [company] = world.clientify.companies.find_by_tax_id(tax_id)
    return world.clientify.budgets.create({"name": name, "company": crm_url(world, "companies", company["id"]),
                                           "currency": "EUR", "date": "2026-05-04", "status": "pending",
                                           "items": items})  # fmt: skip


def rest_link(world: World, estimate: dict[str, Any]) -> str | None:
    fields = estimate["content"]["main"].get("customFields") or {}
    [definition] = [d for d in world.facturadirecta.custom_fields.definitions() if d["title"] == "ID_CRM"]
    return fields.get(definition["id"])


@pytest.fixture
def rest_linked(rest_world: World) -> dict[str, Any]:
    """A company and two products on the REST API, synced (an estimate's dependencies)."""
    world = rest_world
    contact = rest_contact(world, *COMPANY)
    products = {sku: rest_product(world, sku) for sku in PRODUCTS}
    world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(FD, Entity.PRODUCTS, mode=Mode.FULL)
    return {"world": world, "contact": contact, "products": products}


def test_estimates_sync_both_ways_on_the_rest_api_exact_to_the_cent_and_an_idle_run_writes_nothing(
    rest_linked,
):
    world, products = rest_linked["world"], rest_linked["products"]
    lines = [("WEB003", 2, "6500.00", "1"), ("HOST01", 3, "1999.99", "2.5")]
    est_id = rest_estimate(world, rest_linked["contact"], products, lines)
    budget = crm_budget(world, COMPANY[0], [crm_item(world, "WEB003", "1.00", "6500.00"),
                                           crm_item(world, "HOST01", "3.00", "2000.00", "60.00")])  # fmt: skip
    report = world.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    assert report["failures"] == [], report["failures"]
    assert report["counts"]["invoicing→clientify"]["created"] == 1
    assert report["counts"]["clientify→invoicing"]["created"] == 1
    # FacturaDirecta → Clientify: the server's total, the budget's code is our reference to the estimate.
    estimate = world.facturadirecta.estimates.get(est_id)
    [mine] = [b for b in budgets(world) if b["code"] == f"FD-{est_id}"]
    assert Decimal(str(mine["total"])) == Decimal(str(estimate["content"]["main"]["total"]))
    # 13000 less 1 % = 12870.00 and 5999.97 less 2.5 % = 5849.97 (rounded net), 18719.97 + VAT 21 % once (3931.19): 22651.16
    assert Decimal(str(estimate["content"]["main"]["total"])) == Decimal("22651.16")
    assert [(i["sku"], Decimal(i["quantity"]), Decimal(i["discount"])) for i in mine["items"]] == [
        ("WEB003", Decimal(2), Decimal("130.00")), ("HOST01", Decimal(3), Decimal("150.00"))]  # fmt: skip
    # Clientify → FacturaDirecta: one estimate carrying the budget's id, the same total.
    [made] = [e for e in rest_estimates(world) if e["content"]["uuid"] != est_id]
    assert rest_link(world, made) == str(budget["id"])
    assert [line["document"] for line in made["content"]["main"]["lines"]] == [
        products["WEB003"],
        products["HOST01"],
    ]
    [theirs] = [b for b in budgets(world) if b["id"] == budget["id"]]
    assert (
        Decimal(str(made["content"]["main"]["total"])) == Decimal(str(theirs["total"])) == Decimal("15052.40")
    )
    world.sync(FD, Entity.ESTIMATES)  # the write-backs of the first run, read once through the feed
    world.sandbox.reset_stats()
    again = world.sync(FD, Entity.ESTIMATES)
    assert again["failures"] == [] and world.writes("clientify") == 0 and world.writes("facturadirecta") == 0
    assert len(budgets(world)) == 2 and len(rest_estimates(world)) == 2


def test_estimate_edits_on_each_side_merge_on_the_rest_api(rest_linked):
    world, products = rest_linked["world"], rest_linked["products"]
    est_id = rest_estimate(world, rest_linked["contact"], products, [("WEB003", 1, "6500.00", "0")])
    world.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    world.sync(FD, Entity.ESTIMATES)
    # an edit in FacturaDirecta (a line's quantity) and another in Clientify (the notes), both since the
    # last run: each field goes where it was not changed
    main = world.facturadirecta.estimates.get(est_id)["content"]["main"]
    edit_rest_estimate(world, est_id, lines=[main["lines"][0] | {"quantity": 4}])
    [budget] = budgets(world)
    world.clientify.budgets.update(budget["id"], {"comments": "con hosting"})
    report = world.sync(FD, Entity.ESTIMATES)
    assert report["failures"] == [], report["failures"]
    [budget] = budgets(world)
    assert [Decimal(i["quantity"]) for i in budget["items"]] == [Decimal(4)] and budget[
        "comments"
    ] == "con hosting"
    estimate = world.facturadirecta.estimates.get(est_id)["content"]["main"]
    assert estimate["notes"] == "con hosting" and [line["quantity"] for line in estimate["lines"]] == [4]
    assert Decimal(str(estimate["total"])) == Decimal(str(budget["total"])) == Decimal("31460.00")
    # a line added in Clientify reaches FacturaDirecta, priced by the server
    items = [crm_item(world, i["sku"], i["quantity"], i["price"]) for i in budget["items"]]
    world.clientify.budgets.update(
        budget["id"], {"items": [*items, crm_item(world, "HOST01", "2.00", "1999.99")]}
    )
    world.sync(FD, Entity.ESTIMATES)
    estimate = world.facturadirecta.estimates.get(est_id)["content"]["main"]
    assert [line["document"] for line in estimate["lines"]] == [products["WEB003"], products["HOST01"]]
    assert Decimal(str(estimate["total"])) == Decimal("36299.98")
    world.sync(FD, Entity.ESTIMATES)
    world.sandbox.reset_stats()
    world.sync(FD, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def deferred_rest_estimate(rest_linked: dict[str, Any]) -> World:
    """An estimate for a customer made after the contacts sync: deferred, then the customer is synced."""
    world = rest_linked["world"]
    contact = rest_contact(world, *OTHER)
    rest_estimate(world, contact, rest_linked["products"], [("WEB003", 1, "6500.00", "0")])
    report = world.sync(FD, Entity.ESTIMATES)
    assert report["reasons"]["deferred:dependency_missing"] == 1 and budgets(world) == []
    world.sync(FD, Entity.CONTACTS)
    return world


def test_a_rest_estimate_whose_customer_is_not_synced_is_deferred_then_a_full_run_syncs_it(rest_linked):
    world = deferred_rest_estimate(rest_linked)
    report = world.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
    assert report["counts"]["invoicing→clientify"]["created"] == 1 and len(budgets(world)) == 1


def test_a_rest_estimate_whose_customer_is_not_synced_is_deferred_then_the_next_modified_run_syncs_it(
    rest_linked,
):
    world = deferred_rest_estimate(rest_linked)
    report = world.sync(FD, Entity.ESTIMATES)
    assert report["counts"].get("invoicing→clientify", {}).get("created") == 1, report["counts"]
    assert len(budgets(world)) == 1


# 100.03 + 257.60 at 21 %: VAT 75.10 once per document (FacturaDirecta), 75.11 per line (Clientify).
CENT_APART = [("WEB003", 1, "100.03", "0"), ("HOST01", 1, "257.60", "0")]


def test_a_rest_estimate_whose_vat_rounds_to_another_cent_in_clientify_keeps_its_total(rest_linked):
    world, products = rest_linked["world"], rest_linked["products"]
    est_id = rest_estimate(world, rest_linked["contact"], products, CENT_APART)
    report = world.sync(FD, Entity.ESTIMATES)
    assert report["failures"] == [] and report["adjusted"] == {"rounding": 1, "rounding_amount": "-0.01"}
    [budget] = budgets(world)
    assert Decimal(str(world.facturadirecta.estimates.get(est_id)["content"]["main"]["total"])) == Decimal(
        "432.73"
    )
    assert Decimal(budget["total"]) == Decimal("432.73")
    # the other way round: a Clientify budget of those lines stays 432.74 in FacturaDirecta, through our
    # rounding line (no product, no tax)
    theirs = crm_budget(world, COMPANY[0], [crm_item(world, sku, "1.00", price) for sku, _, price, _ in CENT_APART],
                        name="Céntimo")  # fmt: skip
    report = world.sync(FD, Entity.ESTIMATES)
    assert report["failures"] == [], report["failures"]
    [made] = [e for e in rest_estimates(world) if rest_link(world, e) == str(theirs["id"])]
    main = made["content"]["main"]
    assert Decimal(str(main["total"])) == Decimal("432.74")
    [rounding] = [line for line in main["lines"] if not line.get("document")]
    assert (Decimal(str(rounding["unitPrice"])), rounding.get("tax") or []) == (Decimal("0.01"), [])
    world.sync(FD, Entity.ESTIMATES)
    world.sandbox.reset_stats()
    world.sync(FD, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def test_an_estimate_create_whose_answer_was_lost_is_replayed_by_its_key_not_made_twice(rest_linked):
    world = rest_linked["world"]
    budget = crm_budget(world, COMPANY[0], [crm_item(world, "WEB003", "1.00", "6500.00")], name="Perdido")
    world.sandbox.faults(
        "facturadirecta", [{"method": "POST", "path": "/estimates$", "rates": {"truncate": 1.0}, "count": 1}]
    )
    report = world.sync(FD, Entity.ESTIMATES)
    world.sandbox.clear_faults()
    assert world.facturadirecta.replayed == 1  # the re-sent POST was answered Idempotent-Replayed: true
    posts = [r for r in world.sandbox.stats("facturadirecta")["by_route"]
             if r["method"] == "POST" and r["route"].rstrip("/").endswith("/estimates")]  # fmt: skip
    assert sum(r["count"] for r in posts) == 2  # the lost one and its replay
    world.sync(FD, Entity.ESTIMATES)
    [estimate] = rest_estimates(world)
    assert rest_link(world, estimate) == str(budget["id"]), report["failures"]
    assert len(budgets(world)) == 1


def test_a_crash_between_an_estimate_create_and_its_link_leaves_one_of_each_on_the_rest_api(
    rest_linked, monkeypatch: pytest.MonkeyPatch
):
    """The process dies after the creates went through, before their links were saved: the next run finds
    each made record by its key (the budget's code ``FD-est_…``, the estimate's reference ``CLI-<id>``)."""
    world = rest_linked["world"]
    budget = crm_budget(world, COMPANY[0], [crm_item(world, "WEB003", "1.00", "6500.00")], name="Crash")
    est_id = rest_estimate(
        world, rest_linked["contact"], rest_linked["products"], [("HOST01", 1, "1999.99", "0")]
    )

    def crash(self, item, written, pending_id):
        raise Crash()

    monkeypatch.setattr(Applier, "_succeed", crash)
    with pytest.raises(Crash):
        world.sync(FD, Entity.ESTIMATES)
    monkeypatch.undo()
    world.sync(FD, Entity.ESTIMATES)
    world.sync(FD, Entity.ESTIMATES)
    assert len(budgets(world)) == 2 and len(rest_estimates(world)) == 2
    assert [b["code"] for b in budgets(world) if b["id"] != budget["id"]] == [f"FD-{est_id}"]
    assert [rest_link(world, e) for e in rest_estimates(world) if e["content"]["uuid"] != est_id] == [
        str(budget["id"])
    ]
    world.sandbox.reset_stats()
    world.sync(FD, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def test_products_sync_both_ways_on_the_rest_api_and_an_idle_run_writes_nothing(rest_world: World):
    """Products take no custom field on the REST API: their links live in the ledger and the SKU."""
    world = rest_world
    rest_product(world, "WEB003")
    world.clientify.products.create({"name": "Hosting anual", "sku": "HOST01", "price": "1999.99"})
    report = world.sync(FD, Entity.PRODUCTS, mode=Mode.FULL)
    assert report["failures"] == [] and report["counts"]["invoicing→clientify"]["created"] == 1
    assert report["counts"]["clientify→invoicing"]["created"] == 1
    rest = {
        p["content"]["main"]["sku"]: p["content"]["main"]
        for p in world.facturadirecta.products.iter_records()
    }
    assert sorted(rest) == ["HOST01", "WEB003"] and Decimal(str(rest["HOST01"]["sales"]["price"])) == Decimal(
        "1999.99"
    )
    assert sorted(p["sku"] for p in world.clientify.products.iter_records()) == ["HOST01", "WEB003"]
    world.sync(FD, Entity.PRODUCTS)
    world.sandbox.reset_stats()
    world.sync(FD, Entity.PRODUCTS)
    assert world.writes("clientify") == 0 and world.writes("facturadirecta") == 0


def test_contact_edits_on_each_side_merge_on_the_rest_api(rest_world: World):
    """Three-way: FacturaDirecta changed the email, Clientify the city, since the last run: both kept."""
    world = rest_world
    rid = rest_contact(world, *COMPANY)
    world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(FD, Entity.CONTACTS)
    edit_rest_contact(world, rid, email="nuevo@ferreteria.es")
    [company] = world.clientify.companies.find_by_tax_id(COMPANY[0])
    world.clientify.companies.update(company["id"], {"addresses": [{"street": "Carrer Major 1", "city": "Manlleu",
                                                                    "country": "ES", "postal_code": "08560", "type": 3}]})  # fmt: skip
    report = world.sync(FD, Entity.CONTACTS)
    assert report["failures"] == [], report["failures"]
    main = world.facturadirecta.clients.get(rid)["content"]["main"]
    [company] = world.clientify.companies.find_by_tax_id(COMPANY[0])
    assert main["email"] == "nuevo@ferreteria.es" and main["city"] == "Manlleu"
    assert [e["email"] for e in company.get("emails") or []] == ["nuevo@ferreteria.es"]
    assert [a["city"] for a in company.get("addresses") or []] == ["Manlleu"]
