"""Per-route request counters for the sandbox, served at ``/_sandbox/stats``.

Why: tests and the benchmark assert how many calls a sync made (paging, retries, read-modify-write)
and which statuses it saw, including injected faults. The app therefore composes::

    StatsMiddleware(FaultMiddleware(app, injector), stats)

so the stats layer sits outside the fault layer and counts what the client actually received.

Status recorded per request:

- the status of the ``http.response.start`` the client was sent, when the response completed;
- ``500`` when the inner app raised before starting a response (what the server then answers);
- ``0`` when no complete response reached the client: a response started but never finished (the
  ``drop`` and ``truncate`` faults, an exception mid-body) or no response at all (a ``timeout`` fault
  whose client hung up).

Route: the template of the matched route (``/v1/contacts/{contact_id}/``), read from
``scope["route"]`` after the app returns (Starlette and FastAPI set it while routing), else the raw
path. Paths under ``/_sandbox/`` are not counted.

Arrival times: the end-to-end suite checks that no 60-second window of one API saw more requests
than the connection's ``requests_per_minute``, so every counted request also keeps the wall-clock
time it arrived (before any injected latency). Only the newest ``ARRIVALS_KEPT`` are kept (bounded
memory); ``GET /_sandbox/stats/arrivals`` serves them (answered here, by the middleware, so the
plain ``/_sandbox/stats`` snapshot stays small), ``DELETE /_sandbox/stats`` clears them with the
counts. :func:`busiest_window` finds the fullest window.
"""

from __future__ import annotations

import bisect
import json
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTROL_PREFIX = "/_sandbox/"
STATUS_RAISED = 500
STATUS_INCOMPLETE = 0
ARRIVALS_KEPT = 100_000
ARRIVALS_PATH = CONTROL_PREFIX + "stats/arrivals"


class RequestStats:
    """Thread-safe counter keyed by (method, route template, status), plus recent arrival times.

    Args:
        keep_arrivals: how many of the newest arrival times to keep (older ones are dropped).
        clock: wall-clock source for requests recorded without an arrival time (tests pass a fake).
    """

    def __init__(self, keep_arrivals: int = ARRIVALS_KEPT, clock: Callable[[], float] = time.time) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()
        self._arrivals: deque[tuple[float, str, int]] = deque(maxlen=keep_arrivals)
        self._dropped = 0
        self._clock = clock

    def record(self, method: str, route: str, status: int, arrived_at: float | None = None) -> None:
        """Count one request; ``arrived_at`` (epoch seconds) defaults to now."""
        at = self._clock() if arrived_at is None else float(arrived_at)
        with self._lock:
            self._counts[(method.upper(), route, int(status))] += 1
            if len(self._arrivals) == self._arrivals.maxlen:
                self._dropped += 1
            self._arrivals.append((at, method.upper(), int(status)))

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._arrivals.clear()
            self._dropped = 0

    def arrivals(self) -> dict[str, Any]:
        """``{"kept", "dropped", "arrivals": [[epoch_seconds, method, status], ...]}``, oldest first.

        ``dropped`` counts the arrivals pushed out of the bounded buffer since the last reset, so a
        caller can tell a complete record from a truncated one.
        """
        with self._lock:
            rows = sorted(self._arrivals)
            dropped = self._dropped
        return {"kept": self._arrivals.maxlen, "dropped": dropped, "arrivals": [list(row) for row in rows]}

    def count(self, method: str | None = None, route: str | None = None, status: int | None = None) -> int:
        """Sum of the counts matching the given parts (``None`` = any); handy in assertions."""
        with self._lock:
            items = list(self._counts.items())
        return sum(
            n
            for (m, r, s), n in items
            if (method is None or m == method.upper())
            and (route is None or r == route)
            and (status is None or s == status)
        )

    def snapshot(self) -> dict[str, Any]:
        """``{"total", "by_route": [{method, route, status, count}], "by_method": {method: n}}``, sorted."""
        with self._lock:
            items = sorted(self._counts.items())
        by_method: Counter[str] = Counter()
        for (method, _, _), n in items:
            by_method[method] += n
        return {
            "total": sum(n for _, n in items),
            "by_route": [{"method": m, "route": r, "status": s, "count": n} for (m, r, s), n in items],
            "by_method": dict(sorted(by_method.items())),
        }


def busiest_window(times: list[float], seconds: float = 60.0) -> tuple[int, float | None]:
    """Return the most requests in any half-open window ``[t, t + seconds)`` and where it starts.

    Why: a per-minute budget is a promise about every such window, not about calendar minutes. The
    fullest window always starts at a request, so only those starts are tried.
    """
    ordered = sorted(times)
    best, start = 0, None
    for i, t in enumerate(ordered):
        n = bisect.bisect_left(ordered, t + seconds, lo=i) - i
        if n > best:
            best, start = n, t
    return best, start


def route_template(scope: Scope) -> str:
    """The matched route's template, falling back to the raw path (unrouted requests, 404s)."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    if isinstance(template, str) and template:
        return template
    return str(scope.get("path", ""))


class StatsMiddleware:
    """Counts every HTTP request outside ``/_sandbox/`` once the app has finished with it."""

    def __init__(self, app: ASGIApp, stats: RequestStats) -> None:
        self.app = app
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == ARRIVALS_PATH and scope["method"] == "GET":
            await self._send_arrivals(send)
            return
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        arrived_at = time.time()
        status: int | None = None
        complete = False

        async def counting_send(message: Message) -> None:
            nonlocal status, complete
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                complete = True
            await send(message)

        def outcome(raised: bool) -> int:
            if status is not None and complete:
                return status
            return STATUS_RAISED if raised and status is None else STATUS_INCOMPLETE

        try:
            await self.app(scope, receive, counting_send)
        except BaseException:
            self.stats.record(scope["method"], route_template(scope), outcome(True), arrived_at)
            raise
        self.stats.record(scope["method"], route_template(scope), outcome(False), arrived_at)

    async def _send_arrivals(self, send: Send) -> None:
        """Answer ``GET /_sandbox/stats/arrivals`` (served here: the control router is another module)."""
        body = json.dumps(self.stats.arrivals(), separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
