"""The state ledger: what the sync remembers between runs and between the tasks of one run.

A real SQL database through SQLAlchemy 2 (SQLite by default, PostgreSQL in production). It holds
the links between ids with the last synced canonical snapshot (the merge base) and the content hash of
each side; the last seen state of every remote record (the invoicing listing, and a mirror of the
Clientify records seen so far, which lets a modified run match by tax ID without a search per
record); pending creates (written before each POST); the plan and outcome of each run; dead letters;
conflicts; run reports and API call counts. The schema creates and upgrades itself (``SCHEMA_VERSION``
and ``_MIGRATIONS``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.model import SideRecord

SCHEMA_VERSION = 3
metadata = sa.MetaData()

meta_table = sa.Table(
    "cs_meta",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

remote_records = sa.Table(
    "cs_remote_records",
    metadata,
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("rtype", sa.String(16), primary_key=True),
    sa.Column("rid", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(128), nullable=False, default=""),
    sa.Column("kind", sa.String(16)),
    sa.Column("problem", sa.String(64)),
    sa.Column("link", sa.String(64)),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("modified", sa.String(40)),
    sa.Column("seen_run", sa.String(250), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("raw", sa.JSON),
    sa.Index("ix_cs_remote_key", "integration", "entity", "side", "key"),
    sa.Index("ix_cs_remote_seen", "integration", "entity", "side", "seen_run"),
)

links = sa.Table(
    "cs_links",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("inv_type", sa.String(16), nullable=False),
    sa.Column("inv_id", sa.String(64), nullable=False),
    sa.Column("crm_type", sa.String(16), nullable=False),
    sa.Column("crm_id", sa.String(64), nullable=False),
    sa.Column("base", sa.JSON),
    sa.Column("inv_hash", sa.String(64), nullable=False, default=""),
    sa.Column("crm_hash", sa.String(64), nullable=False, default=""),
    sa.Column("updated_run", sa.String(250)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("integration", "entity", "inv_type", "inv_id", name="uq_cs_links_inv"),
    sa.UniqueConstraint("integration", "entity", "crm_type", "crm_id", name="uq_cs_links_crm"),
)

pending_creates = sa.Table(
    "cs_pending_creates",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("target_type", sa.String(16), nullable=False),
    sa.Column("source_type", sa.String(16), nullable=False),
    sa.Column("source_id", sa.String(64), nullable=False),
    sa.Column("natural_key", sa.String(128), nullable=False),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

plan_items = sa.Table(
    "cs_plan_items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("pair", sa.String(160), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("target", sa.String(16)),
    sa.Column("direction", sa.String(32), nullable=False),
    sa.Column("inv_type", sa.String(16)),
    sa.Column("inv_id", sa.String(64)),
    sa.Column("crm_type", sa.String(16)),
    sa.Column("crm_id", sa.String(64)),
    sa.Column("fields", sa.JSON),
    sa.Column("merged", sa.JSON),
    sa.Column("reason", sa.String(64)),
    sa.Column("detail", sa.Text),
    sa.Column("status", sa.String(16), nullable=False, default="planned"),
    # 0 for records that failed in an earlier run: they are applied first (schema version 2).
    sa.Column("priority", sa.Integer, nullable=False, default=1, server_default="1"),
    sa.Column("outcome", sa.String(16)),
    sa.Column("result", sa.JSON),
    sa.Index("ix_cs_plan_run", "run_id", "integration", "entity", "target"),
)

dead_letters = sa.Table(
    "cs_dead_letters",
    metadata,
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(16), primary_key=True),
    sa.Column("rtype", sa.String(16), primary_key=True),
    sa.Column("rid", sa.String(64), primary_key=True),
    sa.Column("reason", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=1),
    sa.Column("first_run", sa.String(250), nullable=False),
    sa.Column("last_run", sa.String(250), nullable=False),
    # Schema version 3: a user's decision from the status view. Dismissed letters are never retried;
    # a requested retry resets the attempts at the next run.
    sa.Column("dismissed_at", sa.DateTime(timezone=True)),
    sa.Column("dismissed_by", sa.String(250)),
    sa.Column("retry_requested_at", sa.DateTime(timezone=True)),
    sa.Column("retry_requested_by", sa.String(250)),
)

conflicts = sa.Table(
    "cs_conflicts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("integration", sa.String(32), nullable=False),
    sa.Column("entity", sa.String(32), nullable=False),
    sa.Column("inv_id", sa.String(64)),
    sa.Column("crm_type", sa.String(16)),
    sa.Column("crm_id", sa.String(64)),
    sa.Column("field", sa.String(64), nullable=False),
    sa.Column("invoicing_value", sa.Text),
    sa.Column("clientify_value", sa.Text),
    sa.Column("base_value", sa.Text),
    sa.Column("winner", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

runs = sa.Table(
    "cs_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("dry_run", sa.Boolean, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("report", sa.JSON),
)

run_steps = sa.Table(
    "cs_run_steps",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("integration", sa.String(32), primary_key=True),
    sa.Column("entity", sa.String(32), primary_key=True),
    sa.Column("step", sa.String(32), primary_key=True),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("calls", sa.JSON, nullable=False),
)


# One row per request granted by the shared request budget (engine/budget.py), kept for a minute.
request_log = sa.Table(
    "cs_request_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("account", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_cs_request_log_account_at", "account", "at"),
)


def _now() -> datetime:
    return datetime.now(UTC)


def _migrate_to_1(conn: Connection) -> None:
    metadata.create_all(conn)


def _migrate_to_2(conn: Connection) -> None:
    """Plan items get a priority (failed records of earlier runs first)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_plan_items")}
    if "priority" not in columns:  # a ledger created at version 1; a new one has it from create_all
        conn.execute(sa.text("ALTER TABLE cs_plan_items ADD COLUMN priority INTEGER NOT NULL DEFAULT 1"))


