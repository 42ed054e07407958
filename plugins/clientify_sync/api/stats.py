"""Per-client call accounting: every HTTP attempt, by method and route template."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RouteStats:
    """Counters for one ``METHOD /route/{template}``."""

    calls: int = 0
    retries: int = 0
    errors: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "retries": self.retries,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "statuses": dict(sorted(self.statuses.items())),
        }


class CallStats:
    """Thread-safe tally of HTTP attempts; a retried request counts once per attempt.

    ``summary()`` is small and JSON-serialisable so it can travel through XCom and into run reports.
    """

    def __init__(self, api: str) -> None:
        self.api = api
        self._lock = threading.Lock()
        self._routes: dict[str, RouteStats] = {}

    def record(
        self, method: str, route: str, status: int | None, attempt: int, elapsed: float, *, failed: bool
    ) -> None:
        """Count one attempt; ``status`` None means no response (timeout, refused, dropped).

        ``failed`` marks an attempt that raised (an error status, or a success with an unusable body).
        """
        with self._lock:
            entry = self._routes.setdefault(f"{method} {route}", RouteStats())
            entry.calls += 1
            entry.retries += attempt > 1
            entry.errors += failed
            entry.seconds += elapsed
            key = str(status) if status is not None else "none"
            entry.statuses[key] = entry.statuses.get(key, 0) + 1

    @property
    def calls(self) -> int:
        with self._lock:
            return sum(entry.calls for entry in self._routes.values())

    def summary(self) -> dict[str, Any]:
        """``{"api", "calls", "retries", "errors", "seconds", "routes": {"GET /x": {...}}}``."""
        with self._lock:
            routes = {key: entry.as_dict() for key, entry in sorted(self._routes.items())}
        totals = {
            name: sum(route[name] for route in routes.values()) for name in ("calls", "retries", "errors")
        }
        seconds = round(sum(route["seconds"] for route in routes.values()), 3)
        return {"api": self.api, **totals, "seconds": seconds, "routes": routes}

    def reset(self) -> None:
        with self._lock:
            self._routes.clear()
