"""Process state of the FacturaDirecta REST emulator that is not data: the sandbox clock, the
rate-limit windows and the request holds.

Why a sandbox clock: the API's time rules (idempotency keys kept 24 h, calendar-minute rate windows,
``modificationDate`` filters) must be testable without sleeping, so ``PUT /_sandbox/rest/clock`` can
freeze it or move it forward. It never goes back. Records, idempotency keys and activity live in the
store; this state is in memory and follows the store's resets: ``POST /_sandbox/reset`` deletes the
``facturadirecta:`` meta keys, including the epoch marker written here, and the next call sees a new
epoch and starts from a clean clock, empty windows and no holds.

Holds make "a request still running" observable: ``PUT /_sandbox/rest/hold`` arms one; the next matching
write stops after registering its ``Idempotency-Key`` and waits until released, so a test can send the
same key meanwhile and see the in-flight 409.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from include.sandbox.store import Store

EPOCH_KEY = "facturadirecta:rest:epoch"
MINUTE_MS = 60_000


@dataclass
class Window:
    limit: int
    used: int
    reset_s: int

    @property
    def remaining(self) -> int:
        return max(self.limit - self.used, 0)

    @property
    def over(self) -> bool:
        return self.used > self.limit


@dataclass
class Hold:
    method: str
    pattern: re.Pattern[str]
    count: int
    timeout_s: float
    loop: asyncio.AbstractEventLoop
    release: asyncio.Event = field(default_factory=asyncio.Event)
    held: int = 0
    seen: asyncio.Event = field(default_factory=asyncio.Event)

    def let_go(self) -> None:
        """Thread-safe: events belong to the server's loop."""
        self.loop.call_soon_threadsafe(self.release.set)


class RestRuntime:
    """Thread-safe: the gate (event loop) and handlers (thread pool) both read the clock."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._epoch: str | None = None
        self._offset_ms = 0
        self._frozen_ms: int | None = None
        self._last_ms = 0
        self._windows: dict[tuple[str, int], int] = {}
        self._holds: list[Hold] = []

    # -- reset detection ----------------------------------------------------------------------------

    def sync(self) -> None:
        """Start afresh when the store was reset since the last call (its epoch marker is gone)."""
        with self.store.session() as s:
            epoch = s.meta(EPOCH_KEY)
        if epoch is not None and epoch == self._epoch:
            return
        if epoch is None:
            epoch = uuid.uuid4().hex
            with self.store.session(write=True) as s:
                s.set_meta(EPOCH_KEY, epoch)
        with self._lock:
            self._epoch = epoch
            self._offset_ms, self._frozen_ms, self._last_ms = 0, None, 0
            self._windows.clear()
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.let_go()

    # -- clock --------------------------------------------------------------------------------------

    def now_ms(self) -> int:
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        current = (
            self._frozen_ms if self._frozen_ms is not None else time.time_ns() // 1_000_000 + self._offset_ms
        )
        self._last_ms = max(self._last_ms, current)
        return self._last_ms

    def now_us(self) -> int:
        """Store timestamps: milliseconds (the API prints ``.sss``), kept as microseconds."""
        return self.now_ms() * 1000

    def set_clock(
        self, *, advance_s: float = 0, frozen: bool | None = None, now_ms: int | None = None
    ) -> None:
        """Move forward by ``advance_s``, or to ``now_ms`` (never back); freeze or unfreeze at the current time."""
        if advance_s < 0:
            raise ValueError("the sandbox clock never goes back (advance_s must be >= 0)")
        with self._lock:
            current = self._now_locked()
            target = current + int(advance_s * 1000)
            if now_ms is not None:
                if now_ms < current:
                    raise ValueError("the sandbox clock never goes back")
                target = max(target, now_ms)
            freeze = (self._frozen_ms is not None) if frozen is None else frozen
            if freeze:
                self._frozen_ms = target
            else:
                self._frozen_ms = None
                self._offset_ms = target - time.time_ns() // 1_000_000
            self._last_ms = target

    def clock_state(self) -> dict[str, Any]:
        with self._lock:
            now = self._now_locked()
            return {"now_ms": now, "frozen": self._frozen_ms is not None, "offset_ms": self._offset_ms}

    # -- rate limits --------------------------------------------------------------------------------

    def hit(self, company: str, limit: int) -> Window:
        """Count one request in the company's calendar minute (authentication.md@38abd0c)."""
        with self._lock:
            minute = self._now_locked() // MINUTE_MS
            key = (company, minute)
            self._windows[key] = self._windows.get(key, 0) + 1
            for stale in [k for k in self._windows if k[1] < minute]:
                del self._windows[stale]
            return Window(limit=limit, used=self._windows[key], reset_s=(minute + 1) * 60)

    # -- holds --------------------------------------------------------------------------------------

    def arm(self, method: str, path: str, count: int, timeout_s: float) -> None:
        """Called on the server's loop (an async control handler)."""
        hold = Hold(
            method=method.upper(),
            pattern=re.compile(path),
            count=count,
            timeout_s=timeout_s,
            loop=asyncio.get_running_loop(),
        )
        with self._lock:
            self._holds.append(hold)

    def take(self, method: str, path: str) -> Hold | None:
        with self._lock:
            for hold in self._holds:
                if hold.count > 0 and hold.method in ("*", method) and hold.pattern.search(path):
                    hold.count -= 1
                    return hold
        return None

    async def wait(self, hold: Hold) -> None:
        hold.held += 1
        hold.seen.set()
        try:
            await asyncio.wait_for(hold.release.wait(), hold.timeout_s)
        except TimeoutError:
            pass
        finally:
            hold.held -= 1

    async def wait_held(self, timeout_s: float) -> int:
        """Until some armed hold is holding a request (or the timeout); returns how many are held."""
        with self._lock:
            holds = list(self._holds)
        if holds and not any(h.held for h in holds):
            waiters = [asyncio.ensure_future(h.seen.wait()) for h in holds]
            try:
                await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()
        return self.held()

    def held(self) -> int:
        with self._lock:
            return sum(h.held for h in self._holds)

    def release(self) -> int:
        """Let every held request go on and disarm all holds; returns how many were held."""
        with self._lock:
            holds, self._holds = self._holds, []
        for hold in holds:
            hold.let_go()
        return sum(h.held for h in holds)


_RUNTIMES: dict[int, RestRuntime] = {}
_RUNTIMES_LOCK = threading.Lock()


def runtime_for(store: Store) -> RestRuntime:
    """The one runtime of a store: the REST app and the seeder (served by the classic app) share its clock."""
    with _RUNTIMES_LOCK:
        runtime = _RUNTIMES.get(id(store))
        if runtime is None or runtime.store is not store:
            runtime = _RUNTIMES[id(store)] = RestRuntime(store)
        return runtime
