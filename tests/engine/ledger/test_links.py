"""``Links``: the pairs of ids with their merge base, found by either id."""

from __future__ import annotations

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.links import NewLink
from clientify_sync.engine.ledger.schema import links

RUN1 = "scheduled__2026-11-28T10:00:00+00:00"
RUN2 = "scheduled__2026-11-29T10:00:00+00:00"
BASE = {"tax_id": "GODE561231GR8", "name": "Ana Godínez"}


def count_links(ledger: Ledger) -> int:
    with ledger.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(links)) or 0)


def test_a_link_saved_by_invoicing_id_then_by_clientify_id_stays_one_row(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=BASE, inv_hash="i1", crm_hash="c1", run_id=RUN1
    )
    # The Clientify contact was replaced by another one: same invoicing id, new Clientify id.
    ledger.links.save(
        ("client", "101"), ("contact", "9002"), base=BASE, inv_hash="i2", crm_hash="c2", run_id=RUN2
    )
    # The invoicing client was replaced: same Clientify id, new invoicing id.
    ledger.links.save(
        ("client", "102"), ("contact", "9002"), base=None, inv_hash="i3", crm_hash="c3", run_id=RUN2
    )
    assert count_links(ledger) == 1
    link = ledger.links.find(crm=("contact", "9002"))
    assert link is not None
    assert (link["inv_id"], link["crm_id"], link["inv_hash"], link["base"]) == ("102", "9002", "i3", None)
    assert ledger.links.find(inv=("client", "101")) is None


def test_find_by_both_ids_needs_both_to_match(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=BASE, inv_hash="i", crm_hash="c", run_id=RUN1
    )
    assert ledger.links.find(inv=("client", "101"), crm=("contact", "9001")) is not None
    assert ledger.links.find(inv=("client", "101"), crm=("contact", "9999")) is None
    assert ledger.links.find(inv=("product", "101")) is None  # the type is part of the id


def test_links_are_scoped_to_integration_and_entity(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=BASE, inv_hash="i", crm_hash="c", run_id=RUN1
    )
    other = Ledger(ledger.engine, "facturadirecta", "contacts")
    assert other.links.find(inv=("client", "101")) is None
    other.links.save(
        ("client", "101"), ("contact", "9001"), base=None, inv_hash="x", crm_hash="y", run_id=RUN1
    )
    assert count_links(ledger) == 2


def test_identities_and_bases(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=BASE, inv_hash="i1", crm_hash="c1", run_id=RUN1
    )
    ledger.links.save(
        ("client", "102"), ("contact", "9002"), base=None, inv_hash="i2", crm_hash="c2", run_id=RUN1
    )
    frame = ledger.links.identities().sort_values("inv_id")
    assert list(frame.columns) == [
        "link_id",
        "inv_type",
        "inv_id",
        "crm_type",
        "crm_id",
        "inv_hash",
        "crm_hash",
    ]
    assert list(frame["crm_id"]) == ["9001", "9002"]
    first, second = (int(i) for i in frame["link_id"])
    assert ledger.links.bases([first, second, 424242]) == {first: BASE, second: None}


def test_save_many_inserts_new_pairs_and_updates_known_ones(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=None, inv_hash="old", crm_hash="old", run_id=RUN1
    )
    pairs = [
        NewLink(("client", "101"), ("contact", "9001"), BASE, "i1", "c1"),
        NewLink(("client", "102"), ("contact", "9002"), BASE, "i2", "c2"),
        NewLink(("client", "103"), ("contact", "9003"), None, "i3", "c3"),
    ]
    with ledger.begin() as conn:
        ledger.links.save_many(conn, pairs, RUN2)
    assert count_links(ledger) == 3
    known = ledger.links.find(inv=("client", "101"))
    assert known is not None and (known["inv_hash"], known["updated_run"]) == ("i1", RUN2)
    fresh = ledger.links.find(crm=("contact", "9003"))
    assert fresh is not None and fresh["inv_id"] == "103" and fresh["updated_at"] is not None


def test_delete_forgets_one_link(ledger: Ledger) -> None:
    ledger.links.save(
        ("client", "101"), ("contact", "9001"), base=None, inv_hash="", crm_hash="", run_id=RUN1
    )
    ledger.links.save(
        ("client", "102"), ("contact", "9002"), base=None, inv_hash="", crm_hash="", run_id=RUN1
    )
    link = ledger.links.find(inv=("client", "101"))
    assert link is not None
    ledger.links.delete(link["id"])
    assert ledger.links.find(inv=("client", "101")) is None
    assert ledger.links.find(inv=("client", "102")) is not None