def _migrate_to_3(conn: Connection) -> None:
    """Dead letters get the status view's dismiss/retry columns; the shared request budget its table."""
    metadata.create_all(conn, checkfirst=True)  # new tables, and any an older ledger lacks
    columns = {c["name"] for c in sa.inspect(conn).get_columns("cs_dead_letters")}
    for name, sql_type in (
        ("dismissed_at", "TIMESTAMP"), ("dismissed_by", "VARCHAR(250)"),
        ("retry_requested_at", "TIMESTAMP"), ("retry_requested_by", "VARCHAR(250)"),
    ):  # fmt: skip
        if name not in columns:
            conn.execute(sa.text(f"ALTER TABLE cs_dead_letters ADD COLUMN {name} {sql_type}"))


# Version n is reached by running _MIGRATIONS[n]; a new column or table is a new entry here.
_MIGRATIONS = {1: _migrate_to_1, 2: _migrate_to_2, 3: _migrate_to_3}

# Execution option that marks a connection's transaction as a writer (see ``create_ledger_engine``).
WRITE = "clientify_sync_write"
_SCHEMA_LOCK = "clientify_sync:schema"


def create_ledger_engine(url: str) -> Engine:
    """An engine on which concurrent tasks, DAGs and workers wait for each other instead of failing.

    SQLite (one machine): WAL, a 60 s busy timeout, and every write transaction opened with
    ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two writers queue on the busy timeout
    instead of one failing with ``database is locked`` when it upgrades a read lock (pysqlite's own
    transaction handling is switched off so that SQLAlchemy's ``begin`` event issues the BEGIN; this is
    SQLAlchemy's documented recipe, and it makes DDL transactional too). Reads use a plain ``BEGIN``.
    PostgreSQL: read committed, with advisory locks where a write reads first (``lock``).
    """
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy's begin event issues BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(WRITE) else "BEGIN")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: on SQLite it holds the write lock from its first statement."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE: True})
        with conn.begin():
            yield conn


