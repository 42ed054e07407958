"""What the planner reads: only the records and pairs that may need work, selected in SQL.

An unchanged pair costs one row in an aggregate and nothing in Python: the joins below compare each
link's stored hashes with the staged records' hashes in the database and return only pairs that
changed, records without a link, and the keys that appear twice. Rows are typed tuples, fetched in
chunks, so memory does not grow with the account.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clientify_sync.engine.ledger.database import chunks
from clientify_sync.engine.ledger.schema import links, remote_records
from clientify_sync.engine.plan import Ref
from clientify_sync.engine.vocabulary import CRM, INV

CHUNK = 1000
Query = sa.Select[*tuple[Any, ...]]


class RecordRow(NamedTuple):
    """A staged record's identity columns (no payload)."""

    rtype: str
    rid: str
    key: str
    kind: str | None
    problem: str | None
    link: str | None
    hash: str
    prev_hash: str | None
    seen_run: str

    @property
    def ref(self) -> Ref:
        """The record as a ``Ref``."""
        return Ref(self.rtype, self.rid)

    @property
    def changed(self) -> bool:
        """New, or different from the last time it was read."""
        return self.prev_hash is None or self.prev_hash != self.hash


class LinkedRow(NamedTuple):
    """A linked pair with the hashes its link stored and those of the records staged now."""

    link_id: int
    inv_type: str
    inv_id: str
    crm_type: str
    crm_id: str
    link_inv_hash: str
    link_crm_hash: str
    inv_hash: str
    crm_hash: str | None  # None: the Clientify record was never seen
    crm_in_window: bool

    @property
    def inv(self) -> Ref:
        """The pair's invoicing record."""
        return Ref(self.inv_type, self.inv_id)

    @property
    def crm(self) -> Ref:
        """The pair's Clientify record."""
        return Ref(self.crm_type, self.crm_id)


