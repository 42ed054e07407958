"""The retry policy every client applies; the client owns it, settings size it.

Retried: no response at all (connect errors, timeouts, dropped connections), a success status whose
body was cut short, 429 and 409 ``idempotency_key_in_use`` (waiting ``Retry-After``, capped) and
502/503/504. Never retried: other 4xx,
500 (usually a deterministic server bug for this request) and anything a POST may already have done
-- those arrive here as ``UnconfirmedWriteError``, which is not a ``RetriableApiError``.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
    wait_random,
)

from clientify_sync.api.settings import HttpSettings
from clientify_sync.errors import (
    ApiError,
    IdempotencyKeyInUseError,
    RateLimitedError,
    RetriableApiError,
    TransientApiError,
)

log = logging.getLogger("clientify_sync.api")

T = TypeVar("T")
RETRIED_STATUSES = frozenset({502, 503, 504})


def is_retriable(error: BaseException) -> bool:
    """The one retry predicate: see the module docstring."""
    if isinstance(error, RateLimitedError | IdempotencyKeyInUseError):
        return True
    if isinstance(error, TransientApiError):
        status = error.status
        # No response, or a 2xx whose body was truncated, or a gateway/availability error.
        return status is None or status < 300 or status in RETRIED_STATUSES
    return False


class RetryPolicy:
    """Bounded exponential backoff with jitter; ``sleep`` is injectable so tests never wait."""

    def __init__(self, settings: HttpSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.max_retries = settings.max_retries
        self.backoff_max = settings.backoff_max
        self.retry_after_max = settings.retry_after_max
        self._sleep = sleep
        # base, 2*base, 4*base ... capped, plus up to one base of jitter so threads do not stampede.
        self._backoff = wait_exponential(
            multiplier=settings.backoff_base, max=settings.backoff_max
        ) + wait_random(0, settings.backoff_base)

    def run(self, attempt: Callable[[int], T], *, label: str) -> T:
        """Call ``attempt(n)`` with n = 1, 2, ... until it succeeds or a non-retriable error escapes."""
        numbers = itertools.count(1)
        retrying = Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self.wait_seconds,
            retry=retry_if_exception(is_retriable),
            sleep=self._sleep,
            before_sleep=lambda state: self._log_retry(state, label),
            reraise=True,
        )
        return retrying(lambda: attempt(next(numbers)))

    def wait_seconds(self, state: RetryCallState) -> float:
        """Honour ``Retry-After`` (capped) on 429/503/409-in-use; otherwise back off exponentially."""
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetriableApiError) and error.retry_after is not None:
            return min(error.retry_after, self.retry_after_max)
        return min(self._backoff(state), self.backoff_max)

    def _log_retry(self, state: RetryCallState, label: str) -> None:
        error = state.outcome.exception() if state.outcome else None
        status = error.status if isinstance(error, ApiError) else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s failed (%s, status %s); retry %d/%d in %.2fs",
            label,
            type(error).__name__,
            status if status is not None else "none",
            state.attempt_number,
            self.max_retries,
            wait,
        )
