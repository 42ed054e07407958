"""The markdown report (the table, the targets, the lower bound's terms, per-sync detail) and the JSON."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.bounds import __doc__ as BOUND_DOC
from bench.config import BenchConfig
from bench.sandbox import Calls
from bench.scale import ScaleRun, size_label
from bench.scenarios import CP, ScenarioResult, by_name
from bench.targets import Target

API_ORDER = {"facturama": 0, "facturadirecta": 1, "clientify": 2}
METHOD_ORDER = {"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
COLUMNS = ["scenario", "API", "method", "calls", "lower bound", "ratio", "baseline calls", "ours/baseline",
           "wall s", "peak MB", "writes", "target"]  # fmt: skip


# -- the table --------------------------------------------------------------------------------------


def _ratio(num: float, den: float) -> str:
    """Two decimals, or two significant digits below 0.1 (ours/baseline gets small)."""
    if den == 0:
        return "–" if num == 0 else "∞"
    value = num / den
    return f"{value:.2f}" if value >= 0.1 or value == 0 else f"{value:.2g}"


def _keys(*calls: Any) -> list[tuple[str, str]]:
    keys: set[tuple[str, str]] = set()
    for c in calls:
        if c is not None:
            keys |= set(c.by_method if isinstance(c, Calls) else c.calls)
    return sorted(keys, key=lambda k: (API_ORDER.get(k[0], 9), METHOD_ORDER.get(k[1], 9)))


def table_rows(cfg: BenchConfig, ours: list[ScenarioResult], baseline: list[ScenarioResult],
               memory: list[dict[str, Any]], found: list[Target], run: str = "") -> list[list[str]]:  # fmt: skip
    naive = by_name(baseline)
    rows: list[list[str]] = []
    for s in ours:
        base = naive.get(s.name)
        cp = s.entity_calls(CP)
        label = f"{s.name} {s.title}"
        for api, method in _keys(s.calls, s.bound, base.calls if base else None):
            calls = s.calls.get(api, method)
            bound = s.bound.get(api, method) if s.bound else 0
            base_n = base.calls.get(api, method) if base else None
            rows.append([label, api, method, str(calls), str(bound), _ratio(calls, bound),
                         "not run" if base_n is None else str(base_n),
                         "" if base_n is None else _ratio(cp.get(api, method), base_n), "", "", "", ""])  # fmt: skip
        verdicts = (
            "; ".join(f"{t.name}: {t.verdict}" for t in found if t.scenario == s.name and t.run == run)
            or "(reported)"
        )
        total, bound_total = s.calls.sum(), s.bound.sum() if s.bound else 0
        base_total = base.calls.sum() if base else None
        rows.append([f"**{label}**", "all", "all", f"**{total}**", str(bound_total), _ratio(total, bound_total),
                     "not run" if base_total is None else str(base_total),
                     "" if base_total is None else _ratio(cp.sum(), base_total), f"{s.rss['wall_s']:.1f}",
                     _peak(s.rss), str(s.calls.sum(writes=True)), verdicts])  # fmt: skip
        if base:
            rows.append([f"{label} (baseline)", "all", "all", "", "", "", str(base_total), "",
                         f"{base.rss['wall_s']:.1f}{'' if cfg.sequential else '*'}", _peak(base.rss),
                         str(base.calls.sum(writes=True)), ""])  # fmt: skip
    for m in memory:
        verdicts = (
            "; ".join(f"{t.name}: {t.verdict}" for t in found if t.scenario == "mem")
            if m is memory[-1]
            else ""
        )
        rows.append([f"mem {m['clients']} clients (full dry run)", "all", "all",
                     str(sum(sum(v.values()) for v in m["calls"].values())), "", "", "", "",
                     f"{m['wall_s']:.1f}{'' if cfg.sequential else '*'}", _peak(m), "0", verdicts])  # fmt: skip
    return rows


def _peak(rss: dict[str, Any]) -> str:
    """Total peak RSS of the process, with the growth over its RSS at the start (Δ)."""
    return f"{rss['peak_rss_mb']:.0f} (Δ{rss['delta_rss_mb']:.0f})"


STEP_NAMES = {"extract_invoicing": "extract inv", "extract_clientify": "extract crm", "reconcile": "reconcile",
              "apply_clientify": "apply crm", "apply_invoicing": "apply inv", "commit": "commit"}  # fmt: skip


def _steps(values: dict[str, float], unit: str) -> str:
    return ", ".join(f"{STEP_NAMES.get(k, k)} {v:g}{unit}" for k, v in values.items())


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def environment(cfg: BenchConfig, duration_s: float) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0], "platform": platform.platform(), "duration_s": round(duration_s, 1),
        "sizes": {"clients": list(cfg.sizes), "products": cfg.products, "estimates": cfg.estimates,
                  "clientify_overlap": cfg.overlap},
        "modified_profile": cfg.modified_profile, "quick": cfg.quick,
        "latency_ms": cfg.latency_ms, "latency_profile": cfg.latency_profile, "latency_scale": cfg.latency_scale,
        "concurrency": cfg.concurrency, "lookback_s": cfg.lookback_s,
        "integrations": [p.value + ("-rest" if cfg.api_of(p) == "rest" else "") for p in cfg.platforms],
        "fd_api": cfg.fd_api, "fd_rate": cfg.fd_rate, "edit_fraction": cfg.edit_fraction, "seed": cfg.seed,
        "baseline_scenarios": list(cfg.baseline_scenarios), "memory_sizes": list(cfg.memory_sizes),
        "page_sizes": {"facturama": 100, "facturadirecta": 500 if cfg.fd_api == "rest" else 250, "clientify": 100},
        "memory_check_beside_baseline": not cfg.sequential and bool(cfg.memory_sizes),
    }  # fmt: skip


def _modified(cfg: BenchConfig) -> str:
    if cfg.modified_profile == "none" or cfg.latency_profile != "none":
        return ""
    scale = "" if cfg.latency_scale == 1 else f" × {cfg.latency_scale:g}"
    return f", then 2r and 3r at the {cfg.modified_profile} latency profile{scale}"


def _latency(cfg: BenchConfig) -> str:
    flat = f"latency {cfg.latency_ms:g} ms per request"
    if cfg.latency_profile == "none":
        return flat
    scale = "" if cfg.latency_scale == 1 else f" × {cfg.latency_scale:g}"
    return f"{cfg.latency_profile} latency profile{scale}" + (f" + {flat}" if cfg.latency_ms else "")


SUMMARY_COLUMNS = ["run", "scenario", "latency", "calls", "lower bound", "ratio", "baseline calls", "wall s",
                   "API floor s", "wall/floor", "sync CPU s", "peak MB", "writes"]  # fmt: skip


def _latency_of(cfg: BenchConfig, s: ScenarioResult) -> str:
    if s.profile != "none":
        return s.profile + ("" if cfg.latency_scale == 1 else f" ×{cfg.latency_scale:g}")
    if cfg.latency_profile != "none":
        return cfg.latency_profile
    return f"{cfg.latency_ms:g} ms" if cfg.latency_ms else "none"


def summary_rows(cfg: BenchConfig, runs: list[ScaleRun], baseline: list[ScenarioResult]) -> list[list[str]]:
    """One row per scenario of every run: the README's table."""
    naive = by_name(baseline)
    rows = []
    for run in runs:
        primary = run.platform.value == "facturama" and run.clients == cfg.clients
        for s in run.scenarios:
            bound = s.bound.sum() if s.bound else 0
            base = naive.get(s.name) if primary else None
            floor = s.floor_s
            rows.append([run.label, f"{s.name} {s.title}", _latency_of(cfg, s), str(s.calls.sum()), str(bound),
                         _ratio(s.calls.sum(), bound), str(base.calls.sum()) if base else "–",
                         f"{s.rss['wall_s']:.1f}", f"{floor:.1f}" if floor else "–",
                         _ratio(s.rss["wall_s"], floor) if floor else "–", f"{s.cpu_s:.1f}", f"{s.rss['peak_rss_mb']:.0f}",
                         str(s.calls.sum(writes=True))])  # fmt: skip
    for s in baseline:
        rows.append([f"baseline facturama {size_label(cfg.clients)}", f"{s.name} {s.title}", _latency_of(cfg, s),
                     str(s.calls.sum()), "", "", str(s.calls.sum()), f"{s.rss['wall_s']:.1f}", "", "",
                     f"{s.cpu_s:.1f}", f"{s.rss['peak_rss_mb']:.0f}", str(s.calls.sum(writes=True))])  # fmt: skip
    return rows


