"""Reconcile: feed the planner's steps the candidates the ledger selects, a chunk at a time.

A thin manager over the pure rules of ``planner.py``: it reads (``ledger.candidates``, records,
bases) and yields ``PlanChunk``s, writing nothing and calling no API; ``store_plan`` writes each
chunk (plan items, conflicts, new links, dead letters of deferred documents) in one transaction. Work follows
change: unchanged pairs are counted in SQL and never loaded; unlinked records are few after the
first sync.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.candidates import LinkedRow, RecordRow
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.links import NewLink
from clientify_sync.engine.model import EntitySchema
from clientify_sync.engine.plan import ConflictRow, PlanCounts, PlanItem, Reason, Ref
from clientify_sync.engine.planner import (
    DeadKey,
    Matching,
    PairState,
    PairToMerge,
    Settled,
    defer_missing,
    match_invoicing,
    match_linked,
    match_window,
    plan_pair,
    prioritise,
    settle_unsyncable,
)
from clientify_sync.engine.vocabulary import CRM, INV, Mode, Side

CHUNK = 1000  # pairs merged, or items stored, at a time


@dataclass
class PlanChunk:
    """What the store step writes for one chunk of the plan."""

    items: list[PlanItem] = field(default_factory=list)
    conflicts: list[ConflictRow] = field(default_factory=list)
    new_links: list[tuple[Ref, Ref]] = field(default_factory=list)
    dead_letters: list[PlanItem] = field(default_factory=list)  # deferred Clientify-only documents


@dataclass
class Reconciler:
    """One run's planning; iterate ``chunks()``, then read ``counts``."""

    ledger: Ledger
    schema: EntitySchema
    run_id: str
    mode: Mode
    crm_type_for: Callable[[str | None], str]
    dead_letter_limit: int = 5
    dependencies: Callable[[dict[str, Any], str], list[str]] | None = None
    counts: PlanCounts = field(default_factory=PlanCounts)

    def __post_init__(self) -> None:
        self.candidates = self.ledger.candidates
        self.full = self.mode is Mode.FULL
        dead = self.ledger.dead_letters.open()
        # Deferred documents wait for their customer/products however long it takes: no attempt limit.
        retry = dead[
            (dead["attempts"].astype(int) < self.dead_letter_limit)
            | (dead["reason"] == Reason.DEPENDENCY_MISSING)
        ]
        self.dead: set[DeadKey] = {(r.side, r.rtype, r.rid) for r in retry.itertuples()}
        self.counts.dead_letters_exhausted = len(dead) - len(retry)

    def chunks(self) -> Iterator[PlanChunk]:
        """The plan, in the order of the matching rules."""
        out = PlanChunk()
        for step in (self._unsyncable(), self._linked(), self._unlinked()):
            for element in step:
                if isinstance(element, PlanChunk):
                    yield from self._finish(element)
                    continue
                self._add(out, element)
                if len(out.items) >= CHUNK:
                    yield from self._finish(out)
                    out = PlanChunk()
        yield from self._finish(out)

    # -- the steps -------------------------------------------------------------------------------
    def _unsyncable(self) -> Iterator[PlanItem | Settled | PlanChunk]:
        for side in (Side.INVOICING, Side.CLIENTIFY):
            for rows in self.candidates.with_problems(side.value, self.run_id):
                yield from settle_unsyncable(rows, side, full=self.full)

    def _linked(self) -> Iterator[PlanItem | Settled | PlanChunk]:
        """Linked pairs, a chunk at a time: those that failed before first, then those that changed (all
        of them in a full run); an idle run reads none and only counts them."""
        total, to_read = self.candidates.linked_count(self.run_id)
        retried = self.candidates.linked_of(self.dead, self.run_id)
        again = {row.link_id for row in retried}
        known = 0
        for rows in self._linked_parts(retried, again, read=self.full or to_read > 0):
            pairs, failed, unchanged = match_linked(rows, full=self.full, dead=self.dead)
            known += sum(1 for row in rows if row.crm_hash is not None)
            self.counts.unchanged += unchanged
            yield from failed
            for start in range(0, len(pairs), CHUNK):
                yield self._merge(pairs[start : start + CHUNK])
        self.counts.unchanged += total - known

    def _linked_parts(
        self, retried: list[LinkedRow], again: set[int], *, read: bool
    ) -> Iterator[list[LinkedRow]]:
        yield retried
        if read:
            for part in self.candidates.linked(self.run_id, full=self.full):
                yield [row for row in part if row.link_id not in again]

    def _unlinked(self) -> Iterator[PlanItem | Settled | PlanChunk]:
        state = Matching(
            self.schema.duplicate_reason,
            self.full,
            self.candidates.duplicate_keys(INV, run_id=self.run_id),
            self.candidates.duplicate_keys(CRM),
        )
        for rows in self.candidates.unlinked_invoicing(self.run_id):
            by_link, by_key = self._clientify_counterparts(rows, state)
            yield from match_invoicing(rows, by_link, by_key, state, crm_type_for=self.crm_type_for)
        also = [(rtype, rid) for side, rtype, rid in self.dead if side == CRM]
        for rows in self.candidates.unlinked_clientify(self.run_id, also):
            named = [r.link for r in rows if r.link is not None]
            keyed = [r.key for r in rows if r.key and r.key not in state.inv_dupes]
            found = self.candidates.invoicing_by(self.run_id, rids=named, keys=keyed)
            ids = {r.rid for r in found}
            wanted = set(keyed)
            by_key = {r.key: r.ref for r in found if r.problem is None and r.key in wanted}
            linked = self.candidates.linked_invoicing(by_key.values())
            yield from match_window(rows, ids, by_key, linked, state)
        self.counts.matched += len(state.new_pairs)
        new = [PairToMerge(inv, crm, None) for inv, crm in state.new_pairs]
        for start in range(0, len(new), CHUNK):
            merged = self._merge(new[start : start + CHUNK])
            merged.new_links = [(p.inv, p.crm) for p in new[start : start + CHUNK]]
            yield merged

    def _clientify_counterparts(
        self, rows: list[RecordRow], state: Matching
    ) -> tuple[dict[str, Ref], dict[str, Ref]]:
        """Unlinked Clientify records naming these invoicing records, or holding their keys."""
        found = self.candidates.unlinked_clientify_by(
            links_to=[r.rid for r in rows], keys=[r.key for r in rows if r.key not in state.crm_dupes]
        )
        by_link: dict[str, Ref] = {}
        twice: set[str] = set()
        by_key: dict[str, Ref] = {}
        for crm in {r.ref: r for r in found}.values():
            if crm.link is not None:
                if crm.link in by_link and by_link[crm.link] != crm.ref:
                    twice.add(crm.link)  # a link field value held twice identifies nothing
                by_link[crm.link] = crm.ref
            elif crm.key and crm.key not in state.crm_dupes:
                by_key[crm.key] = crm.ref
        for link in twice:
            del by_link[link]
        return by_link, by_key

    def _merge(self, pairs: list[PairToMerge]) -> PlanChunk:
        """Three-way merge a chunk of pairs (their records loaded for this chunk only)."""
        out = PlanChunk()
        inv_rows = self.ledger.records.fetch(INV, [p.inv for p in pairs], with_raw=False)
        crm_rows = self.ledger.records.fetch(CRM, [p.crm for p in pairs], with_raw=False)
        bases = self.ledger.links.bases([p.link_id for p in pairs if p.link_id is not None])
        for pair in pairs:
            inv, crm = inv_rows[pair.inv], crm_rows[pair.crm]
            state = PairState(
                pair,
                inv["data"],
                inv["hash"],
                crm["data"],
                crm["hash"],
                crm["link"],
                None if pair.link_id is None else bases.get(pair.link_id),
            )
            items, conflicts, unchanged = plan_pair(state, self.schema)
            self.counts.unchanged += int(unchanged)
            for conflict in conflicts:
                if conflict.first_match:
                    self.counts.first_match_differences += 1
                else:
                    self.counts.conflicts += 1
            out.conflicts.extend(conflicts)
            for item in items:
                self._add(out, item)
        return out

    # -- collecting ------------------------------------------------------------------------------
    def _add(self, out: PlanChunk, element: PlanItem | Settled) -> None:
        """Listed items are counted when their chunk is finished; the others only here."""
        if isinstance(element, Settled):
            if element.listed:
                out.items.append(element.item)
            else:
                self.counts.count(element.item)
            return
        out.items.append(element)

    def _finish(self, out: PlanChunk) -> Iterator[PlanChunk]:
        """Defer documents missing a dependency, put earlier failures first, count what is planned."""
        if not (out.items or out.conflicts or out.new_links):
            return
        if self.dependencies is not None:
            out.items = self._defer(out.items)
            out.dead_letters = [
                i for i in out.items if i.reason == Reason.DEPENDENCY_MISSING and i.crm and not i.inv
            ]
        out.items = [prioritise(item, self.dead) for item in out.items]
        for item in out.items:
            self.counts.count(item)
        yield out

    def _defer(self, items: list[PlanItem]) -> list[PlanItem]:
        assert self.dependencies is not None
        writes = [i for i in items if i.action.writes]
        inv_rows = self.ledger.records.fetch(INV, [i.inv for i in writes if i.inv], with_raw=False)
        crm_rows = self.ledger.records.fetch(CRM, [i.crm for i in writes if i.crm], with_raw=False)
        out = []
        for item in items:
            if not item.action.writes:
                out.append(item)
                continue
            if item.merged is not None:
                source = item.merged
            elif item.direction.target is Side.CLIENTIFY and item.inv is not None:
                source = inv_rows[item.inv]["data"]
            elif item.crm is not None:
                source = crm_rows[item.crm]["data"]
            else:
                source = {}
            out.append(defer_missing(item, source, self.dependencies))
        return out


