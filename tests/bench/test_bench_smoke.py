"""``make bench`` in miniature: the same code path (own sandbox, ours, the baseline, the memory probe,
the table) at 200 clients without latency, so the suite catches a broken benchmark quickly."""

from __future__ import annotations

from pathlib import Path

from bench.config import parse_args
from bench.report import COLUMNS, write_results
from bench.runner import run


def test_bench_runs_end_to_end_and_beats_the_baseline(tmp_path: Path) -> None:
    cfg = parse_args(["--clients", "200", "--products", "40", "--estimates", "60", "--latency-ms", "0",
                      "--baseline", "1,3", "--memory-sizes", "200", "--output-dir", str(tmp_path)])  # fmt: skip
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