def _table(columns: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def target_rows(found: list[Target]) -> list[list[str]]:
    def num(value: float | None, unit: str) -> str:
        if value is None:
            return ""
        text = f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 1 else f"{value:.3g}"
        return f"{text} {unit}".strip()

    return [[t.run or "–", t.scenario, t.name, num(t.measured, t.unit), num(t.limit, t.unit),
             f"**{t.verdict}**" if t.verdict == "MISS" else t.verdict, t.detail] for t in found]  # fmt: skip


TARGET_COLUMNS = ["run", "scenario", "target", "measured", "limit", "verdict", "numbers"]


def print_targets(found: list[Target]) -> None:
    """The target table on stdout, one line per target (PASS/MISS with the numbers)."""
    print("bench: targets", flush=True)
    for t in found:
        print(f"  {t.verdict:4} {t.line()}", flush=True)
    misses = [t for t in found if t.ok is False]
    stated = sum(t.stated for t in found)
    print(f"bench: {sum(t.ok is True for t in found)} PASS, {len(misses)} MISS, "
          f"{sum(t.ok is None for t in found) - stated} n/a{f', {stated} stated' if stated else ''}", flush=True)  # fmt: skip


def markdown(cfg: BenchConfig, env: dict[str, Any], runs: list[ScaleRun], baseline: list[ScenarioResult],
             memory: list[dict[str, Any]], found: list[Target], phases: dict[str, float]) -> str:  # fmt: skip
    measured = ", ".join(f"({r.name})" for r in baseline) or "none"
    sizes = ", ".join(size_label(n) for n in cfg.sizes)
    parts = [
        "# clientify-sync benchmark",
        "",
        f"{env['date']} · {env['cpu_count']} CPUs · Python {env['python']} · integrations "
        f"{', '.join(env['integrations'])}, one run per platform and size ({sizes} customers; {cfg.products} products, "
        f"{cfg.estimates} estimates at every size), Clientify holding {cfg.overlap:.0%} of the customers unlinked · "
        f"{_latency(cfg)}{_modified(cfg)} · concurrency {cfg.concurrency} · engine lookback {cfg.lookback_s:g} s · "
        f"the whole run took {env['duration_s'] / 60:.1f} min · commit {env['git_commit'][:10]}"
        f"{' with uncommitted engine/sandbox changes' if env['uncommitted'] else ''}",
        "",
        *[
            f"**Note:** the memory probe at {m['clients']} clients imported commit {m['git_commit'][:10]} (the code "
            "changed during the run)."
            for m in memory
            if m.get("git_commit") != env["git_commit"]
        ],
        *[
            f"**Note:** run {r.label} imported commit {r.git_commit[:10]} (the code changed during the run)."
            for r in runs
            if r.git_commit and r.git_commit != env["git_commit"]
        ],
        "",
        "## Summary",
        "",
        _table(SUMMARY_COLUMNS, summary_rows(cfg, runs, baseline)),
        "",
        "Each run (platform, size) is a fresh process: `sync CPU s` is its CPU time (user + system) during the "
        "scenario, `peak MB` its peak RSS (total, sampled every 20 ms). `API floor` = the latency the sandbox "
        "added (calls × per-call latency) ÷ concurrency, reads counted as parallel. Scenarios 1–3 run at the "
        "flat latency; 2r and 3r at the modified profile after an unmeasured idle run (the full sync at the "
        "realistic profile would take hours at 100k, so the state is built at the fast one).",
        "",
        "## Targets",
        "",
        _table(TARGET_COLUMNS, target_rows(found)),
        "",
    ]
    for run in runs:
        primary = run.platform.value == "facturama" and run.clients == cfg.clients
        ours = run.scenarios
        run_baseline = baseline if primary else []
        parts += [
            f"## Run {run.label}",
            "",
            f"Seeded {run.seeded}; the run took {run.wall_s / 60:.1f} min.",
            "",
            markdown_table(table_rows(cfg, ours, run_baseline, memory if primary else [], found, run.label)),
            "",
        ]
        if primary:
            parts += [
                f"Baseline scenarios measured: {measured} (each at full size; nothing derived or extrapolated). "
                "The baseline syncs contacts and products only, Facturama → Clientify; `ours/baseline` compares our "
                "calls for those two entities with it. `ratio` is calls ÷ lower bound. `peak MB` is the process's "
                "peak RSS (sampled every 20 ms), Δ its growth during the scenario.",
                "",
                *(
                    []
                    if cfg.sequential or not memory
                    else [
                        "\\* The baseline and the memory check ran side by side (separate processes and sandboxes) to "
                        "fit the time budget: those wall times include sharing two CPUs; calls and peak RSS do not "
                        "depend on it. Ours ran alone.",
                        "",
                    ]
                ),
            ]
        parts += ["### Lower bound", ""]
        if run is runs[0]:
            parts += [(BOUND_DOC or "").strip(), ""]
        for s in ours:
            if s.bound is None:
                continue
            parts += [f"#### ({s.name}) {s.title}", ""]
            parts += [
                f"- {b['api']} {b['method']} {b['calls']}: {b['why']}" for b in s.bound.lines if b["calls"]
            ]
            for w in s.windows:
                if w["watermark"]:
                    parts.append(f"- engine read window for clientify {w['resource']} ({w['integration']}): since "
                                 f"{w['engine_since']} (watermark − lookback) → {w['engine_records']} records, "
                                 f"{w['engine_pages']} pages; since the watermark: {w['records']} records")  # fmt: skip
            parts.append("")
        parts += [
            "### Calls and time per sync",
            "",
            "| scenario | sync | calls | writes | per API and method | seconds per step |",
            "|---|---|---|---|---|---|",
        ]
        for s in ours:
            for key, calls in s.by_entity.items():
                detail = ", ".join(f"{a} {m} {n}" for (a, m), n in sorted(calls.by_method.items()))
                steps = _steps(s.reports.get(key, {}).get("step_seconds") or {}, "")
                parts.append(
                    f"| {s.name} | {key} | {calls.sum()} | {calls.sum(writes=True)} | {detail} | {steps} |"
                )
        parts += [
            "",
            "### Where the wall time went",
            "",
            "CPU seconds spent during each scenario by the sync's process (the engine, or the baseline's "
            "client) and by the sandbox serving it, against the wall time (two CPUs).",
            "",
            "| run | scenario | wall s | sync CPU s | sandbox CPU s |",
            "|---|---|---|---|---|",
        ]
        for who, group in (("ours", ours), ("baseline", run_baseline)):
            for s in group:
                cpu = s.rss.get("cpu_s", {})
                parts.append(f"| {who} | {s.name} | {s.rss['wall_s']:.1f} | {cpu.get('bench', '')} | "
                             f"{cpu.get('sandbox', '')} |")  # fmt: skip
        parts.append("")
    if memory:
        parts += [
            "",
            "## Memory check, step by step",
            "",
            "Peak RSS (MB) and seconds of each step of the dry-run contacts sync, in one process as the "
            "benchmark runs it (under Airflow each step is its own task process).",
            "",
            "| clients | baseline MB | peak MB | peak per step (MB) | seconds per step |",
            "|---|---|---|---|---|",
        ]
        for m in memory:
            parts.append(
                f"| {m['clients']} | {m['baseline_rss_mb']} | {m['peak_rss_mb']} | "
                f"{_steps(m.get('step_peak_rss_mb', {}), '')} | {_steps(m.get('step_seconds', {}), '')} |"
            )
    parts += ["", "## Phases", "", *[f"- {name}: {secs:.1f} s" for name, secs in phases.items()], ""]
    return "\n".join(parts)


def _scenario_json(s: ScenarioResult) -> dict[str, Any]:
    return {
        "name": s.name, "title": s.title, "mode": s.mode, "profile": s.profile, **s.rss,
        "added_latency_s": round(s.delay_s, 3), "api_floor_s": round(s.floor_s, 2), "sync_cpu_s": s.cpu_s,
        "unchanged": s.unchanged,
        "calls": s.calls.nested(),
        "calls_total": s.calls.sum(), "writes": s.calls.sum(writes=True), "routes": s.calls.route_rows(),
        "calls_by_entity": {k: c.nested() for k, c in s.by_entity.items()},
        "calls_contacts_products": s.entity_calls(CP).sum() if s.by_entity else s.calls.sum(),
        "lower_bound": None if s.bound is None else {
            "total": s.bound.sum(), "reads": s.bound.sum(writes=False), "writes": s.bound.sum(writes=True),
            "by_method": {f"{a} {m}": n for (a, m), n in sorted(s.bound.calls.items())}, "terms": s.bound.lines},
        "engine_read_windows": s.windows, "reports": s.reports, "baseline_outcomes": s.outcomes,
        "edits": {"count": len(s.edits), "sample": [asdict(e) | {"platform": e.platform.value,
                                                               "entity": e.entity.value} for e in s.edits[:10]]},
    }  # fmt: skip


def write_results(out_dir: Path, payload: dict[str, Any], text: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "latest.json").write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n"
    )
    (out_dir / "latest.md").write_text(text + "\n")


