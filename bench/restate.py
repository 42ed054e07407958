"""Restate a results directory's REST wall figures with the current projection.

``python -m bench.restate bench/results/<name>`` recomputes, from its ``latest.json`` alone (each
scenario's calls per sync and step times), the stated rows "full sync wall at N req/min" of every REST
run, and rewrites them in ``latest.json`` and ``latest.md``. Why: a run's process keeps the projection it
loaded at its start; a run that began before a change to ``bench/targets.py`` states the older figures.
Measured numbers are never touched, and each restated row says so in its detail.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.report import target_rows
from bench.sandbox import Calls
from bench.scenarios import ScenarioResult
from bench.targets import Target, rate_wall_rows

RESTATED = " (restated from latest.json by bench/restate.py)"


def scenario_of(data: dict[str, Any]) -> ScenarioResult:
    """The parts of a scenario's JSON the projection reads: calls per sync, step times, wall."""
    by_entity: dict[str, Calls] = {}
    for key, nested in data.get("calls_by_entity", {}).items():
        calls = Calls()
        for api, methods in nested.items():
            for method, n in methods.items():
                calls.by_method[(api, method)] += int(n)
        by_entity[key] = calls
    total = Calls()
    for calls in by_entity.values():
        total.add(calls)
    return ScenarioResult(data["name"], data.get("mode", ""), total, {"wall_s": data["wall_s"]}, by_entity,
                          reports=data.get("reports", {}))  # fmt: skip


def restated(payload: dict[str, Any]) -> list[Target]:
    """The stated REST wall rows the payload's runs give now."""
    rows: list[Target] = []
    for run in payload.get("runs", []):
        first = next((s for s in run.get("scenarios", []) if s["name"] == "1"), None)
        if run.get("api") == "rest" and first is not None:
            rows += rate_wall_rows(run["label"], scenario_of(first))
    for row in rows:
        row.detail += RESTATED
    return rows


def _key(run: str, scenario: str, name: str) -> tuple[str, str, str]:
    return run, scenario, name.split(" (")[0]


def restate(directory: Path) -> int:
    """Rewrite the stated rows in ``directory``'s latest.json and latest.md; the number replaced."""
    json_path, md_path = directory / "latest.json", directory / "latest.md"
    payload = json.loads(json_path.read_text(encoding="utf-8"))
    new = {_key(t.run, t.scenario, t.name): t for t in restated(payload)}
    text, replaced = md_path.read_text(encoding="utf-8"), 0
    for i, old in enumerate(payload.get("targets", [])):
        row = new.get(_key(old.get("run", ""), old.get("scenario", ""), old.get("name", "")))
        if row is None:
            continue
        old_line = _md_line(Target(**{k: v for k, v in old.items() if k != "verdict"}))
        text = text.replace(old_line, _md_line(row))
        payload["targets"][i] = asdict(row) | {"verdict": row.verdict}
        replaced += 1
    json_path.write_text(
        json.dumps(payload, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
    )
    md_path.write_text(text, encoding="utf-8")
    return replaced


def _md_line(t: Target) -> str:
    return "| " + " | ".join(target_rows([t])[0]) + " |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("directory", type=Path, help="a results directory holding latest.json and latest.md")
    args = parser.parse_args(argv)
    print(f"{args.directory}: {restate(args.directory)} stated rows restated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
