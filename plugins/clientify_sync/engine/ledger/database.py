"""The ledger's database: engines that queue concurrent writers, write transactions, locks, upserts.

Everything here is dialect plumbing shared by the repositories (SQLite on one machine, PostgreSQL in
production); none of it knows a table of the ledger.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

T = TypeVar("T")
log = logging.getLogger(__name__)

# Execution option that marks a connection's transaction as a writer (see ``create_ledger_engine``).
WRITE = "clientify_sync_write"


def create_ledger_engine(url: str) -> Engine:
    """An engine on which concurrent tasks, DAGs and workers wait for each other instead of failing.

    SQLite (one machine): WAL, a 60 s busy timeout, and every write transaction opened with
    ``BEGIN IMMEDIATE``: the write lock is taken at the start, so two writers queue on the busy timeout
    instead of one failing with ``database is locked`` when it upgrades a read lock (pysqlite's own
    transaction handling is switched off so that SQLAlchemy's ``begin`` event issues the BEGIN; this is
    SQLAlchemy's documented recipe, and it makes DDL transactional too). Reads use a plain ``BEGIN``.
    PostgreSQL: read committed, with advisory locks where a write reads first (``lock``).

    Args:
        url: a SQLAlchemy database URL.

    Returns:
        The engine (SQLite: with the pragmas and the ``BEGIN IMMEDIATE`` hook installed).
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


def is_transient(error: BaseException) -> bool:
    """A ledger error that a new attempt of the same transaction can ride out: the database
    restarting ("the database system is shutting down"), a dropped connection, a lock wait that timed
    out. SQLAlchemy raises them as ``OperationalError`` or with ``connection_invalidated`` set."""
    return isinstance(error, sa.exc.OperationalError) or (
        isinstance(error, sa.exc.DBAPIError) and error.connection_invalidated
    )


# How long one transaction is retried: a fast PostgreSQL restart takes seconds, a slow one a minute.
TRANSIENT_RETRY_SECONDS = 120.0


def retry_transient(work: Callable[[], T], *, seconds: float = TRANSIENT_RETRY_SECONDS) -> T:
    """``work()``, again after a transient ledger error (``is_transient``), with backoff up to 5 s, for
    at most ``seconds``; any other error, or the last transient one, is raised.

    ``work`` must be a whole transaction: one that failed was rolled back, so running it again writes
    what it would have written once.
    """
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential(multiplier=0.2, max=5),
        stop=stop_after_delay(seconds),
        before_sleep=lambda state: log.warning(
            "ledger unavailable (%s), retrying the transaction",
            type(state.outcome.exception()).__name__ if state.outcome else "?",
        ),
        reraise=True,
    )
    return retrying(work)


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


class LeaseTaken(Exception):
    """Another process holds the lease and did not let go in time."""


@contextmanager
def lease(engine: Engine, name: str, *, wait_s: float, poll_s: float = 2.0) -> Iterator[None]:
    """Hold ``name`` for as long as the block runs, across transactions; wait up to ``wait_s`` for it.

    Why: Airflow may start a task's next try while the previous one still runs (a "zombie" whose
    heartbeat stopped while its process goes on writing); two tries applying one plan at once would
    both create what neither has recorded yet. PostgreSQL: a session-level advisory lock on a
    connection of its own, released when the block ends or when the holder's process dies (its
    session ends with it). SQLite serves one process, where no second try can run meanwhile: nothing.

    Raises:
        LeaseTaken: still held by another session after ``wait_s``.
    """
    if engine.dialect.name != "postgresql":
        yield
        return
    key = {"name": name}
    with engine.connect() as conn:
        deadline = time.monotonic() + wait_s
        while not conn.execute(sa.text("SELECT pg_try_advisory_lock(hashtext(:name))"), key).scalar():
            conn.rollback()
            if time.monotonic() >= deadline:
                raise LeaseTaken(f"{name} is held by another process after {wait_s:.0f} s")
            log.info("%s is held by another process (an earlier try still running?): waiting", name)
            time.sleep(poll_s)
        conn.commit()
        try:
            yield
        finally:
            # A database restart ended the session, and its lock with it: nothing left to release.
            with contextlib.suppress(sa.exc.DBAPIError):
                conn.execute(sa.text("SELECT pg_advisory_unlock(hashtext(:name))"), key)
                conn.commit()


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's ``INSERT`` construct (the one with ``on_conflict_*`` and ``excluded``)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def upsert(
    conn: Connection,
    table: sa.Table,
    rows: dict[str, Any] | Sequence[dict[str, Any]],
    keys: Sequence[str],
    update: dict[str, Any] | Sequence[str] = (),
) -> None:
    """INSERT ... ON CONFLICT (keys) DO UPDATE/NOTHING, in one statement on SQLite and PostgreSQL.

    Args:
        conn: the connection (of a write transaction).
        table: the table to write.
        rows: one row, or many (an executemany).
        keys: the columns of the unique constraint that decides a conflict.
        update: the columns to overwrite with the new row's values, or a mapping of column to SQL
            expression (``excluded`` is the rejected row: ``{"n": table.c.n + 1}``); empty: keep the old row.
    """
    statement = _insert(conn, table)
    if isinstance(update, dict):
        changes = update
    else:
        changes = {name: statement.excluded[name] for name in update}
    if changes:
        statement = statement.on_conflict_do_update(index_elements=list(keys), set_=changes)
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(keys))
    conn.execute(statement, rows if isinstance(rows, dict) else list(rows))


def excluded(conn: Connection, table: sa.Table) -> Any:
    """The ``excluded`` row of an upsert on ``table`` (the values that were rejected)."""
    return _insert(conn, table).excluded


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Consecutive slices of at most ``size`` items (bound parameters per statement stay few)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def now() -> datetime:
    """The current time, timezone-aware in UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


class Repository:
    """Base of the ledger's repositories: one engine, scoped to one integration (platform) and entity."""

    def __init__(self, engine: Engine, integration: str, entity: str) -> None:
        self.engine = engine
        self.integration = integration
        self.entity = entity

    def _scope(self, table: sa.Table) -> sa.ColumnElement[bool]:
        """The rows of ``table`` that belong to this integration and entity."""
        return sa.and_(table.c.integration == self.integration, table.c.entity == self.entity)

    @contextmanager
    def _reading(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection, or a connection of our own when there is none."""
        if conn is not None:
            yield conn
        else:
            with self.engine.connect() as own:
                yield own

    @contextmanager
    def _writing(self, conn: Connection | None) -> Iterator[Connection]:
        """The caller's connection, or a write transaction of our own when there is none."""
        if conn is not None:
            yield conn
        else:
            with write_transaction(self.engine) as own:
                yield own
