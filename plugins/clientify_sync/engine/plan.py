"""The plan of a run as typed values: what to write where, and how every record ended.

Model: DiffSync's ``DiffElement`` — a typed element built by named constructors, whose ``summary()``
says in one line what it does. A ``PlanItem`` is one row of ``cs_plan_items``; the planner makes them,
the applier settles them, the report and the status view read them. ``PlanCounts`` holds what is only
counted (unchanged pairs, records settled without a write), keyed by tuples, never by joined strings.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from clientify_sync.engine.vocabulary import Side


class Action(StrEnum):
    """What a plan item does: a write (create, update), a base move (touch), or a settlement."""

    CREATE = "create"
    UPDATE = "update"
    TOUCH = "touch"  # nothing to write; the pair's merge base and hashes move on
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    DEFERRED = "deferred"

    @property
    def writes(self) -> bool:
        """True for an item the applier sends to an API."""
        return self in (Action.CREATE, Action.UPDATE)


class Direction(StrEnum):
    """Which way a record flows; the report counts per direction."""

    TO_CLIENTIFY = "invoicing→clientify"
    TO_INVOICING = "clientify→invoicing"

    @property
    def target(self) -> Side:
        """The side written to."""
        return Side.CLIENTIFY if self is Direction.TO_CLIENTIFY else Side.INVOICING


class Status(StrEnum):
    """Where an item stands: ``planned`` until the applier settles it."""

    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class Outcome(StrEnum):
    """How a record ended in a run (the report's columns)."""

    CREATED = "created"
    UPDATED = "updated"
    CONFLICT = "conflict"  # updated, with a field both sides had changed
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    DEFERRED = "deferred"


class Reason(StrEnum):
    """Why the planner decided what it did (mappers add their own problems, e.g. ``invalid_tax_id``)."""

    NO_MATCH = "no_match"
    CONFLICT = "conflict"
    FIRST_MATCH = "first_match"
    LINK = "link"  # only the link field needs writing
    DUPLICATE_TAX_ID = "duplicate_tax_id"
    DUPLICATE_SKU = "duplicate_sku"
    DUPLICATE_REFERENCE = "duplicate_reference"
    LINK_CONFLICT = "link_conflict"
    LINKED_RECORD_MISSING = "linked_record_missing"
    CLIENTIFY_RECORD_UNKNOWN = "clientify_record_unknown"
    DEPENDENCY_MISSING = "dependency_missing"
    TOTALS_MISMATCH = "totals_mismatch"


# Problems that make a record's outcome "failed" (its data is wrong), not "skipped" (out of scope).
FAILING_PROBLEMS = frozenset({Reason.TOTALS_MISMATCH.value})


class Ref(NamedTuple):
    """One record on one side: its type (``client``, ``company``, ``product`` ...) and id."""

    rtype: str
    rid: str


def pair_id(inv: Ref | None, crm: Ref | None) -> str:
    """The stable id of a pair: its invoicing record when it has one, else its Clientify record."""
    if inv is not None:
        return f"inv:{inv.rtype}:{inv.rid}"
    if crm is None:
        raise ValueError("a pair needs at least one record")
    return f"crm:{crm.rtype}:{crm.rid}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PlanItem:
    """One row of the plan. Build it with the constructors (keyword arguments only: an invoicing id can
    never land in a Clientify field by position); the ledger's plan repository is the only place that
    turns it into columns and back (``engine/ledger/plan.py``)."""

    action: Action
    direction: Direction
    pair: str
    target: Side | None = None
    inv_type: str | None = None
    inv_id: str | None = None
    crm_type: str | None = None
    crm_id: str | None = None
    fields: tuple[str, ...] = ()
    merged: dict[str, Any] | None = None
    reason: str | None = None
    detail: str | None = None
    status: Status = Status.PLANNED
    outcome: Outcome | None = None
    priority: int = 1
    id: int | None = None
    result: dict[str, Any] | None = None

    # -- constructors ------------------------------------------------------------------------------
    @classmethod
    def create(cls, direction: Direction, source: Ref, *, target_type: str) -> PlanItem:
        """Create ``source``'s counterpart on the other side (``target_type``: the type to create)."""
        if direction is Direction.TO_CLIENTIFY:
            return cls(
                action=Action.CREATE,
                direction=direction,
                pair=pair_id(source, None),
                target=direction.target,
                inv_type=source.rtype,
                inv_id=source.rid,
                crm_type=target_type,
                reason=Reason.NO_MATCH,
            )
        return cls(
            action=Action.CREATE,
            direction=direction,
            pair=pair_id(None, source),
            target=direction.target,
            inv_type=target_type,
            crm_type=source.rtype,
            crm_id=source.rid,
            reason=Reason.NO_MATCH,
        )

    @classmethod
    def update(
        cls,
        direction: Direction,
        inv: Ref,
        crm: Ref,
        *,
        fields: tuple[str, ...],
        merged: dict[str, Any],
        reason: str | None,
    ) -> PlanItem:
        """Write ``fields`` of the merged record to ``direction.target``."""
        return cls(
            action=Action.UPDATE,
            direction=direction,
            pair=pair_id(inv, None),
            target=direction.target,
            inv_type=inv.rtype,
            inv_id=inv.rid,
            crm_type=crm.rtype,
            crm_id=crm.rid,
            fields=tuple(sorted(fields)),
            merged=merged,
            reason=reason,
        )

    @classmethod
    def touch(cls, inv: Ref, crm: Ref, *, merged: dict[str, Any], reason: str | None) -> PlanItem:
        """Nothing to write, but the pair's base and hashes move on (e.g. the same edit on both sides)."""
        return cls(
            action=Action.TOUCH,
            direction=Direction.TO_CLIENTIFY,
            pair=pair_id(inv, None),
            inv_type=inv.rtype,
            inv_id=inv.rid,
            crm_type=crm.rtype,
            crm_id=crm.rid,
            merged=merged,
            reason=reason,
        )

    @classmethod
    def settled(
        cls,
        outcome: Outcome,
        direction: Direction,
        *,
        reason: str,
        inv: Ref | None = None,
        crm: Ref | None = None,
    ) -> PlanItem:
        """A record that ends in the planner (skipped, quarantined, failed): listed, never written."""
        return cls(
            action=Action(outcome.value),
            direction=direction,
            pair=pair_id(inv, crm),
            inv_type=inv.rtype if inv else None,
            inv_id=inv.rid if inv else None,
            crm_type=crm.rtype if crm else None,
            crm_id=crm.rid if crm else None,
            reason=reason,
            status=Status.DONE,
            outcome=outcome,
        )

    def deferred(self, missing: str) -> PlanItem:
        """This write waits: a customer or product it needs is not linked on the target side yet."""
        return dataclasses.replace(
            self,
            action=Action.DEFERRED,
            status=Status.DONE,
            outcome=Outcome.DEFERRED,
            reason=Reason.DEPENDENCY_MISSING,
            detail=missing[:500],
        )

    def first(self) -> PlanItem:
        """The same item, applied before new work (a record that failed in an earlier run)."""
        return dataclasses.replace(self, priority=0)

    # -- reading -----------------------------------------------------------------------------------
    @property
    def inv(self) -> Ref | None:
        """The pair's invoicing record (``None`` for a create towards the invoicing side)."""
        return Ref(self.inv_type, self.inv_id) if self.inv_type is not None and self.inv_id else None

    @property
    def crm(self) -> Ref | None:
        """The pair's Clientify record (``None`` for a create towards Clientify)."""
        return Ref(self.crm_type, self.crm_id) if self.crm_type is not None and self.crm_id else None

    def filed_under(self) -> tuple[Side, Ref | None]:
        """The record this item's outcome is filed under (dead letters, the report's failures): the source
        record of a create towards the invoicing side, else the pair's invoicing record."""
        if self.action is Action.CREATE and self.target is Side.INVOICING:
            return Side.CLIENTIFY, self.crm
        return Side.INVOICING, self.inv

    def summary(self) -> str:
        """``"create clientify contact for client:A (no_match)"``-style one-liner for logs."""
        records = " ".join(f"{r.rtype}:{r.rid}" for r in (self.inv, self.crm) if r is not None)
        target = f" {self.target.value}" if self.target else ""
        return f"{self.action.value}{target} {records} ({self.reason or '-'})"


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """How the applier settled one stored item: what ``cs_plan_items`` records of it."""

    item_id: int
    status: Status
    outcome: Outcome
    reason: str | None = None
    detail: str | None = None
    result: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ConflictRow:
    """A field both sides hold differently, as ``cs_conflicts`` stores it."""

    inv_id: str
    crm_type: str
    crm_id: str
    field: str
    invoicing_value: str
    clientify_value: str
    base_value: str | None
    winner: str
    first_match: bool  # no base yet: nobody edited against anybody (counted apart, not stored)


SettledKey = tuple[Direction, Outcome, str]


@dataclass
class PlanCounts:
    """What the planner only counts; stored in the reconcile step's summary and read by the report."""

    settled: Counter[SettledKey] = field(default_factory=Counter)
    planned: Counter[tuple[Action, Side | None]] = field(default_factory=Counter)
    unchanged: int = 0
    matched: int = 0
    dead_letters_exhausted: int = 0
    conflicts: int = 0
    first_match_differences: int = 0

    def count(self, item: PlanItem) -> None:
        """Count one item the planner produced."""
        if item.status is Status.PLANNED:
            self.planned[(item.action, item.target)] += 1
        elif item.outcome is not None and item.reason is not None:
            self.settled[(item.direction, item.outcome, str(item.reason))] += 1

    def as_summary(self) -> dict[str, Any]:
        """JSON for the step summary: tuples become rows."""
        return {
            "planned": {
                f"{a.value}:{t.value if t else '-'}": n for (a, t), n in sorted(self.planned.items())
            },
            "settled": [[d.value, o.value, r, n] for (d, o, r), n in sorted(self.settled.items())],
            "unchanged": self.unchanged,
            "matched": self.matched,
            "dead_letters_exhausted": self.dead_letters_exhausted,
            "conflicts": self.conflicts,
            "first_match_differences": self.first_match_differences,
        }

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> PlanCounts:
        """Read back what ``as_summary`` stored (an empty summary gives zero counts)."""
        settled: Counter[SettledKey] = Counter()
        for direction, outcome, reason, n in summary.get("settled", []):
            settled[(Direction(direction), Outcome(outcome), reason)] += int(n)
        return cls(
            settled=settled,
            unchanged=int(summary.get("unchanged", 0)),
            matched=int(summary.get("matched", 0)),
            dead_letters_exhausted=int(summary.get("dead_letters_exhausted", 0)),
            conflicts=int(summary.get("conflicts", 0)),
            first_match_differences=int(summary.get("first_match_differences", 0)),
        )
