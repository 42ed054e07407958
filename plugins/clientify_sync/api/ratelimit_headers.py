"""A request budget driven by the API's own rate-limit headers (FacturaDirecta's REST API sends
``X-RateLimit-Limit``, ``-Remaining`` and ``-Reset`` on every answer; facturadirecta-rest-api.md §3).

Why: the limit comes with the plan and is counted per company over every caller (our tasks, and any other
integration of the same company), so neither a configured rate nor our own count can know it. The gate
sits in front of the client's ordinary budget (its token bucket, or the ledger-shared
``SharedRequestBudget`` of every task of the account):

- the limit an answer states becomes the ordinary budget's rate (a shared budget's limit too), so no
  window of ours holds more than the plan allows; a connection's configured rate (``cap``) is kept when
  the API states more, so the company's other integrations keep the rest;
- the window's remaining count is tracked (each request we send takes one before its answer brings the
  server's count); when none is left, every request waits for the window's reset (at most a minute);
- an answer served over the limit (``Retry-After`` with none remaining, on anything but a 429) pauses
  every request that long; a 429 is left to the retry policy, which waits its ``Retry-After`` itself (as
  for a 409 ``idempotency_key_in_use``, whose ``Retry-After`` is no rate-limit matter).

``observe`` is the session's response hook: it sees every attempt's headers before the body is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import httpx

from clientify_sync.api.http import RequestBudget
from clientify_sync.api.ratelimit import TokenBucket
from clientify_sync.api.responses import parse_retry_after

log = logging.getLogger("clientify_sync.api")

WINDOW_S = 60.0  # the API counts calendar minutes: a reset is never further away than this


@runtime_checkable
class LimitedBudget(Protocol):
    """A budget whose per-minute limit can be changed (``engine.budget.SharedRequestBudget``)."""

    limit: int


@dataclass(frozen=True)
class RateHeaders:
    """What one answer said about the rate limit (None: not sent or unreadable)."""

    status: int
    limit: int | None
    remaining: int | None
    reset: float | None  # Unix seconds when the next window starts
    retry_after: float | None

    @classmethod
    def of(cls, response: httpx.Response) -> RateHeaders:
        headers = response.headers
        return cls(
            response.status_code,
            _number(headers.get("x-ratelimit-limit")),
            _number(headers.get("x-ratelimit-remaining")),
            _number(headers.get("x-ratelimit-reset")),
            parse_retry_after(headers.get("retry-after")),
        )


def _number(value: str | None) -> int | None:
    try:
        return int(value.strip()) if value is not None else None
    except ValueError:
        return None


class RateLimitGate:
    """``RequestBudget`` in front of another one, steered by the answers' rate-limit headers.

    Args:
        inner: the ordinary budget (replaced by ``use``); its rate follows the stated limit.
        margin_s: added to a wait for the window's reset (the reset is in whole seconds, clocks differ).
        cap: requests per minute the ordinary budget never exceeds whatever the API states (0: none).
        wall_clock: Unix time, to read ``X-RateLimit-Reset``; ``clock``: monotonic time, for pauses.
    """

    def __init__(
        self,
        inner: RequestBudget,
        *,
        margin_s: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        cap: float = 0.0,
    ) -> None:
        self._inner = inner
        self.cap = cap
        self.margin_s = margin_s
        self._sleep = sleep
        self._wall = wall_clock
        self._clock = clock
        self._lock = threading.Lock()
        self.limit: int | None = None  # the limit the API last stated
        self._remaining: int | None = None  # requests left in the window ``_reset`` ends
        self._reset: float | None = None
        self._pause_until = 0.0  # monotonic
        self._paused_window: float | None = None  # the window a pause waits out
        self.pauses = 0  # how many times requests waited for the API's window (for logs and tests)

    @property
    def inner(self) -> RequestBudget:
        return self._inner

    def use(self, inner: RequestBudget) -> None:
        """Put another ordinary budget behind the gate (a shared one); the known limit applies to it."""
        with self._lock:
            self._inner = inner
            if self.limit is not None:
                _set_limit(inner, self._budget_limit(self.limit))

    def _budget_limit(self, stated: int) -> int:
        """The ordinary budget's rate for a stated limit: that limit, or the cap when lower."""
        return min(stated, int(self.cap)) if self.cap > 0 else stated

    def acquire(self) -> float:
        """Wait while the API's window is spent or a pause runs, then take one from the inner budget."""
        with self._lock:
            wait = self._reserve()
        if wait > 0:
            log.info(
                "rate limit: waiting %.1fs for the API's next window (limit %s per minute)", wait, self.limit
            )
            self._sleep(wait)
        return wait + self._inner.acquire()

    def _reserve(self) -> float:
        """Under the lock: the seconds to wait before one more request may leave (0: take one now)."""
        now = self._clock()
        if self._pause_until > now:
            return self._pause_until - now
        if self._remaining is None:
            return 0.0
        wall = self._wall()
        if self._reset is not None and wall >= self._reset:
            self._remaining = None  # that window is over; the next answer tells the new one
            return 0.0
        if self._remaining > 0:
            self._remaining -= 1
            return 0.0
        until_reset = WINDOW_S if self._reset is None else min(self._reset - wall, WINDOW_S)
        return self._pause(until_reset + self.margin_s, self._reset)

    def _pause(self, seconds: float, window: float | None) -> float:
        self._pause_until = self._clock() + seconds
        self._paused_window = window
        self.pauses += 1
        return seconds

    def observe(self, response: httpx.Response) -> None:
        """Take one answer's headers (the session's response hook; every attempt, retries included)."""
        seen = RateHeaders.of(response)
        with self._lock:
            if seen.limit is not None and seen.limit > 0 and seen.limit != self.limit:
                log.info("rate limit: the API allows %d requests per minute", seen.limit)
                self.limit = seen.limit
                _set_limit(self._inner, self._budget_limit(seen.limit))
            if (
                seen.reset is not None
                and self._paused_window is not None
                and seen.reset > self._paused_window
            ):
                self._pause_until, self._paused_window = 0.0, None  # an answer from a later window: it ended
            if seen.remaining is not None:
                if seen.reset is None or self._reset is None or seen.reset > self._reset:
                    self._remaining, self._reset = seen.remaining, seen.reset  # a new window
                elif seen.reset == self._reset:  # ours also counts the requests still in flight
                    local = self._remaining
                    self._remaining = seen.remaining if local is None else min(local, seen.remaining)
            if seen.retry_after is not None and seen.remaining == 0 and seen.status != 429:
                # Served over the limit (others use the company's budget too, or the clocks differ).
                self._pause(min(seen.retry_after, WINDOW_S) + self.margin_s, seen.reset)


def _set_limit(budget: RequestBudget, per_minute: int) -> None:
    """The API's stated limit becomes the ordinary budget's."""
    if isinstance(budget, TokenBucket):
        budget.rate_per_second = per_minute / 60.0
    elif isinstance(budget, LimitedBudget):
        budget.limit = per_minute
