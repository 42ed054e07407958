"""``PlanItems``: a run's plan, read in plan order (priority, then id), and each item's outcome."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.schema import runs
from clientify_sync.engine.plan import ConflictRow, Direction, ItemResult, Outcome, PlanItem, Ref, Status
from clientify_sync.engine.vocabulary import Side

RUN = "manual__2026-11-29T10:00:00+00:00"


def item(rid: str, **overrides: Any) -> PlanItem:
    created = PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", rid), target_type="contact")
    return dataclasses.replace(created, **overrides)


def test_iteration_is_in_priority_then_id_order_across_chunks(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2", priority=0), item("3"), item("4", priority=0), item("5")])
    chunks = list(ledger.plan.iter(RUN, chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert [i.inv_id for c in chunks for i in c] == ["2", "4", "1", "3", "5"]


def test_iteration_and_counts_filter_by_target_and_status(ledger: Ledger) -> None:
    ledger.plan.add(
        RUN,
        [item("1"), item("2", target=Side.INVOICING), item("3", status=Status.DONE, outcome=Outcome.SKIPPED)],
    )
    planned = [i.inv_id for c in ledger.plan.iter(RUN, status="planned") for i in c]
    assert planned == ["1", "2"]
    assert [i.inv_id for i in ledger.plan.page(RUN, target="invoicing")] == ["2"]
    assert ledger.plan.count(RUN) == 3
    assert ledger.plan.count(RUN, target="clientify", status="planned") == 1
    assert ledger.plan.count("another run") == 0


def test_page_continues_after_a_priority_and_id(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2", priority=0), item("3")])
    first = ledger.plan.page(RUN, limit=2)
    rest = ledger.plan.page(RUN, after=(first[-1].priority, first[-1].id or 0))
    assert [i.inv_id for i in first + rest] == ["2", "1", "3"]


def test_an_item_comes_back_as_it_went_in_with_its_id(ledger: Ledger) -> None:
    """The repository is the only codec between ``PlanItem`` and its columns: every field survives."""
    update = PlanItem.update(Direction.TO_INVOICING, Ref("client", "1"), Ref("contact", "9"), fields=("name", "email"),
                             merged={"name": "Ana", "lines": [{"sku": "A"}]}, reason="conflict").first()  # fmt: skip
    ledger.plan.add(RUN, [item("1"), update])
    updated, created = ledger.plan.page(RUN)  # priority 0 first
    assert dataclasses.replace(updated, id=None) == update and updated.id is not None
    assert (created.status, created.priority, created.fields, created.outcome) == (
        Status.PLANNED,
        1,
        (),
        None,
    )
    assert isinstance(created.target, Side) and created.target is Side.CLIENTIFY


def test_finish_and_finish_many_record_outcomes(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1"), item("2"), item("3")])
    first, second, third = ledger.plan.page(RUN)
    with ledger.begin() as conn:
        ledger.plan.finish(conn, first.id, status="done", outcome="created", result={"rid": "9001"})
        ledger.plan.finish_many(conn, [
            ItemResult(item_id=second.id, status=Status.FAILED, outcome=Outcome.FAILED, reason="validation_error"),
            ItemResult(item_id=third.id, status=Status.DONE, outcome=Outcome.UPDATED, detail="email"),
        ])  # fmt: skip
    rows = {i.inv_id: i for i in ledger.plan.page(RUN)}
    assert (rows["1"].outcome, rows["1"].result) == (Outcome.CREATED, {"rid": "9001"})
    assert (rows["2"].status, rows["2"].reason, rows["2"].detail) == (Status.FAILED, "validation_error", None)
    assert (rows["3"].outcome, rows["3"].detail) == (Outcome.UPDATED, "email")
    assert ledger.plan.count(RUN, status="planned") == 0


def test_clear_forgets_one_runs_plan_and_conflicts(ledger: Ledger) -> None:
    ledger.plan.add(RUN, [item("1")])
    ledger.plan.add("other run", [item("2")])
    conflict = ConflictRow(inv_id="1", crm_type="contact", crm_id="9", field="email", invoicing_value="a",
                           clientify_value="b", base_value=None, winner="clientify", first_match=False)  # fmt: skip
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
