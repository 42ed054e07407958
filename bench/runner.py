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

import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.config import BenchConfig, parse_args
from bench.memory import measure_memory
from bench.report import environment, markdown, results_payload, write_results
from bench.sandbox import SandboxHandle, seed_world, start_sandbox, stop_sandbox
from bench.sandbox_checks import run_checks
from bench.scenarios import ScenarioResult, run_baseline, run_ours
from bench.targets import targets
from bench.version import code_version


def _timed(phases: dict[str, float], name: str, started: float) -> None:
    phases[name] = time.perf_counter() - started


def _baseline_and_memory(
    handle: SandboxHandle, cfg: BenchConfig, phases: dict[str, float]
) -> tuple[list[ScenarioResult], list[dict[str, Any]]]:
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
    version = code_version()  # what this process imports; the memory probes record their own
    phases: dict[str, float] = {}
    handle = start_sandbox()
    print(f"bench: sandbox up ({handle.facturama_url}, {handle.clientify_url}, {handle.facturadirecta_url})",
          flush=True)  # fmt: skip
    checks = []
    try:
        if cfg.sandbox_checks:
            mark = time.perf_counter()
            checks = run_checks(handle)
            _timed(phases, "sandbox checks", mark)
        mark = time.perf_counter()
        seeded = seed_world(handle, cfg)
        _timed(phases, "seed", mark)
        print(f"bench: seeded {seeded}", flush=True)
        with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
            mark = time.perf_counter()
            ours = run_ours(handle, cfg, f"sqlite:///{tmp}/ledger.db")
            _timed(phases, "ours (scenarios + edits + bound counting)", mark)
        baseline, memory = _baseline_and_memory(handle, cfg, phases)
    finally:
        stop_sandbox(handle)
    env = environment(cfg, time.perf_counter() - started) | version | {"seeded": seeded}
    found = targets(cfg, ours, baseline, memory) + checks
    text = markdown(cfg, env, ours, baseline, memory, found, phases)
    return text, results_payload(env, ours, baseline, memory, found, phases)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_args(argv)
    text, payload = run(cfg)
    print(text, flush=True)
    if cfg.write_results:
        write_results(cfg.output_dir, payload, text)
        print(f"bench: results in {cfg.output_dir}/latest.json and latest.md", flush=True)
    return 0
