"""Benchmark settings and the command line that sets them (defaults are the issue's sizes)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

from clientify_sync.engine.vocabulary import Platform, SyncOptions
from include.sandbox.latency import PROFILE_NAMES

RESULTS_DIR = Path(__file__).resolve().parent / "results"
ENGINE_LOOKBACK_S = SyncOptions().lookback.total_seconds()


@dataclass(frozen=True)
class BenchConfig:
    """Everything a run depends on; stored in the results so a number can be traced to its setup."""

    platforms: tuple[Platform, ...] = (Platform.FACTURAMA, Platform.FACTURADIRECTA)
    # Customer counts of the scale runs: one run per (platform, size), each in a fresh process (its own
    # CPU time and peak RSS). ``clients`` is the first size: the baseline and the dry-run check use it.
    sizes: tuple[int, ...] = (10_000, 100_000)
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
    # After the 20 ms scenarios, idle (2r) and 1%-edit (3r) runs at this latency profile ("none": skip).
    # The full sync stays at the fast profile: at the realistic one it would take hours at 100k.
    modified_profile: str = "realistic"
    quick: bool = False
    baseline_scenarios: tuple[str, ...] = ("1", "2", "3")
    memory_sizes: tuple[int, ...] = (10_000, 100_000)
    output_dir: Path = RESULTS_DIR
    write_results: bool = True
    sequential: bool = False
    sandbox_checks: bool = True
    # Which FacturaDirecta API the FacturaDirecta runs use: "classic" (XML) or "rest" (extra api: rest).
    fd_api: str = "classic"
    # The REST emulator's rate limit in requests per minute (enforced: 429 past it). 0: unthrottled
    # (UNTHROTTLED_RPM), the full sync's wall at each plan's rate is then projected from its calls.
    # N > 0: the full sync only, first unthrottled, then again on fresh data at N: the projection checked.
    fd_rate: int = 0

    @property
    def options(self) -> SyncOptions:
        return SyncOptions(lookback=timedelta(seconds=self.lookback_s))

    def for_run(self, platform: Platform, size: int) -> BenchConfig:
        """The settings of one scale run: one platform, one customer count."""
        return replace(self, platforms=(platform,), clients=size, sizes=(size,))

    def api_of(self, platform: Platform) -> str:
        """The API a platform's run uses: ``rest`` for FacturaDirecta with ``--fd-api rest``."""
        return self.fd_api if platform is Platform.FACTURADIRECTA else "classic"

    def runs(self) -> list[tuple[Platform, int]]:
        """Every scale run, smaller sizes first (a 100k run may be cut short; the 10k figures come first)."""
        return [(platform, size) for size in self.sizes for platform in self.platforms]


def _platforms(value: str) -> tuple[Platform, ...]:
    if value == "both":
        return (Platform.FACTURAMA, Platform.FACTURADIRECTA)
    return (Platform(value),)


def _sizes(value: str) -> tuple[int, ...]:
    sizes = tuple(int(part) for part in _csv(value))
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("--sizes takes positive customer counts, e.g. 10000,100000")
    return sizes


