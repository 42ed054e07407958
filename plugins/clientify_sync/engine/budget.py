"""One request budget per API account, shared by every task, DAG and worker through the ledger.

Why: each task builds its own API client, so an in-process limiter lets N concurrent tasks send N
times the connection's ``requests_per_minute``. This budget keeps the granted requests of the last
minute in the ledger database (table ``cs_request_log``) and grants a request only while fewer than
the limit were granted in the window: no 60-second window ever holds more than the limit, whatever
runs at once. The API session calls ``acquire()`` before every attempt (retries included).

The window is ``60 s + margin_s``: a request granted here reaches the API a little later, and the
margin keeps two requests that straddle the window's edge from landing inside one API-side minute.
Clock: PostgreSQL's (workers on several hosts agree on it); SQLite serves one machine, so the local
clock is that machine's.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from clientify_sync.engine.ledger import lock, write_transaction
from clientify_sync.engine.ledger.schema import request_log

log = logging.getLogger(__name__)

WINDOW_S = 60.0


def account_key(api: str, *identity: str | None) -> str:
    """A stable, non-reversible name for one API account (host and credentials hashed, never stored)."""
    digest = hashlib.sha256("\x1f".join(part or "" for part in identity).encode()).hexdigest()
    return f"{api}:{digest[:24]}"


class SharedRequestBudget:
    """Sliding-window request budget of one API account, kept in the ledger database.

    Args:
        engine: the ledger's engine (its schema must be at version 3 or later).
        account: ``account_key(...)`` of the API account.
        requests_per_minute: the account's limit; 0 or less means unlimited (nothing is stored).
        margin_s: seconds added to the 60-second window (see the module docstring).
    """

    def __init__(
        self,
        engine: Engine,
        account: str,
        requests_per_minute: float,
        *,
        margin_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[Connection], float] | None = None,
    ) -> None:
        self.engine = engine
        self.account = account
        self.limit = int(requests_per_minute)
        self.span = WINDOW_S + margin_s
        self._sleep = sleep
        self._clock = clock or database_clock
        self._lock_name = f"clientify_sync:budget:{account}"

    def acquire(self) -> float:
        """Wait until a request may be sent and record it; return the seconds waited."""
        if self.limit <= 0:
            return 0.0
        waited = 0.0
        while (wait := self.try_acquire()) > 0:
            self._sleep(wait)
            waited += wait
        if waited:
            log.debug("request budget %s: waited %.2fs", self.account, waited)
        return waited

    def try_acquire(self) -> float:
        """Grant one request now (0.0), or return how long until the oldest grant leaves the window.

        One write transaction under the account's lock: concurrent callers see each other's grants.
        """
        if self.limit <= 0:
            return 0.0
        t = request_log
        with write_transaction(self.engine) as conn:
            lock(conn, self._lock_name)
            now = self._clock(conn)
            mine = t.c.account == self.account
            conn.execute(sa.delete(t).where(mine, t.c.at <= now - self.span))
            granted = int(conn.scalar(sa.select(sa.func.count()).select_from(t).where(mine)) or 0)
            if granted < self.limit:
                conn.execute(sa.insert(t).values(account=self.account, at=now))
                return 0.0
            # The (granted - limit + 1) oldest grants must leave the window before one more fits.
            expires = conn.scalar(
                sa.select(t.c.at).where(mine).order_by(t.c.at).offset(granted - self.limit).limit(1)
            )
        if expires is None:  # the window emptied between the count and this read
            return 0.01
        return max(0.01, float(expires) + self.span - now)


def database_clock(conn: Connection) -> float:
    """Seconds since the epoch: the database server's clock on PostgreSQL, the local one on SQLite."""
    if conn.dialect.name == "postgresql":
        return float(conn.scalar(sa.text("SELECT extract(epoch FROM clock_timestamp())")))
    return time.time()
