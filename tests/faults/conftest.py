"""Fault-suite fixtures: worlds with chosen client settings, a seeded scenario with recorded edits,
fault-rule helpers, and the summary table printed at the end of the session.

Everything talks to the session sandbox on 127.0.0.1 (``tests/fixtures/sandbox.py``); sizes are
small unless ``--large`` is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import World, make_clients
from tests.faults.convergence import (
    Edit,
    Outcome,
    by_key,
    check,
    estimate_pairs,
    live_directory,
    read_sides,
    sync_round,
)

ROWS = pytest.StashKey[list[dict[str, Any]]]()
TOKENS = {
    "clientify": {"token": "fake-clientify-sandbox-token"},
    "facturama": {"user": "sandbox-user", "password": "sandbox-password-fake"},
    "facturadirecta": {"token": "fake-facturadirecta-sandbox-token"},
}
# Canonical paths the sandbox's fault layer sees for the listing routes of each API.
LIST_PATHS = {
    "facturama": r"^/(clients|products|estimates)$",
    "clientify": r"^/v1/(contacts|companies|products|budgets)/$",
    "facturadirecta": r"^/api/(clients|products|estimates)\.xml$",
}
COUNTRY = {Platform.FACTURAMA: "MX", Platform.FACTURADIRECTA: "ES"}
SKU_OPTION = {Platform.FACTURAMA: "sku_prefix", Platform.FACTURADIRECTA: "code_prefix"}
CONTACTS_AND_PRODUCTS = (Entity.CONTACTS, Entity.PRODUCTS)


# -- the summary table ----------------------------------------------------------------------------------


@pytest.fixture
def fault_table(request) -> list[dict[str, Any]]:
    """Rows for the end-of-session table (fault, injected, runs, records, duplicates, lost edits)."""
    rows = request.config.stash.get(ROWS, None)
    if rows is None:
        rows = request.config.stash[ROWS] = []
    return rows


def add_row(
    table: list[dict[str, Any]], fault: str, injected: int, outcome: Outcome, faulted_runs: int = 1
) -> None:
    table.append({
        "fault": fault, "injected": injected, "runs": faulted_runs + outcome.runs, "records": outcome.result.records,
        "duplicates": len(outcome.result.duplicates), "lost edits": len(outcome.result.lost_edits),
        "missing+diff": len(outcome.result.missing) + len(outcome.result.mismatches),
        "converged": "yes" if outcome.result.ok and outcome.idle_writes == 0 else "NO",
    })  # fmt: skip


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    rows = config.stash.get(ROWS, None)
    if not rows:
        return
    columns = (
        "fault",
        "injected",
        "runs",
        "records",
        "duplicates",
        "lost edits",
        "missing+diff",
        "converged",
    )
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    terminalreporter.section("fault suite: convergence after each fault")
    line = "  ".join(f"{c:<{widths[c]}}" if c == "fault" else f"{c:>{widths[c]}}" for c in columns)
    terminalreporter.write_line(line)
    terminalreporter.write_line("-" * len(line))
    for row in rows:
        terminalreporter.write_line(
            "  ".join(
                f"{row[c]:<{widths[c]}}" if c == "fault" else f"{row[c]!s:>{widths[c]}}" for c in columns
            )
        )


# -- worlds ---------------------------------------------------------------------------------------------


@pytest.fixture
def large(request) -> bool:
    return bool(request.config.getoption("--large"))


@pytest.fixture
def make_world(clean_sandbox, tmp_path) -> Iterator[Callable[..., World]]:
    """``make_world(**extra)``: a World whose three clients get these connection extras (one ledger)."""
    made: list[World] = []

    def make(**extra: Any) -> World:
        facturama, clientify, facturadirecta = make_clients(clean_sandbox, **extra)
        world = World(clean_sandbox, facturama, clientify, facturadirecta, f"sqlite:///{tmp_path}/ledger.db")
        made.append(world)
        return world

    yield make
    for world in made:
        for client in (world.facturama, world.clientify, world.facturadirecta):
            client.close()
    clean_sandbox.clear_faults()
    for api, credentials in TOKENS.items():
        clean_sandbox.config(api, **credentials)


# -- fault rules ----------------------------------------------------------------------------------------


def fault_rule(
    kind: str, route: str, api: str, *, count: int | None = 1, rate: float = 1.0, **extra: Any
) -> dict:
    """One rule: ``route`` is ``list`` (GET listings), ``get`` (any GET), ``post``, ``put`` or ``*``."""
    method, path = {"list": ("GET", LIST_PATHS[api]), "get": ("GET", ".*"), "post": ("POST", ".*"),
                    "put": ("PUT", ".*"), "*": ("*", ".*")}[route]  # fmt: skip
    return {"method": method, "path": path, "rates": {kind: rate}, "count": count, **extra}


def applied(sandbox: Any, apis: tuple[str, ...] = ("facturama", "clientify", "facturadirecta")) -> int:
    """Faults the sandbox injected so far (its rules' ``applied`` counters)."""
    return sum(rule["applied"] for api in apis for rule in sandbox.control(api, "GET", "faults")["rules"])


def requests_seen(sandbox: Any, apis: tuple[str, ...]) -> int:
    return sum(sandbox.stats(api)["total"] for api in apis)


def assert_failed_runs_kept_their_watermark(
    world: World, platform: Platform, before: dict, errors: list[str]
) -> None:
    """A run that stopped (``sync_round`` error strings start with the entity) never moves its watermark."""
    for entity in {Entity(error.split(":", 1)[0]) for error in errors if not error.startswith("idle")}:
        assert world.watermarks.get((platform, entity)) == before.get((platform, entity)), entity


# -- a seeded scenario with edits on both sides ---------------------------------------------------------


@dataclass
class Sizes:
    clients: int = 6
    products: int = 5
    crm_contacts: int = 3
    crm_companies: int = 1
    crm_products: int = 2
    new_clients: int = 2
    new_products: int = 2
    new_crm_contacts: int = 2
    new_crm_products: int = 2
    edits: int = 2
    estimates: int = 2

    @classmethod
    def pick(cls, large: bool, factor: int = 10) -> Sizes:
        small = cls()
        if not large:
            return small
        return cls(
            **{name: value * factor for name, value in vars(small).items() if name != "edits"}, edits=5
        )


@dataclass
class Scenario:
    world: World
    platform: Platform
    entities: tuple[Entity, ...]
    edits: list[Edit] = field(default_factory=list)
    exclude: set[str] = field(default_factory=set)

    def check(self):
        return check(self.world, self.platform, self.entities, self.edits, exclude=self.exclude)


def seed_both_sides(world: World, platform: Platform, sizes: Sizes, *, seed: int, prefix: str = "",
                    estimates: int = 0) -> None:  # fmt: skip
    sandbox = world.sandbox
    inv_options = {SKU_OPTION[platform]: f"{prefix}SKU"} if prefix else {}
    sandbox.seed(platform.value, clients=sizes.clients if not prefix else sizes.new_clients,
                 products=sizes.products if not prefix else sizes.new_products, estimates=estimates,
                 seed=seed, product_options=inv_options)  # fmt: skip
    sandbox.seed("clientify", contacts=sizes.crm_contacts if not prefix else sizes.new_crm_contacts,
                 companies=sizes.crm_companies if not prefix else 0,
                 products=sizes.crm_products if not prefix else sizes.new_crm_products, seed=seed + 1,
                 country=COUNTRY[platform], product_options={"sku_prefix": f"{prefix}CRM"})  # fmt: skip


def build_scenario(
    world: World,
    platform: Platform,
    sizes: Sizes,
    *,
    entities: tuple[Entity, ...] = CONTACTS_AND_PRODUCTS,
    seed: int = 11,
) -> Scenario:
    """Seed both sides, sync everything once (full), then add new records on both sides and edit
    ``sizes.edits`` records of each entity on each side; the edits are recorded as expectations."""
    scenario = Scenario(world, platform, entities)
    with_estimates = Entity.ESTIMATES in entities
    seed_both_sides(world, platform, sizes, seed=seed, estimates=sizes.estimates if with_estimates else 0)
    errors = sync_round(world, platform, entities, mode=Mode.FULL)
    assert not errors, errors
    if with_estimates:
        create_budgets(world, platform, sizes.estimates)
        assert not sync_round(world, platform, entities)
    baseline = scenario.check()
    assert baseline.ok, baseline.explain()
    seed_both_sides(world, platform, sizes, seed=seed + 50, prefix="N", estimates=1 if with_estimates else 0)
    edit_contacts(scenario, sizes.edits)
    edit_products(scenario, sizes.edits)
    if with_estimates:
        edit_estimates(scenario, min(sizes.edits, sizes.estimates))
        create_budgets(world, platform, 1, offset=7)
    return scenario


def _pairs(world: World, platform: Platform, entity: Entity):
    inv, crm = read_sides(world, platform, entity)
    inv_keys, crm_keys = by_key(inv), by_key(crm)
    return [(inv_keys[k][0], crm_keys[k][0]) for k in sorted(inv_keys) if len(inv_keys[k]) == 1
            and len(crm_keys.get(k, [])) == 1]  # fmt: skip


def edit_contacts(scenario: Scenario, n: int) -> None:
    """E-mails edited on the invoicing side, names (accents, ñ) edited in Clientify, on other records."""
    world, platform = scenario.world, scenario.platform
    pairs = _pairs(world, platform, Entity.CONTACTS)
    assert len(pairs) >= 2 * n, "not enough linked customers to edit"
    for i, (inv, _) in enumerate(pairs[:n]):
        email = f"editado{i}@facturas.example"
        if platform is Platform.FACTURAMA:
            raw = world.facturama.clients.get(inv.rid)
            world.facturama.clients.update(inv.rid, {**raw, "Email": email})
        else:
            world.facturadirecta.clients.update(inv.rid, {"email": email})
        scenario.edits.append(Edit(Entity.CONTACTS, inv.key, "email", email))
    for i, (_, crm) in enumerate(pairs[n : 2 * n]):
        if crm.rtype == "contact":
            name = f"Ñandú Edición Ü{i}"
            world.clientify.contacts.update(crm.rid, {"first_name": "Ñandú", "last_name": f"Edición Ü{i}"})
        else:
            name = f"Compañía Editada {i} SA"
            world.clientify.companies.update(crm.rid, {"name": name})
        scenario.edits.append(Edit(Entity.CONTACTS, crm.key, "name", name))


def edit_products(scenario: Scenario, n: int) -> None:
    """Prices edited on the invoicing side, names edited in Clientify, on other products."""
    world, platform = scenario.world, scenario.platform
    pairs = _pairs(world, platform, Entity.PRODUCTS)
    assert len(pairs) >= 2 * n, "not enough linked products to edit"
    for i, (inv, _) in enumerate(pairs[:n]):
        price = f"{777 + i}.25"
        if platform is Platform.FACTURAMA:
            raw = world.facturama.products.get(inv.rid)
            world.facturama.products.update(inv.rid, {**raw, "Price": float(price)})
        else:
            world.facturadirecta.products.update(inv.rid, {"price": price})
        scenario.edits.append(Edit(Entity.PRODUCTS, inv.key, "price", price))
    for i, (_, crm) in enumerate(pairs[n : 2 * n]):
        name = f"Producto editado ñ {i}"
        world.clientify.products.update(crm.rid, {"name": name})
        scenario.edits.append(Edit(Entity.PRODUCTS, crm.key, "name", name))


def edit_estimates(scenario: Scenario, n: int) -> None:
    """Notes edited on an invoicing estimate and comments on another pair's budget."""
    world, platform = scenario.world, scenario.platform
    inv, crm = read_sides(world, platform, Entity.ESTIMATES, live_directory(world, platform))
    by_inv, _ = estimate_pairs(platform, inv, crm)
    pairs = sorted((rid, matches[0]) for rid, matches in by_inv.items() if len(matches) == 1)
    assert len(pairs) >= 2, "not enough linked estimates to edit"
    half = max(1, min(n, len(pairs) // 2))
    for i, (rid, _) in enumerate(pairs[:half]):
        notes = f"Notas editadas en la factura {i} ñ"
        if platform is Platform.FACTURAMA:
            raw = world.facturama.estimates.get(rid)
            world.facturama.estimates.update(rid, {**raw, "Observations": notes})
        else:
            world.facturadirecta.estimates.update(rid, {"notes": notes})
        scenario.edits.append(Edit(Entity.ESTIMATES, rid, "notes", notes))
    for i, (rid, budget) in enumerate(pairs[half : 2 * half]):
        notes = f"Comentario editado en Clientify {i}"
        world.clientify.budgets.update(budget.rid, {"comments": notes})
        scenario.edits.append(Edit(Entity.ESTIMATES, rid, "notes", notes))


def create_budgets(world: World, platform: Platform, n: int, offset: int = 0) -> list[dict[str, Any]]:
    """Budgets made in Clientify for linked companies/contacts and linked products."""
    parties = [(crm.rtype, crm.rid) for _, crm in _pairs(world, platform, Entity.CONTACTS)]
    products = [crm for _, crm in _pairs(world, platform, Entity.PRODUCTS)]
    base = world.clientify.settings.base_url
    vat = "16.00" if platform is Platform.FACTURAMA else "21.00"
    made = []
    for i in range(n):
        rtype, rid = parties[(i + offset) % len(parties)]
        product = products[(i + offset) % len(products)]
        collection = "contacts" if rtype == "contact" else "companies"
        made.append(world.clientify.budgets.create({
            "name": f"Presupuesto {i + offset}", rtype: f"{base}/v1/{collection}/{rid}/",
            "currency": "MXN" if platform is Platform.FACTURAMA else "EUR", "date": "2026-05-04",
            "status": "pending", "items": [{"product": f"{base}/v1/products/{product.rid}/", "quantity": "2.00",
                                            "price": product.data["price"] or "10.00", "discount": "0.00",
                                            "tax": vat}],
        }))  # fmt: skip
    return made
