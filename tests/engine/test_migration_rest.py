"""Moving a FacturaDirecta account from the classic API to the REST API (issue 24): the ids change
(numeric → ``con_…``), the links are established again by tax ID and SKU, and nothing is created twice."""

from __future__ import annotations

from collections import Counter

import pytest

from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.errors import ConfigurationError
from tests.engine.conftest import World
from tests.engine.test_sync_rest import rest_world  # noqa: F401 (fixture)

FD = Platform.FACTURADIRECTA


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
    with pytest.raises(ConfigurationError, match="estimates cannot be re-linked"):
        rest.sync(FD, Entity.ESTIMATES, mode=Mode.FULL)
