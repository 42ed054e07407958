"""The links between the ids of both sides, with the merge base: ``cs_links``.

A link holds the last synced canonical snapshot of a pair (the base of the three-way merge) and the
content hash of each side at that moment. Writers of one scope's links are serialised (``lock``),
because a link is found by either id, then inserted or updated.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, NamedTuple, TypedDict

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, lock, now
from clientify_sync.engine.ledger.schema import links


class LinkRow(TypedDict):
    """A stored link as ``Links.find`` returns it: the pair, its merge base and the hashes it was made at."""

    id: int
    integration: str
    entity: str
    inv_type: str
    inv_id: str
    crm_type: str
    crm_id: str
    base: dict[str, Any] | None
    inv_hash: str
    crm_hash: str
    updated_run: str | None
    updated_at: datetime | None


class NewLink(NamedTuple):
    """A pair to link (or relink): its two records, the snapshot both sides now agree on and each
    side's content hash at that moment."""

    inv: tuple[str, str]  # (type, id) on the invoicing side
    crm: tuple[str, str]  # (type, id) in Clientify
    base: dict[str, Any] | None  # None: linked by matching, no write yet (the next merge has no base)
    inv_hash: str
    crm_hash: str


class Links(Repository):
    """The links of one integration and entity."""

    @property
    def _lock_name(self) -> str:
        """Writers of this scope's links (a link is found by either id, then inserted or updated)."""
        return f"clientify_sync:links:{self.integration}:{self.entity}"

    def pairs(self) -> Iterator[tuple[str, str, str, str]]:
        """Every link as ``(inv_type, inv_id, crm_type, crm_id)``, streamed (no frame in memory)."""
        t = links
        query = sa.select(t.c.inv_type, t.c.inv_id, t.c.crm_type, t.c.crm_id).where(self._scope(t))
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(query):
                yield row[0], row[1], row[2], row[3]

    def identities(self) -> pd.DataFrame:
        """Every link's ids and hashes (``link_id`` and no base): what matching joins on."""
        t = links
        query = sa.select(
            t.c.id.label("link_id"),
            t.c.inv_type,
            t.c.inv_id,
            t.c.crm_type,
            t.c.crm_id,
            t.c.inv_hash,
            t.c.crm_hash,
        ).where(self._scope(t))
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def bases(self, link_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        """The merge base of each given link, by link id (unknown ids are left out)."""
        found: dict[int, dict[str, Any] | None] = {}
        with self.engine.connect() as conn:
            for chunk in chunks(list(link_ids), 500):
                for row in conn.execute(sa.select(links.c.id, links.c.base).where(links.c.id.in_(chunk))):
                    found[row.id] = row.base
        return found

    def find(
        self, *, inv: tuple[str, str] | None = None, crm: tuple[str, str] | None = None
    ) -> LinkRow | None:
        """The link with this invoicing and/or Clientify (type, id), or ``None``."""
        t = links
        query = sa.select(t).where(self._scope(t))
        if inv:
            query = query.where(t.c.inv_type == inv[0], t.c.inv_id == inv[1])
        if crm:
            query = query.where(t.c.crm_type == crm[0], t.c.crm_id == crm[1])
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            return LinkRow(**row) if row else None  # type: ignore[typeddict-item]

    def save(
        self,
        inv: tuple[str, str],
        crm: tuple[str, str],
        *,
        base: dict[str, Any] | None,
        inv_hash: str,
        crm_hash: str,
        run_id: str,
        conn: Connection | None = None,
    ) -> None:
        """Insert or update the link of a pair (matched on either id).

        Args:
            inv: the invoicing (type, id).
            crm: the Clientify (type, id).
            base: the canonical snapshot both sides now agree on (the next merge base).
            inv_hash: the invoicing record's content hash at that moment.
            crm_hash: the Clientify record's content hash at that moment.
            run_id: the run that saves it.
            conn: a write transaction to join; by default one of its own.
        """
        values = {
            "base": base,
            "inv_hash": inv_hash,
            "crm_hash": crm_hash,
            "updated_run": run_id,
            "updated_at": now(),
            "inv_type": inv[0],
            "inv_id": inv[1],
            "crm_type": crm[0],
            "crm_id": crm[1],
        }
        t = links
        with self._writing(conn) as c:
            lock(c, self._lock_name)
            existing = c.scalar(
                sa.select(t.c.id).where(
                    self._scope(t),
                    sa.or_(
                        sa.and_(t.c.inv_type == inv[0], t.c.inv_id == inv[1]),
                        sa.and_(t.c.crm_type == crm[0], t.c.crm_id == crm[1]),
                    ),
                )
            )
            if existing is None:
                c.execute(sa.insert(t).values(integration=self.integration, entity=self.entity, **values))
            else:
                c.execute(sa.update(t).where(t.c.id == existing).values(**values))

    def save_many(self, conn: Connection, pairs: Sequence[NewLink], run_id: str) -> None:
        """Many ``save`` at once (a batch of creates): one lookup, one multi-row insert.

        Args:
            conn: the write transaction.
            pairs: the pairs to link.
            run_id: the run that saves them.
        """
        if not pairs:
            return
        t = links
        lock(conn, self._lock_name)
        inv_ids = [p.inv[1] for p in pairs]
        crm_ids = [p.crm[1] for p in pairs]
        existing = conn.execute(
            sa.select(t.c.inv_type, t.c.inv_id, t.c.crm_type, t.c.crm_id).where(
                self._scope(t), sa.or_(t.c.inv_id.in_(inv_ids), t.c.crm_id.in_(crm_ids))
            )
        ).all()
        taken = {("inv", r.inv_type, r.inv_id) for r in existing} | {
            ("crm", r.crm_type, r.crm_id) for r in existing
        }
        fresh = []
        for pair in pairs:
            if ("inv", *pair.inv) in taken or ("crm", *pair.crm) in taken:
                self.save(
                    pair.inv,
                    pair.crm,
                    base=pair.base,
                    inv_hash=pair.inv_hash,
                    crm_hash=pair.crm_hash,
                    run_id=run_id,
                    conn=conn,
                )
            else:
                fresh.append(pair)
        if fresh:
            saved_at = now()
            rows = [
                {
                    "integration": self.integration,
                    "entity": self.entity,
                    "inv_type": p.inv[0],
                    "inv_id": p.inv[1],
                    "crm_type": p.crm[0],
                    "crm_id": p.crm[1],
                    "base": p.base,
                    "inv_hash": p.inv_hash,
                    "crm_hash": p.crm_hash,
                    "updated_run": run_id,
                    "updated_at": saved_at,
                }
                for p in fresh
            ]
            conn.execute(sa.insert(t), rows)

    def forget_all(self, conn: Connection | None = None) -> int:
        """Drop every link of this scope (the invoicing ids changed); how many."""
        with self._writing(conn) as c:
            return int(c.execute(sa.delete(links).where(self._scope(links))).rowcount or 0)

    def delete(self, link_id: int) -> None:
        """Forget one link (by its id)."""
        with self._writing(None) as conn:
            conn.execute(sa.delete(links).where(links.c.id == link_id))
