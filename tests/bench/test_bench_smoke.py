"""``make bench`` in miniature: the same code path (own sandbox, ours, the baseline, the memory probe,
the table) at 200 clients without latency, so the suite catches a broken benchmark quickly."""

from __future__ import annotations

from pathlib import Path

from bench.config import parse_args
from bench.report import COLUMNS, write_results
from bench.runner import run


def test_bench_runs_end_to_end_and_beats_the_baseline(tmp_path: Path) -> None:
    cfg = parse_args(["--clients", "200", "--products", "40", "--estimates", "60", "--latency-ms", "0",
                      "--baseline", "1,3", "--memory-sizes", "200", "--output-dir", str(tmp_path),
                      "--no-sandbox-checks"])  # fmt: skip
    text, payload = run(cfg)

    assert "| " + " | ".join(COLUMNS) + " |" in text
    scenarios = {s["name"]: s for s in payload["scenarios"]}
    assert {"1", "2", "3"} <= set(scenarios)
    assert scenarios["2"]["writes"] == 0
    assert scenarios["1"]["lower_bound"]["total"] > 0
    baseline = {s["name"]: s for s in payload["baseline"]}
    assert set(baseline) == {"1", "3"}
    for name in ("1", "3"):  # the comparison is on the entities the baseline syncs
        assert scenarios[name]["calls_contacts_products"] < baseline[name]["calls_total"]
    assert payload["memory"][0]["peak_rss_mb"] > payload["memory"][0]["baseline_rss_mb"] > 0
    assert {t["verdict"] for t in payload["targets"]} <= {"PASS", "MISS", "n/a"}

    write_results(tmp_path, payload, text)
    assert (tmp_path / "latest.json").stat().st_size > 0 and (tmp_path / "latest.md").read_text().startswith("#")


def test_latency_profile_options_turn_the_slow_phases_off_by_default() -> None:
    cfg = parse_args(["--latency-profile", "realistic"])
    assert (cfg.latency_profile, cfg.latency_scale, cfg.latency_ms) == ("realistic", 1.0, 0.0)
    assert cfg.baseline_scenarios == () and cfg.memory_sizes == ()
    explicit = parse_args(["--latency-profile", "realistic", "--baseline", "1", "--memory-sizes", "200",
                           "--latency-ms", "5"])  # fmt: skip
    assert explicit.baseline_scenarios == ("1",) and explicit.memory_sizes == (200,) and explicit.latency_ms == 5
    default = parse_args([])
    assert default.latency_profile == "none" and default.latency_ms == 20 and default.baseline_scenarios == ("1", "3")


def test_bench_with_the_realistic_profile_counts_the_added_latency(tmp_path: Path) -> None:
    """The realistic profile at 1/100 of its delays: scenario (1)'s target is built from the latency the
    sandbox says it added, not from a flat per-call figure."""
    cfg = parse_args(["--clients", "60", "--products", "10", "--estimates", "10", "--latency-profile", "realistic",
                      "--latency-scale", "0.01", "--output-dir", str(tmp_path), "--no-sandbox-checks", "--no-write"])  # fmt: skip
    text, payload = run(cfg)

    assert payload["environment"]["latency_profile"] == "realistic"
    assert payload["baseline"] == [] and payload["memory"] == []
    first = next(s for s in payload["scenarios"] if s["name"] == "1")
    assert first["added_latency_s"] > 0
    target = next(t for t in payload["targets"] if t["scenario"] == "1")
    assert "added latency" in target["name"] and target["verdict"] in ("PASS", "MISS")
    assert "realistic latency profile × 0.01" in text
