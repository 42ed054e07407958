"""The planner's rules, as pure steps: records in, plan items out. No database, no API.

Matching order, as Clientify's own integration: 1) the link (the ledger's, or the link field a
create wrote), 2) the natural key (tax ID / SKU), exact after normalisation, 3) otherwise create. An
ambiguous key (two records on one side) is quarantined, never guessed. Each step below is one of
those rules; ``reconcile.py`` feeds them the candidates the ledger selected and stores what they
return. Model: Meltano's pure state helpers (``singer_sdk/helpers/_state.py``), tested on literal
before/after data in ``tests/engine/test_planner.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from clientify_sync.engine.merge import merge_fields
from clientify_sync.engine.model import EntitySchema
from clientify_sync.engine.plan import (
    FAILING_PROBLEMS,
    ConflictRow,
    Direction,
    Outcome,
    PlanItem,
    Reason,
    Ref,
)
from clientify_sync.engine.vocabulary import CRM, INV, Side

DeadKey = tuple[str, str, str]  # (side, rtype, rid) of a record that failed in an earlier run


# -- what the rules read: the planner's own types, which the ledger's candidate rows satisfy -----------
class Candidate(Protocol):
    """A staged record's identity, without payload (``ledger.candidates.RecordRow`` is one)."""

    @property
    def rid(self) -> str: ...
    @property
    def key(self) -> str: ...  # the normalised natural key; empty when the record has none
    @property
    def kind(self) -> str | None: ...
    @property
    def problem(self) -> str | None: ...
    @property
    def link(self) -> str | None: ...  # the other side's id as stored on this record
    @property
    def ref(self) -> Ref: ...
    @property
    def changed(self) -> bool: ...  # new, or different from the last time it was read


class LinkedCandidate(Protocol):
    """A linked pair: the hashes its link stored and those staged now (``ledger.candidates.LinkedRow``)."""

    @property
    def link_id(self) -> int: ...
    @property
    def inv(self) -> Ref: ...
    @property
    def crm(self) -> Ref: ...
    @property
    def link_inv_hash(self) -> str: ...
    @property
    def link_crm_hash(self) -> str: ...
    @property
    def inv_hash(self) -> str: ...
    @property
    def crm_hash(self) -> str | None: ...  # None: the Clientify record was never seen
    @property
    def crm_in_window(self) -> bool: ...


@dataclass(frozen=True)
class Settled:
    """A record the planner settles without a write; ``listed``: stored as a plan item (else only
    counted), which it is in a full run or when the record is new or changed."""

    item: PlanItem
    listed: bool


@dataclass(frozen=True)
class PairToMerge:
    """A pair whose records may differ: three-way merged in ``plan_pairs``."""

    inv: Ref
    crm: Ref
    link_hashes: tuple[str, str] | None  # None: matched in this run, no link stored yet
    link_id: int | None = None


@dataclass
class Matching:
    """What matching has decided so far in this run (the steps run over chunks, in order)."""

    key_reason: str  # the schema's ``duplicate_reason``: a duplicated key names the key
    full: bool
    inv_dupes: set[str]
    crm_dupes: set[str]
    matched_inv: set[Ref] = field(default_factory=set)
    matched_crm: set[Ref] = field(default_factory=set)
    new_pairs: list[tuple[Ref, Ref]] = field(default_factory=list)


# -- 1. records that cannot sync ---------------------------------------------------------------------
def settle_unsyncable(rows: Iterable[Candidate], side: Side, *, full: bool) -> Iterator[Settled]:
    """A record whose mapping found a problem is skipped (out of scope) or failed (its data is wrong)."""
    direction = Direction.TO_CLIENTIFY if side is Side.INVOICING else Direction.TO_INVOICING
    for row in rows:
        problem = row.problem or ""
        outcome = Outcome.FAILED if problem in FAILING_PROBLEMS else Outcome.SKIPPED
        refs = {"inv": row.ref} if side is Side.INVOICING else {"crm": row.ref}
        item = PlanItem.settled(outcome, direction, reason=problem, **refs)
        yield Settled(item, full or row.changed)


