"""The state ledger: what the sync remembers between runs and between the tasks of one run.

A real SQL database through SQLAlchemy 2 (SQLite by default, PostgreSQL in production), one module
per job: ``database`` (engines, write transactions, locks, upserts), ``schema`` (the tables and their
migrations) and one small repository per table, each scoped to one integration (platform) and entity.
``Ledger`` gathers the repositories of one scope: ``ledger.links.save(...)``, ``ledger.plan.iter(run_id)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.ledger.candidates import Candidates
from clientify_sync.engine.ledger.conflicts import Conflicts
from clientify_sync.engine.ledger.database import (
    create_ledger_engine,
    lock,
    retry_transient,
    upsert,
    write_transaction,
)
from clientify_sync.engine.ledger.dead_letters import DeadLetters
from clientify_sync.engine.ledger.inbox import Inbox
from clientify_sync.engine.ledger.links import Links
from clientify_sync.engine.ledger.meta import Meta
from clientify_sync.engine.ledger.pending import PendingCreates
from clientify_sync.engine.ledger.plan import PlanItems
from clientify_sync.engine.ledger.record_states import RecordStates
from clientify_sync.engine.ledger.records import Records
from clientify_sync.engine.ledger.runs import Runs
from clientify_sync.engine.ledger.schema import SCHEMA_VERSION, schema_version, upgrade_schema

__all__ = [
    "SCHEMA_VERSION",
    "Ledger",
    "create_ledger_engine",
    "lock",
    "schema_version",
    "upgrade_schema",
    "upsert",
    "write_transaction",
]

T = TypeVar("T")


class Ledger:
    """The ledger of one integration (platform) and entity: one repository per table.

    Attributes:
        meta: ledger-wide values by key (not scoped).
        records: the last seen state of remote records.
        links: the links between ids, with the merge base.
        pending: creates written down before their POST.
        plan: each run's plan items and their outcomes.
        dead_letters: records that failed to sync.
        conflicts: resolved same-field conflicts.
        runs: runs, reports and step summaries.
        candidates: what the planner reads (changed pairs, unlinked records, duplicated keys).
        inbox: webhook events waiting for an event-woken run.
        record_states: each record's current sync state and why (kept when plans are pruned).
    """

    def __init__(self, engine: Engine, integration: str, entity: str) -> None:
        self.engine = engine
        self.integration = integration
        self.entity = entity
        self.meta = Meta(engine)
        self.records = Records(engine, integration, entity)
        self.links = Links(engine, integration, entity)
        self.pending = PendingCreates(engine, integration, entity)
        self.plan = PlanItems(engine, integration, entity)
        self.dead_letters = DeadLetters(engine, integration, entity)
        self.conflicts = Conflicts(engine, integration, entity)
        self.runs = Runs(engine, integration, entity)
        self.candidates = Candidates(engine, integration, entity)
        self.inbox = Inbox(engine, integration, entity)
        self.record_states = RecordStates(engine, integration, entity)

    @classmethod
    def open(cls, url: str, integration: str, entity: str) -> Ledger:
        """A ledger on a new engine for ``url``, its schema created or upgraded first."""
        engine = create_ledger_engine(url)
        upgrade_schema(engine)
        return cls(engine, integration, entity)

    def close(self) -> None:
        """Close the engine's connections (shared with every ``scoped`` ledger)."""
        self.engine.dispose()

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction (see ``write_transaction``)."""
        with write_transaction(self.engine) as conn:
            yield conn

    def write(self, work: Callable[[Connection], T]) -> T:
        """``work(conn)`` in one write transaction, the whole transaction retried through a transient
        database error (a restart, a dropped connection: ``database.retry_transient``)."""

        def attempt() -> T:
            with write_transaction(self.engine) as conn:
                return work(conn)

        return retry_transient(attempt)

    def scoped(self, entity: str) -> Ledger:
        """The ledger of another entity of the same integration, on the same engine."""
        return Ledger(self.engine, self.integration, entity)
