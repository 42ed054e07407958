"""The last seen state of every remote record: ``cs_remote_records``.

The invoicing listing, and a mirror of the Clientify records seen so far, which lets a modified run
match by tax ID without a search per record.

Staging costs a record that did not change a hash comparison: one read of the stored hashes per
chunk, then one ``UPDATE ... WHERE rid IN (...)`` of ``seen_run`` and ``prev_hash`` for all unchanged
rows; only new or changed rows have their JSON written. ``raw_hash`` catches a change of the API's
record outside the mapped fields (a second e-mail, a phone), which must not leave a stale ``raw``
behind for the read-modify-write of a later update.
"""

from __future__ import annotations

import hashlib
import marshal
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NotRequired, TypedDict

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks
from clientify_sync.engine.ledger.schema import remote_records
from clientify_sync.engine.model import SideRecord


class StagedRow(TypedDict):
    """A stored record as ``Records.fetch`` returns it (``raw`` only when asked for)."""

    integration: str
    entity: str
    side: str
    rtype: str
    rid: str
    key: str
    kind: str | None
    problem: str | None
    link: str | None
    hash: str
    prev_hash: str | None
    modified: str | None
    seen_run: str
    data: dict[str, Any]
    raw: NotRequired[dict[str, Any] | None]


# Ids per ``rid IN (...)``: well under SQLite's bound-parameter limit with the scope's parameters.
_CHUNK = 400

# What ``content_hash`` leaves out and a read can still change: rewritten on every unchanged row.
_CHEAP = ("key", "kind", "problem", "modified")


def raw_hash(raw: dict[str, Any] | None) -> str | None:
    """A digest of an API record as read (``None`` for none): equal digests, same record.

    ``marshal`` format 2 (no shared references, so equal values give equal bytes) of parsed JSON or XML
    is exact and about 2.7 times faster than ``repr`` (10 µs a record), itself several times faster
    than a sorted ``json.dumps``. It follows key order and the Python version's format, so a reordered
    record, or the first run after a Python upgrade, only counts as changed (one re-map), never the
    reverse. A value ``marshal`` cannot write (none comes from a decoder) falls back to ``repr``.
    """
    if raw is None:
        return None
    try:
        data = marshal.dumps(raw, 2)
    except ValueError:
        data = repr(raw).encode()
    return hashlib.blake2b(data, digest_size=16).hexdigest()


