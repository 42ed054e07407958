"""The issue's targets as a typed table: each row names its run and scenario, the figure measured, the
limit, PASS/MISS (or n/a when not measured) and the numbers behind it.

Call-count targets hold at any latency; the others (wall, CPU, memory) only where the run measured them:
a run without latency (``--quick``) gets call-count rows only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.config import BenchConfig
from bench.scale import ScaleRun, size_label
from bench.scenarios import CP, ScenarioResult, by_name

MEMORY_LIMIT_MB = 300.0
FLAT_LIMIT = 1.25  # "flat": 10x the records may cost at most 25% more peak RSS
CALLS_LIMIT = 1.1  # idle and 1%-edit runs: calls ≤ 1.1 × the lower bound
FLOOR_LIMIT = 1.3  # wall ≤ 1.3 × the API floor at the realistic profile
HOURLY_LIMIT_S = 600.0  # the hourly modified run of a 100k account with 1% edits
HOURLY_SIZE = 100_000
CPU_PER_RECORD_LIMIT_MS = 0.1
FULL_WALL_LIMIT = 1.5  # scenario (1), today's target
IDLE_PER_ENTITY_LIMIT = 3  # FacturaDirecta REST: an idle modified run's calls per entity (issue 24)
PLAN_RATES = {
    "free plan (Gratis)": 30,
    "top plan (Diamante)": 600,
}  # FacturaDirecta REST, requests per minute


@dataclass
class Target:
    scenario: str
    name: str
    ok: bool | None  # None: not measured
    detail: str
    run: str = ""  # "facturama 10k"; "" for targets about the whole benchmark
    measured: float | None = None
    limit: float | None = None
    unit: str = ""
    kind: str = "calls"  # calls | time | memory | cpu: --quick fails only on "calls"
    stated: bool = False  # a figure the issue asks to state, not a target (ok is None)

    @property
    def verdict(self) -> str:
        if self.stated:
            return "stated"
        return "n/a" if self.ok is None else "PASS" if self.ok else "MISS"

    def line(self) -> str:
        where = f"[{self.run}] " if self.run else ""
        return f"{where}({self.scenario}) {self.name}: {self.verdict} — {self.detail}"


def at_most(run: str, scenario: str, name: str, measured: float, limit: float, unit: str, detail: str,
            kind: str) -> Target:  # fmt: skip
    """A "measured ≤ limit" row."""
    return Target(
        scenario, name, measured <= limit, detail, run, round(measured, 4), round(limit, 4), unit, kind
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("inf") if a else 0.0


# -- per scenario -------------------------------------------------------------------------------------


def calls_target(run: str, s: ScenarioResult) -> Target:
    calls, bound = s.calls.sum(), s.bound.sum() if s.bound else 0
    return at_most(
        run,
        s.name,
        f"calls ≤ {CALLS_LIMIT} × lower bound",
        calls,
        CALLS_LIMIT * bound,
        "calls",
        f"{calls} calls vs lower bound {bound} ({_ratio(calls, bound):.2f}×)",
        "calls",
    )


def idle_target(run: str, s: ScenarioResult) -> Target:
    """Today's (2): zero writes and exactly the bound's reads."""
    writes, reads = s.calls.sum(writes=True), s.calls.sum(writes=False)
    bound_reads = s.bound.sum(writes=False) if s.bound else 0
    return Target(s.name, "zero writes and reads = lower bound", writes == 0 and reads == bound_reads,
                  f"writes {writes}, reads {reads} vs lower bound {bound_reads} ({_ratio(reads, bound_reads):.2f}×)",
                  run, reads + writes, bound_reads, "calls", "calls")  # fmt: skip


def floor_target(run: str, s: ScenarioResult) -> Target:
    wall, floor = float(s.rss["wall_s"]), s.floor_s
    return at_most(run, s.name, f"wall ≤ {FLOOR_LIMIT} × API floor ({s.profile} profile)", wall,
                   FLOOR_LIMIT * floor, "s",
                   f"wall {wall:.1f} s vs {FLOOR_LIMIT} × floor {floor:.1f} s = {FLOOR_LIMIT * floor:.1f} s "
                   f"(floor = {s.delay_s:.1f} s of latency for {s.calls.sum()} calls ÷ concurrency "
                   f"{s.concurrency}; wall {_ratio(wall, floor):.2f}× the floor; sync CPU {s.cpu_s:.1f} s, "
                   f"sandbox CPU {s.rss.get('cpu_s', {}).get('sandbox', '?')} s)", "time")  # fmt: skip


def full_wall_target(run: str, s: ScenarioResult, cfg: BenchConfig) -> Target:
    """Today's (1): wall ≤ 1.5 × calls × latency ÷ concurrency (flat latency) or × the added latency."""
    wall, limit = float(s.rss["wall_s"]), FULL_WALL_LIMIT * s.floor_s
    if cfg.latency_profile != "none":  # per-request latency varies: the sandbox counts what it added
        name = f"wall ≤ {FULL_WALL_LIMIT} × added latency ÷ concurrency ({cfg.latency_profile} profile)"
    else:
        name = f"wall ≤ {FULL_WALL_LIMIT} × calls × latency ÷ concurrency ({cfg.latency_ms:g} ms)"
    if limit <= 0:
        return Target(s.name, name, None, f"no latency injected (wall {wall:.1f} s)", run, kind="time")
    return at_most(run, s.name, name, wall, limit, "s",
                   f"wall {wall:.1f} s vs {FULL_WALL_LIMIT} × {s.delay_s:.1f} s ÷ {s.concurrency} = {limit:.1f} s "
                   f"({_ratio(wall, limit):.2f}× the limit; {s.calls.sum()} calls; sync CPU {s.cpu_s:.1f} s)", "time")  # fmt: skip


