"""A thread-safe token bucket that spaces requests to a per-minute budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """Requests-per-minute budget shared by every thread of one client.

    Each ``acquire`` reserves one token; when the bucket is empty the caller sleeps until its token
    is due. Reservations are made under a lock but the sleep happens outside it, so waiting threads
    queue in arrival order without blocking each other's bookkeeping. The clock is monotonic, so
    wall-clock jumps never release or withhold tokens.

    Args:
        requests_per_minute: sustained rate; 0 (or less) disables the limit.
        burst: tokens available at once. The default 1 spaces requests evenly (60 / rate seconds),
            which is the gentlest pattern for APIs that publish no burst allowance.
    """

    def __init__(
        self,
        requests_per_minute: float,
        *,
        burst: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate_per_second = requests_per_minute / 60.0
        self.capacity = float(max(1, burst))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._updated = clock()

    @property
    def unlimited(self) -> bool:
        return self.rate_per_second <= 0

    def acquire(self) -> float:
        """Take one token, sleeping until it is available; return the seconds waited."""
        if self.unlimited:
            return 0.0
        wait = self._reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._updated)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate_per_second)
            self._updated = now
            self._tokens -= 1.0
            # A negative balance is a queue of reservations; this caller is due when it refills to 0.
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_second