def lock(conn: Connection, name: str) -> None:
    """Serialise writers of ``name`` until the transaction ends (a read-then-write becomes safe).

    PostgreSQL: a transaction-scoped advisory lock. SQLite: nothing to do, since a write transaction
    already holds the database's write lock (``BEGIN IMMEDIATE``).
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:name))"), {"name": name})


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: dict[str, Any] | Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: dict[str, Any] | Sequence[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING, in one statement on SQLite and PostgreSQL.

    Args:
        update: the columns to overwrite with the new row's values, or a mapping of column to SQL
            expression (``excluded`` is the rejected row: ``{"n": table.c.n + 1}``); empty: keep the old row.
    """
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    statement = insert(table)
    if isinstance(update, dict):
        changes = update
    else:
        changes = {name: statement.excluded[name] for name in update}
    if changes:
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, rows if isinstance(rows, dict) else list(rows))


class Ledger:
    """Repository over the ledger tables, scoped to one integration (platform) and entity."""

    def __init__(self, engine: Engine, integration: str, entity: str) -> None:
        self.engine = engine
        self.integration = integration
        self.entity = entity

    @classmethod
    def open(cls, url: str, integration: str, entity: str) -> Ledger:
        engine = create_ledger_engine(url)
        upgrade_schema(engine)
        return cls(engine, integration, entity)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (see ``write_transaction``)."""
        with write_transaction(self.engine) as conn:
            yield conn

    @property
    def _links_lock(self) -> str:
        """Writers of this scope's links (a link is found by either id, then inserted or updated)."""
        return f"clientify_sync:links:{self.integration}:{self.entity}"

    def _scope(self, table: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.integration == self.integration, table.c.entity == self.entity)

    # -- meta ----------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == key))

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (upsert) or, with ``None``, delete a ledger-wide value."""
        with self.begin() as conn:
            if value is None:
                conn.execute(sa.delete(meta_table).where(meta_table.c.key == key))
            else:
                upsert(conn, meta_table, {"key": key, "value": value}, ["key"], ["value"])

    # -- remote records ------------------------------------------------------------------------
    def upsert_remote(
        self, records: Sequence[SideRecord], run_id: str, *, keep_raw: bool = True, conn: Connection | None = None
    ) -> None:
        """Store the latest state of records read in this run (``prev_hash`` keeps the one before)."""
        if not records:
            return
        latest = {(r.side.value, r.rtype, r.rid): r for r in records}  # the last state wins
        groups: dict[tuple[str, str], list[SideRecord]] = {}
        for (side, rtype, _), record in latest.items():
            groups.setdefault((side, rtype), []).append(record)
        t = remote_records
        with _maybe_conn(self, conn) as conn:
            for (side, rtype), group in groups.items():
                # One side and type at a time: ``rid IN (...)`` uses the primary key (a row-value IN does not).
                where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
                for chunk in _chunks(group, 400):
                    ids = [r.rid for r in chunk]
                    previous = dict(conn.execute(sa.select(t.c.rid, t.c.hash).where(where, t.c.rid.in_(ids))).all())
                    conn.execute(sa.delete(t).where(where, t.c.rid.in_(ids)))
                    conn.execute(
                        sa.insert(t),
                        [
                            {
                                "integration": self.integration, "entity": self.entity, "side": side,
                                "rtype": rtype, "rid": r.rid, "key": r.key, "kind": r.kind, "problem": r.problem,
                                "link": r.link, "hash": r.content_hash, "prev_hash": previous.get(r.rid),
                                "modified": r.modified, "seen_run": run_id, "data": r.data,
                                "raw": r.raw if keep_raw else None,
                            }  # fmt: skip
                            for r in chunk
                        ],
                    )

    def remote_frame(self, side: str, *, seen_run: str | None = None) -> pd.DataFrame:
        """The identity columns of remote records (no payloads): what matching joins on."""
        t = remote_records
        query = sa.select(
            t.c.rtype, t.c.rid, t.c.key, t.c.kind, t.c.problem, t.c.link, t.c.hash, t.c.prev_hash,
            t.c.modified, t.c.seen_run,
        ).where(self._scope(t), t.c.side == side)  # fmt: skip
        if seen_run is not None:
            query = query.where(t.c.seen_run == seen_run)
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def remote_records(
        self, side: str, ids: Iterable[tuple[str, str]], *, with_raw: bool = True
    ) -> dict[tuple[str, str], dict[str, Any]]:
        """Full rows (data, link, hash, and ``raw`` unless told not to) for the given (rtype, rid) pairs.

        ``raw`` is the API's whole record, several times the size of ``data``: only writes need it.
        """
        t = remote_records
        columns = [c for c in t.c if with_raw or c.name != "raw"]
        by_type: dict[str, list[str]] = {}
        for rtype, rid in dict.fromkeys(ids):
            by_type.setdefault(rtype, []).append(rid)
        found: dict[tuple[str, str], dict[str, Any]] = {}
        with self.engine.connect() as conn:
            for rtype, rids in by_type.items():
                where = sa.and_(self._scope(t), t.c.side == side, t.c.rtype == rtype)
                for chunk in _chunks(rids, 400):
                    for row in conn.execute(sa.select(*columns).where(where, t.c.rid.in_(chunk))).mappings():
                        found[(row["rtype"], row["rid"])] = dict(row)
        return found

    def max_modified(self, side: str, run_id: str) -> str | None:
        t = remote_records
        with self.engine.connect() as conn:
            return conn.scalar(
                sa.select(sa.func.max(t.c.modified)).where(
                    self._scope(t), t.c.side == side, t.c.seen_run == run_id
                )
            )

    # -- links ---------------------------------------------------------------------------------
    def links_frame(self) -> pd.DataFrame:
        t = links
        query = sa.select(
            t.c.id.label("link_id"), t.c.inv_type, t.c.inv_id, t.c.crm_type, t.c.crm_id, t.c.inv_hash,
            t.c.crm_hash,
        ).where(self._scope(t))  # fmt: skip
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def link_bases(self, link_ids: Iterable[int]) -> dict[int, dict[str, Any] | None]:
        bases: dict[int, dict[str, Any] | None] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(list(link_ids), 500):
                for row in conn.execute(sa.select(links.c.id, links.c.base).where(links.c.id.in_(chunk))):
                    bases[row.id] = row.base
        return bases

    def find_link(self, *, inv: tuple[str, str] | None = None, crm: tuple[str, str] | None = None) -> dict | None:
        t = links
        query = sa.select(t).where(self._scope(t))
        if inv:
            query = query.where(t.c.inv_type == inv[0], t.c.inv_id == inv[1])
        if crm:
            query = query.where(t.c.crm_type == crm[0], t.c.crm_id == crm[1])
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
            return dict(row) if row else None

    def save_link(
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
        """Insert or update the link of a pair (matched on either id)."""
        values = {
            "base": base, "inv_hash": inv_hash, "crm_hash": crm_hash, "updated_run": run_id,
            "updated_at": _now(), "inv_type": inv[0], "inv_id": inv[1], "crm_type": crm[0], "crm_id": crm[1],
        }  # fmt: skip
        t = links
        with _maybe_conn(self, conn) as c:
            lock(c, self._links_lock)
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

    def save_links(self, conn: Connection, pairs: Sequence[dict[str, Any]], run_id: str) -> None:
        """Many ``save_link`` at once (a batch of creates): one lookup, one multi-row insert."""
        if not pairs:
            return
        t = links
        lock(conn, self._links_lock)
        inv_ids = [p["inv"][1] for p in pairs]
        crm_ids = [p["crm"][1] for p in pairs]
        existing = conn.execute(
            sa.select(t.c.inv_type, t.c.inv_id, t.c.crm_type, t.c.crm_id).where(
                self._scope(t), sa.or_(t.c.inv_id.in_(inv_ids), t.c.crm_id.in_(crm_ids))
            )
        ).all()
        taken = {("inv", r.inv_type, r.inv_id) for r in existing} | {("crm", r.crm_type, r.crm_id) for r in existing}
        fresh = []
        for pair in pairs:
            if ("inv", *pair["inv"]) in taken or ("crm", *pair["crm"]) in taken:
                self.save_link(pair["inv"], pair["crm"], base=pair["base"], inv_hash=pair["inv_hash"],
                               crm_hash=pair["crm_hash"], run_id=run_id, conn=conn)  # fmt: skip
            else:
                fresh.append(pair)
        if fresh:
            now = _now()
            conn.execute(
                sa.insert(t),
                [
                    {"integration": self.integration, "entity": self.entity, "inv_type": p["inv"][0],
                     "inv_id": p["inv"][1], "crm_type": p["crm"][0], "crm_id": p["crm"][1], "base": p["base"],
                     "inv_hash": p["inv_hash"], "crm_hash": p["crm_hash"], "updated_run": run_id, "updated_at": now}
                    for p in fresh
                ],
            )  # fmt: skip

    def delete_link(self, link_id: int) -> None:
        with self.begin() as conn:
            conn.execute(sa.delete(links).where(links.c.id == link_id))

    # -- pending creates -----------------------------------------------------------------------
    def add_pending(
        self, conn: Connection, *, target: str, target_type: str, source: tuple[str, str], natural_key: str,
        run_id: str,
    ) -> int:  # fmt: skip
        result = conn.execute(
            sa.insert(pending_creates).values(
                integration=self.integration, entity=self.entity, target=target, target_type=target_type,
                source_type=source[0], source_id=source[1], natural_key=natural_key, run_id=run_id,
                created_at=_now(),
            )  # fmt: skip
        )
        return int(result.inserted_primary_key[0])

    def pending(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(pending_creates).where(self._scope(pending_creates)))
            return [dict(r) for r in rows.mappings()]

    def delete_pending(self, pending_id: int | Sequence[int], conn: Connection | None = None) -> None:
        ids = [pending_id] if isinstance(pending_id, int) else list(pending_id)
        with _maybe_conn(self, conn) as c:
            for chunk in _chunks(ids, 500):
                c.execute(sa.delete(pending_creates).where(pending_creates.c.id.in_(chunk)))

    # -- plan ----------------------------------------------------------------------------------
    def clear_plan(self, run_id: str) -> None:
        """Forget a run's plan and conflicts (a retried reconcile starts again)."""
        with self.begin() as conn:
            conn.execute(sa.delete(plan_items).where(self._scope(plan_items), plan_items.c.run_id == run_id))
            conn.execute(sa.delete(conflicts).where(self._scope(conflicts), conflicts.c.run_id == run_id))

    def add_plan_items(self, run_id: str, items: Sequence[dict[str, Any]]) -> None:
        if not items:
            return
        columns = [c.name for c in plan_items.columns if c.name != "id"]
        blank = dict.fromkeys(columns) | {"status": "planned", "priority": 1}
        rows = [blank | {"integration": self.integration, "entity": self.entity, "run_id": run_id, **i} for i in items]
        with self.begin() as conn:
            for chunk in _chunks(rows, 500):
                conn.execute(sa.insert(plan_items), chunk)

    def iter_plan(self, run_id: str, *, chunk: int = 2000, **filters: Any) -> Iterator[list[dict[str, Any]]]:
        """The plan in chunks, so a run of 100,000 records never holds it all in memory."""
        after = (-1, 0)
        while items := self.plan(run_id, after=after, limit=chunk, **filters):
            yield items
            after = (items[-1]["priority"], items[-1]["id"])

    def plan(
        self, run_id: str, *, target: str | None = None, status: str | None = None,
        after: tuple[int, int] = (-1, 0), limit: int | None = None,
    ) -> list[dict]:  # fmt: skip
        """Plan items in plan order (priority, then id); ``after``/``limit`` page through a large plan."""
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

    def count_plan(self, run_id: str, *, target: str | None = None, status: str | None = None) -> int:
        """How many plan items of a run (for one target and status): the total a progress line shows."""
        t = plan_items
        query = sa.select(sa.func.count()).select_from(t).where(self._scope(t), t.c.run_id == run_id)
        if target is not None:
            query = query.where(t.c.target == target)
        if status is not None:
            query = query.where(t.c.status == status)
        with self.engine.connect() as conn:
            return int(conn.scalar(query) or 0)

    def finish_item(
        self, conn: Connection, item_id: int, *, status: str, outcome: str, reason: str | None = None,
        detail: str | None = None, result: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Record one plan item's outcome (and what the write returned)."""
        conn.execute(
            sa.update(plan_items)
            .where(plan_items.c.id == item_id)
            .values(status=status, outcome=outcome, reason=reason, detail=detail, result=result)
        )

    def finish_items(self, conn: Connection, outcomes: Sequence[dict[str, Any]]) -> None:
        """Many ``finish_item`` in one executemany (a batch of writes)."""
        if not outcomes:
            return
        t = plan_items
        names = ("status", "outcome", "reason", "detail", "result")
        statement = (
            sa.update(t)
            .where(t.c.id == sa.bindparam("item_id"))
            .values({name: sa.bindparam(f"new_{name}") for name in names})
        )
        rows = [{"item_id": o["item_id"], **{f"new_{n}": o.get(n) for n in names}} for o in outcomes]
        conn.execute(statement, rows)

    def prune_plans(self, keep_runs: int) -> None:
        """Keep the plans of the last ``keep_runs`` runs; the reports stay in ``cs_runs``."""
        with self.begin() as conn:
            recent = conn.scalars(
                sa.select(runs.c.run_id)
                .where(self._scope(runs))
                .order_by(runs.c.started_at.desc())
                .limit(keep_runs)
            ).all()
            conn.execute(sa.delete(plan_items).where(self._scope(plan_items), plan_items.c.run_id.not_in(recent)))

    # -- dead letters and conflicts ------------------------------------------------------------
    def dead_letters(self) -> pd.DataFrame:
        """Open dead letters (dismissed ones left out; a requested retry counts as no attempt yet)."""
        t = dead_letters
        attempts = sa.case((t.c.retry_requested_at.is_not(None), 0), else_=t.c.attempts).label("attempts")
        query = sa.select(t.c.side, t.c.rtype, t.c.rid, t.c.reason, attempts).where(
            self._scope(t), t.c.dismissed_at.is_(None)
        )
        with self.engine.connect() as conn:
            return pd.read_sql(query, conn, dtype=object)

    def record_dead_letter(
        self, conn: Connection, side: str, rtype: str, rid: str, reason: str, detail: str | None, run_id: str
    ) -> None:
        """Add a failed record, or count one more failed attempt (one statement: safe under concurrency)."""
        t = dead_letters
        row = {
            "integration": self.integration, "entity": self.entity, "side": side, "rtype": rtype, "rid": rid,
            "reason": reason, "detail": detail, "attempts": 1, "first_run": run_id, "last_run": run_id,
        }  # fmt: skip
        keys = ["integration", "entity", "side", "rtype", "rid"]
        excluded = _excluded(conn, t)
        changes = {
            "reason": excluded.reason, "detail": excluded.detail, "last_run": excluded.last_run,
            # A retry the user asked for starts the count again.
            "attempts": sa.case((t.c.retry_requested_at.is_not(None), 1), else_=t.c.attempts + 1),
            "retry_requested_at": None, "retry_requested_by": None,
        }  # fmt: skip
        upsert(conn, t, row, keys, changes)

    def clear_dead_letter(self, conn: Connection, side: str, rtype: str, rid: str | Sequence[str]) -> None:
        t = dead_letters
        ids = [rid] if isinstance(rid, str) else list(rid)
        for chunk in _chunks(ids, 500):
            conn.execute(sa.delete(t).where(self._scope(t), t.c.side == side, t.c.rtype == rtype, t.c.rid.in_(chunk)))

    def add_conflicts(self, run_id: str, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self.begin() as conn:
            conn.execute(
                sa.insert(conflicts),
                [
                    {"integration": self.integration, "entity": self.entity, "run_id": run_id,
                     "created_at": _now(), **row}
                    for row in rows
                ],
            )  # fmt: skip

    def conflicts(self, run_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(conflicts).where(self._scope(conflicts)).order_by(conflicts.c.id)
        if run_id is not None:
            query = query.where(conflicts.c.run_id == run_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    # -- runs ----------------------------------------------------------------------------------
    def start_run(self, run_id: str, mode: str, dry_run: bool) -> None:
        """Record the run once, whichever of its tasks starts first (the others keep that row)."""
        row = {
            "run_id": run_id, "integration": self.integration, "entity": self.entity, "mode": mode,
            "dry_run": dry_run, "started_at": _now(),
        }  # fmt: skip
        with self.begin() as conn:
            upsert(conn, runs, row, ["run_id", "integration", "entity"])

    def finish_run(self, run_id: str, report: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(
                sa.update(runs)
                .where(self._scope(runs), runs.c.run_id == run_id)
                .values(finished_at=_now(), report=json.loads(json.dumps(report, default=str)))
            )

    def report(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            return conn.scalar(sa.select(runs.c.report).where(self._scope(runs), runs.c.run_id == run_id))

    def save_step(self, run_id: str, step: str, summary: dict[str, Any], calls: dict[str, Any]) -> None:
        """Store (or replace, on a retried task) one step's summary and API calls."""
        row = {
            "run_id": run_id, "integration": self.integration, "entity": self.entity, "step": step,
            "summary": json.loads(json.dumps(summary, default=str)), "calls": calls,
        }  # fmt: skip
        with self.begin() as conn:
            upsert(conn, run_steps, row, ["run_id", "integration", "entity", "step"], ["summary", "calls"])

    def steps(self, run_id: str) -> dict[str, dict[str, Any]]:
        t = run_steps
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).where(self._scope(t), t.c.run_id == run_id)).mappings()
            return {r["step"]: {"summary": r["summary"], "calls": r["calls"]} for r in rows}


def schema_version(engine: Engine) -> int:
    """The ledger's schema version (0 for an empty database)."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(meta_table.name):
            return 0
        value = conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
        return int(value or 0)


def upgrade_schema(engine: Engine) -> int:
    """Create the tables on first use and run the migrations up to ``SCHEMA_VERSION``.

    Safe when several processes start together: the upgrade runs in one write transaction under a
    lock (PostgreSQL: an advisory lock, with transactional DDL; SQLite: ``BEGIN IMMEDIATE``), and the
    version is read again inside it, so the second process finds the work done. An up-to-date ledger
    is recognised by one read, without the lock.
    """
    if schema_version(engine) == SCHEMA_VERSION:
        return SCHEMA_VERSION
    with write_transaction(engine) as conn:
        lock(conn, _SCHEMA_LOCK)
        meta_table.create(conn, checkfirst=True)
        current = conn.scalar(sa.select(meta_table.c.value).where(meta_table.c.key == "schema_version"))
        version = int(current or 0)
        for target in range(version + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[target](conn)
            version = target
        upsert(conn, meta_table, {"key": "schema_version", "value": str(version)}, ["key"], ["value"])
    return version


def _excluded(conn: Connection, table: sa.Table) -> Any:
    """The ``excluded`` row of an upsert on ``table`` (the values that were rejected)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).excluded


@contextmanager
def _maybe_conn(ledger: Ledger, conn: Connection | None) -> Iterator[Connection]:
    if conn is not None:
        yield conn
    else:
        with ledger.begin() as own:
            yield own


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