def _csv(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--platform",
        default="both",
        choices=["facturama", "facturadirecta", "both"],
        help="invoicing platform(s) of the scale runs, one run per platform and size (default both)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        default=None,
        help="customer counts of the scale runs (default 10000,100000; --quick: 1000)",
    )
    parser.add_argument("--clients", type=int, default=None, help="one size only (same as --sizes N)")
    parser.add_argument(
        "--products", type=int, default=None, help=f"default {BenchConfig.products} (--quick 200)"
    )
    parser.add_argument(
        "--estimates",
        type=int,
        default=None,
        help=f"default {BenchConfig.estimates} (--quick 300); the same at every size",
    )
    parser.add_argument(
        "--modified-profile",
        default=None,
        choices=PROFILE_NAMES,
        help="latency profile of the extra idle (2r) and 1%%-edit (3r) runs after the 20 ms "
        "scenarios (default realistic; none: skip them; off with --latency-profile or --quick)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: 1,000 customers, both platforms, no latency, call-count targets only "
        "(exit 1 on a MISS), no sandbox checks, memory check or realistic runs, prints only",
    )
    parser.add_argument(
        "--overlap",
        type=float,
        default=BenchConfig.overlap,
        help="fraction of the invoicing customers Clientify already holds (unlinked)",
    )
    parser.add_argument("--seed", type=int, default=BenchConfig.seed)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help=f"flat latency per request (default {BenchConfig.latency_ms:g}; 0 with a profile)",
    )
    parser.add_argument(
        "--latency-profile",
        default="none",
        choices=PROFILE_NAMES,
        help="realistic: the real services' latency (Clientify 2.4 s per 100-record page, the rest "
        "stated guesses; docs/sandbox.md); baseline and memory check then default to off",
    )
    parser.add_argument(
        "--latency-scale", type=float, default=1.0, help="multiply the profile's latencies (e.g. 0.1)"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=BenchConfig.concurrency,
        help="the API clients' concurrency setting (ours and the baseline's)",
    )
    parser.add_argument("--edit-fraction", type=float, default=BenchConfig.edit_fraction)
    parser.add_argument(
        "--lookback-s",
        type=float,
        default=None,
        help="the engine's modified-run lookback (default: the engine's own; --quick 0)",
    )
    parser.add_argument(
        "--baseline",
        default=None,
        help="baseline scenarios to measure (Facturama, first size): any of 1,2,3 (empty: none; "
        "default 1,2,3, none with a latency profile; --quick 3)",
    )
    parser.add_argument(
        "--memory-sizes",
        default=None,
        help="client counts of the dry-run memory check (empty: skip it; default 10000,100000, "
        "none with a latency profile)",
    )
    parser.add_argument(
        "--no-sandbox-checks",
        action="store_true",
        help="skip the sandbox's own speed targets (bench/sandbox_checks.py, about 40 s)",
    )
    parser.add_argument(
        "--fd-api",
        default="classic",
        choices=["classic", "rest"],
        help="FacturaDirecta's API in its runs: classic (XML) or rest (the REST API, activity feed; "
        "unthrottled, the full sync's wall at 30 and 600 req/min projected from its calls)",
    )
    parser.add_argument(
        "--fd-rate",
        type=int,
        default=0,
        help="with --fd-api rest: check the projection for real: the full sync only, unthrottled and "
        "then on fresh data at this many requests per minute (enforced by the emulator)",
    )
    parser.add_argument("--output-dir", type=Path, default=RESULTS_DIR)
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/results alone")
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="run the memory check after the baseline instead of beside it (clean wall times "
        "for both, about 4 more minutes)",
    )
    args = parser.parse_args(argv)
    if args.sizes is not None and args.clients is not None:
        parser.error("give --sizes or --clients, not both")
    sizes = args.sizes or ((args.clients,) if args.clients is not None else None)
    if args.quick:
        sizes = sizes or (1_000,)
        args.products = 200 if args.products is None else args.products
        args.estimates = 300 if args.estimates is None else args.estimates
        args.latency_ms = 0.0 if args.latency_ms is None else args.latency_ms
        # Runs a second apart: any lookback re-reads the previous run's writes (see README, Benchmark)
        args.lookback_s = 0.0 if args.lookback_s is None else args.lookback_s
        args.baseline = "3" if args.baseline is None else args.baseline
        args.memory_sizes = "" if args.memory_sizes is None else args.memory_sizes
        args.modified_profile = args.modified_profile or "none"
        args.no_sandbox_checks = args.no_write = True
    sizes = sizes or BenchConfig.sizes
    if min(sizes) < 1:
        parser.error("sizes must be positive")
    profiled = args.latency_profile != "none"
    if args.modified_profile is None:
        args.modified_profile = "none" if profiled else BenchConfig.modified_profile
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
    if args.fd_rate < 0 or (args.fd_rate and args.fd_api != "rest"):
        parser.error("--fd-rate takes a positive rate, with --fd-api rest")
    return BenchConfig(
        platforms=_platforms(args.platform), sizes=sizes, clients=sizes[0],
        products=BenchConfig.products if args.products is None else args.products,
        estimates=BenchConfig.estimates if args.estimates is None else args.estimates,
        modified_profile=args.modified_profile, quick=args.quick, overlap=args.overlap, seed=args.seed, latency_ms=args.latency_ms,
        latency_profile=args.latency_profile, latency_scale=args.latency_scale,
        sandbox_checks=not args.no_sandbox_checks,
        concurrency=args.concurrency, edit_fraction=args.edit_fraction,
        lookback_s=ENGINE_LOOKBACK_S if args.lookback_s is None else args.lookback_s,
        baseline_scenarios=baseline, memory_sizes=tuple(sorted(int(n) for n in _csv(args.memory_sizes))),
        output_dir=args.output_dir, write_results=not args.no_write, sequential=args.sequential,
        fd_api=args.fd_api, fd_rate=args.fd_rate,
    )  # fmt: skip
