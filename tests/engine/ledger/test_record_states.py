"""``RecordStates``: each record's state and why, from the plans of the runs that itemised it, kept when
plans are pruned (on SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses

import pytest
import sqlalchemy as sa

from clientify_sync.engine.ledger import (
    SCHEMA_VERSION,
    Ledger,
    create_ledger_engine,
    schema_version,
    upgrade_schema,
)
from clientify_sync.engine.ledger import record_states as R
from clientify_sync.engine.plan import ConflictRow, Direction, ItemResult, Outcome, PlanItem, Ref, Status
from clientify_sync.engine.vocabulary import Side

RUN1 = "manual__2026-11-28T10:00:00+00:00"
RUN2 = "manual__2026-11-29T10:00:00+00:00"
INV, CRM = Side.INVOICING.value, Side.CLIENTIFY.value
TO_CRM, TO_INV = Direction.TO_CLIENTIFY, Direction.TO_INVOICING


def quarantined(rid: str) -> PlanItem:
    return PlanItem.settled(Outcome.QUARANTINED, TO_CRM, reason="duplicate_tax_id", inv=Ref("client", rid))


def settle(ledger: Ledger, run_id: str, results: dict[str, dict]) -> None:
    """Finish the run's items as the applier would, by the invoicing (or Clientify) id they name."""
    items = {i.inv_id or i.crm_id: i for chunk in ledger.plan.iter(run_id) for i in chunk}
    with ledger.begin() as conn:
        ledger.plan.finish_many(conn, [ItemResult(item_id=items[rid].id, **r) for rid, r in results.items()])


def states(ledger: Ledger, side: str, rtype: str, *rids: str) -> dict[str, tuple]:
    return {rid: (s.state, s.reason, s.detail, s.target, s.run_id) for rid, s in
            ledger.record_states.get(side, rtype, rids).items()}  # fmt: skip


def test_every_settled_record_gets_its_state_reason_and_detail(ledger: Ledger) -> None:
    ledger.runs.start(RUN1, "full", False)
    conflict_pair = PlanItem.update(TO_CRM, Ref("client", "101"), Ref("contact", "9001"), fields=("email",),
                                    merged={}, reason="conflict")  # fmt: skip
    ledger.plan.add(RUN1, [
        quarantined("103"),
        PlanItem.settled(Outcome.SKIPPED, TO_INV, reason="other_platform", crm=Ref("contact", "9005")),
        PlanItem.create(TO_CRM, Ref("client", "104"), target_type="contact"),
        PlanItem.create(TO_CRM, Ref("client", "105"), target_type="contact"),
        conflict_pair,
        PlanItem.update(TO_INV, Ref("client", "102"), Ref("contact", "9002"), fields=("name",), merged={}, reason=None),
        PlanItem.update(TO_CRM, Ref("client", "102"), Ref("contact", "9002"), fields=("email",), merged={}, reason=None),
        PlanItem.touch(Ref("client", "106"), Ref("contact", "9006"), merged={}, reason=None),
        PlanItem.create(TO_CRM, Ref("client", "107"), target_type="contact").deferred("product SKU-9"),
        PlanItem.create(TO_CRM, Ref("client", "108"), target_type="contact"),  # never applied: no state
    ])  # fmt: skip
    settle(ledger, RUN1, {
        "104": {"status": Status.DONE, "outcome": Outcome.CREATED, "reason": "no_match",
                "result": {"rid": "9004", "rtype": "contact", "hash": "h"}},
        "105": {"status": Status.FAILED, "outcome": Outcome.FAILED, "reason": "validation_error",
                "detail": "Email: El campo Email no es válido."},
        "101": {"status": Status.DONE, "outcome": Outcome.CONFLICT, "reason": "conflict"},
        "106": {"status": Status.DONE, "outcome": Outcome.UNCHANGED},
    })  # fmt: skip
    items = [i for chunk in ledger.plan.iter(RUN1) for i in chunk if i.inv_id == "102"]
    with ledger.begin() as conn:  # one direction of pair 102 updated, the other failed
        ledger.plan.finish_many(conn, [
            ItemResult(item_id=items[0].id, status=Status.FAILED, outcome=Outcome.FAILED, reason="api_error", detail="HTTP 500"),
            ItemResult(item_id=items[1].id, status=Status.DONE, outcome=Outcome.UPDATED),
        ])  # fmt: skip
    ledger.conflicts.add(RUN1, [
        ConflictRow(inv_id="101", crm_type="contact", crm_id="9001", field="email", invoicing_value="a@x.mx",
                    clientify_value="b@x.mx", base_value="c@x.mx", winner="clientify", first_match=False),
        ConflictRow(inv_id="101", crm_type="contact", crm_id="9001", field="phone", invoicing_value="1",
                    clientify_value="2", base_value="3", winner="invoicing", first_match=False),
    ])  # fmt: skip

    assert ledger.record_states.update_from_plan(RUN1) == 12

    assert states(ledger, INV, "client", *(str(n) for n in range(101, 109))) == {
        "101": ("conflict", "conflict", "email: clientify won; phone: invoicing won", CRM, RUN1),
        "102": ("failed", "api_error", "HTTP 500", INV, RUN1),  # the worst of the pair's two items
        "103": ("quarantined", "duplicate_tax_id", None, None, RUN1),
        "104": ("created", "no_match", None, CRM, RUN1),
        "105": ("failed", "validation_error", "Email: El campo Email no es válido.", CRM, RUN1),
        "106": ("in_sync", None, None, None, RUN1),
        "107": ("deferred", "dependency_missing", "product SKU-9", None, RUN1),
    }
    assert states(ledger, CRM, "contact", "9001", "9002", "9004", "9005", "9006") == {
        "9001": ("conflict", "conflict", "email: clientify won; phone: invoicing won", CRM, RUN1),
        "9002": ("failed", "api_error", "HTTP 500", INV, RUN1),
        "9004": ("created", "no_match", None, CRM, RUN1),  # the record the create made
        "9005": ("skipped", "other_platform", None, None, RUN1),
        "9006": ("in_sync", None, None, None, RUN1),
    }
    # Another scope of the same database is untouched.
    assert Ledger(ledger.engine, "facturadirecta", "contacts").record_states.get(INV, "client", ["103"]) == {}


