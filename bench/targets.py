"""The issue's targets, each PASS/MISS (or n/a when not measured) with the numbers behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.config import BenchConfig
from bench.scenarios import CP, ScenarioResult, by_name

MEMORY_LIMIT_MB = 300.0
FLAT_LIMIT = 1.25  # "flat": 10x the records may cost at most 25% more peak RSS


@dataclass
class Target:
    scenario: str
    name: str
    ok: bool | None  # None: not measured
    detail: str

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else "PASS" if self.ok else "MISS"

    def line(self) -> str:
        return f"({self.scenario}) {self.name}: {self.verdict} — {self.detail}"


def targets(cfg: BenchConfig, ours: list[ScenarioResult], baseline: list[ScenarioResult],
            memory: list[dict[str, Any]]) -> list[Target]:  # fmt: skip
    mine, naive = by_name(ours), by_name(baseline)
    out: list[Target] = []
    if "1" in mine and cfg.latency_profile != "none":
        # Per-request latency varies (list pages cost per record): the sandbox counts what it added.
        s = mine["1"]
        wall, limit = s.rss["wall_s"], 1.5 * s.delay_s / cfg.concurrency
        out.append(Target("1", f"wall ≤ 1.5 × added latency ÷ concurrency ({cfg.latency_profile} profile)",
                          wall <= limit if limit > 0 else None,
                          f"wall {wall:.1f} s vs 1.5 × {s.delay_s:.1f} s ÷ {cfg.concurrency} = {limit:.1f} s "
                          f"({wall / limit if limit else 0:.2f}× the limit; {s.calls.sum()} calls)"))  # fmt: skip
    elif "1" in mine:
        s = mine["1"]
        calls, wall = s.calls.sum(), s.rss["wall_s"]
        limit = 1.5 * calls * cfg.latency_ms / 1000 / cfg.concurrency
        name = "wall ≤ 1.5 × calls × latency ÷ concurrency"
        if limit > 0:
            out.append(Target("1", name, wall <= limit,
                              f"wall {wall:.1f} s vs 1.5 × {calls} × {cfg.latency_ms:g} ms ÷ {cfg.concurrency} "
                              f"= {limit:.1f} s ({wall / limit:.2f}× the limit)"))  # fmt: skip
        else:
            out.append(Target("1", name, None, f"no latency injected (wall {wall:.1f} s)"))
    for name in ("2", "2b"):
        if name in mine and mine[name].bound is not None:
            s = mine[name]
            writes, reads = s.calls.sum(writes=True), s.calls.sum(writes=False)
            bound_reads = s.bound.sum(writes=False)  # type: ignore[union-attr]
            out.append(Target(name, "zero writes and reads = lower bound", writes == 0 and reads == bound_reads,
                              f"writes {writes}, reads {reads} vs lower bound {bound_reads} "
                              f"({reads / max(bound_reads, 1):.2f}×)"))  # fmt: skip
    if "3" in mine and mine["3"].bound is not None:
        s = mine["3"]
        calls, bound = s.calls.sum(), s.bound.sum()  # type: ignore[union-attr]
        out.append(Target("3", "calls ≤ 1.1 × lower bound", calls <= 1.1 * bound,
                          f"{calls} calls vs lower bound {bound} ({calls / max(bound, 1):.2f}×)"))
        cp = s.entity_calls(CP).sum()
        if "3" in naive:
            base = naive["3"].calls.sum()
            out.append(Target("3", "≥ 20× fewer calls than the baseline (contacts+products)", base >= 20 * cp,
                              f"baseline {base} vs ours {cp}: {base / max(cp, 1):.1f}× fewer"))  # fmt: skip
        else:
            out.append(Target("3", "≥ 20× fewer calls than the baseline", None, "baseline (3) not measured"))
    if memory:
        small, large = memory[0], memory[-1]
        ok = large["peak_rss_mb"] <= MEMORY_LIMIT_MB
        out.append(Target("mem", f"peak RSS ≤ {MEMORY_LIMIT_MB:g} MB at {large['clients']} contacts", ok,
                          f"peak {large['peak_rss_mb']} MB (baseline {large['baseline_rss_mb']} MB, "
                          f"delta {large['delta_rss_mb']} MB)"))  # fmt: skip
        if len(memory) > 1:
            ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
            delta_ratio = large["delta_rss_mb"] / max(small["delta_rss_mb"], 0.1)
            out.append(Target("mem", f"flat: peak({large['clients']}) ≤ {FLAT_LIMIT} × peak({small['clients']})",
                              ratio <= FLAT_LIMIT,
                              f"{large['peak_rss_mb']} / {small['peak_rss_mb']} MB = {ratio:.2f}× total, "
                              f"{delta_ratio:.1f}× delta, for {large['clients'] / small['clients']:g}× the records"))  # fmt: skip
    return out
