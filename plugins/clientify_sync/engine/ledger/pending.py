"""Creates written down before their POST: ``cs_pending_creates``.

A create is recorded in the same transaction that precedes the request, and deleted once its link is
saved; what is left after a crash is a create whose outcome is unknown, to be looked up by natural key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, now
from clientify_sync.engine.ledger.schema import pending_creates


class Create(NamedTuple):
    """A create about to be sent: the side and type it makes, its source record, the key to find it by,
    and the canonical data it sends (the base of the link when the record it made is found later)."""

    target: str
    target_type: str
    source: tuple[str, str]
    natural_key: str
    sent: dict[str, Any] | None = None


@dataclass(frozen=True)
class PendingCreate:
    """One journaled create whose outcome is not known yet, as ``PendingCreates.all`` returns it."""

    id: int
    target: str
    target_type: str
    source_type: str
    source_id: str
    natural_key: str
    run_id: str
    created_at: datetime
    sent: dict[str, Any] | None = None


class PendingCreates(Repository):
    """The pending creates of one integration and entity."""

    def add(self, conn: Connection, creates: Sequence[Create], run_id: str) -> list[int]:
        """Record creates about to be sent, in one INSERT ... RETURNING.

        Args:
            conn: the write transaction.
            creates: each create's target side and type, source record and natural key (to look the
                created record up by after a crash).
            run_id: the run that creates them.

        Returns:
            The pending creates' ids, in the order given.
        """
        if not creates:
            return []
        at = now()
        rows = [
            {
                "integration": self.integration,
                "entity": self.entity,
                "target": create.target,
                "target_type": create.target_type,
                "source_type": create.source[0],
                "source_id": create.source[1],
                "natural_key": create.natural_key,
                "sent": create.sent,
                "run_id": run_id,
                "created_at": at,
            }
            for create in creates
        ]
        statement = sa.insert(pending_creates).returning(pending_creates.c.id, sort_by_parameter_order=True)
        return [int(row[0]) for row in conn.execute(statement, rows)]

    def all(self) -> list[PendingCreate]:
        """Every pending create of this scope (the unresolved ones after a crash), oldest first."""
        t = pending_creates
        columns = [t.c[name] for name in PendingCreate.__dataclass_fields__]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(*columns).where(self._scope(t)).order_by(t.c.id))
            return [PendingCreate(**row) for row in rows.mappings()]

    def delete(self, ids: int | Sequence[int], conn: Connection | None = None) -> None:
        """Forget one or many pending creates (resolved: linked, or found never created)."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        with self._writing(conn) as c:
            for chunk in chunks(ids, 500):
                c.execute(sa.delete(pending_creates).where(pending_creates.c.id.in_(chunk)))