class Candidates:
    """Read-only queries over one integration and entity's staged records and links."""

    def __init__(self, engine: Engine, integration: str, entity: str) -> None:
        self.engine = engine
        self.integration = integration
        self.entity = entity

    def _records(self, alias: sa.FromClause, side: str) -> sa.ColumnElement[bool]:
        return sa.and_(
            alias.c.integration == self.integration, alias.c.entity == self.entity, alias.c.side == side
        )

    def _identity(self, t: sa.FromClause) -> list[sa.ColumnElement[Any]]:
        """The columns a ``RecordRow`` holds, in its order."""
        return [t.c[name] for name in RecordRow._fields]

    def _stream(self, query: Query) -> Iterator[list[RecordRow]]:
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=CHUNK).execute(query)
            for part in result.partitions(CHUNK):
                yield [RecordRow._make(row) for row in part]

    # -- records that cannot sync ------------------------------------------------------------------
    def with_problems(self, side: str, run_id: str) -> Iterator[list[RecordRow]]:
        """Records read in this run whose mapping found a problem (invalid tax ID, bad totals ...)."""
        t = remote_records
        query = sa.select(*self._identity(t)).where(
            self._records(t, side), t.c.seen_run == run_id, t.c.problem.is_not(None)
        )
        return self._stream(query.order_by(t.c.rtype, t.c.rid))

    # -- linked pairs ------------------------------------------------------------------------------
    def _linked(self, run_id: str) -> tuple[Query, sa.FromClause, sa.FromClause]:
        """Links whose invoicing record was read in this run without a problem, and whose Clientify
        record, when read in this run, has none either (problems are settled apart)."""
        inv, crm, t = remote_records.alias("inv"), remote_records.alias("crm"), links
        query = (
            sa.select(
                t.c.id,
                t.c.inv_type,
                t.c.inv_id,
                t.c.crm_type,
                t.c.crm_id,
                t.c.inv_hash,
                t.c.crm_hash,
                inv.c.hash,
                crm.c.hash,
                sa.func.coalesce(crm.c.seen_run == run_id, False),
            )
            .select_from(t)
            .join(inv, sa.and_(self._records(inv, INV), inv.c.rtype == t.c.inv_type, inv.c.rid == t.c.inv_id))
            .outerjoin(
                crm, sa.and_(self._records(crm, CRM), crm.c.rtype == t.c.crm_type, crm.c.rid == t.c.crm_id)
            )
            .where(
                t.c.integration == self.integration,
                t.c.entity == self.entity,
                inv.c.seen_run == run_id,
                inv.c.problem.is_(None),
                sa.or_(crm.c.rid.is_(None), crm.c.seen_run != run_id, crm.c.problem.is_(None)),
            )
        )
        return query, inv, crm

    @staticmethod
    def _changed(run_id: str, inv: sa.FromClause, crm: sa.FromClause) -> sa.ColumnElement[bool]:
        """A linked pair may need work: its Clientify record is unknown, or a hash differs from the link's
        (the Clientify one only when read in this run)."""
        return sa.or_(
            crm.c.rid.is_(None),
            inv.c.hash != links.c.inv_hash,
            sa.and_(crm.c.seen_run == run_id, crm.c.hash != links.c.crm_hash),
        )

    def linked(self, run_id: str, *, full: bool) -> Iterator[list[LinkedRow]]:
        """Linked pairs that may need work: all of them in a full run, else the ``_changed`` ones."""
        query, inv, crm = self._linked(run_id)
        if not full:
            query = query.where(self._changed(run_id, inv, crm))
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=CHUNK).execute(query.order_by(links.c.id))
            for part in result.partitions(CHUNK):
                yield [_linked_row(row) for row in part]

    def linked_count(self, run_id: str) -> tuple[int, int]:
        """How many linked pairs have both records known (and no problem), and how many pairs ``linked``
        returns in a modified run: one pass, so an idle run need not read them at all."""
        query, inv, crm = self._linked(run_id)
        known = sa.case((crm.c.rid.is_not(None), 1), else_=0)
        changed = sa.case((self._changed(run_id, inv, crm), 1), else_=0)
        counts = query.with_only_columns(
            sa.func.coalesce(sa.func.sum(known), 0), sa.func.coalesce(sa.func.sum(changed), 0)
        )
        with self.engine.connect() as conn:
            row = conn.execute(counts).one()
            return int(row[0]), int(row[1])

    def linked_of(self, refs: Iterable[tuple[str, str, str]], run_id: str) -> list[LinkedRow]:
        """The linked pairs (as ``linked`` gives them) of the given ``(side, rtype, rid)`` records."""
        query, _inv, _crm = self._linked(run_id)
        found: list[LinkedRow] = []
        by_column: dict[tuple[str, str], list[str]] = {}
        for side, rtype, rid in refs:
            by_column.setdefault((side, rtype), []).append(rid)
        with self.engine.connect() as conn:
            for (side, rtype), rids in by_column.items():
                type_col, id_col = (
                    (links.c.inv_type, links.c.inv_id) if side == INV else (links.c.crm_type, links.c.crm_id)
                )
                for part in chunks(rids, 500):
                    rows = conn.execute(query.where(type_col == rtype, id_col.in_(part))).all()
                    found.extend(_linked_row(row) for row in rows)
        return found

    # -- records without a link --------------------------------------------------------------------
    def _unlinked(self, side: str) -> Query:
        t = remote_records
        type_col, id_col = (
            (links.c.inv_type, links.c.inv_id) if side == INV else (links.c.crm_type, links.c.crm_id)
        )
        linked = sa.exists().where(
            links.c.integration == self.integration,
            links.c.entity == self.entity,
            type_col == t.c.rtype,
            id_col == t.c.rid,
        )
        return sa.select(*self._identity(t)).where(self._records(t, side), t.c.problem.is_(None), ~linked)

    def unlinked_invoicing(self, run_id: str) -> Iterator[list[RecordRow]]:
        """Invoicing records read in this run, without a problem and without a link."""
        t = remote_records
        return self._stream(self._unlinked(INV).where(t.c.seen_run == run_id).order_by(t.c.rtype, t.c.rid))

    def unlinked_clientify(
        self, run_id: str, also: Sequence[tuple[str, str]] = ()
    ) -> Iterator[list[RecordRow]]:
        """Clientify records read in this run (and the ``also`` ones: failed earlier, retried), without a
        problem and without a link."""
        t = remote_records
        window = [t.c.seen_run == run_id]
        by_type: dict[str, list[str]] = {}
        for rtype, rid in also:
            by_type.setdefault(rtype, []).append(rid)
        window += [sa.and_(t.c.rtype == rtype, t.c.rid.in_(rids)) for rtype, rids in by_type.items()]
        return self._stream(self._unlinked(CRM).where(sa.or_(*window)).order_by(t.c.rtype, t.c.rid))

    def unlinked_clientify_by(
        self, *, links_to: Sequence[str] = (), keys: Sequence[str] = ()
    ) -> list[RecordRow]:
        """Unlinked Clientify records whose link field names one of ``links_to`` or whose key is in ``keys``."""
        t = remote_records
        found: list[RecordRow] = []
        with self.engine.connect() as conn:
            for column, values in ((t.c.link, links_to), (t.c.key, keys)):
                for part in chunks(list(dict.fromkeys(v for v in values if v)), 500):
                    rows = conn.execute(self._unlinked(CRM).where(column.in_(part))).all()
                    found.extend(RecordRow._make(row) for row in rows)
        return found

    def invoicing_by(
        self, run_id: str, *, rids: Sequence[str] = (), keys: Sequence[str] = ()
    ) -> list[RecordRow]:
        """Invoicing records read in this run with one of ``rids`` (any problem) or ``keys`` (none)."""
        t = remote_records
        seen = sa.and_(self._records(t, INV), t.c.seen_run == run_id)
        found: list[RecordRow] = []
        with self.engine.connect() as conn:
            for part in chunks(list(dict.fromkeys(rids)), 500):
                rows = conn.execute(sa.select(*self._identity(t)).where(seen, t.c.rid.in_(part))).all()
                found.extend(RecordRow._make(row) for row in rows)
            for part in chunks(list(dict.fromkeys(k for k in keys if k)), 500):
                query = sa.select(*self._identity(t)).where(seen, t.c.problem.is_(None), t.c.key.in_(part))
                found.extend(RecordRow._make(row) for row in conn.execute(query).all())
        return found

    def linked_invoicing(self, refs: Iterable[Ref]) -> set[Ref]:
        """Which of these invoicing records have a link."""
        by_type: dict[str, list[str]] = {}
        for ref in refs:
            by_type.setdefault(ref.rtype, []).append(ref.rid)
        found: set[Ref] = set()
        t = links
        with self.engine.connect() as conn:
            for rtype, rids in by_type.items():
                for part in chunks(rids, 500):
                    rows = conn.execute(
                        sa.select(t.c.inv_type, t.c.inv_id).where(
                            t.c.integration == self.integration,
                            t.c.entity == self.entity,
                            t.c.inv_type == rtype,
                            t.c.inv_id.in_(part),
                        )
                    ).all()
                    found.update(Ref(r[0], r[1]) for r in rows)
        return found

    def duplicate_keys(self, side: str, *, run_id: str | None = None) -> set[str]:
        """Keys held by two records or more of one side (only those read in ``run_id``, when given)."""
        t = remote_records
        query = sa.select(t.c.key).where(self._records(t, side), t.c.problem.is_(None), t.c.key != "")
        if run_id is not None:
            query = query.where(t.c.seen_run == run_id)
        query = query.group_by(t.c.key).having(sa.func.count() > 1)
        with self.engine.connect() as conn:
            return set(conn.scalars(query).all())

    def mirror_by(self, *, link: str, key: str) -> int:
        """How many Clientify records carry this link field value or this key (a pending create's trace)."""
        t = remote_records
        condition = [t.c.link == link] + ([t.c.key == key] if key else [])
        query = sa.select(sa.func.count()).where(self._records(t, CRM), sa.or_(*condition))
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)


def _linked_row(row: sa.Row[Any]) -> LinkedRow:
    values = tuple(row)
    return LinkedRow(
        int(values[0]),
        str(values[1]),
        str(values[2]),
        str(values[3]),
        str(values[4]),
        str(values[5] or ""),
        str(values[6] or ""),
        str(values[7]),
        None if values[8] is None else str(values[8]),
        bool(values[9]),
    )
