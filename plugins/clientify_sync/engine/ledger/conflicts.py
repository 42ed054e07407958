"""Same-field conflicts a run resolved, and who won: ``cs_conflicts``."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger.database import Repository, now
from clientify_sync.engine.ledger.schema import conflicts


class Conflicts(Repository):
    """The conflicts of one integration and entity."""

    def add(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        """Record a run's conflicts (each row: ids, field, the three values and the winner)."""
        if not rows:
            return
        stamp = {
            "integration": self.integration,
            "entity": self.entity,
            "run_id": run_id,
            "created_at": now(),
        }
        with self._writing(None) as conn:
            conn.execute(sa.insert(conflicts), [stamp | dict(row) for row in rows])

    def list(self, run_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Conflicts in the order recorded, of one run or of all."""
        query = sa.select(conflicts).where(self._scope(conflicts)).order_by(conflicts.c.id)
        if run_id is not None:
            query = query.where(conflicts.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
