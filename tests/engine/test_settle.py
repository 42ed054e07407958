"""Settling creates left unknown (``engine/settle.py``) on literal records and a real SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.pending import Create
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.settle import settle_clientify_creates, settle_invoicing_creates
from clientify_sync.engine.vocabulary import CRM, INV, Entity, Platform, Side

RUN = "run-2"
SENT = {"name": "COMERCIAL PB", "tax_id": "CPB130412IH9"}


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", Platform.FACTURAMA.value, Entity.CONTACTS.value)
    yield opened
    opened.close()


def journal(
    ledger: Ledger, target: str, target_type: str, source: tuple[str, str], sent: dict | None
) -> None:
    create = Create(target, target_type, source, "CPB130412IH9", sent)
    ledger.write(lambda conn: ledger.pending.add(conn, [create], "run-1"))


class Finder:
    """Clientify as the settle step sees it: what a search by link value, then by key, finds."""

    def __init__(self, *found: SideRecord) -> None:
        self.found = list(found)
        self.asked: list[tuple[str | None, str | None]] = []

    def find(self, link_value: str | None, key: str | None) -> list[SideRecord]:
        self.asked.append((link_value, key))
        return self.found


def company(rid: str) -> SideRecord:
    return SideRecord(
        Side.CLIENTIFY, "company", rid, {"name": "COMERCIAL PB"}, raw={"id": rid}, key="CPB130412IH9"
    )


def test_a_clientify_create_found_is_staged_and_linked_with_what_was_sent_as_base(ledger):
    journal(ledger, CRM, "company", ("client", "A"), SENT)
    finder = Finder(company("25"))
    assert settle_clientify_creates(ledger, finder, RUN) == 1

    assert finder.asked == [("A", "CPB130412IH9")]
    link = ledger.links.find(inv=("client", "A"))
    assert link is not None and (link["crm_type"], link["crm_id"]) == ("company", "25")
    assert (link["base"], link["inv_hash"], link["crm_hash"]) == (SENT, "", "")  # both sides' edits merge
    assert ledger.records.fetch(CRM, [("company", "25")])  # staged: the planner sees it this run
    assert ledger.pending.all() == []


@pytest.mark.parametrize("found", [(), (company("25"), company("26"))], ids=["none", "two"])
def test_nothing_or_two_found_links_nothing_and_leaves_it_to_matching(ledger, found):
    journal(ledger, CRM, "company", ("client", "A"), SENT)
    settle_clientify_creates(ledger, Finder(*found), RUN)
    assert list(ledger.links.pairs()) == [] and ledger.pending.all() == []


def test_an_entry_of_an_older_version_without_sent_links_nothing(ledger):
    journal(ledger, CRM, "company", ("client", "A"), None)
    settle_clientify_creates(ledger, Finder(company("25")), RUN)
    assert list(ledger.links.pairs()) == [] and ledger.pending.all() == []


def test_a_record_linked_meanwhile_keeps_its_link(ledger):
    ledger.links.save(
        ("client", "A"), ("company", "30"), base=None, inv_hash="h", crm_hash="h", run_id="run-1"
    )
    journal(ledger, CRM, "company", ("client", "A"), SENT)
    settle_clientify_creates(ledger, Finder(company("25")), RUN)
    assert [crm_id for _, _, _, crm_id in ledger.links.pairs()] == ["30"] and ledger.pending.all() == []


def test_each_side_settles_only_its_own_entries(ledger):
    journal(ledger, INV, "client", ("company", "25"), SENT)
    finder = Finder(company("25"))
    assert settle_clientify_creates(ledger, finder, RUN) == 0 and finder.asked == []
    assert len(ledger.pending.all()) == 1


def test_an_invoicing_create_is_found_in_the_listing_this_run_staged(ledger):
    journal(ledger, INV, "client", ("company", "25"), SENT)
    made = SideRecord(
        Side.INVOICING, "client", "A", {"name": "COMERCIAL PB"}, raw={"Id": "A"}, key="CPB130412IH9"
    )
    ledger.records.stage([made], RUN)
    assert settle_invoicing_creates(ledger, RUN) == 1

    link = ledger.links.find(crm=("company", "25"))
    assert link is not None and (link["inv_type"], link["inv_id"], link["base"]) == ("client", "A", SENT)
    assert ledger.pending.all() == []


def test_an_invoicing_create_staged_by_another_run_is_not_taken_for_this_one(ledger):
    journal(ledger, INV, "client", ("company", "25"), SENT)
    made = SideRecord(
        Side.INVOICING, "client", "A", {"name": "COMERCIAL PB"}, raw={"Id": "A"}, key="CPB130412IH9"
    )
    ledger.records.stage([made], "run-0")  # not in this run's listing: the create made nothing
    settle_invoicing_creates(ledger, RUN)
    assert list(ledger.links.pairs()) == [] and ledger.pending.all() == []


def test_the_link_and_the_entry_go_in_one_transaction(ledger, monkeypatch):
    journal(ledger, CRM, "company", ("client", "A"), SENT)

    def failing(ids, conn=None):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(ledger.pending, "delete", failing)
    with pytest.raises(RuntimeError):
        settle_clientify_creates(ledger, Finder(company("25")), RUN)
    assert list(ledger.links.pairs()) == []  # rolled back with the failed delete: settled again next time
    assert len(ledger.pending.all()) == 1
