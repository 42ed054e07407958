"""Each run's plan and the outcome of each item: ``cs_plan_items``.

Items are applied in plan order: priority (0 for records that failed in an earlier run), then id. A
large plan is read page by page on that order (keyset paging), never whole.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks
from clientify_sync.engine.ledger.schema import conflicts, plan_items, runs

_OUTCOME = ("status", "outcome", "reason", "detail", "result")


class PlanItems(Repository):
    """The plan items of one integration and entity."""

    def clear(self, run_id: str) -> None:
        """Forget a run's plan and conflicts (a retried reconcile starts again)."""
        with self._writing(None) as conn:
            conn.execute(sa.delete(plan_items).where(self._scope(plan_items), plan_items.c.run_id == run_id))
            conn.execute(sa.delete(conflicts).where(self._scope(conflicts), conflicts.c.run_id == run_id))

    def add(self, run_id: str, items: Sequence[dict[str, Any]]) -> None:
        """Append items to a run's plan (missing columns blank; status ``planned``, priority 1)."""
        if not items:
            return
        columns = [c.name for c in plan_items.columns if c.name != "id"]
        blank: dict[str, Any] = dict.fromkeys(columns) | {"status": "planned", "priority": 1}
        rows = [
            blank | {"integration": self.integration, "entity": self.entity, "run_id": run_id, **i}
            for i in items
        ]
        with self._writing(None) as conn:
            for chunk in chunks(rows, 500):
                conn.execute(sa.insert(plan_items), list(chunk))

    def iter(self, run_id: str, *, chunk: int = 2000, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """The plan in chunks of plan order, so a run of 100,000 records never holds it all in memory.

        Args:
            run_id: the run.
            chunk: items per chunk.
            **filters: ``target`` and/or ``status``, as for ``page``.
        """
        after = (-1, 0)
        while items := self.page(run_id, after=after, limit=chunk, **filters):
            yield items
            after = (items[-1]["priority"], items[-1]["id"])

    def page(
        self,
        run_id: str,
        *,
        target: str | None = None,
        status: str | None = None,
        after: tuple[int, int] = (-1, 0),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
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
            return [dict(r) for r in conn.execute(query).mappings()]

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

    def finish_many(self, conn: Connection, outcomes: Sequence[dict[str, Any]]) -> None:
        """Many ``finish`` in one executemany (a batch of writes); each outcome has ``item_id``."""
        if not outcomes:
            return
        t = plan_items
        statement = (
            sa.update(t)
            .where(t.c.id == sa.bindparam("item_id"))
            .values({name: sa.bindparam(f"new_{name}") for name in _OUTCOME})
        )
        rows = [{"item_id": o["item_id"], **{f"new_{n}": o.get(n) for n in _OUTCOME}} for o in outcomes]
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
