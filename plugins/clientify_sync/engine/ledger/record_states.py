"""Each record's current sync state and why: ``cs_record_states``.

A run's plan says what happened to every record it itemised, but plans are pruned after
``SyncOptions.keep_plans`` runs, and a modified run only counts the records that did not change (a
quarantined duplicate is itemised by the run that first quarantines it, then only counted). So the
status view could not say why a record does not sync once that first plan was gone. This table keeps,
per record, what the last run that itemised it decided: written at commit from the run's plan,
overwritten by the next run that itemises the record, never pruned. A record no run itemised since
keeps its row, which is still true: the record did not change, so neither did the decision.

Unchanged linked pairs are not itemised either; they have no row (or keep the one of their last
write), and the status view calls a linked record without a row in sync when its hash still equals
the one its link stored (``ui/queries.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, now, retry_transient, upsert
from clientify_sync.engine.ledger.plan import PlanItems
from clientify_sync.engine.ledger.schema import conflicts, record_states
from clientify_sync.engine.plan import Outcome, PlanItem, Ref
from clientify_sync.engine.vocabulary import CRM, INV

IN_SYNC = "in_sync"
# A plan outcome as a record state (``unchanged``: a pair whose base moved without a write).
STATE_OF = {o: (IN_SYNC if o is Outcome.UNCHANGED else o.value) for o in Outcome}
# When one run leaves several items on a record (both directions of a pair), the state that says most
# about why it may not be in sync wins.
_RANK = {
    IN_SYNC: 0,
    Outcome.UPDATED.value: 1,
    Outcome.CREATED.value: 2,
    Outcome.CONFLICT.value: 3,
    Outcome.QUARANTINED.value: 4,
    Outcome.DEFERRED.value: 5,
    Outcome.SKIPPED.value: 6,
    Outcome.FAILED.value: 7,
}
_KEYS = ["integration", "entity", "side", "rtype", "rid"]
_UPDATED = ["state", "reason", "detail", "target", "run_id", "at"]
_FLUSH = 1000  # records per write transaction
_DETAIL = 500  # characters of a message kept (as the plan keeps them)

RecordKey = tuple[str, str, str]  # (side, rtype, rid)


class RecordState(NamedTuple):
    """One record's state as the last run that itemised it left it.

    Attributes:
        state: ``in_sync``, ``created``, ``updated``, ``conflict``, ``quarantined``, ``skipped``,
            ``deferred`` or ``failed``.
        reason: the plan's reason (``duplicate_tax_id``, ``no_tax_id``, ``validation_error`` …).
        detail: the API's message of a failure; what a deferred record waits for; a conflict's fields
            and who won each; an update's fields.
        target: the side a create or update wrote to.
        run_id: the run that decided it.
    """

    side: str
    rtype: str
    rid: str
    state: str
    reason: str | None
    detail: str | None
    target: str | None
    run_id: str


def states_of(item: PlanItem, run_id: str) -> list[RecordState]:
    """What a settled item says of each record it names (none while it is still ``planned``).

    A pair's two records share the state; a create also names the record it created (``result``).
    """
    if item.outcome is None:
        return []
    state = STATE_OF[item.outcome]
    target = item.target.value if item.target is not None and item.action.writes else None
    detail = item.detail
    if item.outcome in (Outcome.UPDATED, Outcome.CREATED) and item.fields:
        detail = ", ".join(item.fields)
    refs: list[tuple[str, Ref | None]] = [(INV, item.inv), (CRM, item.crm)]
    if item.outcome is Outcome.CREATED and item.result and item.target is not None:
        created = Ref(str(item.result.get("rtype") or ""), str(item.result.get("rid") or ""))
        if created.rtype and created.rid:
            refs.append((item.target.value, created))
    reason = None if item.reason is None else str(item.reason)
    return [
        RecordState(side, ref.rtype, ref.rid, state, reason, detail, target, run_id)
        for side, ref in refs
        if ref is not None
    ]


class RecordStates(Repository):
    """The record states of one integration and entity."""

    def update_from_plan(self, run_id: str, *, chunk: int = 2000) -> int:
        """Store the state the run's settled items leave each record in; return how many records.

        The plan is read a chunk at a time in plan order, where a pair's items are next to each other,
        so a pair's worst outcome (``_RANK``) is decided before it is written. A conflict's detail names
        each field and who won it (this run's ``cs_conflicts``). Idempotent: a retried commit writes
        the same rows.
        """
        pending: dict[RecordKey, RecordState] = {}
        conflicting: dict[RecordKey, str] = {}  # a conflicting pair's records -> its invoicing id
        last_pair: str | None = None
        written = 0
        for items in PlanItems(self.engine, self.integration, self.entity).iter(run_id, chunk=chunk):
            for item in items:
                if item.pair != last_pair and len(pending) >= _FLUSH:
                    written += self._flush(run_id, pending, conflicting)
                    pending, conflicting = {}, {}
                last_pair = item.pair
                for found in states_of(item, run_id):
                    key = (found.side, found.rtype, found.rid)
                    old = pending.get(key)
                    if old is None or _RANK[found.state] >= _RANK[old.state]:
                        pending[key] = found
                    if item.outcome is Outcome.CONFLICT and item.inv_id is not None:
                        conflicting[key] = item.inv_id
        return written + self._flush(run_id, pending, conflicting)

    def _flush(
        self, run_id: str, pending: dict[RecordKey, RecordState], conflicting: dict[RecordKey, str]
    ) -> int:
        """Upsert one batch of states in a transaction of its own (retried through a transient error)."""
        if not pending:
            return 0
        winners = self._winners(run_id, list(conflicting.values()))
        at = now()
        rows = []
        for key, s in pending.items():
            detail = s.detail
            if s.state == Outcome.CONFLICT.value and key in conflicting:
                detail = winners.get(conflicting[key], detail)
            rows.append(
                {
                    "integration": self.integration,
                    "entity": self.entity,
                    "side": s.side,
                    "rtype": s.rtype,
                    "rid": s.rid,
                    "state": s.state,
                    "reason": s.reason,
                    "detail": None if detail is None else detail[:_DETAIL],
                    "target": s.target,
                    "run_id": run_id,
                    "at": at,
                }
            )

        def write() -> None:
            with self._writing(None) as conn:
                for part in chunks(rows, 500):
                    upsert(conn, record_states, list(part), _KEYS, _UPDATED)

        retry_transient(write)
        return len(rows)

    def _winners(self, run_id: str, inv_ids: Sequence[str]) -> dict[str, str]:
        """``"email: clientify won; phone: invoicing won"`` per invoicing id, from this run's conflicts."""
        if not inv_ids:
            return {}
        t = conflicts
        query = (
            sa.select(t.c.inv_id, t.c.field, t.c.winner)
            .where(self._scope(t), t.c.run_id == run_id, t.c.base_value.is_not(None))
            .order_by(t.c.id)
        )
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for part in chunks(list(dict.fromkeys(inv_ids)), 500):
                for inv_id, field, winner in conn.execute(query.where(t.c.inv_id.in_(part))):
                    found.setdefault(inv_id, []).append(f"{field}: {winner} won")
        return {inv_id: "; ".join(fields) for inv_id, fields in found.items()}

    def get(
        self, side: str, rtype: str, rids: Iterable[str], *, conn: Connection | None = None
    ) -> dict[str, RecordState]:
        """The stored states of these records of one side and type, by id (records without one left out)."""
        t = record_states
        where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
        columns = (t.c.side, t.c.rtype, t.c.rid, t.c.state, t.c.reason, t.c.detail, t.c.target, t.c.run_id)
        found: dict[str, RecordState] = {}
        with self._reading(conn) as c:
            for part in chunks(list(dict.fromkeys(rids)), 500):
                for row in c.execute(sa.select(*columns).where(where, t.c.rid.in_(part))):
                    found[row[2]] = RecordState(*row)
        return found
