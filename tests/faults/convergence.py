"""Has a sync converged? A check over the live sandbox, read through the engine's own mappers.

``check`` reads every record of each entity on both sides (the API clients, not the ledger), maps
them with ``build_sides(...)`` mappers, and reports:

- duplicates: a natural key (tax ID, SKU) held by two records on one side, or an estimate paired with
  two documents on the other side;
- missing: a record with a valid key and no counterpart on the other side;
- mismatches: a pair whose mapped fields (``SideRecord.data``) differ;
- lost edits: an expected field value (an edit the test made) absent on either side.

``converge`` re-runs the sync (faults cleared) until ``check`` passes, at most ``max_reruns`` times,
then proves the state is at rest: one more idle round makes zero successful writes on either API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from clientify_sync.engine.documents import Directory
from clientify_sync.engine.model import SCHEMAS, SideRecord
from clientify_sync.engine.sides import build_sides
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.errors import ClientifySyncError

WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ORDER = (Entity.CONTACTS, Entity.PRODUCTS, Entity.ESTIMATES)


@dataclass(frozen=True)
class Edit:
    """A change the test made on one side: ``field`` must read ``value`` on both sides at the end."""

    entity: Entity
    key: str  # natural key (tax ID / SKU) or, for estimates, the invoicing estimate id
    field: str
    value: Any


@dataclass
class Convergence:
    records: int = 0
    pairs: int = 0
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    lost_edits: list[str] = field(default_factory=list)
    # Documents rightly left unpaired: amounts the other side cannot hold, or a problem on read.
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.missing or self.mismatches or self.lost_edits)

    def explain(self) -> str:
        parts = []
        for name in ("duplicates", "missing", "mismatches", "lost_edits"):
            values = getattr(self, name)
            if values:
                parts.append(f"{name} ({len(values)}): " + "; ".join(values[:8]))
        return " | ".join(parts) or "converged"


@dataclass
class Outcome:
    """What ``converge`` saw: the rounds it ran, the errors of failed runs, the final check."""

    runs: int
    errors: list[str]
    result: Convergence
    idle_writes: int
    idle_failed_writes: int


# -- reading both sides --------------------------------------------------------------------------------


def read_sides(world: Any, platform: Platform, entity: Entity, directory: Directory | None = None):
    inv_side, crm_side = build_sides(platform, entity, world.invoicing(platform), world.clientify, directory)
    inv = [inv_side.mapper.read("", raw) for raw in inv_side.resource.iter_records()]
    crm = [
        crm_side.mapper.read(rtype, raw)
        for rtype, res in crm_side.resources.items()
        for raw in res.iter_records()
    ]
    return inv, crm


def live_directory(world: Any, platform: Platform) -> Directory:
    """Customer tax IDs and product SKUs by id on each side, read live (what estimate mappers need)."""
    inv_contacts, crm_contacts = read_sides(world, platform, Entity.CONTACTS)
    _, crm_products = read_sides(world, platform, Entity.PRODUCTS)
    return Directory(
        inv_customer_keys={r.rid: r.key for r in inv_contacts},
        crm_customer_keys={(r.rtype, r.rid): r.key for r in crm_contacts},
        crm_product_skus={r.rid: r.key for r in crm_products},
    )


def by_key(records: Iterable[SideRecord]) -> dict[str, list[SideRecord]]:
    grouped: dict[str, list[SideRecord]] = {}
    for record in records:
        if record.problem is None and record.key:
            grouped.setdefault(record.key, []).append(record)
    return grouped


def refusal(platform: Platform, document: SideRecord) -> str | None:
    """Why a document is rightly never written on the other side, or None.

    A problem found on read (``line_without_sku``, ``totals_mismatch``...). VAT rounded another way on
    the other side is no refusal: a rounding line keeps the total (issue 21).
    """
    return document.problem


def estimate_pairs(platform: Platform, inv: list[SideRecord], crm: list[SideRecord]):
    """Estimates pair by link or reference: the budget's link field, the estimate's ID_CRM, Folio/code."""
    prefix = "FM-" if platform is Platform.FACTURAMA else "FD-"

    def same(e: SideRecord, b: SideRecord) -> bool:
        return (
            b.link == e.rid or (e.link is not None and e.link == b.rid)
            or e.key == f"CLI-{b.rid}" or b.key == f"{prefix}{e.rid}"
        )  # fmt: skip

    by_inv = {e.rid: [b for b in crm if same(e, b)] for e in inv}
    by_crm = {b.rid: [e for e in inv if same(e, b)] for b in crm}
    return by_inv, by_crm


def check(
    world: Any,
    platform: Platform,
    entities: Iterable[Entity],
    edits: Iterable[Edit] = (),
    *,
    exclude: Iterable[str] = (),
) -> Convergence:
    """See the module docstring. ``exclude``: keys left out (quarantined duplicates, rejected records)."""
    result = Convergence()
    excluded = set(exclude)
    edits = list(edits)
    entities = [e for e in ORDER if e in set(entities)]
    for entity in entities:
        directory = live_directory(world, platform) if entity is Entity.ESTIMATES else None
        inv, crm = read_sides(world, platform, entity, directory)
        result.records += len(inv) + len(crm)
        fields = SCHEMAS[entity].fields
        pairs: dict[str, tuple[SideRecord, SideRecord]] = {}
        if entity is Entity.ESTIMATES:
            by_inv, by_crm = estimate_pairs(platform, inv, crm)
            inv_by_id = {e.rid: e for e in inv}
            crm_by_id = {b.rid: b for b in crm}
            for rid, matches in by_inv.items():
                if len(matches) > 1:
                    result.duplicates.append(
                        f"estimate {rid}: {len(matches)} budgets {[b.rid for b in matches]}"
                    )
                elif matches:
                    pairs[rid] = (inv_by_id[rid], matches[0])
                elif refusal(platform, inv_by_id[rid]):
                    result.refused.append(f"estimate {rid}: {refusal(platform, inv_by_id[rid])}")
                elif rid not in excluded:
                    result.missing.append(f"estimate {rid}: no budget")
            for rid, matches in by_crm.items():
                if len(matches) > 1:
                    result.duplicates.append(
                        f"budget {rid}: {len(matches)} estimates {[e.rid for e in matches]}"
                    )
                elif not matches and refusal(platform, crm_by_id[rid]):
                    result.refused.append(f"budget {rid}: {refusal(platform, crm_by_id[rid])}")
                elif not matches and f"budget:{rid}" not in excluded:
                    result.missing.append(f"budget {rid}: no estimate")
        else:
            inv_keys, crm_keys = by_key(inv), by_key(crm)
            for key in sorted(set(inv_keys) | set(crm_keys)):
                if key in excluded:
                    continue
                on_inv, on_crm = inv_keys.get(key, []), crm_keys.get(key, [])
                for side, found in (("invoicing", on_inv), ("clientify", on_crm)):
                    if len(found) > 1:
                        result.duplicates.append(f"{entity.value} {key}: {len(found)} on {side}")
                if not on_inv or not on_crm:
                    where = "invoicing" if not on_inv else "clientify"
                    result.missing.append(f"{entity.value} {key}: none on {where}")
                if len(on_inv) == 1 and len(on_crm) == 1:
                    pairs[key] = (on_inv[0], on_crm[0])
        result.pairs += len(pairs)
        for key, (a, b) in pairs.items():
            diff = [f for f in fields if a.data.get(f) != b.data.get(f)]
            if diff:
                shown = {f: (a.data.get(f), b.data.get(f)) for f in diff}
                result.mismatches.append(
                    f"{entity.value} {key}: {json.dumps(shown, ensure_ascii=False)[:300]}"
                )
        for edit in (e for e in edits if e.entity is entity):
            pair = pairs.get(edit.key)
            if pair is None:
                result.lost_edits.append(f"{entity.value} {edit.key}.{edit.field}: record not paired")
                continue
            for side, record in zip(("invoicing", "clientify"), pair, strict=True):
                if record.data.get(edit.field) != edit.value:
                    result.lost_edits.append(
                        f"{entity.value} {edit.key}.{edit.field} on {side}: {record.data.get(edit.field)!r} "
                        f"!= {edit.value!r}"
                    )
    return result


# -- re-running until converged -------------------------------------------------------------------------


def sync_round(
    world: Any, platform: Platform, entities: Iterable[Entity], *, mode: Mode = Mode.MODIFIED, **kwargs: Any
) -> list[str]:
    """One sync of each entity in dependency order; a failed run is recorded and the next one still runs.

    Only the package's own errors count as an allowed failure: anything else escapes (an engine bug).
    """
    errors = []
    for entity in [e for e in ORDER if e in set(entities)]:
        try:
            world.sync(platform, entity, mode=mode, **kwargs)
        except ClientifySyncError as error:
            errors.append(f"{entity.value}: {type(error).__name__}: {error}"[:300])
    return errors


def write_counts(world: Any, platform: Platform) -> tuple[int, int]:
    """(successful, failed) write requests both APIs answered since the last stats reset."""
    ok = failed = 0
    for api in ("clientify", platform.value):
        for row in world.sandbox.stats(api)["by_route"]:
            if row["method"] in WRITE_METHODS:
                if 200 <= row["status"] < 300:
                    ok += row["count"]
                else:
                    failed += row["count"]
    return ok, failed


def converge(
    world: Any,
    platform: Platform,
    entities: Iterable[Entity],
    edits: Iterable[Edit] = (),
    *,
    exclude: Iterable[str] = (),
    max_reruns: int = 4,
    first_errors: Iterable[str] = (),
) -> Outcome:
    """Clear the faults, re-run until ``check`` passes (at most ``max_reruns``), then one idle round."""
    world.sandbox.clear_faults()
    entities, edits = list(entities), list(edits)
    errors = list(first_errors)
    runs = 0
    result = Convergence()
    while runs < max_reruns:
        runs += 1
        errors += sync_round(world, platform, entities)
        result = check(world, platform, entities, edits, exclude=exclude)
        if result.ok:
            break
    world.sandbox.reset_stats()
    idle_errors = sync_round(world, platform, entities)
    ok_writes, failed_writes = write_counts(world, platform)
    errors += [f"idle: {e}" for e in idle_errors]
    return Outcome(runs, errors, result, ok_writes, failed_writes)