# -- 2. pairs already linked -------------------------------------------------------------------------
def match_linked(
    rows: Iterable[LinkedCandidate], *, full: bool, dead: set[DeadKey]
) -> tuple[list[PairToMerge], list[PlanItem], int]:
    """Linked pairs: those that changed (or failed before, or all in a full run) go to the merge.

    Returns the pairs to merge, the items of links whose Clientify record is unknown (failed), and how
    many pairs are unchanged.
    """
    pairs: list[PairToMerge] = []
    failed: list[PlanItem] = []
    unchanged = 0
    for row in rows:
        if row.crm_hash is None:
            failed.append(
                PlanItem.settled(
                    Outcome.FAILED,
                    Direction.TO_CLIENTIFY,
                    reason=Reason.CLIENTIFY_RECORD_UNKNOWN,
                    inv=row.inv,
                    crm=row.crm,
                )
            )
            continue
        inv_changed = row.link_inv_hash != row.inv_hash or (INV, *row.inv) in dead
        crm_changed = (row.crm_in_window and row.link_crm_hash != row.crm_hash) or (CRM, *row.crm) in dead
        if full or inv_changed or crm_changed:
            pairs.append(PairToMerge(row.inv, row.crm, (row.link_inv_hash, row.link_crm_hash), row.link_id))
        else:
            unchanged += 1
    return pairs, failed, unchanged


# -- 3. unlinked invoicing records: link field, then natural key, else create --------------------------
def match_invoicing(
    rows: Iterable[Candidate],
    by_link: dict[str, Ref],
    by_key: dict[str, Ref],
    state: Matching,
    *,
    crm_type_for: Callable[[str | None], str],
) -> Iterator[PlanItem | Settled]:
    """Pair each unlinked invoicing record with the Clientify record whose link field names it, else
    the one with its key; quarantine a duplicated key; else plan a create in Clientify.

    ``by_link``/``by_key``: unlinked Clientify records by link field value (only values held once) and
    by key (only records without a link field, keys held once). New pairs go to ``state.new_pairs``.
    """
    for row in rows:
        crm = by_link.get(row.rid)
        if crm is None:
            if row.key in state.crm_dupes or row.key in state.inv_dupes:
                item = PlanItem.settled(
                    Outcome.QUARANTINED, Direction.TO_CLIENTIFY, reason=state.key_reason, inv=row.ref
                )
                yield Settled(item, state.full or row.changed)
                continue
            keyed = by_key.get(row.key) if row.key else None
            if keyed is None or keyed in state.matched_crm:
                yield PlanItem.create(Direction.TO_CLIENTIFY, row.ref, target_type=crm_type_for(row.kind))
                continue
            crm = keyed
        state.matched_crm.add(crm)
        state.matched_inv.add(row.ref)
        state.new_pairs.append((row.ref, crm))


# -- 4. unlinked Clientify records of the window: the same, the other way ----------------------------
def match_window(
    rows: Iterable[Candidate],
    invoicing_ids: set[str],
    invoicing_by_key: dict[str, Ref],
    linked_invoicing: set[Ref],
    state: Matching,
) -> Iterator[PlanItem | Settled]:
    """Clientify records read in this run (or retried) without a link: a link field naming a record
    that is gone is skipped; a duplicated key or a link field naming a record linked elsewhere is
    quarantined; a key matching a taken invoicing record too; else plan a create on the invoicing side.

    ``invoicing_ids``: ids of invoicing records read in this run among those the rows' link fields
    name; ``invoicing_by_key``: invoicing records without a problem by key (keys held once).
    """
    for row in rows:
        if row.ref in state.matched_crm:
            continue
        listed = state.full or row.changed
        if row.link is not None and row.link not in invoicing_ids:
            item = PlanItem.settled(
                Outcome.SKIPPED, Direction.TO_INVOICING, reason=Reason.LINKED_RECORD_MISSING, crm=row.ref
            )
            yield Settled(item, listed)
        elif row.key in state.crm_dupes or row.key in state.inv_dupes or row.link is not None:
            # A link field naming an invoicing record linked elsewhere is a conflict of links.
            reason = Reason.LINK_CONFLICT if row.link is not None else state.key_reason
            yield Settled(
                PlanItem.settled(Outcome.QUARANTINED, Direction.TO_INVOICING, reason=reason, crm=row.ref),
                listed,
            )
        elif row.key and row.key in invoicing_by_key:
            inv = invoicing_by_key[row.key]
            if inv in linked_invoicing or inv in state.matched_inv:
                # The key (tax ID, SKU, reference) is held by two records: say which key it is.
                item = PlanItem.settled(
                    Outcome.QUARANTINED, Direction.TO_INVOICING, reason=state.key_reason, crm=row.ref
                )
                yield Settled(item, listed)
            # else: already paired by match_invoicing (same key; the invoicing side drove the match)
        else:
            yield PlanItem.create(Direction.TO_INVOICING, row.ref, target_type="")


