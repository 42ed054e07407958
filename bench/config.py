"""Benchmark settings and the command line that sets them (defaults are the issue's sizes)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from clientify_sync.engine.vocabulary import Platform, SyncOptions
from include.sandbox.latency import PROFILE_NAMES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENGINE_LOOKBACK_S = SyncOptions().lookback.total_seconds()


@dataclass(frozen=True)
class BenchConfig:
    """Everything a run depends on; stored in the results so a number can be traced to its setup."""

    platforms: tuple[Platform, ...] = (Platform.FACTURAMA,)
    clients: int = 10_000
    products: int = 2_000
    estimates: int = 3_000
    overlap: float = 0.30
    seed: int = 7
    latency_ms: float = 20.0
    # "realistic": the sandbox's per-request latency of the real services (include/sandbox/latency.py)
    # instead of the flat latency_ms; latency_scale multiplies it.
    latency_profile: str = "none"
    latency_scale: float = 1.0
    concurrency: int = 4
    edit_fraction: float = 0.01
    lookback_s: float = ENGINE_LOOKBACK_S
    baseline_scenarios: tuple[str, ...] = ("1", "3")
    memory_sizes: tuple[int, ...] = (10_000, 100_000)
    output_dir: Path = RESULTS_DIR
    write_results: bool = True
    sequential: bool = False
    sandbox_checks: bool = True

    @property
    def options(self) -> SyncOptions:
        return SyncOptions(lookback=timedelta(seconds=self.lookback_s))


def _platforms(value: str) -> tuple[Platform, ...]:
    if value == "both":
        return (Platform.FACTURAMA, Platform.FACTURADIRECTA)
    return (Platform(value),)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--platform", default="facturama", choices=["facturama", "facturadirecta", "both"])
    parser.add_argument("--clients", type=int, default=BenchConfig.clients)
    parser.add_argument("--products", type=int, default=BenchConfig.products)
    parser.add_argument("--estimates", type=int, default=BenchConfig.estimates)
    parser.add_argument("--overlap", type=float, default=BenchConfig.overlap,
                        help="fraction of the invoicing customers Clientify already holds (unlinked)")
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument("--latency-ms", type=float, default=None,
                        help=f"flat latency per request (default {BenchConfig.latency_ms:g}; 0 with a profile)")
    parser.add_argument("--latency-profile", default="none", choices=PROFILE_NAMES,
                        help="realistic: the real services' latency (Clientify 2.4 s per 100-record page, the rest "
                             "stated guesses; docs/sandbox.md); baseline and memory check then default to off")
    parser.add_argument("--latency-scale", type=float, default=1.0,
                        help="multiply the profile's latencies (e.g. 0.1)")
    parser.add_argument("--concurrency", type=int, default=BenchConfig.concurrency,
                        help="the API clients' concurrency setting (ours and the baseline's)")
    parser.add_argument("--edit-fraction", type=float, default=BenchConfig.edit_fraction)
    parser.add_argument("--lookback-s", type=float, default=ENGINE_LOOKBACK_S,
                        help="the engine's modified-run lookback (default: the engine's own)")
    parser.add_argument("--baseline", default=None,
                        help="baseline scenarios to measure: any of 1,2,3 (empty: none; default 1,3, none with "
                             "a latency profile)")
    parser.add_argument("--memory-sizes", default=None,
                        help="client counts of the dry-run memory check (empty: skip it; default 10000,100000, "
                             "none with a latency profile)")
    parser.add_argument("--no-sandbox-checks", action="store_true",
                        help="skip the sandbox's own speed targets (bench/sandbox_checks.py, about 40 s)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument("--sequential", action="store_true",
                        help="run the memory check after the baseline instead of beside it (clean wall times "
                             "for both, about 4 more minutes)")
    args = parser.parse_args(argv)
    profiled = args.latency_profile != "none"
    if args.baseline is None:
        args.baseline = "" if profiled else ",".join(BenchConfig.baseline_scenarios)
    if args.memory_sizes is None:
        args.memory_sizes = "" if profiled else ",".join(str(n) for n in BenchConfig.memory_sizes)
    if args.latency_ms is None:
        args.latency_ms = 0.0 if profiled else BenchConfig.latency_ms
    if args.latency_scale < 0:
        parser.error("--latency-scale must not be negative")
    baseline = _csv(args.baseline)
    if set(baseline) - {"1", "2", "3"}:
        parser.error("--baseline takes scenarios among 1,2,3")
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    return BenchConfig(
        platforms=_platforms(args.platform), clients=args.clients, products=args.products,
        estimates=args.estimates, overlap=args.overlap, seed=args.seed, latency_ms=args.latency_ms,
        latency_profile=args.latency_profile, latency_scale=args.latency_scale,
        sandbox_checks=not args.no_sandbox_checks,
        concurrency=args.concurrency, edit_fraction=args.edit_fraction, lookback_s=args.lookback_s,
        baseline_scenarios=baseline, memory_sizes=tuple(sorted(int(n) for n in _csv(args.memory_sizes))),
        output_dir=args.output_dir, write_results=not args.no_write, sequential=args.sequential,
    )  # fmt: skip
