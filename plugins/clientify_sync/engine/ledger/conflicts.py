"""Same-field conflicts a run resolved, and who won: ``cs_conflicts``."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, now
from clientify_sync.engine.ledger.schema import conflicts
from clientify_sync.engine.plan import ConflictRow


def _columns(row: ConflictRow) -> dict[str, Any]:
    """The ``cs_conflicts`` columns of a conflict."""
    return {
        "inv_id": row.inv_id,
        "crm_type": row.crm_type,
        "crm_id": row.crm_id,
        "field": row.field,
        "invoicing_value": row.invoicing_value,
        "clientify_value": row.clientify_value,
        "base_value": row.base_value,
        "winner": row.winner,
    }


class Conflicts(Repository):
    """The conflicts of one integration and entity."""

    def add(self, run_id: str, rows: Sequence[ConflictRow], conn: Connection | None = None) -> None:
        """Record a run's conflicts: ids, field, the three values and the winner (a first match's
        differences are counted by the planner, not stored here)."""
        if not rows:
            return
        stamp = {
            "integration": self.integration,
            "entity": self.entity,
            "run_id": run_id,
            "created_at": now(),
        }
        with self._writing(conn) as c:
            c.execute(sa.insert(conflicts), [stamp | _columns(row) for row in rows])

    def list(self, run_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Conflicts in the order recorded, of one run or of all."""
        query = sa.select(conflicts).where(self._scope(conflicts)).order_by(conflicts.c.id)
        if run_id is not None:
            query = query.where(conflicts.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
