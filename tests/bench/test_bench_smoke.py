"""``make bench`` in miniature: the same code path (own sandbox, a fresh process per run, ours, the
baseline, the memory probe, the table) at 200 clients without latency, so the suite catches a broken
benchmark quickly; and the target table's PASS/MISS on literal figures (no wall-clock assertions)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from bench.bounds import Bound
from bench.config import parse_args
from bench.engine import STEPS
from bench.report import COLUMNS, SUMMARY_COLUMNS, write_results
from bench.runner import run
from bench.sandbox import Calls
from bench.scale import ScaleRun
from bench.scenarios import ScenarioResult
from bench.targets import call_misses, memory_targets, run_targets, targets
from clientify_sync.engine.vocabulary import Platform


def test_bench_runs_end_to_end_and_beats_the_baseline(tmp_path: Path) -> None:
    cfg = parse_args(["--clients", "200", "--products", "40", "--estimates", "60", "--latency-ms", "0",
                      "--platform", "facturama", "--latency-scale", "0.01", "--baseline", "1,2,3",
                      "--memory-sizes", "200", "--output-dir", str(tmp_path), "--no-sandbox-checks"])  # fmt: skip
    text, payload = run(cfg)

    assert "| " + " | ".join(COLUMNS) + " |" in text and "| " + " | ".join(SUMMARY_COLUMNS) + " |" in text
    assert [r["label"] for r in payload["runs"]] == ["facturama 200"]
    realistic = {s["name"]: s for s in payload["runs"][0]["scenarios"] if s["profile"] == "realistic"}
    assert set(realistic) == {"2r", "3r"} and realistic["2r"]["writes"] == 0 and realistic["3r"]["writes"] > 0
    assert realistic["2r"]["added_latency_s"] > 0 and realistic["2r"]["unchanged"] > 0
    scenarios = {s["name"]: s for s in payload["scenarios"]}
    assert {"1", "2", "3"} <= set(scenarios)
    assert scenarios["2"]["writes"] == 0
    assert scenarios["1"]["lower_bound"]["total"] > 0
    baseline = {s["name"]: s for s in payload["baseline"]}
    assert set(baseline) == {"1", "2", "3"}
    for name in ("1", "3"):  # the comparison is on the entities the baseline syncs
        assert scenarios[name]["calls_contacts_products"] < baseline[name]["calls_total"]
    assert payload["memory"][0]["peak_rss_mb"] > payload["memory"][0]["baseline_rss_mb"] > 0
    assert set(payload["memory"][0]["step_peak_rss_mb"]) == {"+".join(STEPS[:2]), *STEPS[2:], "commit"}
    assert set(payload["memory"][0]["step_seconds"]) == {*STEPS, "commit"}
    assert {"facturama/contacts/extract_invoicing+extract_clientify", "facturama/estimates/commit"} <= set(
        scenarios["2"]["step_peak_rss_mb"]
    )
    assert (
        payload["runs"][0]["peak_step"].split()[1]
        in scenarios[payload["runs"][0]["peak_step"].split()[0]]["step_peak_rss_mb"]
    )
    assert {t["verdict"] for t in payload["targets"]} <= {"PASS", "MISS", "n/a"}

    write_results(tmp_path, payload, text)
    assert (tmp_path / "latest.json").stat().st_size > 0 and (tmp_path / "latest.md").read_text().startswith(
        "#"
    )


def test_latency_profile_options_turn_the_slow_phases_off_by_default() -> None:
    cfg = parse_args(["--latency-profile", "realistic"])
    assert (cfg.latency_profile, cfg.latency_scale, cfg.latency_ms) == ("realistic", 1.0, 0.0)
    assert cfg.baseline_scenarios == () and cfg.memory_sizes == ()
    explicit = parse_args(["--latency-profile", "realistic", "--baseline", "1", "--memory-sizes", "200",
                           "--latency-ms", "5"])  # fmt: skip
    assert (
        explicit.baseline_scenarios == ("1",) and explicit.memory_sizes == (200,) and explicit.latency_ms == 5
    )
    default = parse_args([])
    assert default.latency_profile == "none" and default.latency_ms == 20
    assert default.baseline_scenarios == ("1", "2", "3") and default.sizes == (10_000, 100_000)
    assert (
        default.platforms == (Platform.FACTURAMA, Platform.FACTURADIRECTA)
        and default.modified_profile == "realistic"
    )
    assert [(p.value, n) for p, n in default.runs()][:2] == [
        ("facturama", 10_000),
        ("facturadirecta", 10_000),
    ]
    assert explicit.modified_profile == "none"  # the whole run is already at the profile


def test_quick_and_size_options() -> None:
    quick = parse_args(["--quick"])
    assert (
        quick.quick and quick.sizes == (1_000,) and quick.latency_ms == 0 and quick.modified_profile == "none"
    )
    assert quick.memory_sizes == () and not quick.sandbox_checks and not quick.write_results
    one = parse_args(["--clients", "5000", "--platform", "facturadirecta"])
    assert one.sizes == (5_000,) and one.clients == 5_000 and one.platforms == (Platform.FACTURADIRECTA,)
    assert parse_args(["--sizes", "10000,100000"]).sizes == (10_000, 100_000)
    with pytest.raises(SystemExit):
        parse_args(["--sizes", "1000", "--clients", "1000"])


def test_bench_with_the_realistic_profile_counts_the_added_latency(tmp_path: Path) -> None:
    """The realistic profile at 1/100 of its delays: scenario (1)'s target is built from the latency the
    sandbox says it added, not from a flat per-call figure."""
    cfg = parse_args(["--clients", "60", "--products", "10", "--estimates", "10", "--latency-profile", "realistic",
                      "--platform", "facturama",
                      "--latency-scale", "0.01", "--output-dir", str(tmp_path), "--no-sandbox-checks", "--no-write"])  # fmt: skip
    text, payload = run(cfg)

    assert payload["environment"]["latency_profile"] == "realistic"
    assert payload["baseline"] == [] and payload["memory"] == []
    first = next(s for s in payload["scenarios"] if s["name"] == "1")
    assert first["added_latency_s"] > 0
    target = next(t for t in payload["targets"] if t["scenario"] == "1")
    assert "added latency" in target["name"] and target["verdict"] in ("PASS", "MISS")
    assert "realistic latency profile × 0.01" in text


# -- the target table on literal figures -------------------------------------------------------------


def _calls(reads: int, writes: int = 0) -> Calls:
    return Calls(Counter({("facturama", "GET"): reads, **({("clientify", "PUT"): writes} if writes else {})}))


def _bound(reads: int, writes: int = 0) -> Bound:
    bound = Bound()
    bound.add("facturama", "GET", reads, "listing")
    if writes:
        bound.add("clientify", "PUT", writes, "edits")
    return bound


def _scenario(name: str, calls: Calls, bound: Bound, *, wall: float, delay: float = 0.0, cpu: float = 1.0,
              peak: float = 150.0, profile: str = "none", unchanged: int = 0) -> ScenarioResult:  # fmt: skip
    rss: dict[str, Any] = {"wall_s": wall, "peak_rss_mb": peak, "baseline_rss_mb": 100.0, "delta_rss_mb": peak - 100,
                           "cpu_s": {"bench": cpu, "sandbox": 0.5}}  # fmt: skip
    reports = {"facturama/contacts": {"unchanged": unchanged}}
    return ScenarioResult(name, "modified", calls, rss, bound=bound, reports=reports, delay_s=delay,
                          profile=profile, concurrency=4)  # fmt: skip


def _verdicts(found: list[Any]) -> dict[tuple[str, str], str]:
    return {(t.scenario, t.name.split(" (")[0]): t.verdict for t in found}


def test_targets_pass_and_miss_on_literal_figures() -> None:
    cfg = parse_args(["--lookback-s", "5"])
    scenarios = [
        _scenario(
            "1", _calls(100, 900), _bound(100, 900), wall=6.0, delay=20.0
        ),  # limit 1.5 × 20 / 4 = 7.5 s
        _scenario("2", _calls(10), _bound(10), wall=1.0, delay=0.2),
        _scenario("3", _calls(12, 11), _bound(10, 10), wall=1.0, delay=0.5),  # 23 ≤ 22? no: MISS
        # 2r: 1,000 calls, 400 s of latency → floor 100 s; wall 120 s ≤ 130 s; 10 s CPU / 200k records = 0.05 ms
        _scenario(
            "2r",
            _calls(1000),
            _bound(1000),
            wall=120.0,
            delay=400.0,
            cpu=10.0,
            profile="realistic",
            unchanged=200_000,
        ),
        # 3r: 1,100 calls vs 1,000 → 1.1×, PASS; wall 700 s > 1.3 × floor 500 s and > 600 s: MISS twice
        _scenario("3r", _calls(1000, 100), _bound(900, 100), wall=700.0, delay=2000.0, profile="realistic"),
    ]
    run = ScaleRun(Platform.FACTURAMA, 100_000, {}, scenarios)
    verdicts = _verdicts(run_targets(cfg, run, {}))

    assert verdicts[("1", "wall ≤ 1.5 × calls × latency ÷ concurrency")] == "PASS"
    assert verdicts[("2", "zero writes and reads = lower bound")] == "PASS"
    assert verdicts[("3", "calls ≤ 1.1 × lower bound")] == "MISS"
    assert (
        verdicts[("2r", "calls ≤ 1.1 × lower bound")]
        == verdicts[("3r", "calls ≤ 1.1 × lower bound")]
        == "PASS"
    )
    assert verdicts[("2r", "wall ≤ 1.3 × API floor")] == "PASS"
    assert verdicts[("3r", "wall ≤ 1.3 × API floor")] == "MISS"
    assert verdicts[("3r", "hourly run with 1% edits < 10 min")] == "MISS"
    assert verdicts[("2r", "CPU per unchanged record ≤ 0.1 ms")] == "PASS"
    floor = next(t for t in run_targets(cfg, run, {}) if t.scenario == "2r" and "floor" in t.name)
    assert (floor.measured, floor.limit, floor.unit) == (120.0, 130.0, "s")


def test_memory_targets_compare_100k_with_10k() -> None:
    cfg = parse_args([])

    def run(platform: Platform, clients: int, peak: float) -> ScaleRun:
        return ScaleRun(platform, clients, {}, [_scenario("1", _calls(1), _bound(1), wall=1.0, peak=peak)])

    runs = [run(Platform.FACTURAMA, 10_000, 180.0), run(Platform.FACTURAMA, 100_000, 220.0),
            run(Platform.FACTURADIRECTA, 10_000, 180.0), run(Platform.FACTURADIRECTA, 100_000, 320.0)]  # fmt: skip
    found = {(t.run, t.name): t for t in memory_targets(cfg, runs)}
    assert found[("facturama 100k", "peak RSS ≤ 300 MB")].verdict == "PASS"
    assert found[("facturama 100k", "peak RSS ≤ 1.25 × the 10k run's")].verdict == "PASS"  # 1.22×
    assert found[("facturadirecta 100k", "peak RSS ≤ 300 MB")].verdict == "MISS"
    assert found[("facturadirecta 100k", "peak RSS ≤ 1.25 × the 10k run's")].verdict == "MISS"  # 1.78×


def test_the_memory_target_names_the_step_that_held_the_peak() -> None:
    steps = [{"facturama/contacts/reconcile": 210.0, "facturama/estimates/reconcile": 240.0},
             {"facturama/contacts/extract_invoicing": 230.0}]  # fmt: skip
    scenarios = [_scenario(name, _calls(1), _bound(1), wall=1.0, peak=240.0) for name in ("1", "2")]
    for scenario, marks in zip(scenarios, steps, strict=True):
        scenario.rss["step_peak_rss_mb"] = marks
    run = ScaleRun(Platform.FACTURAMA, 100_000, {}, scenarios)

    assert run.peak_step == "1 facturama/estimates/reconcile"
    found = {t.name: t for t in memory_targets(parse_args([]), [run])}
    assert found["peak RSS ≤ 300 MB"].detail.endswith("reached in scenario 1 facturama/estimates/reconcile")


def test_quick_fails_only_on_call_count_misses() -> None:
    cfg = parse_args(["--quick"])
    scenarios = [_scenario("1", _calls(10), _bound(10), wall=99.0, delay=0.0),
                 _scenario("2", _calls(12), _bound(10), wall=99.0)]  # fmt: skip
    found = targets(cfg, [ScaleRun(Platform.FACTURAMA, 1_000, {}, scenarios)], [], [])
    assert {t.kind for t in found} == {"calls"}  # no timing, CPU or memory rows in --quick
    assert [t.scenario for t in call_misses(found)] == ["2", "2"]  # reads ≠ bound, and 1.2× > 1.1×