def cpu_target(run: str, s: ScenarioResult) -> Target:
    name = f"CPU per unchanged record ≤ {CPU_PER_RECORD_LIMIT_MS} ms"
    if not s.unchanged:
        return Target(s.name, name, None, "no unchanged records", run, kind="cpu")
    per_ms = s.cpu_s * 1000 / s.unchanged
    return at_most(
        run,
        s.name,
        name,
        per_ms,
        CPU_PER_RECORD_LIMIT_MS,
        "ms",
        f"sync CPU {s.cpu_s:.1f} s ÷ {s.unchanged} unchanged records = {per_ms:.3f} ms",
        "cpu",
    )


# -- FacturaDirecta's REST API (issue 24) ----------------------------------------------------------------


def idle_per_entity_target(run: str, s: ScenarioResult) -> Target:
    """An idle modified run on the REST API: at most 3 calls per entity (the activity feed's page and
    Clientify's one or two listings), nothing written."""
    per = {key.split("/")[1]: calls.sum() for key, calls in s.by_entity.items()}
    worst = max(per.values(), default=0)
    lookups = sum(n for (api, method, route, _), n in s.calls.routes.items()
                  if api == "facturadirecta" and method == "GET" and route.endswith("/customFields"))  # fmt: skip
    detail = ", ".join(f"{entity} {n}" for entity, n in per.items())
    detail += f" calls; {s.calls.sum(writes=True)} writes; {lookups} of them GET customFields"
    return Target(s.name, f"idle run ≤ {IDLE_PER_ENTITY_LIMIT} calls per entity (REST)",
                  worst <= IDLE_PER_ENTITY_LIMIT and s.calls.sum(writes=True) == 0, detail, run, worst,
                  IDLE_PER_ENTITY_LIMIT, "calls", "calls")  # fmt: skip


APPLY_STEPS = ("apply_clientify", "apply_invoicing")  # where a full sync's FacturaDirecta writes happen


def projected_full_wall_s(s: ScenarioResult, per_minute: float) -> float:
    """The full sync's wall at a REST rate limit, from an unthrottled run: its measured wall, plus per
    sync the time its FacturaDirecta calls take at the limit's pace beyond its apply steps' measured time
    (the write-backs run inside the apply steps, beside Clientify's writes: the waiting overlaps them,
    while extract, reconcile and commit do not wait). A sync without step times adds all its calls' pace."""
    extra = 0.0
    for key, calls in s.by_entity.items():
        steps = s.reports.get(key, {}).get("step_seconds") or {}
        paced = calls.sum("facturadirecta") * 60 / per_minute
        extra += max(0.0, paced - sum(float(steps.get(step, 0.0)) for step in APPLY_STEPS))
    return float(s.rss["wall_s"]) + extra


