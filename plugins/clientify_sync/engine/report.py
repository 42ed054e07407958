"""The run report: counts per direction and outcome, API calls, watermarks, every failure.

Built at commit from what the steps stored in the ledger, kept there (``cs_runs``), returned as a
small XCom and logged as a table.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import JobSpec

MAX_LISTED_FAILURES = 50  # the report stays a small XCom; the ledger keeps every item


def build_report(ledger: Ledger, spec: JobSpec, watermark_in: str | None, watermark_out: str | None) -> dict:
    steps = ledger.steps(spec.run_id)
    reconcile_counts: dict[str, int] = steps.get("reconcile", {}).get("summary", {}).get("counts", {})
    outcomes: Counter[tuple[str, str, str]] = Counter()
    reasons: Counter[str] = Counter()
    for key, count in reconcile_counts.items():
        if key.count("|") == 2:  # "direction|outcome|reason" for skipped / quarantined / failed
            direction, outcome, reason = key.split("|")
            outcomes[(direction, outcome, reason)] += count
    failures: list[dict[str, Any]] = []
    failures_total = 0
    for chunk in ledger.iter_plan(spec.run_id):
        for item in chunk:
            if item["action"] not in ("create", "update", "touch"):
                continue
            outcome = item["outcome"] or ("planned" if spec.dry_run else "not_run")
            verb = f"would_{item['action']}" if spec.dry_run else outcome
            outcomes[(item["direction"], verb, "")] += 1
            if outcome == "skipped" and item["reason"]:  # decided when writing, e.g. missing_email
                reasons[f"skipped:{item['reason']}"] += 1
            if outcome == "failed":
                failures_total += 1
                if len(failures) < MAX_LISTED_FAILURES:
                    failures.append(_failure(item))
    unchanged = int(reconcile_counts.get("unchanged", 0))
    for (_, outcome, reason), count in outcomes.items():
        if reason:
            reasons[f"{outcome}:{reason}"] += count
    calls = _calls(steps)
    return {
        "run_id": spec.run_id,
        "platform": spec.platform.value,
        "entity": spec.entity.value,
        "mode": spec.mode.value,
        "dry_run": spec.dry_run,
        "watermark_in": watermark_in,
        "watermark_out": watermark_out,
        "counts": _nest(outcomes),
        "unchanged": unchanged,
        "matched": int(reconcile_counts.get("matched", 0)),
        "reasons": dict(reasons),
        "conflicts": int(steps.get("reconcile", {}).get("summary", {}).get("conflicts", 0)),
        # Fields a first match found different (no base yet: nobody edited against anybody).
        "first_match_differences": int(
            steps.get("reconcile", {}).get("summary", {}).get("first_match_differences", 0)
        ),
        "calls": calls,
        "failures": failures,
        "failures_total": failures_total,
        "extract": {s: steps[s]["summary"] for s in ("extract_invoicing", "extract_clientify") if s in steps},
    }


def _failure(item: dict[str, Any]) -> dict[str, Any]:
    record = (
        {"side": "clientify", "type": item["crm_type"], "id": item["crm_id"]}
        if item["action"] == "create" and item["target"] == "invoicing"
        else {"side": "invoicing", "type": item["inv_type"], "id": item["inv_id"]}
    )
    return {**record, "action": item["action"], "target": item["target"], "reason": item["reason"],
            "detail": item["detail"]}  # fmt: skip


def _nest(outcomes: Counter[tuple[str, str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (direction, outcome, _), count in sorted(outcomes.items()):
        bucket = nested.setdefault(direction, {})
        bucket[outcome] = bucket.get(outcome, 0) + count
    return nested


def _calls(steps: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Calls and retries per API, summed over the steps of the run."""
    totals: dict[str, dict[str, int]] = {}
    for step in steps.values():
        for api, summary in step["calls"].items():
            bucket = totals.setdefault(api, {"calls": 0, "retries": 0, "errors": 0})
            for name in bucket:
                bucket[name] += int(summary.get(name, 0))
    return totals


def format_report_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table for task logs."""
    lines = [
        f"clientify-sync {report['platform']} {report['entity']} run {report['run_id']} "
        f"(mode={report['mode']}{', DRY RUN' if report['dry_run'] else ''})",
        f"watermark: {report['watermark_in'] or '-'} -> {report['watermark_out'] or '-'}",
        f"{'direction':<24}{'outcome':<16}{'records':>8}",
    ]
    for direction, outcomes in report["counts"].items():
        for outcome, count in outcomes.items():
            lines.append(f"{direction:<24}{outcome:<16}{count:>8}")
    lines.append(f"{'both':<24}{'unchanged':<16}{report['unchanged']:>8}")
    lines.append(
        f"matched by link/key: {report['matched']}   conflicts: {report['conflicts']}   "
        f"first-match differences: {report.get('first_match_differences', 0)}"
    )
    for reason, count in sorted(report["reasons"].items()):
        lines.append(f"  {reason}: {count}")
    lines.append(f"{'api':<24}{'calls':>8}{'retries':>9}{'errors':>8}")
    for api, numbers in report["calls"].items():
        lines.append(f"{api:<24}{numbers['calls']:>8}{numbers['retries']:>9}{numbers['errors']:>8}")
    for failure in report["failures"]:
        lines.append(
            f"FAILED {failure['side']} {failure['type']} {failure['id']}: {failure['reason']} {failure['detail'] or ''}"
        )
    if report["failures_total"] > len(report["failures"]):
        lines.append(f"... and {report['failures_total'] - len(report['failures'])} more failures (see the ledger)")
    return "\n".join(lines)