def test_a_state_survives_runs_that_do_not_itemise_the_record_and_plan_pruning(ledger: Ledger) -> None:
    ledger.runs.start(RUN1, "modified", False)
    ledger.plan.add(RUN1, [quarantined("103"), quarantined("104")])
    ledger.record_states.update_from_plan(RUN1)
    ledger.runs.start(RUN2, "modified", False)  # 103 unchanged: only counted; 104 was fixed and created
    ledger.plan.add(RUN2, [PlanItem.create(TO_CRM, Ref("client", "104"), target_type="contact")])
    settle(ledger, RUN2, {"104": {"status": Status.DONE, "outcome": Outcome.CREATED, "reason": "no_match",
                                  "result": {"rid": "9104", "rtype": "contact", "hash": "h"}}})  # fmt: skip
    ledger.record_states.update_from_plan(RUN2)
    ledger.plan.prune(0)
    assert ledger.plan.count(RUN1) == ledger.plan.count(RUN2) == 0
    assert states(ledger, INV, "client", "103", "104") == {
        "103": ("quarantined", "duplicate_tax_id", None, None, RUN1),
        "104": ("created", "no_match", None, CRM, RUN2),
    }


def test_writing_again_is_idempotent_and_a_run_without_items_writes_nothing(ledger: Ledger) -> None:
    ledger.plan.add(RUN1, [quarantined("103")])
    assert ledger.record_states.update_from_plan(RUN1) == 1
    assert ledger.record_states.update_from_plan(RUN1) == 1  # a retried commit
    assert ledger.record_states.update_from_plan("a run without a plan") == 0
    with ledger.engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM cs_record_states")) == 1


def test_a_pair_split_over_batches_still_gets_its_worst_state(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches end between pairs only: the failing second item of a pair is never overwritten by its first."""
    monkeypatch.setattr(R, "_FLUSH", 2)
    pair = [
        PlanItem.update(TO_CRM, Ref("client", str(n)), Ref("contact", f"9{n}"), fields=("email",), merged={}, reason=None)
        for n in range(1, 4)
    ]  # fmt: skip
    reverse = dataclasses.replace(pair[1], direction=TO_INV, target=Side.INVOICING)
    ledger.plan.add(RUN1, [pair[0], pair[1], reverse, pair[2]])
    stored = [i for chunk in ledger.plan.iter(RUN1) for i in chunk]
    with ledger.begin() as conn:
        ledger.plan.finish_many(conn, [
            ItemResult(item_id=i.id, status=Status.DONE, outcome=Outcome.UPDATED) for i in stored if i is not stored[2]
        ] + [ItemResult(item_id=stored[2].id, status=Status.FAILED, outcome=Outcome.FAILED, reason="api_error")])  # fmt: skip
    assert ledger.record_states.update_from_plan(RUN1, chunk=1) == 6
    assert {rid: s[0] for rid, s in states(ledger, INV, "client", "1", "2", "3").items()} == {
        "1": "updated", "2": "failed", "3": "updated",
    }  # fmt: skip


def test_a_version_5_ledger_gets_the_table(ledger_url: str) -> None:
    engine = create_ledger_engine(ledger_url)
    upgrade_schema(engine)
    with engine.begin() as conn:  # as version 5 left it
        conn.execute(sa.text("DROP TABLE cs_record_states"))
        conn.execute(sa.text("UPDATE cs_meta SET value = '5' WHERE key = 'schema_version'"))
    assert schema_version(engine) == 5
    assert upgrade_schema(engine) == SCHEMA_VERSION  # 6 and the later steps
    assert sa.inspect(engine).has_table("cs_record_states")
    engine.dispose()
