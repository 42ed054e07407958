"""``Inbox``: webhook events stored once, claimed by one run only, released after a dead run, counted."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger, write_transaction
from clientify_sync.engine.ledger.inbox import CLAIMED, DONE, PENDING, InboxEvent, add, stats
from clientify_sync.engine.ledger.schema import inbox

T0 = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def event(
    rid: str, key: str | None = None, *, source: str = "clientify", entity: str = "contacts"
) -> InboxEvent:
    return InboxEvent(source, entity, "contact", rid, "contact.saved", key or f"k-{rid}", "0" * 64,
                      T0 - timedelta(seconds=5))  # fmt: skip


def statuses(ledger: Ledger) -> dict[int, tuple[str, str | None]]:
    with ledger.engine.connect() as conn:
        rows = conn.execute(sa.select(inbox.c.id, inbox.c.status, inbox.c.claimed_by_run)).all()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_a_duplicate_delivery_is_dropped_and_add_says_so(ledger: Ledger) -> None:
    assert ledger.inbox.add(event("1")) is True
    assert ledger.inbox.add(event("1")) is False
    assert ledger.inbox.add(event("1", "k-1-modified-later")) is True
    assert len(statuses(ledger)) == 2
    [row] = ledger.inbox.claim("run-1", limit=1)
    assert (row.source, row.record_type, row.external_id, row.event_type) == (
        "clientify",
        "contact",
        "1",
        "contact.saved",
    )
    assert row.source_ts == T0 - timedelta(seconds=5) and row.received_at.tzinfo is not None


def test_one_clientify_event_is_a_row_for_each_consuming_integration(ledger: Ledger) -> None:
    with write_transaction(ledger.engine) as conn:
        assert add(conn, event("7"), ["facturama", "facturadirecta"]) is True
        assert add(conn, event("7"), ["facturama", "facturadirecta"]) is False
        assert add(conn, event("7"), ["facturama"]) is False
    facturadirecta = Ledger(ledger.engine, "facturadirecta", "contacts")
    assert [r.external_id for r in ledger.inbox.claim("run-a")] == ["7"]
    assert [r.external_id for r in facturadirecta.inbox.claim("run-b")] == [
        "7"
    ]  # not taken by facturama's run
    assert ledger.scoped("products").inbox.claim("run-c") == []


def test_an_event_of_another_entity_is_refused_by_a_scoped_inbox(ledger: Ledger) -> None:
    try:
        ledger.inbox.add(event("1", entity="products"))
    except ValueError as error:
        assert "products" in str(error)
    else:
        raise AssertionError("a products event went into the contacts inbox")


def test_claim_takes_pending_rows_oldest_first_and_done_finishes_them(ledger: Ledger) -> None:
    for rid in "123":
        ledger.inbox.add(event(rid))
    first = ledger.inbox.claim("run-1", limit=2)
    assert [r.external_id for r in first] == ["1", "2"]
    assert [r.external_id for r in ledger.inbox.claim("run-2")] == ["3"]
    assert ledger.inbox.claim("run-3") == []
    ledger.inbox.done([r.id for r in first])
    assert sorted(statuses(ledger).values()) == [(CLAIMED, "run-2"), (DONE, "run-1"), (DONE, "run-1")]


def test_two_overlapping_claimers_never_get_the_same_row(ledger: Ledger) -> None:
    """A claims inside an open transaction; B claims meanwhile (PostgreSQL: at once, skipping A's rows;
    SQLite: once A commits). Neither gets a row of the other."""
    for rid in range(10):
        ledger.inbox.add(event(str(rid)))
    result: dict[str, list[int]] = {}
    with write_transaction(ledger.engine) as conn:
        result["a"] = [r.id for r in ledger.inbox.claim("run-a", limit=5, conn=conn)]
        other = threading.Thread(
            target=lambda: result.setdefault("b", [r.id for r in ledger.inbox.claim("run-b")])
        )
        other.start()
        if ledger.engine.dialect.name == "postgresql":
            other.join(timeout=30)
            assert "b" in result, "B waited for A's transaction instead of skipping its rows"
    other.join(timeout=60)
    assert len(result["a"]) == 5 and len(result["b"]) == 5
    assert not set(result["a"]) & set(result["b"])
    owners = statuses(ledger)
    assert all(owners[i] == (CLAIMED, "run-a") for i in result["a"])
    assert all(owners[i] == (CLAIMED, "run-b") for i in result["b"])


def test_many_concurrent_claimers_split_the_rows_without_overlap(ledger: Ledger) -> None:
    for rid in range(200):
        ledger.inbox.add(event(str(rid)))
    got: dict[str, list[int]] = {}
    barrier = threading.Barrier(4)

    def claimer(name: str) -> None:
        mine: list[int] = []
        barrier.wait(timeout=30)
        while batch := ledger.inbox.claim(name, limit=7):
            mine += [r.id for r in batch]
        got[name] = mine

    threads = [threading.Thread(target=claimer, args=(f"run-{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    every = [i for ids in got.values() for i in ids]
    assert len(got) == 4 and len(every) == len(set(every)) == 200
    owners = statuses(ledger)
    assert all(owners[i] == (CLAIMED, name) for name, ids in got.items() for i in ids)


def test_rows_of_a_dead_run_go_back_to_pending_after_the_timeout(ledger: Ledger) -> None:
    ledger.inbox.add(event("1"))
    [row] = ledger.inbox.claim("dead-run")
    claimed_at = datetime.now(UTC)
    assert ledger.inbox.release_stale(timedelta(minutes=30), at=claimed_at + timedelta(minutes=29)) == 0
    assert ledger.inbox.claim("next-run") == []
    assert ledger.inbox.release_stale(timedelta(minutes=30), at=claimed_at + timedelta(minutes=31)) == 1
    assert statuses(ledger)[row.id] == (PENDING, None)
    assert [r.id for r in ledger.inbox.claim("next-run")] == [row.id]


def test_waiting_counts_pending_rows_after_an_id(ledger: Ledger) -> None:
    assert tuple(ledger.inbox.waiting()) == (0, 0)
    for rid in "123":
        ledger.inbox.add(event(rid))
    ids = sorted(statuses(ledger))
    assert tuple(ledger.inbox.waiting()) == (ids[2], 3)
    assert tuple(ledger.inbox.waiting(after_id=ids[0])) == (ids[2], 2)
    assert tuple(ledger.inbox.waiting(after_id=ids[2])) == (0, 0)
    ledger.inbox.claim("run-1", limit=1)
    assert tuple(ledger.inbox.waiting()) == (ids[2], 2)  # claimed rows wake nobody


def test_stats_per_inbox(ledger: Ledger) -> None:
    with write_transaction(ledger.engine) as conn:
        add(conn, event("1"), ["facturama", "facturadirecta"], at=T0)
        add(conn, event("2"), ["facturama", "facturadirecta"], at=T0 + timedelta(seconds=30))
        add(
            conn,
            event("3", source="facturadirecta", entity="products"),
            ["facturadirecta"],
            at=T0 + timedelta(minutes=1),
        )
    ledger.inbox.claim("run-1", limit=1)
    with ledger.engine.connect() as conn:
        found = {(s.integration, s.source, s.entity): s for s in stats(conn)}
    assert set(found) == {("facturama", "clientify", "contacts"), ("facturadirecta", "clientify", "contacts"),
                          ("facturadirecta", "facturadirecta", "products")}  # fmt: skip
    mine = found["facturama", "clientify", "contacts"]
    assert (mine.received, mine.pending, mine.claimed) == (2, 1, 1)
    assert (mine.last_event_at, mine.oldest_pending_at) == (
        T0 + timedelta(seconds=30),
        T0 + timedelta(seconds=30),
    )
    theirs = found["facturadirecta", "clientify", "contacts"]
    assert (theirs.pending, theirs.oldest_pending_at) == (2, T0)


def test_purge_deletes_only_old_done_rows(ledger: Ledger) -> None:
    for rid in "12":
        ledger.inbox.add(event(rid))
    [first] = ledger.inbox.claim("run-1", limit=1)
    ledger.inbox.done(first.id)
    later = datetime.now(UTC) + timedelta(days=8)
    assert ledger.inbox.purge(timedelta(days=7), at=later) == 1
    assert list(statuses(ledger).values()) == [(PENDING, None)]
    assert ledger.inbox.add(event("1")) is True  # a duplicate that late is stored again
