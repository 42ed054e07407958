"""The run report: counts per direction and outcome, API calls, watermarks, every failure.

Built at commit from what the steps stored in the ledger, kept there (``cs_runs``), returned as a
small XCom and logged as a table.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.model import EntitySchema
from clientify_sync.engine.plan import Action, Outcome, PlanCounts, PlanItem
from clientify_sync.engine.vocabulary import JobSpec

MAX_LISTED_FAILURES = 50  # the report stays a small XCom; the ledger keeps every item


def build_report(
    ledger: Ledger,
    spec: JobSpec,
    watermark_in: str | None,
    watermark_out: str | None,
    schema: EntitySchema | None = None,
) -> dict[str, Any]:
    """The report of a run, from its step summaries and its plan items (read a chunk at a time).

    ``schema``: the one the run planned with; the report shows its conflict policy (who won which field).
    """
    steps = ledger.runs.steps(spec.run_id)
    planned = PlanCounts.from_summary(steps.get("reconcile", {}).get("summary", {}))
    outcomes: Counter[tuple[str, str, str]] = Counter()
    reasons: Counter[str] = Counter()
    for (direction, outcome, reason), count in planned.settled.items():
        outcomes[(direction.value, outcome.value, reason)] += count
    failures: list[dict[str, Any]] = []
    failures_total = 0
    rounding = Decimal("0")  # the sum of the rounding lines written, as signed amounts
    for chunk in ledger.plan.iter(spec.run_id):
        for item in chunk:
            if item.action not in (Action.CREATE, Action.UPDATE, Action.TOUCH):
                continue
            ended = item.outcome.value if item.outcome else ("planned" if spec.dry_run else "not_run")
            verb = f"would_{item.action.value}" if spec.dry_run else ended
            outcomes[(item.direction.value, verb, "")] += 1
            if item.result and item.result.get("rounding"):  # written to the cent by a rounding line
                reasons["adjusted:rounding"] += 1
                rounding += Decimal(str(item.result["rounding"]))
            if item.outcome is Outcome.SKIPPED and item.reason:  # decided when writing, e.g. missing_email
                reasons[f"skipped:{item.reason}"] += 1
            if item.outcome is Outcome.FAILED:
                failures_total += 1
                if len(failures) < MAX_LISTED_FAILURES:
                    failures.append(_failure(item))
    for (_, column, reason), count in outcomes.items():
        if reason:
            reasons[f"{column}:{reason}"] += count
    report: dict[str, Any] = {
        "run_id": spec.run_id,
        "platform": spec.platform.value,
        "entity": spec.entity.value,
        "mode": spec.mode.value,
        "dry_run": spec.dry_run,
        "watermark_in": watermark_in,
        "watermark_out": watermark_out,
        "counts": _nest(outcomes),
        "unchanged": planned.unchanged,
        "matched": planned.matched,
        "reasons": dict(reasons),
        # Documents written with a rounding line (documents.RoundingPolicy): how many, and their sum.
        "adjusted": {"rounding": reasons["adjusted:rounding"], "rounding_amount": str(rounding)},
        "conflicts": planned.conflicts,
        # Fields a first match found different (no base yet: nobody edited against anybody).
        "first_match_differences": planned.first_match_differences,
        "calls": _calls(steps),
        "failures": failures,
        "failures_total": failures_total,
        "extract": {s: steps[s]["summary"] for s in ("extract_invoicing", "extract_clientify") if s in steps},
    }
    if schema is not None:
        report["conflict_policy"] = schema.conflict_policy()
    return report


def _failure(item: PlanItem) -> dict[str, Any]:
    """A failed item, under the record it is filed under (``PlanItem.filed_under``)."""
    side, ref = item.filed_under()
    record = {"side": side.value, "type": ref.rtype if ref else None, "id": ref.rid if ref else None}
    target = item.target.value if item.target else None
    return {
        **record,
        "action": item.action.value,
        "target": target,
        "reason": item.reason,
        "detail": item.detail,
    }


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
    for side, fields in (report.get("conflict_policy") or {}).items():
        lines.append(f"  conflicts won by {side}: {', '.join(fields) or '-'}")
    for reason, count in sorted(report["reasons"].items()):
        lines.append(f"  {reason}: {count}")
    adjusted = report.get("adjusted", {})
    if adjusted.get("rounding"):
        lines.append(
            f"  rounding lines written: {adjusted['rounding']}, summing {adjusted['rounding_amount']}"
        )
    lines.append(f"{'api':<24}{'calls':>8}{'retries':>9}{'errors':>8}")
    for api, numbers in report["calls"].items():
        lines.append(f"{api:<24}{numbers['calls']:>8}{numbers['retries']:>9}{numbers['errors']:>8}")
    for failure in report["failures"]:
        lines.append(
            f"FAILED {failure['side']} {failure['type']} {failure['id']}: {failure['reason']} {failure['detail'] or ''}"
        )
    if report["failures_total"] > len(report["failures"]):
        lines.append(
            f"... and {report['failures_total'] - len(report['failures'])} more failures (see the ledger)"
        )
    return "\n".join(lines)
