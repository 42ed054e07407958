"""The sandbox as the benchmark uses it: a subprocess on free loopback ports (the test fixture's own
start/stop code), seeded the same way for every phase, latency injected only after seeding, and the
request counters read per API and method.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench.config import BenchConfig
from tests.fixtures.sandbox import APIS, SandboxHandle, start_sandbox, stop_sandbox

__all__ = ["APIS", "Calls", "SandboxHandle", "applied_delay_s", "read_calls", "seed_world", "set_latency",
           "set_rest_rate", "start_sandbox", "stop_sandbox"]  # fmt: skip

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The REST emulator's limit when the bench counts calls without waiting: far above any run's pace, so the
# client's gate (which follows the X-RateLimit headers) never waits.
UNTHROTTLED_RPM = 1_000_000


@dataclass
class Calls:
    """Requests per (api, method), plus the sandbox's per-route detail for the JSON."""

    by_method: Counter[tuple[str, str]] = field(default_factory=Counter)
    routes: Counter[tuple[str, str, str, int]] = field(default_factory=Counter)

    def add(self, other: Calls) -> None:
        self.by_method.update(other.by_method)
        self.routes.update(other.routes)

    def get(self, api: str, method: str) -> int:
        return self.by_method.get((api, method), 0)

    def sum(self, api: str | None = None, *, writes: bool | None = None) -> int:
        return sum(
            n for (a, m), n in self.by_method.items()
            if (api is None or a == api) and (writes is None or (m in WRITE_METHODS) == writes)
        )  # fmt: skip

    def nested(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (api, method), n in sorted(self.by_method.items()):
            out.setdefault(api, {})[method] = n
        return out

    def route_rows(self) -> list[dict[str, Any]]:
        return [{"api": a, "method": m, "route": r, "status": s, "count": n}
                for (a, m, r, s), n in sorted(self.routes.items())]  # fmt: skip


def read_calls(handle: SandboxHandle, *, reset: bool = True) -> Calls:
    """What the sandbox counted since the last reset (control paths are never counted)."""
    calls = Calls()
    for api in APIS:
        for row in handle.stats(api)["by_route"]:
            calls.by_method[(api, row["method"])] += row["count"]
            calls.routes[(api, row["method"], row["route"], row["status"])] += row["count"]
    if reset:
        handle.reset_stats()
    return calls


def set_latency(handle: SandboxHandle, latency_ms: float, profile: str = "none", scale: float = 1.0) -> None:
    """One fault rule, ``{"latency_ms": N}`` on every request of every API (none when N is 0), and the
    latency profile (``realistic``: include/sandbox/latency.py) on all three."""
    for api in APIS:
        if latency_ms > 0:
            handle.faults(api, [{"latency_ms": latency_ms}])
        else:
            handle.clear_faults(api)
        handle.latency(api, profile, scale)


def set_rest_rate(handle: SandboxHandle, per_minute: int) -> None:
    """The REST emulator's limit per calendar minute, enforced (429 past it); 0: unthrottled."""
    handle.config("facturadirecta", rest_rate_limit=per_minute or UNTHROTTLED_RPM,
                  rest_rate_limit_enforced=bool(per_minute))  # fmt: skip


def applied_delay_s(handle: SandboxHandle, *, reset: bool = True) -> float:
    """Seconds of latency the sandbox added since the last reset (all APIs; overlapping delays add up)."""
    total = sum(handle.latency(api)["counters"]["delay_ms"] for api in APIS) / 1000
    if reset:
        for api in APIS:
            handle.control(api, "DELETE", "latency")
    return total


def seed_world(
    handle: SandboxHandle, cfg: BenchConfig, *, clients: int | None = None, catalogue: bool = True,
    latency: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """Reset, seed each invoicing platform and Clientify's unlinked overlap, then add the latency.

    The same call with the same config gives byte-identical data (seeded generators and ids), which is
    what lets the baseline run on "the same data" after a reset.
    """
    n_clients = cfg.clients if clients is None else clients
    handle.reset()
    created: dict[str, Any] = {}
    for platform in cfg.platforms:
        sizes = {"products": cfg.products, "estimates": cfg.estimates} if catalogue else {}
        target = {"target": "rest"} if cfg.api_of(platform) == "rest" else {}
        answer = handle.seed(platform.value, seed=cfg.seed, clients=n_clients, **sizes, **target)
        created[platform.value] = answer["created"]
    overlap = [{"platform": p.value, "customers": n_clients, "fraction": cfg.overlap, "seed": cfg.seed}
               for p in cfg.platforms]  # fmt: skip
    created["clientify"] = handle.seed("clientify", overlap=overlap)["created"]
    if cfg.fd_api == "rest":
        set_rest_rate(handle, 0)
    if latency:
        set_latency(handle, cfg.latency_ms, cfg.latency_profile, cfg.latency_scale)
    else:
        set_latency(handle, 0)
    handle.reset_stats()
    return created
