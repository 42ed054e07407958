"""Bulk loading of generated data (``POST /_sandbox/seed``), delegating the data itself to ``generator``.

Seeded records model data that already lives in the platform, so they bypass request validation
(a Facturama client with an invalid RFC is exactly what a sync must cope with) but get the same
normalisation, computed amounts and lookup columns as API writes. Everything is inserted with
``executemany`` in one transaction per resource: 10k records take well under a second.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from collections.abc import Callable
from typing import Any

from include.sandbox import fd_rest_seed, generator
from include.sandbox.config import ClientifyConfig, FacturaDirectaConfig, FacturamaConfig
from include.sandbox.context import ApiContext
from include.sandbox.fd_rest_runtime import runtime_for
from include.sandbox.models import clientify as crm
from include.sandbox.models import facturadirecta as fd
from include.sandbox.models import facturama as fm
from include.sandbox.routers.facturama import RESOURCES as FM_RESOURCES
from include.sandbox.routers.facturama import new_id
from include.sandbox.routers.facturama import new_row as fm_row
from include.sandbox.store import NewRow, Session

IDS_LIMIT = 1000  # ids are listed in the answer only for small seeds


class SeedError(ValueError):
    """A seed request that cannot be honoured (bad sizes, unknown options)."""


def _count(body: dict[str, Any], key: str) -> int:
    value = body.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SeedError(f"{key} must be a non-negative integer")
    return value


def _options(body: dict[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise SeedError(f"{key} must be an object")
    return value


def _call(make: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return make(*args, **kwargs)
    except TypeError as exc:
        raise SeedError(str(exc)) from None


def seed(context: ApiContext, body: dict[str, Any]) -> dict[str, Any]:
    """Dispatch to the API's seeder; returns counts, elapsed time and (small seeds) the new ids."""
    started = time.perf_counter()
    seeders = {
        "facturama": seed_facturama,
        "clientify": seed_clientify,
        "facturadirecta": seed_facturadirecta,
    }
    created = seeders[context.name](context, body)
    result: dict[str, Any] = {
        "created": {name: len(ids) for name, ids in created.items()},
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
    }
    if sum(len(ids) for ids in created.values()) <= IDS_LIMIT:
        result["ids"] = created
    return result


# -- Facturama -------------------------------------------------------------------------------------


def _seeded_ids(seed_value: int, name: str, start: int) -> Callable[[], str]:
    """Deterministic ids for a given seed and table state; ``start`` (the next row number) keeps a second
    seed call with the same seed from repeating the first call's ids."""
    rng = random.Random(f"sandbox-ids:{name}:{seed_value}:{start}")
    return lambda: new_id(rng.getrandbits(128).to_bytes(16, "big"))


def facturama_customers(n: int, seed_value: int, options: dict[str, Any]) -> list[dict[str, Any]]:
    return _call(generator.facturama_clients, n, seed_value, **options)


def seed_facturama(context: ApiContext, body: dict[str, Any]) -> dict[str, list[str]]:
    cfg = context.config
    assert isinstance(cfg, FacturamaConfig)
    seed_value = int(body.get("seed", 0))
    n_clients, n_products, n_estimates = (_count(body, k) for k in ("clients", "products", "estimates"))
    # Generate and bind outside the database lock; ids, estimates and inserts happen inside it.
    clients = _clean_facturama(
        "client", cfg, facturama_customers(n_clients, seed_value, _options(body, "client_options"))
    )
    products = _clean_facturama(
        "product",
        cfg,
        _call(generator.facturama_products, n_products, seed_value, **_options(body, "product_options")),
    )
    created: dict[str, list[str]] = {}
    with context.store.session(write=True) as s:
        for singular, records in (("client", clients), ("product", products)):
            _assign_ids(s, singular, seed_value, records)
            created[f"{singular}s"] = [r["Id"] for r in records]
        if n_estimates:
            known_clients = clients or [r.body for r in s.select("facturama_clients")]
            known_products = products or [r.body for r in s.select("facturama_products")]
            bodies = _call(
                generator.facturama_estimates,
                n_estimates,
                seed_value,
                clients=known_clients,
                products=known_products,
            )
            estimates = _clean_facturama("estimate", cfg, bodies, known_clients, known_products)
            _assign_ids(s, "estimate", seed_value, estimates)
            created["estimates"] = [e["Id"] for e in estimates]
        else:
            estimates = []
        for singular, records in (("client", clients), ("product", products), ("estimate", estimates)):
            if records:
                resource = FM_RESOURCES[singular]
                s.insert(resource.table, [fm_row(resource, r) for r in records])
    return created


