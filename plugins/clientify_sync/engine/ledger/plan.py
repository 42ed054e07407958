"""Each run's plan and the outcome of each item: ``cs_plan_items``.

Items are applied in plan order: priority (0 for records that failed in an earlier run), then id. A
large plan is read page by page on that order (keyset paging), never whole. ``PlanItem``s go in and
come out: this module's codec (``_columns`` / ``_item``) is the only place that knows the columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks
from clientify_sync.engine.ledger.schema import conflicts, plan_items, runs
from clientify_sync.engine.plan import Action, Direction, ItemResult, Outcome, PlanItem, Status
from clientify_sync.engine.vocabulary import Side

_OUTCOME = ("status", "outcome", "reason", "detail", "result")


def _columns(item: PlanItem) -> dict[str, Any]:
    """The ``cs_plan_items`` columns of an item (without ``id`` while it is not stored)."""
    row: dict[str, Any] = {
        "pair": item.pair,
        "action": item.action.value,
        "target": item.target.value if item.target else None,
        "direction": item.direction.value,
        "inv_type": item.inv_type,
        "inv_id": item.inv_id,
        "crm_type": item.crm_type,
        "crm_id": item.crm_id,
        "fields": list(item.fields) or None,
        "merged": item.merged,
        "reason": None if item.reason is None else str(item.reason),
        "detail": item.detail,
        "status": item.status.value,
        "outcome": item.outcome.value if item.outcome else None,
        "priority": item.priority,
        "result": item.result,
    }
    if item.id is not None:
        row["id"] = item.id
    return row


def _item(row: Any) -> PlanItem:
    """An item as stored (a row mapping of ``cs_plan_items``)."""
    return PlanItem(
        action=Action(row["action"]),
        direction=Direction(row["direction"]),
        pair=row["pair"],
        target=Side(row["target"]) if row["target"] else None,
        inv_type=row["inv_type"],
        inv_id=row["inv_id"],
        crm_type=row["crm_type"],
        crm_id=row["crm_id"],
        fields=tuple(row["fields"] or ()),
        merged=row["merged"],
        reason=row["reason"],
        detail=row["detail"],
        status=Status(row["status"] or Status.PLANNED),
        outcome=Outcome(row["outcome"]) if row["outcome"] else None,
        priority=int(row["priority"]),
        id=row["id"],
        result=row["result"],
    )


class PlanItems(Repository):
    """The plan items of one integration and entity."""

    def clear(self, run_id: str) -> None:
        """Forget a run's plan and conflicts (a retried reconcile starts again)."""
        with self._writing(None) as conn:
            conn.execute(sa.delete(plan_items).where(self._scope(plan_items), plan_items.c.run_id == run_id))
            conn.execute(sa.delete(conflicts).where(self._scope(conflicts), conflicts.c.run_id == run_id))

    def add(self, run_id: str, items: Sequence[PlanItem], conn: Connection | None = None) -> None:
        """Append items to a run's plan, in the order given (their ids follow it)."""
        if not items:
            return
        rows = [
            {"integration": self.integration, "entity": self.entity, "run_id": run_id, **_columns(i)}
            for i in items
        ]
        with self._writing(conn) as c:
            for chunk in chunks(rows, 500):
                c.execute(sa.insert(plan_items), list(chunk))

    def iter(self, run_id: str, *, chunk: int = 2000, **filters: Any) -> Iterator[list[PlanItem]]:
        """The plan in chunks of plan order, so a run of 100,000 records never holds it all in memory.

        Args:
            run_id: the run.
            chunk: items per chunk.
            **filters: ``target`` and/or ``status``, as for ``page``.
        """
        after = (-1, 0)
        while items := self.page(run_id, after=after, limit=chunk, **filters):
            yield items
            last = items[-1]
            after = (last.priority, last.id or 0)

    def page(
        self,
        run_id: str,
        *,
        target: str | None = None,
        status: str | None = None,
        after: tuple[int, int] = (-1, 0),
        limit: int | None = None,
    ) -> list[PlanItem]:
        """Plan items in plan order (priority, then id); ``after``/``limit`` page through a large plan.

        Args:
            run_id: the run.
            target: only items written to this side.
            status: only items in this status.
            after: the (priority, id) of the last item of the previous page.
            limit: at most this many items.
        """
        t = plan_items
        query = (
            sa.select(t)
            .where(self._scope(t), t.c.run_id == run_id, sa.tuple_(t.c.priority, t.c.id) > sa.tuple_(*after))
            .order_by(t.c.priority, t.c.id)
        )
        if limit is not None:
            query = query.limit(limit)
        if target is not None:
            query = query.where(t.c.target == target)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(query).mappings()]

    def count(self, run_id: str, *, target: str | None = None, status: str | None = None) -> int:
        """How many items a run's plan has (for one target and status): the total a progress line shows."""
        t = plan_items
        query = sa.select(sa.func.count()).select_from(t).where(self._scope(t), t.c.run_id == run_id)
        if target is not None:
            query = query.where(t.c.target == target)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def finish(
        self,
        conn: Connection,
        item_id: int,
        *,
        status: str,
        outcome: str,
        reason: str | None = None,
        detail: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> None:
        """Record one plan item's outcome (and what the write returned)."""
        conn.execute(
            sa.update(plan_items)
            .where(plan_items.c.id == item_id)
            .values(status=status, outcome=outcome, reason=reason, detail=detail, result=result)
        )

    def finish_many(self, conn: Connection, outcomes: Sequence[ItemResult]) -> None:
        """Many ``finish`` in one executemany (a batch of writes)."""
        if not outcomes:
            return
        t = plan_items
        statement = (
            sa.update(t)
            .where(t.c.id == sa.bindparam("item_id"))
            .values({name: sa.bindparam(f"new_{name}") for name in _OUTCOME})
        )
        rows = [
            {
                "item_id": o.item_id,
                "new_status": o.status.value,
                "new_outcome": o.outcome.value,
                "new_reason": o.reason,
                "new_detail": o.detail,
                "new_result": o.result,
            }
            for o in outcomes
        ]
        conn.execute(statement, rows)

    def prune(self, keep_runs: int) -> None:
        """Keep the plans of the last ``keep_runs`` runs; the reports stay in ``cs_runs``."""
        with self._writing(None) as conn:
            recent = conn.scalars(
                sa.select(runs.c.run_id)
                .where(self._scope(runs))
                .order_by(runs.c.started_at.desc())
                .limit(keep_runs)
            ).all()
            conn.execute(
                sa.delete(plan_items).where(self._scope(plan_items), plan_items.c.run_id.not_in(recent))
            )