# -- 5. three-way merge of the pairs that may have changed ---------------------------------------------
@dataclass(frozen=True)
class PairState:
    """One pair's records as staged (canonical data, hash, link field) and its merge base."""

    pair: PairToMerge
    inv_data: dict[str, Any]
    inv_hash: str
    crm_data: dict[str, Any]
    crm_hash: str
    crm_link: str | None
    base: dict[str, Any] | None


def plan_pair(state: PairState, schema: EntitySchema) -> tuple[list[PlanItem], list[ConflictRow], bool]:
    """Merge one pair: an update item per side that needs a write, a touch when only the base moves.

    Returns the items, the differing fields (conflicts, or first-match differences), and whether the
    pair is unchanged (nothing to write and nothing to move).
    """
    pair = state.pair
    result = merge_fields(schema.fields, state.base, state.inv_data, state.crm_data, schema.invoicing_wins)
    reason = Reason.CONFLICT if result.conflicts else (Reason.FIRST_MATCH if result.first_match else None)
    conflicts = [
        ConflictRow(
            inv_id=pair.inv.rid,
            crm_type=pair.crm.rtype,
            crm_id=pair.crm.rid,
            field=c.field,
            invoicing_value=str(c.invoicing_value),
            clientify_value=str(c.clientify_value),
            base_value=None if c.base_value is None else str(c.base_value),
            winner=c.winner.value,
            first_match=state.base is None,
        )
        for c in [*result.conflicts, *result.first_match]
    ]
    items: list[PlanItem] = []
    needs_link = state.crm_link != pair.inv.rid
    if result.to_clientify or needs_link:
        items.append(
            PlanItem.update(
                Direction.TO_CLIENTIFY,
                pair.inv,
                pair.crm,
                fields=tuple(result.to_clientify),
                merged=result.merged,
                reason=reason or (None if result.to_clientify else Reason.LINK),
            )
        )
    if result.to_invoicing:
        items.append(
            PlanItem.update(
                Direction.TO_INVOICING,
                pair.inv,
                pair.crm,
                fields=tuple(result.to_invoicing),
                merged=result.merged,
                reason=reason,
            )
        )
    if items:
        return items, conflicts, False
    if pair.link_hashes == (state.inv_hash, state.crm_hash) and state.base == result.merged:
        return [], conflicts, True
    return [PlanItem.touch(pair.inv, pair.crm, merged=result.merged, reason=reason)], conflicts, False


# -- 6. before storing: dependencies and priorities ----------------------------------------------------
def defer_missing(
    item: PlanItem, source: dict[str, Any], dependencies: Callable[[dict[str, Any], str], list[str]]
) -> PlanItem:
    """A document whose customer or products are not linked on the target side yet is not written
    (never created half): it becomes ``deferred`` and is retried first next run.

    ``source``: the data the write would send (the merged record of an update, the source record of
    a create).
    """
    if not item.action.writes or item.target is None:
        return item
    missing = dependencies(source, item.target.value)
    return item.deferred(", ".join(missing)) if missing else item


def prioritise(item: PlanItem, dead: set[DeadKey]) -> PlanItem:
    """Failed records of earlier runs are applied first (before new work can hit a limit)."""
    inv, crm = item.inv, item.crm
    if (inv is not None and (INV, *inv) in dead) or (crm is not None and (CRM, *crm) in dead):
        return item.first()
    return item
