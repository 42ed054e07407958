"""Products both ways, joined on the SKU, both integrations (issue 5 scenarios)."""

from __future__ import annotations

from typing import Any

import pytest

from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import PLATFORMS, World


def create_product(world: World, platform: Platform, sku: str | None, name: str, price: str) -> str:
    if platform is Platform.FACTURAMA:
        body = {"Unit": "Servicio", "UnitCode": "E48", "IdentificationNumber": sku, "Name": name,
                "Description": name, "Price": float(price), "CodeProdServ": "43232408", "TaxObject": "02",
                "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}]}  # fmt: skip
        return str(world.facturama.products.create(body)["Id"])
    body: dict[str, Any] = {"name": name, "description": name, "price": price}
    if sku:
        body["productCode"] = sku
    return str(world.facturadirecta.products.create(body)["id"])


def crm_products(world: World) -> dict[str, dict[str, Any]]:
    return {p["sku"]: p for p in world.clientify.products.iter_records() if p.get("sku")}


def inv_products(world: World, platform: Platform) -> dict[str, dict[str, Any]]:
    key = "IdentificationNumber" if platform is Platform.FACTURAMA else "productCode"
    return {p[key]: p for p in world.invoicing(platform).products.iter_records() if p.get(key)}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_products_sync_both_ways_by_sku(world: World, platform: Platform):
    web_id = create_product(world, platform, "WEB003", "Sitio Web CMS", "6500.00")
    create_product(world, platform, None, "Sin SKU", "10.00")
    world.clientify.products.create({"name": "Consultoría", "sku": "CONS-1", "price": "1200.50"})
    world.clientify.products.create({"name": "Producto sin SKU", "price": "5.00"})
    report = world.sync(platform, Entity.PRODUCTS, mode=Mode.FULL)

    assert report["reasons"]["skipped:no_sku"] == 2
    crm = crm_products(world)
    assert crm["WEB003"]["name"] == "Sitio Web CMS" and float(crm["WEB003"]["price"]) == 6500.0
    field = "in_facturama" if platform is Platform.FACTURAMA else "in_facturadirecta"
    assert {"field": field, "value": web_id} in [
        {"field": c["field"], "value": c["value"]} for c in crm["WEB003"]["custom_fields"]
    ]
    inv = inv_products(world, platform)
    price = inv["CONS-1"].get("Price", inv["CONS-1"].get("price"))
    assert float(price) == 1200.5

    world.clientify.products.update(crm["WEB003"]["id"], {"price": "7000.00"})
    world.sync(platform, Entity.PRODUCTS)
    price = inv_products(world, platform)["WEB003"]
    assert float(price.get("Price", price.get("price"))) == 7000.0

    world.sandbox.reset_stats()
    world.sync(platform, Entity.PRODUCTS)
    assert world.writes("clientify") == 0 and world.writes(platform.value) == 0
    assert len(crm_products(world)) == 2 and len(inv_products(world, platform)) == 2
