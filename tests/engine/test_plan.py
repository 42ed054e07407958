"""Plan items and plan counts: constructors, the stored row and back, counts keyed by tuples."""

from __future__ import annotations

import json

import pytest

from clientify_sync.engine.plan import (
    Action,
    Direction,
    Outcome,
    PlanCounts,
    PlanItem,
    Ref,
    Status,
    pair_id,
)
from clientify_sync.engine.vocabulary import Side


def test_constructors_fill_the_pair_target_and_refs():
    create = PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", "A"), target_type="contact")
    assert (create.pair, create.target, create.inv, create.crm_type, create.crm) == (
        "inv:client:A",
        Side.CLIENTIFY,
        Ref("client", "A"),
        "contact",
        None,
    )
    back = PlanItem.create(Direction.TO_INVOICING, Ref("company", "9"), target_type="")
    assert (back.pair, back.target, back.inv, back.crm) == (
        "crm:company:9",
        Side.INVOICING,
        None,
        Ref("company", "9"),
    )
    update = PlanItem.update(
        Direction.TO_INVOICING,
        Ref("client", "A"),
        Ref("company", "9"),
        fields=("name", "city"),
        merged={},
        reason=None,
    )
    assert update.fields == ("city", "name") and update.status is Status.PLANNED
    skipped = PlanItem.settled(
        Outcome.SKIPPED, Direction.TO_CLIENTIFY, reason="invalid_tax_id", inv=Ref("client", "B")
    )
    assert (skipped.action, skipped.status, skipped.outcome) == (Action.SKIPPED, Status.DONE, Outcome.SKIPPED)
    assert skipped.summary() == "skipped client:B (invalid_tax_id)"


def test_a_pair_needs_a_record():
    with pytest.raises(ValueError, match="at least one record"):
        pair_id(None, None)


def test_items_are_built_by_keyword_only():
    """No positional construction: an invoicing id cannot land in a Clientify field by position."""
    with pytest.raises(TypeError):
        PlanItem(Action.CREATE, Direction.TO_CLIENTIFY, "inv:client:A")  # type: ignore[misc]
    item = PlanItem.create(Direction.TO_INVOICING, Ref("contact", "9"), target_type="client")
    assert (item.inv_type, item.inv_id, item.crm_type, item.crm_id) == ("client", None, "contact", "9")


def test_counts_keep_tuples_and_survive_the_step_summary():
    counts = PlanCounts(unchanged=3, matched=1)
    counts.count(
        PlanItem.settled(
            Outcome.QUARANTINED, Direction.TO_CLIENTIFY, reason="duplicate_sku", inv=Ref("p", "1")
        )
    )
    counts.count(
        PlanItem.settled(
            Outcome.QUARANTINED, Direction.TO_CLIENTIFY, reason="duplicate_sku", inv=Ref("p", "2")
        )
    )
    counts.count(PlanItem.create(Direction.TO_INVOICING, Ref("product", "9"), target_type=""))
    assert counts.settled == {(Direction.TO_CLIENTIFY, Outcome.QUARANTINED, "duplicate_sku"): 2}
    assert counts.planned == {(Action.CREATE, Side.INVOICING): 1}
    summary = json.loads(json.dumps(counts.as_summary()))
    assert summary["planned"] == {"create:invoicing": 1}
    again = PlanCounts.from_summary(summary)
    assert again.settled == counts.settled and (again.unchanged, again.matched) == (3, 1)
    assert PlanCounts.from_summary({}) == PlanCounts()
