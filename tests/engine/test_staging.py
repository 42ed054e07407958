"""Staging pages: unchanged API records are marked seen without being mapped again, while the mapping
that staged them is the same; anything else is mapped and staged in full."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.mapping.facturama import FacturamaClientMapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.staging import PageStager, mapping_fingerprint
from clientify_sync.engine.vocabulary import Side


class CountingMapper(FacturamaClientMapper):
    """Facturama's client mapping, counting its reads."""

    def __init__(self) -> None:
        self._reads = [0]  # private: not a setting of the mapping

    @property
    def reads(self) -> int:
        return self._reads[0]

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        self._reads[0] += 1
        return super().read(rtype, raw)


class DirectoryMapper(CountingMapper):
    """A mapping that depends on more than the raw record (as the estimates' do)."""

    identity: ClassVar[tuple[str | None, str] | None] = None


def client(rid: str, name: str = "ACME SA") -> dict[str, Any]:
    return {"Id": rid, "Rfc": "URE180429TM6", "Name": name, "Email": "a@example.mx", "TaxZipCode": "01000"}


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "contacts")
    yield ledger
    ledger.close()


def stage(ledger: Ledger, mapper: CountingMapper, run_id: str, raws: list[dict[str, Any]]) -> dict[str, int]:
    stager = PageStager(ledger, Side.INVOICING, mapper, run_id)
    stager.stage("", raws)
    return stager.finish()


def seen(ledger: Ledger, run_id: str) -> set[str]:
    return set(ledger.records.identities("invoicing", seen_run=run_id)["rid"])


def test_an_unchanged_record_is_marked_seen_without_being_mapped(ledger):
    mapper = CountingMapper()
    assert stage(ledger, mapper, "r1", [client("A"), client("B")]) == {
        "records": 2,
        "unchanged": 0,
        "pages": 1,
    }
    assert mapper.reads == 2  # first listing: no mapping digest stored yet, everything is read
    before = ledger.records.fetch("invoicing", [("client", "A")])[("client", "A")]

    counts = stage(ledger, mapper, "r2", [client("A"), client("B", name="ACME DOS")])
    assert counts["unchanged"] == 1 and mapper.reads == 3  # only B, which changed, is read again
    assert seen(ledger, "r2") == {"A", "B"}
    after = ledger.records.fetch("invoicing", [("client", "A"), ("client", "B")])
    assert (
        after[("client", "A")]["data"] == before["data"]
        and after[("client", "A")]["prev_hash"] == before["hash"]
    )
    assert after[("client", "B")]["data"]["name"] == "ACME DOS"
    assert (
        after[("client", "B")]["prev_hash"] != after[("client", "B")]["hash"]
    )  # changed since the last read


def test_another_mapping_reads_everything_once(ledger):
    stage(ledger, CountingMapper(), "r1", [client("A")])
    changed = CountingMapper()
    changed.note = "a new setting"  # type: ignore[attr-defined]  # e.g. another link field
    assert mapping_fingerprint(changed) != mapping_fingerprint(CountingMapper())
    stage(ledger, changed, "r2", [client("A")])
    assert changed.reads == 1  # the stored digest is another mapping's: read again
    stage(ledger, changed, "r3", [client("A")])
    assert changed.reads == 1  # and from then on skipped


def test_a_mapping_that_reads_more_than_the_record_is_always_read(ledger):
    mapper = DirectoryMapper()
    for run in ("r1", "r2", "r3"):
        stage(ledger, mapper, run, [client("A")])
    assert mapper.reads == 3 and seen(ledger, "r3") == {"A"}


def test_the_fingerprint_names_callables_not_their_addresses():
    first, second = CountingMapper(), CountingMapper()
    first.classify = second.classify = len  # type: ignore[attr-defined]
    assert mapping_fingerprint(first) == mapping_fingerprint(second)


def test_a_record_read_twice_in_one_batch_keeps_its_last_state(ledger):
    """Pages read concurrently can hold a record twice (it moved while the listing was read)."""
    mapper = CountingMapper()
    stage(ledger, mapper, "r1", [client("A")])
    stager = PageStager(ledger, Side.INVOICING, mapper, "r2")
    stager.stage("", [client("A")])  # as last read
    stager.stage("", [client("A", name="ACME NUEVO")])  # edited between the two pages
    stager.finish()
    row = ledger.records.fetch("invoicing", [("client", "A")])[("client", "A")]
    assert row["data"]["name"] == "ACME NUEVO" and row["seen_run"] == "r2"
