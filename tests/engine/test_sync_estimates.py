"""Estimates both ways with their customer and product lines, both integrations (issue 7 scenarios)."""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest

from clientify_sync.engine.apply import Applier
from clientify_sync.engine.documents import canonical_line, totals_per_document, totals_per_line
from clientify_sync.engine.job import SyncJob
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import Entity, JobSpec, Mode, Platform
from tests.engine.conftest import PLATFORMS, World
from tests.engine.test_sync_contacts import CUSTOMERS, Crash, create_customer
from tests.engine.test_sync_products import create_product

VAT = {Platform.FACTURAMA: Decimal("16"), Platform.FACTURADIRECTA: Decimal("21")}


def sync_all(world: World, platform: Platform, mode: Mode = Mode.MODIFIED) -> dict[str, Any]:
    world.sync(platform, Entity.CONTACTS, mode=mode)
    world.sync(platform, Entity.PRODUCTS, mode=mode)
    return world.sync(platform, Entity.ESTIMATES, mode=mode)


def discount(quantity: int, price: str, rate: str) -> Decimal:
    """The amount of a percentage discount: the gross less the net FacturaDirecta rounds."""
    gross = quantity * Decimal(price)
    return gross - (gross * (1 - Decimal(rate) / 100)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def canonical(lines: list[tuple[str, int, str, str]], vat: Decimal) -> list[dict[str, str]]:
    return [canonical_line(sku, "", q, p, discount(q, p, r), vat) for sku, q, p, r in lines]


def create_estimate(
    world: World, platform: Platform, customer_id: str, lines: list[tuple[str, int, str, str]]
) -> str:
    """lines: (sku, quantity, unit price, discount rate %)."""
    if platform is Platform.FACTURAMA:
        rfc = world.facturama.clients.get(customer_id)["Rfc"]
        items = [{"ProductCode": "43232408", "IdentificationNumber": sku, "Description": f"Linea {sku}",
                  "Unit": "Servicio", "UnitCode": "E48", "Quantity": q, "UnitPrice": float(p),
                  "Discount": float(discount(q, p, r)), "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False}]}
                 for sku, q, p, r in lines]  # fmt: skip
        body = {"Folio": "COT-1", "Date": "2026-05-03T10:00:00", "Currency": "MXN", "Status": "Pending",
                "Receiver": {"Id": customer_id, "Rfc": rfc}, "Items": items}  # fmt: skip
        return str(world.facturama.estimates.create(body)["Id"])
    fd_lines = [{"productCode": sku, "description": f"Linea {sku}", "quantity": str(q), "unitPrice": p,
                 "discountRate": r, "applyTax1": "true"} for sku, q, p, r in lines]  # fmt: skip
    body = {"client": {"id": customer_id}, "estimateDate": "20260503", "currency": "EUR", "status": "pending",
            "tax1": {"name": "IVA", "rate": "21.00"}, "estimateLines": fd_lines}  # fmt: skip
    return str(world.facturadirecta.estimates.create(body)["id"])


def budgets(world: World) -> list[dict[str, Any]]:
    return list(world.clientify.budgets.iter_records())


def inv_estimates(world: World, platform: Platform) -> list[dict[str, Any]]:
    return list(world.invoicing(platform).estimates.iter_records())


def crm_product_url(world: World, sku: str) -> str:
    [product] = world.clientify.products.find_by_sku(sku)
    return f"{world.clientify.settings.base_url}/v1/products/{product['id']}/"


def crm_company_url(world: World, tax_id: str) -> str:
    [company] = world.clientify.companies.find_by_tax_id(tax_id)
    return f"{world.clientify.settings.base_url}/v1/companies/{company['id']}/"


@pytest.fixture
def linked(world: World, request) -> dict[str, Any]:
    """A company and two products synced on both sides (the estimate's dependencies)."""
    platform: Platform = request.param
    tax_id, name = CUSTOMERS[platform]["company"]
    customer_id = create_customer(world, platform, tax_id, name)
    create_product(world, platform, "WEB003", "Sitio Web CMS", "6500.00")
    create_product(world, platform, "HOST01", "Hosting anual", "1999.99")
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(platform, Entity.PRODUCTS, mode=Mode.FULL)
    return {"platform": platform, "customer_id": customer_id, "tax_id": tax_id}


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_estimate_made_in_the_invoicing_platform_appears_in_clientify(world: World, linked):
    platform = linked["platform"]
    est_id = create_estimate(world, platform, linked["customer_id"], [("WEB003", 2, "6500.00", "1.00")])
    report = world.sync(platform, Entity.ESTIMATES, mode=Mode.FULL)
    assert report["counts"]["invoicing→clientify"]["created"] == 1
    [budget] = budgets(world)
    assert budget["code"] == f"{'FM' if platform is Platform.FACTURAMA else 'FD'}-{est_id}"
    [item] = budget["items"]
    assert (item["sku"], Decimal(item["quantity"]), Decimal(item["price"]), Decimal(item["discount"])) == (
        "WEB003", Decimal(2), Decimal("6500.00"), Decimal("130.00"),
    )  # fmt: skip
    assert Decimal(item["tax"]) == VAT[platform]
    expected = totals_per_line(canonical([("WEB003", 2, "6500.00", "1.00")], VAT[platform]))
    assert Decimal(budget["total"]) == expected.total


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_budget_made_in_clientify_appears_in_the_invoicing_platform(world: World, linked):
    platform = linked["platform"]
    vat = str(VAT[platform])
    items = [{"product": crm_product_url(world, "WEB003"), "quantity": "1.00", "price": "6500.00",
              "discount": "0.00", "tax": vat},
             {"product": crm_product_url(world, "HOST01"), "quantity": "3.00", "price": "2000.00",
              "discount": "60.00", "tax": vat}]  # fmt: skip
    budget = world.clientify.budgets.create({"name": "Web", "company": crm_company_url(world, linked["tax_id"]),
                                             "currency": "MXN" if platform is Platform.FACTURAMA else "EUR",
                                             "date": "2026-05-04", "status": "pending", "items": items})  # fmt: skip
    report = world.sync(platform, Entity.ESTIMATES)
    assert report["counts"]["clientify→invoicing"]["created"] == 1
    [estimate] = inv_estimates(world, platform)
    lines = estimate.get("Items") or estimate.get("estimateLines")
    skus = [line.get("IdentificationNumber") or line.get("productCode") for line in lines]
    assert skus == ["WEB003", "HOST01"]
    lines = canonical([("WEB003", 1, "6500.00", "0"), ("HOST01", 3, "2000.00", "1.00")], VAT[platform])
    if platform is Platform.FACTURAMA:
        assert Decimal(str(estimate["Total"])) == totals_per_line(lines).total
        assert estimate["Folio"] == f"CLI-{budget['id']}"
    else:
        assert Decimal(estimate["totalAmount"]) == totals_per_document(lines).total
    world.sandbox.reset_stats()
    world.sync(platform, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0


@pytest.mark.parametrize("platform", PLATFORMS)
def test_estimate_whose_customer_is_not_synced_is_deferred_then_goes_through(
    world: World, platform: Platform
):
    tax_id, name = CUSTOMERS[platform]["other"]
    create_product(world, platform, "WEB003", "Sitio Web CMS", "6500.00")
    world.sync(platform, Entity.PRODUCTS, mode=Mode.FULL)
    customer_id = create_customer(world, platform, tax_id, name)  # created after the contacts sync
    create_estimate(world, platform, customer_id, [("WEB003", 1, "6500.00", "0")])

    report = world.sync(platform, Entity.ESTIMATES)
    assert report["reasons"]["deferred:dependency_missing"] == 1 and budgets(world) == []
    world.sync(platform, Entity.CONTACTS)
    report = world.sync(platform, Entity.ESTIMATES)
    assert report["counts"]["invoicing→clientify"]["created"] == 1 and len(budgets(world)) == 1


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_line_edits_on_each_side_merge(world: World, linked):
    platform = linked["platform"]
    est_id = create_estimate(world, platform, linked["customer_id"], [("WEB003", 1, "6500.00", "0")])
    world.sync(platform, Entity.ESTIMATES)
    [budget] = budgets(world)

    # a line edit on the invoicing side...
    if platform is Platform.FACTURAMA:
        estimate = world.facturama.estimates.get(est_id)
        estimate["Items"][0]["Quantity"] = 4
        world.facturama.estimates.update(est_id, estimate)
    else:
        lines = world.facturadirecta.estimates.get(est_id)["estimateLines"]
        world.facturadirecta.estimates.update(est_id, {"estimateLines": [lines[0] | {"quantity": "4"}]})
    world.sync(platform, Entity.ESTIMATES)
    [budget] = budgets(world)
    assert [Decimal(i["quantity"]) for i in budget["items"]] == [Decimal(4)]

    # ...then a line added in Clientify
    items = [{"product": crm_product_url(world, i["sku"]), "quantity": i["quantity"], "price": i["price"],
              "discount": i["discount"], "tax": i["tax"]} for i in budget["items"]]  # fmt: skip
    items.append({"product": crm_product_url(world, "HOST01"), "quantity": "2.00", "price": "1999.99",
                  "discount": "0.00", "tax": str(VAT[platform])})  # fmt: skip
    world.clientify.budgets.update(budget["id"], {"items": items, "comments": "con hosting"})
    world.sync(platform, Entity.ESTIMATES)
    estimate = world.invoicing(platform).estimates.get(est_id)
    lines = estimate.get("Items") or estimate.get("estimateLines")
    assert [line.get("IdentificationNumber") or line.get("productCode") for line in lines] == [
        "WEB003",
        "HOST01",
    ]
    assert (estimate.get("Observations") or estimate.get("notes")) == "con hosting"

    world.sandbox.reset_stats()
    world.sync(platform, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_totals_with_many_lines_and_discounts_stay_exact_to_the_cent(world: World, linked):
    platform = linked["platform"]
    lines = [
        ("WEB003" if i % 2 else "HOST01", i + 1, f"{1999.99 + i * 0.37:.2f}", f"{i * 1.25:.2f}")
        for i in range(10)
    ]
    est_id = create_estimate(world, platform, linked["customer_id"], lines)
    report = world.sync(platform, Entity.ESTIMATES)
    doc = canonical(lines, VAT[platform])
    estimate = world.invoicing(platform).estimates.get(est_id)
    reported = Decimal(
        str(estimate.get("Total") if platform is Platform.FACTURAMA else estimate.get("totalAmount"))
    )
    rule = totals_per_line if platform is Platform.FACTURAMA else totals_per_document
    assert reported == rule(doc).total
    if platform is Platform.FACTURAMA:  # both sides round VAT per line: the budget holds the same amount
        [budget] = budgets(world)
        assert Decimal(budget["total"]) == reported
        assert sum((Decimal(i["subtotal"]) for i in budget["items"]), Decimal(0)) == Decimal(
            budget["subtotal"]
        )
    else:  # these lines total a cent more with VAT per line: Clientify holds them with a rounding line
        assert totals_per_line(doc).total == reported + Decimal("0.01")
        [budget] = budgets(world)
        assert Decimal(budget["total"]) == reported and report["failures"] == []
        assert report["adjusted"] == {"rounding": 1, "rounding_amount": "-0.01"}


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_crash_mid_create_then_rerun_leaves_one_estimate(
    world: World, linked, monkeypatch: pytest.MonkeyPatch
):
    platform = linked["platform"]
    budget = world.clientify.budgets.create({
        "name": "Crash", "company": crm_company_url(world, linked["tax_id"]), "date": "2026-05-04",
        "currency": "MXN" if platform is Platform.FACTURAMA else "EUR", "status": "pending",
        "items": [{"product": crm_product_url(world, "WEB003"), "quantity": "1.00", "price": "6500.00",
                   "discount": "0.00", "tax": str(VAT[platform])}],
    })  # fmt: skip
    create_estimate(world, platform, linked["customer_id"], [("HOST01", 1, "1999.99", "0")])

    def crash(self, item, written, pending_id):
        raise Crash()

    monkeypatch.setattr(Applier, "_succeed", crash)
    with pytest.raises(Crash):
        world.sync(platform, Entity.ESTIMATES)
    monkeypatch.undo()
    world.sync(platform, Entity.ESTIMATES)
    world.sync(platform, Entity.ESTIMATES)
    assert len(budgets(world)) == 2 and len(inv_estimates(world, platform)) == 2
    assert (
        sum(
            1
            for e in inv_estimates(world, platform)
            if e.get("Folio") == f"CLI-{budget['id']}"
            or any(a.get("value") == str(budget["id"]) for a in e.get("customAttributes") or [])
        )
        == 1
    )


def test_a_discount_facturadirecta_cannot_hold_exactly_fails_with_a_reason(world: World):
    platform = Platform.FACTURADIRECTA
    tax_id, name = CUSTOMERS[platform]["company"]
    create_customer(world, platform, tax_id, name)
    create_product(world, platform, "HOST01", "Hosting anual", "1999.99")
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(platform, Entity.PRODUCTS, mode=Mode.FULL)
    world.clientify.budgets.create({
        "name": "Descuento raro", "company": crm_company_url(world, tax_id), "date": "2026-05-04", "currency": "EUR",
        "status": "pending", "items": [{"product": crm_product_url(world, "HOST01"), "quantity": "3.00",
                                        "price": "1999.99", "discount": "10.00", "tax": "21.00"}],
    })  # fmt: skip
    report = world.sync(platform, Entity.ESTIMATES)
    assert inv_estimates(world, platform) == []
    [failure] = report["failures"]
    assert failure["reason"] == "discount_not_representable" and failure["type"] == "budget"


def test_a_budget_for_a_customer_of_the_other_integration_is_skipped_not_deferred(world: World):
    mexican = world.clientify.companies.create(
        {"name": "ACME MX", "taxpayer_identification_number": "URE180429TM6"}
    )
    world.clientify.budgets.create({
        "name": "Cotización", "company": f"{world.clientify.settings.base_url}/v1/companies/{mexican['id']}/",
        "date": "2026-05-04", "currency": "MXN", "status": "pending", "items": [],
    })  # fmt: skip
    world.sync(Platform.FACTURADIRECTA, Entity.CONTACTS, mode=Mode.FULL)  # an RFC is no NIF: out of scope
    world.sync(Platform.FACTURADIRECTA, Entity.PRODUCTS, mode=Mode.FULL)
    report = world.sync(Platform.FACTURADIRECTA, Entity.ESTIMATES, mode=Mode.FULL)
    assert report["reasons"] == {"skipped:other_platform": 1}  # as the customer itself is
    ledger = Ledger.open(world.ledger_url, "facturadirecta", "estimates")
    assert ledger.dead_letters.open().empty
    ledger.close()


# -- issue 12: amounts each side can hold exactly, lines without a SKU ----------------------------------


def budget_writes(world: World) -> int:
    """Writes on the budgets routes (the link field's definition is a write of its own)."""
    rows = world.sandbox.stats("clientify")["by_route"]
    return sum(
        r["count"] for r in rows if "budgets" in r["route"] and r["method"] in ("POST", "PUT", "PATCH")
    )


# 100.03 + 257.60 at 21%: VAT 75.10 rounded once per document (FacturaDirecta), 21.01 + 54.10 = 75.11 per
# line (Clientify). The same lines total 432.73 on one side and 432.74 on the other.
CENT_APART = [("WEB003", 1, "100.03", "0"), ("HOST01", 1, "257.60", "0")]


@pytest.mark.parametrize("linked", [PLATFORMS[1]], indirect=True)
def test_an_estimate_whose_vat_rounds_to_another_cent_on_the_other_side_keeps_its_total(world: World, linked):
    """Issue 12 refused these; issue 21 writes them with a rounding line (test_sync_rounding.py)."""
    doc = canonical(CENT_APART, VAT[Platform.FACTURADIRECTA])
    assert (totals_per_document(doc).tax, totals_per_line(doc).tax) == (Decimal("75.10"), Decimal("75.11"))
    create_estimate(world, Platform.FACTURADIRECTA, linked["customer_id"], CENT_APART)
    report = world.sync(Platform.FACTURADIRECTA, Entity.ESTIMATES)
    [budget] = budgets(world)
    assert Decimal(budget["total"]) == Decimal("432.73") and report["failures"] == []

    # The other way round: a Clientify budget of those lines stays 432.74 on FacturaDirecta.
    items = [{"product": crm_product_url(world, sku), "quantity": "1.00", "price": price, "discount": "0.00",
              "tax": "21.00"} for sku, _, price, _ in CENT_APART]  # fmt: skip
    world.clientify.budgets.create({"name": "Céntimo", "company": crm_company_url(world, linked["tax_id"]),
                                    "date": "2026-05-04", "currency": "EUR", "status": "pending", "items": items})  # fmt: skip
    report = world.sync(Platform.FACTURADIRECTA, Entity.ESTIMATES)
    assert report["failures"] == [] and len(inv_estimates(world, Platform.FACTURADIRECTA)) == 2
    assert sorted(Decimal(e["totalAmount"]) for e in inv_estimates(world, Platform.FACTURADIRECTA)) == [
        Decimal("432.73"), Decimal("432.74")]  # fmt: skip


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_an_estimate_with_a_line_without_sku_is_skipped_before_any_call(world: World, linked):
    platform = linked["platform"]
    create_estimate(
        world, platform, linked["customer_id"], [("WEB003", 1, "6500.00", "0"), ("", 1, "50.00", "0")]
    )
    no_sku = world.clientify.products.create({"name": "Servicio sin SKU", "price": "10.00"})
    url = f"{world.clientify.settings.base_url}/v1/products/{no_sku['id']}/"
    world.clientify.budgets.create({
        "name": "Sin SKU", "company": crm_company_url(world, linked["tax_id"]), "date": "2026-05-04",
        "currency": "MXN" if platform is Platform.FACTURAMA else "EUR", "status": "pending",
        "items": [{"product": url, "quantity": "1.00", "price": "10.00", "discount": "0.00", "tax": str(VAT[platform])}],
    })  # fmt: skip
    world.sandbox.reset_stats()
    report = world.sync(platform, Entity.ESTIMATES)

    assert report["reasons"] == {"skipped:line_without_sku": 2}
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0
    assert len(budgets(world)) == 1 and len(inv_estimates(world, platform)) == 1  # only the originals
    assert report["failures"] == []  # nothing dead-lettered to be retried five runs
    ledger = Ledger.open(world.ledger_url, platform.value, "estimates")
    assert ledger.dead_letters.open().empty
    ledger.close()


@pytest.mark.parametrize("linked", PLATFORMS, indirect=True)
def test_a_job_given_the_runs_directory_builds_none_and_maps_with_it(
    world: World, linked, monkeypatch: pytest.MonkeyPatch
):
    platform = linked["platform"]
    create_estimate(world, platform, linked["customer_id"], [("WEB003", 1, "100.00", "0")])
    spec = JobSpec(platform, Entity.ESTIMATES, "test-shared-directory", Mode.FULL, False)
    open_job = functools.partial(SyncJob.open, spec, invoicing=world.invoicing(platform),
                                 clientify=world.clientify, ledger_url=world.ledger_url)  # fmt: skip
    first = open_job()
    shared = first.directory  # built on first use (the constructor does no I/O)
    built: list[SyncJob] = []
    monkeypatch.setattr(SyncJob, "_directory", lambda job: built.append(job))
    second = open_job(directory=shared)
    try:
        assert second.directory is shared and built == []
        assert first.directory is not None and linked["tax_id"] in first.directory.customers
        assert second.extract_invoicing()["records"] == 1  # mapped with the shared directory
    finally:
        first.close()
        second.close()
