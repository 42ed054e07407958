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
"""

from __future__ import annotations

import threading
from collections import Counter
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


class RequestStats:
    """Thread-safe counter keyed by (method, route template, status)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str, int]] = Counter()

    def record(self, method: str, route: str, status: int) -> None:
        with self._lock:
            self._counts[(method.upper(), route, int(status))] += 1

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

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
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
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
            self.stats.record(scope["method"], route_template(scope), outcome(True))
            raise
        self.stats.record(scope["method"], route_template(scope), outcome(False))
