"""Benchmark settings and the command line that sets them (defaults are the issue's sizes)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from clientify_sync.engine.job import SyncOptions
from clientify_sync.engine.model import Platform

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
    concurrency: int = 4
    edit_fraction: float = 0.01
    lookback_s: float = ENGINE_LOOKBACK_S
    baseline_scenarios: tuple[str, ...] = ("1", "3")
    memory_sizes: tuple[int, ...] = (10_000, 100_000)
    output_dir: Path = RESULTS_DIR
    write_results: bool = True
    sequential: bool = False

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
    parser.add_argument("--latency-ms", type=float, default=BenchConfig.latency_ms)
    parser.add_argument("--concurrency", type=int, default=BenchConfig.concurrency,
                        help="the API clients' concurrency setting (ours and the baseline's)")
    parser.add_argument("--edit-fraction", type=float, default=BenchConfig.edit_fraction)
    parser.add_argument("--lookback-s", type=float, default=ENGINE_LOOKBACK_S,
                        help="the engine's modified-run lookback (default: the engine's own)")
    parser.add_argument("--baseline", default=",".join(BenchConfig.baseline_scenarios),
                        help="baseline scenarios to measure: any of 1,2,3 (empty: none)")
    parser.add_argument("--memory-sizes", default=",".join(str(n) for n in BenchConfig.memory_sizes),
                        help="client counts of the dry-run memory check (empty: skip it)")
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument("--sequential", action="store_true",
                        help="run the memory check after the baseline instead of beside it (clean wall times "
                             "for both, about 4 more minutes)")
    args = parser.parse_args(argv)
    baseline = _csv(args.baseline)
    if set(baseline) - {"1", "2", "3"}:
        parser.error("--baseline takes scenarios among 1,2,3")
    if args.concurrency < 1:
        parser.error("--concurrency must be >= 1")
    return BenchConfig(
        platforms=_platforms(args.platform), clients=args.clients, products=args.products,
        estimates=args.estimates, overlap=args.overlap, seed=args.seed, latency_ms=args.latency_ms,
        concurrency=args.concurrency, edit_fraction=args.edit_fraction, lookback_s=args.lookback_s,
        baseline_scenarios=baseline, memory_sizes=tuple(sorted(int(n) for n in _csv(args.memory_sizes))),
        output_dir=args.output_dir, write_results=not args.no_write, sequential=args.sequential,
    )  # fmt: skip
