"""``PendingCreates``: creates written down before their POST."""

from __future__ import annotations

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.pending import Create

RUN = "manual__2026-11-29T10:00:00+00:00"


def add(ledger: Ledger, rid: str) -> int:
    with ledger.begin() as conn:
        [created] = ledger.pending.add(
            conn, [Create("clientify", "contact", ("client", rid), f"RFC-{rid}")], RUN
        )
        return created


def test_pending_creates_are_added_listed_and_deleted(ledger: Ledger) -> None:
    first, second, third = add(ledger, "101"), add(ledger, "102"), add(ledger, "103")
    assert len({first, second, third}) == 3
    [row] = [p for p in ledger.pending.all() if p.id == second]
    assert (row.source_type, row.source_id, row.natural_key, row.target) == (
        "client",
        "102",
        "RFC-102",
        "clientify",
    )
    assert row.created_at is not None
    ledger.pending.delete(first)
    with ledger.begin() as conn:
        ledger.pending.delete([second], conn=conn)
    assert [p.id for p in ledger.pending.all()] == [third]


def test_a_pending_create_rolls_back_with_its_transaction(ledger: Ledger) -> None:
    try:
        with ledger.begin() as conn:
            ledger.pending.add(conn, [Create("invoicing", "client", ("contact", "9001"), "X")], RUN)
            raise RuntimeError("the POST failed before commit")
    except RuntimeError:
        pass
    assert ledger.pending.all() == []


def test_pending_creates_are_scoped(ledger: Ledger) -> None:
    add(ledger, "101")
    assert ledger.scoped("products").pending.all() == []
    assert len(ledger.scoped("contacts").pending.all()) == 1


def test_a_group_of_creates_is_written_in_one_go_with_ids_in_order(ledger: Ledger) -> None:
    earlier = add(ledger, "100")
    creates = [Create("clientify", "contact", ("client", rid), f"RFC-{rid}") for rid in ("103", "101", "102")]
    with ledger.begin() as conn:
        ids = ledger.pending.add(conn, creates, RUN)
        assert ledger.pending.add(conn, [], RUN) == []
    assert len(set(ids)) == 3 and earlier not in ids
    by_id = {p.id: p.source_id for p in ledger.pending.all()}
    assert [by_id[i] for i in ids] == ["103", "101", "102"]  # each id is its own create's