def rate_wall_rows(run: str, s: ScenarioResult) -> list[Target]:
    """The full sync's wall at the free plan's and the top plan's rate (stated, not targets)."""
    fd, wall = s.calls.sum("facturadirecta"), float(s.rss["wall_s"])
    return [Target(s.name, f"full sync wall at {rate} req/min, {plan} (stated, not a target; projected)", None,
                   f"{fd} FacturaDirecta calls × 60 ÷ {rate} = {fd * 60 / rate:,.0f} s at the limit's pace, beyond the "
                   f"apply steps' own time, + the unthrottled run's wall {wall:,.0f} s = "
                   f"{_duration(projected_full_wall_s(s, rate))} (checked for real at smaller sizes: --fd-rate)", run, round(projected_full_wall_s(s, rate), 1), None, "s", "time", stated=True)
            for plan, rate in PLAN_RATES.items()]  # fmt: skip


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def rate_check_row(run: str, first: ScenarioResult, limited: ScenarioResult, per_minute: int) -> Target:
    """The projection against the same full sync run for real at ``per_minute`` (stated with the ratio)."""
    wall, projected = float(limited.rss["wall_s"]), projected_full_wall_s(first, per_minute)
    return Target(limited.name, f"full sync wall at {per_minute} req/min, measured vs projected (stated)", None,
                  f"measured {wall:,.1f} s vs projected {projected:,.1f} s ({_ratio(wall, projected):.2f}×) from (1): "
                  f"{first.calls.sum('facturadirecta')} FacturaDirecta calls at {per_minute} a minute beyond its apply "
                  f"steps + its wall {float(first.rss['wall_s']):.1f} s; the limited run made {limited.calls.sum('facturadirecta')} "
                  f"({limited.calls.get('facturadirecta', 'GET')} GET)", run, round(wall, 1), round(projected, 1), "s",
                  "time", stated=True)  # fmt: skip


def run_targets(cfg: BenchConfig, run: ScaleRun, naive: dict[str, ScenarioResult]) -> list[Target]:
    mine, label, out = by_name(run.scenarios), run.label, []
    if run.api == "rest":
        idle = mine.get("2b") or mine.get("2")
        if idle is not None:
            out.append(idle_per_entity_target(label, idle))
        if "1" in mine:
            out += rate_wall_rows(label, mine["1"])
        if "1" in mine and "1t" in mine:
            out.append(rate_check_row(label, mine["1"], mine["1t"], cfg.fd_rate))
    if "1" in mine and not cfg.quick and not cfg.fd_rate:
        out.append(full_wall_target(label, mine["1"], cfg))
    for name in ("2", "2b"):
        if name in mine and mine[name].bound is not None:
            out += [idle_target(label, mine[name]), calls_target(label, mine[name])]
    if "3" in mine and mine["3"].bound is not None:
        out.append(calls_target(label, mine["3"]))
        if naive and run.platform.value == "facturama" and run.clients == cfg.sizes[0]:
            cp = mine["3"].entity_calls(CP).sum()
            name = "≥ 20× fewer calls than the baseline (contacts+products)"
            if "3" in naive:
                base = naive["3"].calls.sum()
                out.append(Target("3", name, base >= 20 * cp, f"baseline {base} vs ours {cp}: {_ratio(base, cp):.1f}× fewer",
                                  label, _ratio(base, cp), 20.0, "×", "calls"))  # fmt: skip
            else:
                out.append(Target("3", name, None, "baseline (3) not measured", label))
    for name in ("2r", "3r"):
        if name in mine:
            out += [calls_target(label, mine[name]), floor_target(label, mine[name])]
    if "3r" in mine and run.clients >= HOURLY_SIZE:
        s = mine["3r"]
        wall = float(s.rss["wall_s"])
        out.append(at_most(label, "3r", f"hourly run with 1% edits < {HOURLY_LIMIT_S / 60:g} min ({s.profile} "
                           f"profile, {size_label(run.clients)} customers)", wall, HOURLY_LIMIT_S, "s",
                           f"wall {wall:.1f} s = {wall / 60:.1f} min ({s.calls.sum()} calls, floor {s.floor_s:.1f} s)",
                           "time"))  # fmt: skip
    idle = mine.get("2r") or mine.get("2")
    if idle is not None and not cfg.quick:
        out.append(cpu_target(label, idle))
    return out