def primary_run(cfg: BenchConfig, runs: list[ScaleRun]) -> ScaleRun | None:
    """The run today's scenarios and the baseline compare: Facturama at the first size (else the first)."""
    return next((r for r in runs if r.platform.value == "facturama" and r.clients == cfg.clients),
                runs[0] if runs else None)  # fmt: skip


def results_payload(cfg: BenchConfig, env: dict[str, Any], runs: list[ScaleRun], baseline: list[ScenarioResult],
                    memory: list[dict[str, Any]], found: list[Target], phases: dict[str, float]) -> dict[str, Any]:  # fmt: skip
    primary = primary_run(cfg, runs)
    return {
        "environment": env, "targets": [asdict(t) | {"verdict": t.verdict} for t in found],
        "runs": [{"label": r.label, "platform": r.platform.value, "api": r.api, "clients": r.clients, "seeded": r.seeded,
                  "wall_s": r.wall_s, "peak_rss_mb": r.peak_rss_mb, "peak_step": r.peak_step, "git_commit": r.git_commit,
                  "scenarios": [_scenario_json(s) for s in r.scenarios]} for r in runs],
        "scenarios": [_scenario_json(s) for s in primary.scenarios] if primary else [],
        "baseline": [_scenario_json(s) for s in baseline],
        "memory": memory, "phases_s": {k: round(v, 1) for k, v in phases.items()},
    }  # fmt: skip
