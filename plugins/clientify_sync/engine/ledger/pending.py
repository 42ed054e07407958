"""Creates written down before their POST: ``cs_pending_creates``.

A create is recorded in the same transaction that precedes the request, and deleted once its link is
saved; what is left after a crash is a create whose outcome is unknown, to be looked up by natural key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, now
from clientify_sync.engine.ledger.schema import pending_creates


class PendingCreates(Repository):
    """The pending creates of one integration and entity."""

    def add(
        self,
        conn: Connection,
        *,
        target: str,
        target_type: str,
        source: tuple[str, str],
        natural_key: str,
        run_id: str,
    ) -> int:
        """Record a create about to be sent, and return its id.

        Args:
            conn: the write transaction.
            target: the side the record is created on.
            target_type: the record type created there.
            source: the (type, id) of the record it is created from.
            natural_key: the key to look the created record up by after a crash.
            run_id: the run that creates it.

        Returns:
            The pending create's id.
        """
        result = conn.execute(
            sa.insert(pending_creates).values(
                integration=self.integration,
                entity=self.entity,
                target=target,
                target_type=target_type,
                source_type=source[0],
                source_id=source[1],
                natural_key=natural_key,
                run_id=run_id,
                created_at=now(),
            )
        )
        primary_key = result.inserted_primary_key
        assert primary_key is not None  # a single-row INSERT always reports its key
        return int(primary_key[0])

    def all(self) -> list[dict[str, Any]]:
        """Every pending create of this scope (the unresolved ones after a crash)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(pending_creates).where(self._scope(pending_creates)))
            return [dict(r) for r in rows.mappings()]

    def delete(self, ids: int | Sequence[int], conn: Connection | None = None) -> None:
        """Forget one or many pending creates (resolved: linked, or found never created)."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        with self._writing(conn) as c:
            for chunk in chunks(ids, 500):
                c.execute(sa.delete(pending_creates).where(pending_creates.c.id.in_(chunk)))