def store_plan(ledger: Ledger, run_id: str, chunks: Iterable[PlanChunk], *, dry_run: bool) -> None:
    """The reconcile step's writes, one transaction per chunk: plan items always; conflicts, the links
    of pairs matched in this run and the dead letters of deferred Clientify documents unless it is a
    dry run."""
    for chunk in chunks:
        ledger.write(functools.partial(_store_chunk, ledger, run_id, chunk, dry_run=dry_run))


def _store_chunk(ledger: Ledger, run_id: str, chunk: PlanChunk, conn: Connection, *, dry_run: bool) -> None:
    """One chunk of the plan and what goes with it, in the caller's transaction."""
    ledger.plan.add(run_id, chunk.items, conn)
    if dry_run:
        return
    ledger.conflicts.add(run_id, chunk.conflicts, conn)
    links = [NewLink(inv, crm, None, "", "") for inv, crm in chunk.new_links]
    ledger.links.save_many(conn, links, run_id)
    # A Clientify document may leave the window before its customer is linked.
    letters = []
    for item in chunk.dead_letters:
        assert item.crm is not None  # only Clientify documents are dead-lettered here
        letters.append(Letter(CRM, item.crm.rtype, item.crm.rid, Reason.DEPENDENCY_MISSING, item.detail))
    ledger.dead_letters.record(conn, letters, run_id)