def _assign_ids(s: Session, singular: str, seed_value: int, records: list[dict[str, Any]]) -> None:
    make_id = _seeded_ids(seed_value, singular, s.next_seq(FM_RESOURCES[singular].table))
    for record in records:
        record["Id"] = make_id()


def _clean_facturama(
    singular: str,
    cfg: FacturamaConfig,
    bodies: list[dict[str, Any]],
    clients: list[dict[str, Any]] | None = None,
    products: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Bound records with computed amounts, unvalidated (ids are assigned later)."""
    by_id = {c["Id"]: c for c in clients or []}
    by_sku = {p["IdentificationNumber"]: p for p in products or [] if p.get("IdentificationNumber")}
    records = []
    for payload in bodies:
        errors: dict[str, list[str]] = {}
        if singular == "client":
            record = fm.clean_client(payload, cfg, errors, validate=False)
        elif singular == "product":
            record = fm.clean_product(payload, cfg, errors, validate=False)
        else:
            record = fm.clean_estimate(payload, cfg, errors, by_id.get, by_sku.get, validate=False)
        records.append(record)
    return records


# -- FacturaDirecta --------------------------------------------------------------------------------


def seed_facturadirecta(context: ApiContext, body: dict[str, Any]) -> dict[str, list[str]]:
    # Seeded data may hold invalid tax codes even when API writes are validated.
    cfg = dataclasses.replace(context.config, validate_tax_code=False)  # type: ignore[type-var]
    assert isinstance(cfg, FacturaDirectaConfig)
    seed_value = int(body.get("seed", 0))
    n_clients, n_products, n_estimates = (_count(body, k) for k in ("clients", "products", "estimates"))
    target = body.get("target", "classic")
    if target not in ("classic", "rest", "both"):
        raise SeedError(
            "target must be 'classic', 'rest' or 'both' (the same generated records in both APIs)"
        )
    clients = _call(
        generator.facturadirecta_clients, n_clients, seed_value, **_options(body, "client_options")
    )
    products = _call(
        generator.facturadirecta_products, n_products, seed_value, **_options(body, "product_options")
    )
    created: dict[str, list[str]] = {}
    if target != "classic":
        created.update(_seed_fd_rest(context, cfg, clients, products, n_estimates, seed_value))
    if target == "rest":
        return created
    with context.store.session(write=True) as s:
        client_rows = _insert_fd(s, fd.CLIENTS, cfg, clients, {}, {})
        product_rows = _insert_fd(s, fd.PRODUCTS, cfg, products, {}, {})
        created["clients"] = [str(seq) for seq, _ in client_rows]
        created["products"] = [str(seq) for seq, _ in product_rows]
        if n_estimates:
            client_rows = client_rows or [(r.seq, r.body) for r in s.select(fd.CLIENTS.table)]
            product_rows = product_rows or [(r.seq, r.body) for r in s.select(fd.PRODUCTS.table)]
            targets = [{**record, "id": str(seq)} for seq, record in client_rows]
            bodies = _call(
                generator.facturadirecta_estimates,
                n_estimates,
                seed_value,
                clients=targets,
                products=[record for _, record in product_rows],
            )
            rows = _insert_fd(
                s,
                fd.ESTIMATES,
                cfg,
                bodies,
                dict(client_rows),
                {r.get("productCode"): (seq, r) for seq, r in product_rows if r.get("productCode")},
            )
            created["estimates"] = [str(seq) for seq, _ in rows]
    return created


def _seed_fd_rest(
    context: ApiContext,
    cfg: FacturaDirectaConfig,
    clients: list[dict[str, Any]],
    products: list[dict[str, Any]],
    n_estimates: int,
    seed_value: int,
) -> dict[str, list[str]]:
    """The same generated records in the REST store (fd_rest_seed.py); estimates pick clients by position."""
    runtime = runtime_for(context.store)
    runtime.sync()
    now_us = runtime.now_us()
    with context.store.session(write=True) as s:
        stored_ids, stored_products = (
            ([], []) if clients and products else fd_rest_seed.stored_targets(s, cfg)
        )
        bodies: list[dict[str, Any]] = []
        targets = clients or [{} for _ in stored_ids]
        if n_estimates:
            bodies = _call(
                generator.facturadirecta_estimates,
                n_estimates,
                seed_value,
                clients=[{**c, "id": str(i + 1)} for i, c in enumerate(targets)],
                products=products or stored_products,
            )
        return fd_rest_seed.insert(s, cfg, now_us, clients, products, bodies, None if clients else stored_ids)


def _insert_fd(
    s: Session,
    resource: fd.Resource,
    cfg: FacturaDirectaConfig,
    bodies: list[dict[str, Any]],
    clients: dict[int, dict[str, Any]],
    products: dict[str, tuple[int, dict[str, Any]]],
) -> list[tuple[int, dict[str, Any]]]:
    if not bodies:
        return []
    defined = [name for _, _, name, _ in s.definitions("facturadirecta", resource.plural)]
    numbers: dict[str, int] = {}

    def next_number(serial: str, explicit: int | None) -> int:
        key = f"facturadirecta:estimate-number:{serial}"
        if serial not in numbers:
            numbers[serial] = int(s.meta(key, "0") or 0)
        numbers[serial] = explicit if explicit is not None else numbers[serial] + 1
        return numbers[serial]

    look = fd.Lookups(clients.get, products.get, next_number, lambda: [])
    records = []
    for payload in bodies:
        changes = fd.coerce(resource.schema, payload)
        # Values for labels the account does not define are dropped, as the API would never hold them.
        changes["customAttributes"] = [
            a for a in changes.get("customAttributes", []) if a["label"] in defined
        ]
        records.append(fd.prepare(resource, None, changes, defined, cfg, look))
    for serial, number in numbers.items():
        s.set_meta(f"facturadirecta:estimate-number:{serial}", str(number))
    seqs = s.insert(resource.table, [fd.new_row(resource, r) for r in records])
    return list(zip(seqs, records, strict=True))


# -- Clientify -------------------------------------------------------------------------------------


def overlap_bodies(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Clientify bodies for a fraction of the customers the platform seed generates with the same seed."""
    platform = spec.get("platform")
    n = _count(spec, "customers")
    seed_value = int(spec.get("seed", 0))
    options = _options(spec, "client_options")
    if platform == "facturama":
        customers = facturama_customers(n, seed_value, options)
    elif platform == "facturadirecta":
        customers = _call(generator.facturadirecta_clients, n, seed_value, **options)
    else:
        raise SeedError("overlap.platform must be 'facturama' or 'facturadirecta'")
    fraction = spec.get("fraction", 0.0)
    if not isinstance(fraction, int | float) or not 0 <= fraction <= 1:
        raise SeedError("overlap.fraction must be between 0 and 1")
    return _call(generator.clientify_overlap, platform, customers, float(fraction), seed_value)


def seed_clientify(context: ApiContext, body: dict[str, Any]) -> dict[str, list[str]]:
    cfg = context.config
    assert isinstance(cfg, ClientifyConfig)
    seed_value = int(body.get("seed", 0))
    country = str(body.get("country", "MX"))
    pairs: list[tuple[str, dict[str, Any]]] = []
    specs = body.get("overlap") or []
    for spec in [specs] if isinstance(specs, dict) else specs:
        pairs += overlap_bodies(spec)
    for name, make in (
        ("contacts", generator.clientify_contacts),
        ("companies", generator.clientify_companies),
    ):
        n = _count(body, name)
        if n:
            pairs += [(name, b) for b in _call(make, n, seed_value, country=country)]
    n_products = _count(body, "products")
    if n_products:
        pairs += [
            ("products", b)
            for b in _call(
                generator.clientify_products, n_products, seed_value, **_options(body, "product_options")
            )
        ]
    created: dict[str, list[str]] = {}
    with context.store.session(write=True) as s:
        w = crm.WriteContext.open(cfg, s, context.clock.tick)
        grouped: dict[str, list[NewRow]] = {}
        for name, payload in pairs:
            kind = crm.KINDS[name]
            record = crm.defaults(kind, cfg)
            payload = copy.deepcopy(payload)
            payload.pop("custom_fields", None)
            errors = crm.apply(kind, record, payload, w, creating=True)
            if errors:
                raise SeedError(f"generated {name} body rejected: {errors}")
            now = context.clock.tick()
            grouped.setdefault(name, []).append(crm.new_row(kind, record, now, now))
        for name, rows in grouped.items():
            created[name] = [str(seq) for seq in s.insert(crm.KINDS[name].table, rows)]
        w.ids.flush()
    return created
