"""Webhook events waiting for a run: ``cs_inbox``.

A receiver adds one row per event and consuming integration (``add``); duplicates (a retried or
twice-sent delivery) are dropped by the unique ``(integration, dedupe_key)``. An event-woken run claims
its scope's pending rows (``Inbox.claim``: two overlapping claimers never get the same row), re-reads
each named record from its API (an event is a hint, never data) and marks them done; rows left claimed
by a run that died go back to pending after a timeout (``release_stale``). No payload is kept: the
record's type and id, the event type and a digest of the body.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from clientify_sync.engine.ledger.database import Repository, chunks, now
from clientify_sync.engine.ledger.schema import inbox

PENDING, CLAIMED, DONE = "pending", "claimed", "done"


class InboxEvent(NamedTuple):
    """What an inbox row keeps of one delivery (never the record's data).

    Attributes:
        source: who sent it, ``clientify`` or ``facturadirecta``.
        entity: the synced entity it concerns (``contacts``, ``products``, ``estimates``).
        record_type: the source's own name of the record's type (``contact``, ``company``, ``budget``).
        external_id: the record's id at the source.
        event_type: the source's event name (``contact.saved``, ``estimate.archived``).
        dedupe_key: equal for two deliveries of one event (at most 64 characters: a hex digest).
        payload_sha256: the digest of the raw body.
        source_ts: when the source says the change happened, when it says so.
    """

    source: str
    entity: str
    record_type: str
    external_id: str
    event_type: str
    dedupe_key: str
    payload_sha256: str
    source_ts: datetime | None = None


class Claimed(NamedTuple):
    """A claimed row: enough to re-read the record and to mark the row done."""

    id: int
    source: str
    record_type: str
    external_id: str
    event_type: str
    received_at: datetime
    source_ts: datetime | None


@dataclass(frozen=True)
class InboxStats:
    """One inbox (integration, source, entity) as the status view shows it."""

    integration: str
    source: str
    entity: str
    received: int
    pending: int
    claimed: int
    last_event_at: datetime | None
    oldest_pending_at: datetime | None


class Waiting(NamedTuple):
    """Pending rows after an id: the newest id and how many (what an inbox trigger fires on)."""

    max_id: int
    pending: int


def add(
    conn: Connection, event: InboxEvent, integrations: Sequence[str], *, at: datetime | None = None
) -> bool:
    """Store one delivery for each consuming integration, in one statement; duplicates are dropped.

    Args:
        conn: the write transaction.
        event: the delivery.
        integrations: the integrations (platforms) whose runs must see it.
        at: the receipt time (default: now).

    Returns:
        True when a row was new for at least one integration (False: every one was a duplicate).
    """
    if not integrations:
        return False
    received = at or now()
    rows = [
        {"integration": integration, **event._asdict(), "received_at": received, "status": PENDING}
        for integration in dict.fromkeys(integrations)
    ]
    statement = (
        _insert(conn).values(rows).on_conflict_do_nothing(index_elements=["integration", "dedupe_key"])
    )
    return conn.execute(statement.returning(inbox.c.id)).first() is not None


def _insert(conn: Connection) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(inbox)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(inbox)


def stats(conn: Connection) -> list[InboxStats]:
    """Every inbox's counts and times: received, pending, claimed, last event, oldest pending."""
    t = inbox
    pending = t.c.status == PENDING
    query = (
        sa.select(
            t.c.integration,
            t.c.source,
            t.c.entity,
            sa.func.count(),
            sa.func.count().filter(pending),
            sa.func.count().filter(t.c.status == CLAIMED),
            sa.func.max(t.c.received_at),
            sa.func.min(t.c.received_at).filter(pending),
        )
        .group_by(t.c.integration, t.c.source, t.c.entity)
        .order_by(t.c.integration, t.c.source, t.c.entity)
    )
    return [
        InboxStats(i, s, e, int(n), int(p), int(c), _aware(last), _aware(oldest))
        for i, s, e, n, p, c, last, oldest in conn.execute(query)
    ]


def _aware(value: datetime | None) -> datetime | None:
    """SQLite hands timezone-aware columns back naive (in UTC, as written)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Inbox(Repository):
    """The inbox of one integration and entity: what its event-woken runs claim."""

    def add(self, event: InboxEvent, conn: Connection | None = None) -> bool:
        """Store one delivery for this integration (see ``add``); True when it was new."""
        if event.entity != self.entity:
            raise ValueError(f"a {event.entity} event is not for the {self.entity} inbox")
        with self._writing(conn) as c:
            return add(c, event, [self.integration])

    def waiting(
        self, after_id: int = 0, *, upto_id: int | None = None, conn: Connection | None = None
    ) -> Waiting:
        """The pending rows with an id above ``after_id`` (and at most ``upto_id``): the newest id (0
        without any) and how many."""
        t = inbox
        query = sa.select(sa.func.max(t.c.id), sa.func.count()).where(
            self._scope(t), t.c.status == PENDING, t.c.id > after_id
        )
        if upto_id is not None:
            query = query.where(t.c.id <= upto_id)
        with self._reading(conn) as c:
            max_id, count = c.execute(query).one()
        return Waiting(int(max_id or 0), int(count))

    def claim(
        self, run_id: str, *, limit: int | None = None, conn: Connection | None = None
    ) -> list[Claimed]:
        """Mark pending rows claimed by ``run_id``, oldest first, and return them.

        Atomic against another claimer: PostgreSQL locks the rows it picks and skips rows another
        transaction holds (``FOR UPDATE SKIP LOCKED``, then ``status`` is checked again on update);
        SQLite's write transaction holds the database's write lock from its first statement.

        Args:
            run_id: the claiming run (kept on the rows until they are done or released).
            limit: at most this many rows (None: all pending).
            conn: the caller's write transaction (default: one of our own, committed on return).
        """
        t = inbox
        picked = sa.select(t.c.id).where(self._scope(t), t.c.status == PENDING).order_by(t.c.id)
        if limit is not None:
            picked = picked.limit(limit)
        with self._writing(conn) as c:
            if c.dialect.name == "postgresql":
                picked = picked.with_for_update(skip_locked=True)
            # A CTE, evaluated once: as a plain subquery PostgreSQL may run it again per row, and a
            # locking subquery run again can pick further rows past its LIMIT.
            chosen = picked.cte("chosen")
            statement = (
                sa.update(t)
                .where(t.c.id.in_(sa.select(chosen.c.id)), t.c.status == PENDING)
                .values(status=CLAIMED, claimed_by_run=run_id, claimed_at=now())
                .returning(
                    t.c.id, t.c.source, t.c.record_type, t.c.external_id, t.c.event_type, t.c.received_at,
                    t.c.source_ts,
                )
            )  # fmt: skip
            rows = c.execute(statement).all()
        claimed = [Claimed(r[0], r[1], r[2], r[3], r[4], _aware(r[5]) or now(), _aware(r[6])) for r in rows]
        return sorted(claimed, key=lambda row: row.id)

    def claimed_by(self, run_id: str) -> list[Claimed]:
        """The rows ``run_id`` holds (a retried task finds what its first try claimed)."""
        t = inbox
        query = (
            sa.select(t.c.id, t.c.source, t.c.record_type, t.c.external_id, t.c.event_type, t.c.received_at,
                      t.c.source_ts)
            .where(self._scope(t), t.c.status == CLAIMED, t.c.claimed_by_run == run_id)
            .order_by(t.c.id)
        )  # fmt: skip
        with self.engine.connect() as conn:
            return [
                Claimed(r[0], r[1], r[2], r[3], r[4], _aware(r[5]) or now(), _aware(r[6]))
                for r in conn.execute(query)
            ]

    def finish_run(self, run_id: str, conn: Connection | None = None) -> int:
        """Mark every row ``run_id`` claimed done (its run committed); how many."""
        t = inbox
        with self._writing(conn) as c:
            result = c.execute(
                sa.update(t)
                .where(self._scope(t), t.c.status == CLAIMED, t.c.claimed_by_run == run_id)
                .values(status=DONE, processed_at=now())
            )
            return int(result.rowcount or 0)

    def done(self, ids: int | Sequence[int], conn: Connection | None = None) -> None:
        """Mark rows processed (their records were re-read and synced, or found unchanged)."""
        ids = [ids] if isinstance(ids, int) else list(ids)
        t = inbox
        with self._writing(conn) as c:
            for chunk in chunks(ids, 500):
                c.execute(
                    sa.update(t)
                    .where(self._scope(t), t.c.id.in_(chunk))
                    .values(status=DONE, processed_at=now())
                )

    def release_stale(
        self, timeout: timedelta, *, at: datetime | None = None, conn: Connection | None = None
    ) -> int:
        """Give rows claimed longer than ``timeout`` ago back to pending (their run died); how many."""
        t = inbox
        cutoff = (at or now()) - timeout
        statement = (
            sa.update(t)
            .where(self._scope(t), t.c.status == CLAIMED, t.c.claimed_at < cutoff)
            .values(status=PENDING, claimed_by_run=None, claimed_at=None)
        )
        with self._writing(conn) as c:
            return int(c.execute(statement).rowcount)

    def purge(
        self, older_than: timedelta, *, at: datetime | None = None, conn: Connection | None = None
    ) -> int:
        """Delete rows done before ``older_than`` ago (after that a late duplicate is stored again).

        Keep more than the longest retry schedule (FacturaDirecta: about 72 h).
        """
        t = inbox
        cutoff = (at or now()) - older_than
        with self._writing(conn) as c:
            return int(
                c.execute(
                    sa.delete(t).where(self._scope(t), t.c.status == DONE, t.c.processed_at < cutoff)
                ).rowcount
            )
