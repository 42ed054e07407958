"""Records that failed to sync, with how often: ``cs_dead_letters``.

The status view lets a user dismiss a letter (never retried again) or ask for a retry (the attempts
start again at the next failure).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, excluded, upsert
from clientify_sync.engine.ledger.schema import dead_letters

_KEYS = ["integration", "entity", "side", "rtype", "rid"]


class Letter(NamedTuple):
    """One failed record: where it lives, why it failed, and the error's text."""

    side: str
    rtype: str
    rid: str
    reason: str
    detail: str | None


class DeadLetters(Repository):
    """The dead letters of one integration and entity."""

    def open(self) -> pd.DataFrame:
        """Open dead letters (dismissed ones left out; a requested retry counts as no attempt yet)."""
        t = dead_letters
        attempts = sa.case((t.c.retry_requested_at.is_not(None), 0), else_=t.c.attempts).label("attempts")
        query = sa.select(t.c.side, t.c.rtype, t.c.rid, t.c.reason, attempts).where(
            self._scope(t), t.c.dismissed_at.is_(None)
        )
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def record(self, conn: Connection, letters: Sequence[Letter], run_id: str) -> None:
        """Add failed records, or count one more failed attempt of each already there.

        One upsert statement built once and executed per row (an executemany): safe under concurrency,
        and a run that fails the same thousand records again (a data issue the user has not fixed)
        builds one statement, not a thousand.
        """
        if not letters:
            return
        t = dead_letters
        rows = [
            {
                "integration": self.integration,
                "entity": self.entity,
                "side": letter.side,
                "rtype": letter.rtype,
                "rid": letter.rid,
                "reason": letter.reason,
                "detail": letter.detail,
                "attempts": 1,
                "first_run": run_id,
                "last_run": run_id,
            }
            for letter in letters
        ]
        rejected = excluded(conn, t)
        changes = {
            "reason": rejected.reason,
            "detail": rejected.detail,
            "last_run": rejected.last_run,
            # A retry the user asked for starts the count again.
            "attempts": sa.case((t.c.retry_requested_at.is_not(None), 1), else_=t.c.attempts + 1),
            "retry_requested_at": None,
            "retry_requested_by": None,
        }
        upsert(conn, t, rows, _KEYS, changes)

    def clear(self, conn: Connection, side: str, rtype: str, rid: str | Sequence[str]) -> None:
        """Forget the dead letters of one or many records (they synced)."""
        t = dead_letters
        ids = [rid] if isinstance(rid, str) else list(rid)
        for chunk in chunks(ids, 500):
            conn.execute(
                sa.delete(t).where(self._scope(t), t.c.side == side, t.c.rtype == rtype, t.c.rid.in_(chunk))
            )
