"""The "1% edited on each side" step of scenario 3: real field changes made through the APIs.

On the invoicing side 1% of each entity's records (clients: e-mail, products: price, estimates:
notes); on the Clientify side 1% of the linked contacts/companies (city), products (name) and budgets
(comments). Both picks are among linked pairs, disjoint, and seeded, so each edit has exactly one
place to go and the same run picks the same records. Every new value carries a counter, so it differs
from the old one.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bench.engine import ApiClients
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.mapping.clientify import pick_address
from clientify_sync.engine.vocabulary import Entity, Platform

ADDRESS_KEYS = ("street", "city", "state", "postal_code", "country", "type")


@dataclass(frozen=True)
class Pair:
    """A linked record: its invoicing id and its Clientify type and id."""

    inv_id: str
    crm_type: str
    crm_id: str


@dataclass(frozen=True)
class Edit:
    """One edit made: ``side`` is where it was made; the sync must carry it to the other side."""

    side: str
    platform: Platform
    entity: Entity
    rtype: str
    rid: str
    field: str
    value: str
    reach: tuple[str, ...] = ()  # Clientify edits: every integration linking the record must get it


def ledger_pairs(ledger_url: str, platform: Platform, entity: Entity) -> list[Pair]:
    ledger = Ledger.open(ledger_url, platform.value, entity.value)
    try:
        frame = ledger.links.identities()
    finally:
        ledger.close()
    return [Pair(str(r.inv_id), str(r.crm_type), str(r.crm_id)) for r in frame.itertuples()]


def pick(
    pairs: list[Pair], invoicing_total: int, fraction: float, seed: str
) -> tuple[list[Pair], list[Pair]]:
    """Disjoint seeded picks: ``fraction`` of the invoicing records, then of the linked Clientify ones."""
    ordered = sorted(pairs, key=lambda p: (p.inv_id, p.crm_type, p.crm_id))
    k_inv = max(1, round(fraction * invoicing_total))
    k_crm = max(1, round(fraction * len(ordered)))
    chosen = random.Random(seed).sample(ordered, min(len(ordered), k_inv + k_crm))
    return chosen[:k_inv], chosen[k_inv:]


# -- one edit per (side, platform, entity) ------------------------------------------------------------


def _without_empty_strings(value: Any) -> Any:
    """Facturama rejects a PUT whose optional strings are ``""`` (facturama-mcp): strip them from the GET copy."""
    if isinstance(value, dict):
        return {k: _without_empty_strings(v) for k, v in value.items() if v != ""}
    if isinstance(value, list):
        return [_without_empty_strings(v) for v in value]
    return value


def _edit_invoicing(clients: ApiClients, platform: Platform, entity: Entity, pair: Pair, n: int) -> Edit:
    api = clients.invoicing(platform)
    rid = pair.inv_id
    if platform is Platform.FACTURAMA:
        resource = {
            Entity.CONTACTS: api.clients,
            Entity.PRODUCTS: api.products,
            Entity.ESTIMATES: api.estimates,
        }[entity]
        raw = _without_empty_strings(resource.get(rid))
        if entity is Entity.CONTACTS:
            name, value = "Email", f"bench.edit{n}@example.com"
        elif entity is Entity.PRODUCTS:
            name, value = "Price", str(Decimal(str(raw["Price"])).quantize(Decimal("0.01")) + 1)
        else:
            name, value = "Observations", f"Bench edit {n}"
        raw[name] = float(value) if name == "Price" else value
        resource.update(rid, raw)  # Facturama's PUT replaces the whole object
        return Edit("invoicing", platform, entity, "", rid, name, value)
    if isinstance(api, FacturaDirectaRestClient):
        return _edit_rest(api, entity, rid, n)
    if entity is Entity.CONTACTS:
        name, value = "email", f"bench.edit{n}@example.com"
        api.clients.update(rid, {name: value})
    elif entity is Entity.PRODUCTS:
        name, value = "price", str(Decimal(str(api.products.get(rid)["price"])) + 1)
        api.products.update(rid, {name: value})
    else:
        name, value = "notes", f"Bench edit {n}"
        api.estimates.update(rid, {name: value})
    return Edit("invoicing", platform, entity, "", rid, name, value)


def _edit_rest(api: FacturaDirectaRestClient, entity: Entity, rid: str, n: int) -> Edit:
    """A user's edit on FacturaDirecta's REST API: the record read, one field changed, PUT whole (the
    API replaces it)."""
    resource = {Entity.CONTACTS: api.clients, Entity.PRODUCTS: api.products, Entity.ESTIMATES: api.estimates}[
        entity
    ]
    record = resource.get(rid)
    main = dict(record["content"]["main"])
    if entity is Entity.CONTACTS:
        name, value = "email", f"bench.edit{n}@example.com"
        main[name] = value
    elif entity is Entity.PRODUCTS:
        sales = dict(main.get("sales") or {})
        name, value = "price", str(Decimal(str(sales.get("price") or 0)) + 1)
        main["sales"] = {**sales, "price": float(value)}
    else:
        name, value = "notes", f"Bench edit {n}"
        main[name] = value
    resource.update(rid, {"content": {**record["content"], "main": main}})
    return Edit("invoicing", Platform.FACTURADIRECTA, entity, "", rid, name, value)


def _edit_clientify(clients: ApiClients, platform: Platform, entity: Entity, pair: Pair, n: int) -> Edit:
    crm = clients.clientify
    rid = pair.crm_id
    if entity is Entity.CONTACTS:
        resource = crm.contacts if pair.crm_type == "contact" else crm.companies
        current = resource.get(rid).get("addresses") or []
        addresses = [{k: a.get(k) for k in ADDRESS_KEYS} for a in current]
        index, _ = pick_address(current)
        value = f"Ciudad Bench {n}"
        if index is None:
            addresses = [{"city": value, "type": 3}]
        else:
            addresses[index]["city"] = value
        resource.update(rid, {"addresses": addresses})  # lists are replaced: send them all
        return Edit("clientify", platform, entity, pair.crm_type, rid, "city", value)
    if entity is Entity.PRODUCTS:
        value = f"{crm.products.get(rid)['name']} (bench {n})"
        crm.products.update(rid, {"name": value})
        return Edit("clientify", platform, entity, "product", rid, "name", value)
    value = f"Bench edit {n}"
    crm.budgets.update(rid, {"comments": value})
    return Edit("clientify", platform, entity, "budget", rid, "comments", value)


def apply_edits(
    clients: ApiClients,
    picks: Iterable[tuple[Platform, Entity, list[Pair], list[Pair]]],
    concurrency: int,
    first: int = 0,
) -> list[Edit]:
    """Make every edit (concurrently); raises if one fails, since the bound would then be wrong. Values
    count from ``first`` + 1, so a second round of edits never writes a value a record already holds."""
    jobs: list[Callable[[], Edit]] = []
    counter = first
    for platform, entity, on_invoicing, on_clientify in picks:
        for chosen, edit in ((on_invoicing, _edit_invoicing), (on_clientify, _edit_clientify)):
            for pair in chosen:
                counter += 1
                jobs.append(_bind(edit, clients, platform, entity, pair, counter))
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-edit") as pool:
        return list(pool.map(lambda job: job(), jobs))


def _bind(
    edit: Any, clients: ApiClients, platform: Platform, entity: Entity, pair: Pair, n: int
) -> Callable[[], Edit]:
    return lambda: edit(clients, platform, entity, pair, n)
