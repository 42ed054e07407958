"""``PlanItems``: a run's plan, read in plan order (priority, then id), and each item's outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.schema import runs

RUN = "manual__2026-11-29T10:00:00+00:00"


def item(rid: str, **overrides: Any) -> dict[str, Any]:
    fields = {
        "pair": f"inv:client:{rid}",
        "action": "create",
        "target": "clientify",
        "direction": "invoicing_to_clientify",
        "inv_type": "client",
        "inv_id": rid,
        "crm_type": "contact",
    }
    return fields | overrides


def test_iteration_is_in_priority_then_id_order_across_chunks(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2", priority=0), item("3"), item("4", priority=0), item("5")])
    chunks = list(ledger.plan.iter(RUN, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [i["inv_id"] for c in chunks for i in c] == ["2", "4", "1", "3", "5"]


def test_iteration_and_counts_filter_by_target_and_status(ledger: Ledger) -> None:
    ledger.plan.add(
        RUN, [item("1"), item("2", target="invoicing"), item("3", status="done", outcome="skipped")]
    )
    planned = [i["inv_id"] for c in ledger.plan.iter(RUN, status="planned") for i in c]
    assert planned == ["1", "2"]
    assert [i["inv_id"] for i in ledger.plan.page(RUN, target="invoicing")] == ["2"]
    assert ledger.plan.count(RUN) == 3
    assert ledger.plan.count(RUN, target="clientify", status="planned") == 1
    assert ledger.plan.count("another run") == 0


def test_page_continues_after_a_priority_and_id(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2", priority=0), item("3")])
    first = ledger.plan.page(RUN, limit=2)
    rest = ledger.plan.page(RUN, after=(first[-1]["priority"], first[-1]["id"]))
    assert [i["inv_id"] for i in first + rest] == ["2", "1", "3"]


def test_missing_columns_are_blank_and_defaults_applied(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1")])
    [row] = ledger.plan.page(RUN)
    assert (row["status"], row["priority"], row["fields"], row["outcome"]) == ("planned", 1, None, None)
    assert (row["integration"], row["entity"], row["run_id"]) == ("facturama", "contacts", RUN)


def test_finish_and_finish_many_record_outcomes(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2"), item("3")])
    first, second, third = ledger.plan.page(RUN)
    with ledger.begin() as conn:
        ledger.plan.finish(conn, first["id"], status="done", outcome="created", result={"rid": "9001"})
        ledger.plan.finish_many(
            conn,
            [
                {
                    "item_id": second["id"],
                    "status": "failed",
                    "outcome": "failed",
                    "reason": "validation_error",
                },
                {"item_id": third["id"], "status": "done", "outcome": "updated", "detail": "email"},
            ],
        )
    rows = {i["inv_id"]: i for i in ledger.plan.page(RUN)}
    assert (rows["1"]["outcome"], rows["1"]["result"]) == ("created", {"rid": "9001"})
    assert (rows["2"]["status"], rows["2"]["reason"], rows["2"]["detail"]) == (
        "failed",
        "validation_error",
        None,
    )
    assert (rows["3"]["outcome"], rows["3"]["detail"]) == ("updated", "email")
    assert ledger.plan.count(RUN, status="planned") == 0


def test_clear_forgets_one_runs_plan_and_conflicts(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1")])
    ledger.plan.add("other run", [item("2")])
    conflict = {"inv_id": "1", "field": "email", "winner": "clientify"}
    ledger.conflicts.add(RUN, [conflict])
    ledger.conflicts.add("other run", [conflict])
    ledger.plan.clear(RUN)
    assert ledger.plan.count(RUN) == 0 and ledger.conflicts.list(RUN) == []
    assert ledger.plan.count("other run") == 1 and len(ledger.conflicts.list("other run")) == 1


def test_prune_keeps_the_plans_of_the_last_runs(ledger: Ledger) -> None:
    started = datetime(2026, 11, 1, tzinfo=UTC)
    names = [f"scheduled__2026-11-0{day}" for day in range(1, 5)]
    for day, run_id in enumerate(names):
        ledger.runs.start(run_id, "modified", False)
        with ledger.begin() as conn:  # started on consecutive days, whatever the clock says
            conn.execute(
                sa.update(runs)
                .where(runs.c.run_id == run_id)
                .values(started_at=started + timedelta(days=day))
            )
        ledger.plan.add(run_id, [item("1")])
    ledger.scoped("products").plan.add(names[0], [item("1")])  # another scope: not pruned from here
    ledger.plan.prune(keep_runs=2)
    assert [ledger.plan.count(run_id) for run_id in names] == [0, 0, 1, 1]
    assert ledger.scoped("products").plan.count(names[0]) == 1
    assert ledger.runs.report(names[0]) is None and ledger.plan.count(names[3]) == 1
