"""Estimates written to the cent where the two sides round VAT differently (issue 21).

FacturaDirecta rounds VAT once per document, Clientify and Facturama once per line. Each scenario
runs the real engine against the sandbox, which computes every total itself: the target's own total
must equal the source's, through a rounding line of ours that never travels back.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from clientify_sync.engine.documents import RoundingPolicy
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import Entity, Mode, Platform, SyncOptions
from tests.engine.conftest import World
from tests.engine.test_sync_contacts import CUSTOMERS, create_customer
from tests.engine.test_sync_estimates import budgets, create_estimate, crm_company_url, crm_product_url
from tests.engine.test_sync_products import create_product

FD = Platform.FACTURADIRECTA
LABEL, SKU = RoundingPolicy().label, RoundingPolicy().sku
# n lines of 2.50 at 21 %: 0.525 of VAT each, so VAT per line is n/2 cents above VAT per document.
APART = {1: 2, 2: 4, 5: 10}  # cents apart: lines of 2.50


def twos(n: int) -> list[tuple[str, int, str, str]]:
    return [("WEB003" if i % 2 else "HOST01", 1, "2.50", "0") for i in range(n)]


@pytest.fixture
def fd_linked(world: World) -> dict[str, Any]:
    tax_id, name = CUSTOMERS[FD]["company"]
    customer_id = create_customer(world, FD, tax_id, name)
    create_product(world, FD, "WEB003", "Sitio Web CMS", "6500.00")
    create_product(world, FD, "HOST01", "Hosting anual", "1999.99")
    world.sync(FD, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(FD, Entity.PRODUCTS, mode=Mode.FULL)
    return {"customer_id": customer_id, "tax_id": tax_id}


def rounding_items(budget: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in budget["items"] if item["sku"] == SKU]


def rounding_lines(estimate: dict[str, Any]) -> list[dict[str, Any]]:
    return [line for line in estimate["estimateLines"] if line["description"] == LABEL]


def fd_estimate(world: World) -> dict[str, Any]:
    [estimate] = world.facturadirecta.estimates.iter_records()
    return world.facturadirecta.estimates.get(estimate["id"])


def crm_budget(world: World) -> dict[str, Any]:
    [budget] = budgets(world)
    return world.clientify.budgets.get(budget["id"])


def assert_same_total(world: World) -> Decimal:
    estimate, budget = fd_estimate(world), crm_budget(world)
    assert Decimal(estimate["totalAmount"]) == Decimal(budget["total"])  # as each sandbox computes it
    return Decimal(budget["total"])


def sync_twice_writing_nothing_the_second_time(world: World) -> dict[str, Any]:
    report = world.sync(FD, Entity.ESTIMATES)
    world.sandbox.reset_stats()
    again = world.sync(FD, Entity.ESTIMATES)
    assert world.writes("clientify") == 0 and world.writes("facturadirecta") == 0, again["counts"]
    assert again["failures"] == [] and "adjusted:rounding" not in again["reasons"]
    return report


@pytest.mark.parametrize("cents", list(APART))
def test_facturadirecta_estimate_reaches_clientify_to_the_cent(world: World, fd_linked, cents: int):
    create_estimate(world, FD, fd_linked["customer_id"], twos(APART[cents]))
    report = sync_twice_writing_nothing_the_second_time(world)
    assert report["failures"] == [] and report["counts"]["invoicing→clientify"]["created"] == 1
    assert report["reasons"]["adjusted:rounding"] == 1
    assert report["adjusted"]["rounding_amount"] == str(Decimal(-cents) / 100)
    assert_same_total(world)
    [item] = rounding_items(crm_budget(world))
    assert (Decimal(item["price"]), Decimal(item["tax"]), item["description"]) == (
        Decimal(-cents) / 100,
        0,
        LABEL,
    )
    assert rounding_lines(fd_estimate(world)) == []  # the source keeps its lines as they were
    # Our rounding product is no product of the user's: the product sync skips it, never copies it.
    products = world.sync(FD, Entity.PRODUCTS, mode=Mode.FULL)
    assert products["reasons"].get("skipped:rounding_product") == 1
    assert SKU not in {p.get("productCode") for p in world.facturadirecta.products.iter_records()}


@pytest.mark.parametrize("cents", list(APART))
def test_clientify_budget_reaches_facturadirecta_to_the_cent(world: World, fd_linked, cents: int):
    items = [{"product": crm_product_url(world, sku), "quantity": "1.00", "price": price, "discount": "0.00",
              "tax": "21.00"} for sku, _, price, _ in twos(APART[cents])]  # fmt: skip
    world.clientify.budgets.create({"name": "Céntimos", "company": crm_company_url(world, fd_linked["tax_id"]),
                                    "date": "2026-05-04", "currency": "EUR", "status": "pending", "items": items})  # fmt: skip
    report = sync_twice_writing_nothing_the_second_time(world)
    assert report["failures"] == [] and report["counts"]["clientify→invoicing"]["created"] == 1
    assert report["adjusted"] == {"rounding": 1, "rounding_amount": str(Decimal(cents) / 100)}
    assert_same_total(world)
    [line] = rounding_lines(fd_estimate(world))
    assert (Decimal(line["unitPrice"]), line["applyTax1"], line["productCode"]) == (
        Decimal(cents) / 100,
        "false",
        "",
    )
    assert rounding_items(crm_budget(world)) == []


def test_edits_on_either_side_move_through_and_the_adjustment_follows_then_goes(world: World, fd_linked):
    est_id = create_estimate(world, FD, fd_linked["customer_id"], twos(2))
    sync_twice_writing_nothing_the_second_time(world)
    assert [Decimal(i["price"]) for i in rounding_items(crm_budget(world))] == [Decimal("-0.01")]

    # An edit in FacturaDirecta (the source): four lines now, two cents apart; the adjustment follows.
    world.facturadirecta.estimates.update(est_id, {"estimateLines": [
        {"productCode": sku, "description": f"Linea {sku}", "quantity": "1", "unitPrice": price, "discountRate": "0",
         "applyTax1": "true"} for sku, _, price, _ in twos(4)]})  # fmt: skip
    sync_twice_writing_nothing_the_second_time(world)
    assert_same_total(world)
    assert [Decimal(i["price"]) for i in rounding_items(crm_budget(world))] == [Decimal("-0.02")]

    # An edit in Clientify (where our line stands): one line's quantity; the user keeps the total they
    # see, rounding line included, and FacturaDirecta shows the same.
    budget = crm_budget(world)
    items = [{"product": f"{world.clientify.settings.base_url}/v1/products/{i['product_id']}/",
              "quantity": i["quantity"], "price": i["price"], "discount": i["discount"], "tax": i["tax"]}
             for i in budget["items"]]  # fmt: skip
    items[0]["quantity"] = "3.00"
    world.clientify.budgets.update(budget["id"], {"items": items})
    sync_twice_writing_nothing_the_second_time(world)
    total = assert_same_total(world)
    assert [line["quantity"] for line in fd_estimate(world)["estimateLines"] if line["description"] != LABEL][0] in (
        "3", "3.00", "3.0")  # fmt: skip

    # No difference left (one line of 100.00): the rounding lines go on the next write.
    world.facturadirecta.estimates.update(est_id, {"estimateLines": [
        {"productCode": "WEB003", "description": "Linea", "quantity": "1", "unitPrice": "100.00",
         "discountRate": "0", "applyTax1": "true"}]})  # fmt: skip
    sync_twice_writing_nothing_the_second_time(world)
    assert assert_same_total(world) == Decimal("121.00") != total
    assert rounding_items(crm_budget(world)) == [] and rounding_lines(fd_estimate(world)) == []


def test_with_adjustments_off_the_estimate_is_refused_as_before(world: World, fd_linked):
    create_estimate(world, FD, fd_linked["customer_id"], twos(2))
    report = world.sync(FD, Entity.ESTIMATES, options=SyncOptions(rounding_adjustment=False))
    assert budgets(world) == []
    [failure] = report["failures"]
    assert failure["reason"] == "totals_not_representable" and "off" in failure["detail"]
    ledger = Ledger.open(world.ledger_url, "facturadirecta", "estimates")
    assert len(ledger.dead_letters.open()) == 1
    ledger.close()


def test_facturama_needs_no_adjustment(world: World):
    """Facturama and Clientify both round per line: the same lines total the same, no rounding line."""
    platform = Platform.FACTURAMA
    tax_id, name = CUSTOMERS[platform]["company"]
    customer_id = create_customer(world, platform, tax_id, name)
    create_product(world, platform, "WEB003", "Sitio Web CMS", "6500.00")
    create_product(world, platform, "HOST01", "Hosting anual", "1999.99")
    world.sync(platform, Entity.CONTACTS, mode=Mode.FULL)
    world.sync(platform, Entity.PRODUCTS, mode=Mode.FULL)
    est_id = create_estimate(world, platform, customer_id, twos(10))
    report = world.sync(platform, Entity.ESTIMATES)
    assert report["failures"] == [] and "adjusted:rounding" not in report["reasons"]
    [budget] = budgets(world)
    assert rounding_items(budget) == []
    assert Decimal(budget["total"]) == Decimal(str(world.facturama.estimates.get(est_id)["Total"]))
