"""The whole benchmark: start the sandbox, its own speed checks, ours, the baseline, the memory check,
then the results.

Ours runs alone (its wall times are targets). The memory check then runs beside the baseline, on a
second sandbox process: the baseline's time goes to the sandbox answering searches, the check's to
one engine process, and together they fit the 15-minute budget on two cores. Call counts and peak
RSS do not depend on CPU sharing; the wall times of those two phases do, and the report says so
(``--sequential`` runs them one after the other). Sandboxes are subprocesses on free loopback ports,
stopped at the end whatever happens; only 127.0.0.1 traffic, every loop bounded by the seeded sizes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.config import BenchConfig, parse_args
from bench.memory import measure_memory
from bench.report import environment, markdown, print_targets, results_payload, write_results
from bench.sandbox import SandboxHandle, start_sandbox, stop_sandbox
from bench.sandbox_checks import run_checks
from bench.scale import ScaleRun, run_scale, size_label
from bench.scenarios import ScenarioResult, run_baseline
from bench.targets import Target, call_misses, targets
from bench.version import code_version
from clientify_sync.engine.vocabulary import Platform


def _timed(phases: dict[str, float], name: str, started: float) -> None:
    phases[name] = time.perf_counter() - started


def _baseline_and_memory(
    handle: SandboxHandle, cfg: BenchConfig, phases: dict[str, float]
) -> tuple[list[ScenarioResult], list[dict[str, Any]]]:
    """The baseline (Facturama only) and the dry-run memory check, both on the first platform and size."""
    first = cfg.for_run(cfg.platforms[0], cfg.clients)
    cfg = cfg.for_run(Platform.FACTURAMA, cfg.clients) if Platform.FACTURAMA in cfg.platforms else first
    if cfg.sequential or not cfg.memory_sizes:
        mark = time.perf_counter()
        baseline = run_baseline(handle, cfg)
        _timed(phases, "baseline (reseed + scenarios + edits)", mark)
        mark = time.perf_counter()
        memory = measure_memory(handle, cfg) if cfg.memory_sizes else []
        _timed(phases, "memory check (seeds + dry runs)", mark)
        return baseline, memory
    second = start_sandbox()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="memory-check") as pool:
            mark = time.perf_counter()
            memory_future = pool.submit(measure_memory, second, cfg)
            baseline = run_baseline(handle, cfg)
            _timed(phases, "baseline (reseed + scenarios + edits; memory check beside it)", mark)
            memory = memory_future.result()
            _timed(phases, "baseline and memory check together", mark)
    finally:
        stop_sandbox(second)
    return baseline, memory


def run(cfg: BenchConfig) -> tuple[str, dict[str, Any]]:
    """Run everything; return the markdown report and the JSON payload."""
    started = time.perf_counter()
    version = code_version()  # what this process imports; the runs and memory probes record their own
    phases: dict[str, float] = {}
    handle = start_sandbox()
    print(f"bench: sandbox up ({handle.facturama_url}, {handle.clientify_url}, {handle.facturadirecta_url})",
          flush=True)  # fmt: skip
    checks: list[Target] = []
    runs: list[ScaleRun] = []
    try:
        if cfg.sandbox_checks:
            mark = time.perf_counter()
            checks = run_checks(handle)
            _timed(phases, "sandbox checks", mark)
        for platform, size in cfg.runs():
            mark = time.perf_counter()
            api = "-rest" if cfg.api_of(platform) == "rest" else ""
            print(f"bench: run {platform.value}{api} {size_label(size)} (fresh process)", flush=True)
            runs.append(run_scale(handle, cfg, platform, size))
            _timed(phases, f"run {runs[-1].label} (seed, scenarios, edits, bound counting)", mark)
        baseline, memory = _baseline_and_memory(handle, cfg, phases)
    finally:
        stop_sandbox(handle)
    env = environment(cfg, time.perf_counter() - started) | version
    found = targets(cfg, runs, baseline, memory) + checks
    text = markdown(cfg, env, runs, baseline, memory, found, phases)
    return text, results_payload(cfg, env, runs, baseline, memory, found, phases)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    started = time.perf_counter()
    text, payload = run(cfg)
    if not cfg.quick:
        print(text, flush=True)
    found = [Target(**{k: v for k, v in t.items() if k != "verdict"}) for t in payload["targets"]]
    print_targets(found)
    if cfg.write_results:
        write_results(cfg.output_dir, payload, text)
        print(f"bench: results in {cfg.output_dir}/latest.json and latest.md", flush=True)
    if cfg.quick:
        misses = call_misses(found)
        print(f"bench --quick: {len(found)} call-count targets, {len(misses)} MISS, "
              f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        return 1 if misses else 0
    return 0