class Records(Repository):
    """The remote records of one integration and entity, on both sides."""

    def stage(
        self,
        records: Sequence[SideRecord],
        run_id: str,
        *,
        keep_raw: bool = True,
        conn: Connection | None = None,
    ) -> None:
        """Store the latest state of records read in this run (``prev_hash`` keeps the one before).

        A record whose content hash (and, with ``keep_raw``, raw digest) equals the stored one keeps its
        stored ``data`` and ``raw``: only ``seen_run``, ``prev_hash`` (= its hash) and, when they
        differ, the columns the hash does not cover (key, kind, problem, modified) are updated.
        Others are replaced whole, with ``prev_hash`` = the hash stored before.

        Args:
            records: what was read; of several states of one record, the last wins.
            run_id: the run that read them (``seen_run``).
            keep_raw: store the API's whole record too (needed by writes).
            conn: a write transaction to join; by default one of its own.
        """
        if not records:
            return
        latest = {(r.side.value, r.rtype, r.rid): r for r in records}  # the last state wins
        groups: dict[tuple[str, str], list[SideRecord]] = {}
        for (side, rtype, _), record in latest.items():
            groups.setdefault((side, rtype), []).append(record)
        with self._writing(conn) as c:
            for (side, rtype), group in groups.items():
                for chunk in chunks(group, _CHUNK):
                    self._stage_chunk(c, side, rtype, chunk, run_id, keep_raw)

    def _stage_chunk(
        self,
        conn: Connection,
        side: str,
        rtype: str,
        chunk: Sequence[SideRecord],
        run_id: str,
        keep_raw: bool,
    ) -> None:
        """Stage records of one side and type (``rid IN (...)`` uses the primary key; a row-value IN does not)."""
        t = remote_records
        where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
        ids = [r.rid for r in chunk]
        query = sa.select(t.c.rid, t.c.hash, t.c.raw_hash, *(t.c[name] for name in _CHEAP))
        stored = {row[0]: tuple(row[1:]) for row in conn.execute(query.where(where, t.c.rid.in_(ids)))}
        seen: list[str] = []  # unchanged, cheap columns too: one UPDATE ... WHERE rid IN
        refreshed: list[dict[str, Any]] = []  # unchanged, some cheap column not: one executemany
        fresh: list[dict[str, Any]] = []  # new or changed: replaced whole
        for r in chunk:
            content = r.content_hash
            raw = r.raw if keep_raw else None
            raw_digest = raw_hash(raw)
            old = stored.get(r.rid)
            if old is not None and old[0] == content and (not keep_raw or old[1] == raw_digest):
                cheap = tuple(getattr(r, name) for name in _CHEAP)
                if old[2:] == cheap:
                    seen.append(r.rid)
                else:
                    refreshed.append(
                        {"b_rid": r.rid, **{f"b_{n}": v for n, v in zip(_CHEAP, cheap, strict=True)}}
                    )
                continue
            fresh.append(
                {
                    "integration": self.integration,
                    "entity": self.entity,
                    "side": side,
                    "rtype": rtype,
                    "rid": r.rid,
                    "key": r.key,
                    "kind": r.kind,
                    "problem": r.problem,
                    "link": r.link,
                    "hash": content,
                    "prev_hash": old[0] if old else None,
                    "modified": r.modified,
                    "seen_run": run_id,
                    "data": r.data,
                    "raw": raw,
                    "raw_hash": raw_digest,
                }
            )
        self.touch(side, rtype, seen, run_id, conn=conn)
        if refreshed:
            cheap_values: dict[str, Any] = {name: sa.bindparam(f"b_{name}") for name in _CHEAP}
            statement = (
                sa.update(t)
                .where(where, t.c.rid == sa.bindparam("b_rid"))
                .values(seen_run=run_id, prev_hash=t.c.hash, **cheap_values)
            )
            conn.execute(statement, refreshed)
        if fresh:
            replaced = [row["rid"] for row in fresh if row["rid"] in stored]
            if replaced:
                conn.execute(sa.delete(t).where(where, t.c.rid.in_(replaced)))
            conn.execute(sa.insert(t), fresh)

    def raw_digests(
        self, side: str, rtype: str, rids: Sequence[str], *, conn: Connection | None = None
    ) -> dict[str, str | None]:
        """The stored ``raw_hash`` of these records (unknown ones are left out)."""
        t = remote_records
        where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
        found: dict[str, str | None] = {}
        with self._reading(conn) as conn:
            for chunk in chunks(list(dict.fromkeys(rids)), _CHUNK):
                rows = conn.execute(sa.select(t.c.rid, t.c.raw_hash).where(where, t.c.rid.in_(chunk))).all()
                found.update((row[0], row[1]) for row in rows)
        return found

    def touch(
        self, side: str, rtype: str, rids: Sequence[str], run_id: str, *, conn: Connection | None = None
    ) -> None:
        """Mark records as read in ``run_id`` and unchanged (``prev_hash`` = ``hash``), writing nothing else."""
        if not rids:
            return
        t = remote_records
        where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
        with self._writing(conn) as c:
            for chunk in chunks(list(rids), _CHUNK):
                c.execute(
                    sa.update(t).where(where, t.c.rid.in_(chunk)).values(seen_run=run_id, prev_hash=t.c.hash)
                )

    def forget(self, side: str, conn: Connection | None = None) -> int:
        """Drop every record of ``side`` in this scope (its ids no longer name anything: the platform's
        API changed); how many."""
        t = remote_records
        with self._writing(conn) as c:
            return int(c.execute(sa.delete(t).where(self._scope(t), t.c.side == side)).rowcount or 0)

    def touch_all(self, side: str, run_id: str, *, keep: set[str], conn: Connection | None = None) -> None:
        """Mark every record of ``side`` read in ``run_id`` and unchanged, but those whose id is in ``keep``
        (read anew, or gone): what an activity feed's "nothing else changed" means."""
        t = remote_records
        where = [self._scope(t), t.c.side == side, t.c.seen_run != run_id]
        if keep:
            where.append(t.c.rid.not_in(sorted(keep)))
        with self._writing(conn) as c:
            c.execute(sa.update(t).where(*where).values(seen_run=run_id, prev_hash=t.c.hash))

    def keys(self, side: str) -> Iterator[tuple[str, str, str, str | None]]:
        """Every record of one side as ``(rtype, rid, key, problem)``, streamed (no frame in memory)."""
        t = remote_records
        query = sa.select(t.c.rtype, t.c.rid, t.c.key, t.c.problem).where(self._scope(t), t.c.side == side)
        with self.engine.connect() as conn:
            for row in conn.execution_options(yield_per=2000).execute(query):
                yield row[0], row[1], row[2], row[3]

    def identities(self, side: str, *, seen_run: str | None = None) -> pd.DataFrame:
        """The identity columns of one side's records (no payloads): what matching joins on."""
        t = remote_records
        query = sa.select(
            t.c.rtype,
            t.c.rid,
            t.c.key,
            t.c.kind,
            t.c.problem,
            t.c.link,
            t.c.hash,
            t.c.prev_hash,
            t.c.modified,
            t.c.seen_run,
        ).where(self._scope(t), t.c.side == side)
        if seen_run is not None:
            query = query.where(t.c.seen_run == seen_run)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def fetch(
        self, side: str, ids: Iterable[tuple[str, str]], *, with_raw: bool = True
    ) -> dict[tuple[str, str], StagedRow]:
        """Full rows (data, link, hash, and ``raw`` unless told not to) by (rtype, rid).

        ``raw`` is the API's whole record, several times the size of ``data``: only writes need it.

        Args:
            side: the side the records are on.
            ids: (rtype, rid) pairs; repeats are read once, unknown ones are left out.
            with_raw: read ``raw`` too.

        Returns:
            The rows found, by (rtype, rid).
        """
        t = remote_records
        columns = [c for c in t.c if c.name != "raw_hash" and (with_raw or c.name != "raw")]
        by_type: dict[str, list[str]] = {}
        for rtype, rid in dict.fromkeys(ids):
            by_type.setdefault(rtype, []).append(rid)
        found: dict[tuple[str, str], StagedRow] = {}
        with self.engine.connect() as conn:
            for rtype, rids in by_type.items():
                where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
                for chunk in chunks(rids, _CHUNK):
                    for row in conn.execute(sa.select(*columns).where(where, t.c.rid.in_(chunk))).mappings():
                        found[(row["rtype"], row["rid"])] = StagedRow(**row)  # type: ignore[typeddict-item]
        return found

    def seen_with_key(self, side: str, key: str, run_id: str) -> list[tuple[str, str]]:
        """The (rtype, rid) of ``side``'s records read in ``run_id`` that hold ``key``."""
        t = remote_records
        query = sa.select(t.c.rtype, t.c.rid).where(
            self._scope(t), t.c.side == side, t.c.key == key, t.c.seen_run == run_id
        )
        with self.engine.connect() as conn:
            return [(row[0], row[1]) for row in conn.execute(query)]

    def max_modified(self, side: str, run_id: str) -> str | None:
        """The latest ``modified`` among one side's records seen by ``run_id`` (the next cursor)."""
        t = remote_records
        query = sa.select(sa.func.max(t.c.modified)).where(
            self._scope(t), t.c.side == side, t.c.seen_run == run_id
        )
        with self.engine.connect() as conn:
            value: str | None = conn.scalar(query)
            return value
