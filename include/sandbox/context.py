"""Everything one emulated API needs at request time, reachable from any handler as ``ctx(request)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from include.sandbox.clock import MonotonicClock
from include.sandbox.config import ApiConfig
from include.sandbox.faults import FaultInjector
from include.sandbox.latency import profile_rules
from include.sandbox.stats import RequestStats
from include.sandbox.store import Store

API_NAMES = ("facturama", "clientify", "facturadirecta")


@dataclass
class ApiContext:
    """One API's state: its config (and the defaults ``reset`` restores), faults, stats and the store."""

    name: str
    store: Store
    clock: MonotonicClock
    defaults: ApiConfig
    config: ApiConfig
    injector: FaultInjector = field(default_factory=FaultInjector)
    stats: RequestStats = field(default_factory=RequestStats)
    baseline_faults: list[dict[str, Any]] = field(default_factory=list)
    # Installs per-API default data (e.g. FacturaDirecta's ID_CRM attribute) after a reset.
    install_defaults: Callable[[ApiContext], None] | None = None
    # The latency profile chosen at start-up (reset returns to it) and the one in force.
    startup_profile: tuple[str, float] = ("none", 1.0)
    latency_scale: float = 1.0

    def set_latency_profile(self, name: str, scale: float = 1.0) -> None:
        """Install a latency profile (``include/sandbox/latency.py``); raises ``ValueError`` if unknown."""
        self.injector.set_profile(name, profile_rules(name, self.name, scale))
        self.latency_scale = scale

    def reset(self) -> None:
        """Empty the API's data, restore its start-up config and latency profile, clear faults (keep baseline
        latency), latency counters and stats."""
        with self.store.session(write=True) as s:
            s.clear_api(self.name)
        self.config = self.defaults.copy()
        self.injector.configure(self.baseline_faults)
        self.set_latency_profile(*self.startup_profile)
        self.injector.reset_counters()
        self.stats.reset()
        if self.install_defaults is not None:
            self.install_defaults(self)


def ctx(request: Request) -> ApiContext:
    """The context of the app serving ``request`` (a FastAPI dependency)."""
    return request.app.state.ctx


async def raw_body(request: Request) -> bytes:
    """The request body, read before a sync handler runs in the thread pool."""
    return await request.body()