def memory_targets(cfg: BenchConfig, runs: Sequence[ScaleRun]) -> list[Target]:
    """Peak RSS of each platform's largest run (≥ 100k) ≤ 300 MB, and ≤ 1.25 × its 10k run's."""
    out: list[Target] = []
    for platform in cfg.platforms:
        mine = sorted((r for r in runs if r.platform is platform), key=lambda r: r.clients)
        large = mine[-1] if mine and mine[-1].clients >= HOURLY_SIZE else None
        if large is None:
            continue
        peak = large.peak_rss_mb
        out.append(at_most(large.label, "all", f"peak RSS ≤ {MEMORY_LIMIT_MB:g} MB", peak, MEMORY_LIMIT_MB, "MB",
                           f"peak {peak:.0f} MB over the run's scenarios (sync process total){_held_in(large)}",
                           "memory"))  # fmt: skip
        small = next((r for r in mine if r.clients == 10_000), mine[0] if len(mine) > 1 else None)
        if small is not None and small is not large:
            ratio = _ratio(peak, small.peak_rss_mb)
            out.append(at_most(large.label, "all", f"peak RSS ≤ {FLAT_LIMIT} × the {size_label(small.clients)} run's",
                               ratio, FLAT_LIMIT, "×", f"{peak:.0f} / {small.peak_rss_mb:.0f} MB = {ratio:.2f}× for "
                               f"{large.clients / small.clients:g}× the customers", "memory"))  # fmt: skip
    return out


def _held_in(run: ScaleRun) -> str:
    """Where a run's peak RSS was reached (scenario and step), when its steps were marked."""
    return f", reached in scenario {run.peak_step}" if run.peak_step else ""


def dry_run_targets(memory: list[dict[str, Any]]) -> list[Target]:
    """Today's memory check: a FULL dry-run contacts sync at growing sizes, each in a fresh process."""
    out: list[Target] = []
    if not memory:
        return out
    small, large = memory[0], memory[-1]
    out.append(at_most("dry run", "mem", f"peak RSS ≤ {MEMORY_LIMIT_MB:g} MB at {large['clients']} contacts",
                       large["peak_rss_mb"], MEMORY_LIMIT_MB, "MB",
                       f"peak {large['peak_rss_mb']} MB (baseline {large['baseline_rss_mb']} MB, "
                       f"delta {large['delta_rss_mb']} MB)", "memory"))  # fmt: skip
    if len(memory) > 1:
        ratio = large["peak_rss_mb"] / small["peak_rss_mb"]
        delta_ratio = large["delta_rss_mb"] / max(small["delta_rss_mb"], 0.1)
        out.append(at_most("dry run", "mem", f"flat: peak({large['clients']}) ≤ {FLAT_LIMIT} × peak({small['clients']})",
                           ratio, FLAT_LIMIT, "×",
                           f"{large['peak_rss_mb']} / {small['peak_rss_mb']} MB = {ratio:.2f}× total, "
                           f"{delta_ratio:.1f}× delta, for {large['clients'] / small['clients']:g}× the records",
                           "memory"))  # fmt: skip
    return out


def targets(cfg: BenchConfig, runs: Sequence[ScaleRun], baseline: list[ScenarioResult],
            memory: list[dict[str, Any]]) -> list[Target]:  # fmt: skip
    naive = by_name(baseline)
    out: list[Target] = []
    for run in runs:
        out += run_targets(cfg, run, naive)
    if not cfg.quick:
        out += memory_targets(cfg, runs)
        if any(r.clients >= HOURLY_SIZE for r in runs) is False and cfg.modified_profile != "none":
            out.append(
                Target(
                    "3r",
                    f"hourly run with 1% edits < {HOURLY_LIMIT_S / 60:g} min at 100k",
                    None,
                    "no 100k run in this benchmark (--sizes)",
                    kind="time",
                )
            )
    return out + dry_run_targets(memory)


def call_misses(found: Sequence[Target]) -> list[Target]:
    return [t for t in found if t.kind == "calls" and t.ok is False]
