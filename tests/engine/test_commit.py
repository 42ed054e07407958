"""The commit step (``engine/commit.py``) on literal plan items and a real SQLite ledger: which merge
bases move, the positions that move with them in one transaction, and a dry run that moves nothing."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from clientify_sync.engine.commit import Commit, feed_key
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.inbox import InboxEvent
from clientify_sync.engine.model import SCHEMAS, SideRecord
from clientify_sync.engine.plan import Direction, Outcome, PlanItem, Reason, Ref, Status
from clientify_sync.engine.vocabulary import CRM, INV, Entity, JobSpec, Mode, Platform, Side

RUN = "run-1"
FM = Platform.FACTURAMA


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", FM.value, Entity.CONTACTS.value)
    yield opened
    opened.close()


def commit(ledger: Ledger, *, dry_run: bool = False) -> Commit:
    spec = JobSpec(FM, Entity.CONTACTS, RUN, Mode.MODIFIED, dry_run)
    ledger.runs.start(RUN, spec.mode.value, dry_run)
    return Commit(ledger, spec, SCHEMAS[Entity.CONTACTS], keep_plans=10)


def record(side: Side, rtype: str, rid: str, name: str) -> SideRecord:
    return SideRecord(side, rtype, rid, {"name": name}, raw={"id": rid})


def pair_items(n: int, *statuses: Status | None) -> list[PlanItem]:
    """Pair ``n``'s items: an update per status given (None: a touch), as the planner stores them."""
    inv, crm, merged = Ref("client", f"A{n}"), Ref("company", f"C{n}"), {"name": f"merged {n}"}
    items = []
    for direction, status in zip((Direction.TO_CLIENTIFY, Direction.TO_INVOICING), statuses, strict=False):
        if status is None:
            items.append(PlanItem.touch(inv, crm, merged=merged, reason=Reason.FIRST_MATCH))
            continue
        item = PlanItem.update(direction, inv, crm, fields=("name",), merged=merged, reason=None)
        ended = Outcome.UPDATED if status is Status.DONE else Outcome(status.value)
        items.append(dataclasses.replace(item, status=status, outcome=ended))
    return items


@pytest.mark.parametrize("per_chunk", [1, 2, 2000], ids=lambda n: f"chunks-of-{n}")
def test_commit_moves_the_base_of_pairs_whose_writes_all_succeeded(ledger, monkeypatch, per_chunk):
    records = [record(side, rtype, f"{prefix}{n}", f"{prefix}{n}") for n in range(1, 6)
               for side, rtype, prefix in ((Side.INVOICING, "client", "A"), (Side.CLIENTIFY, "company", "C"))]  # fmt: skip
    ledger.records.stage(records, "run-0")
    letters = [Letter(INV, "client", f"A{n}", "transient_error", None) for n in (1, 2)]
    letters.append(Letter(CRM, "company", "C3", "unconfirmed_create", None))
    ledger.write(lambda c: ledger.dead_letters.record(c, letters, "run-0"))
    created = PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", "A5"), target_type="company")
    ledger.plan.add(
        RUN,
        [
            *pair_items(1, Status.DONE, Status.DONE),  # both writes went through
            *pair_items(2, Status.DONE, Status.FAILED),  # one failed: the base stays
            *pair_items(3, None),  # a touch: nothing to write, the base moves
            *pair_items(4, Status.SKIPPED),  # a write skipped (no e-mail...): the base stays
            dataclasses.replace(
                created, status=Status.DONE, outcome=Outcome.CREATED
            ),  # linked by the applier
        ],
    )
    monkeypatch.setattr(ledger.plan, "iter", functools.partial(ledger.plan.iter, chunk=per_chunk))
    commit(ledger).run(None, None)

    links = {inv_id: ledger.links.find(inv=("client", inv_id)) for inv_id in ("A1", "A2", "A3", "A4", "A5")}
    assert {inv_id for inv_id, link in links.items() if link} == {"A1", "A3"}
    hashes = {(r.rtype, r.rid): r.content_hash for r in records}
    for n in (1, 3):
        link = links[f"A{n}"]
        assert link is not None and link["base"] == {"name": f"merged {n}"} and link["crm_id"] == f"C{n}"
        assert (link["inv_hash"], link["crm_hash"]) == (
            hashes[("client", f"A{n}")],
            hashes[("company", f"C{n}")],
        )
    [touch] = [i for i in ledger.plan.page(RUN) if i.inv_id == "A3"]
    assert (touch.status, touch.outcome, touch.reason) == (Status.DONE, Outcome.UNCHANGED, Reason.FIRST_MATCH)
    frame = ledger.dead_letters.open()
    assert list(frame["rid"]) == ["A2"]  # pairs 1 and 3 are in sync: their dead letters are closed


def test_a_dry_run_commit_moves_no_base(ledger):
    ledger.records.stage([record(Side.INVOICING, "client", "A1", "a"), record(Side.CLIENTIFY, "company", "C1", "c")],
                         "run-0")  # fmt: skip
    ledger.plan.add(RUN, pair_items(1, None))
    report = commit(ledger, dry_run=True).run("2026-01-01T00:00:00Z", "2026-05-01T00:00:00Z")
    assert list(ledger.links.pairs()) == [] and report["watermark_out"] == "2026-01-01T00:00:00Z"
    assert ledger.runs.report(RUN) == report


# -- positions ------------------------------------------------------------------------------------
def claimed_event(ledger: Ledger) -> None:
    event = InboxEvent("clientify", "contacts", "company", "20", "company.saved", "k" * 64, "0" * 64,
                       datetime(2026, 12, 1, tzinfo=UTC))  # fmt: skip
    ledger.inbox.add(event)
    ledger.inbox.claim(RUN)


def test_the_inbox_rows_and_the_feed_position_move_together(ledger):
    claimed_event(ledger)
    ledger.runs.start(RUN, Mode.MODIFIED.value, False)
    ledger.runs.save_step(RUN, "extract_invoicing", {"feed_position": "cursor-9"}, {})
    commit(ledger).run(None, None)
    assert ledger.meta.get(feed_key(ledger)) == "cursor-9"
    assert ledger.inbox.claimed_by(RUN) == []  # done


def test_a_failed_positions_transaction_moves_neither(ledger, monkeypatch):
    claimed_event(ledger)
    ledger.runs.start(RUN, Mode.MODIFIED.value, False)
    ledger.runs.save_step(RUN, "extract_invoicing", {"feed_position": "cursor-9"}, {})

    def failing(key, value, conn=None):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ledger.meta, "set", failing)
    with pytest.raises(RuntimeError):
        commit(ledger).run(None, None)
    assert len(ledger.inbox.claimed_by(RUN)) == 1  # still claimed: the retried commit finishes it
    assert ledger.runs.report(RUN) is None  # the run is not finished


def test_a_run_without_a_feed_leaves_the_stored_position(ledger):
    ledger.meta.set(feed_key(ledger), "cursor-3")
    commit(ledger).run(None, None)
    assert ledger.meta.get(feed_key(ledger)) == "cursor-3"
