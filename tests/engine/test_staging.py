"""Staging pages: unchanged API records are marked seen without being mapped again, while the mapping
that staged them is the same; anything else is mapped and staged in full."""

from __future__ import annotations

import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from clientify_sync.engine import documents, staging
from clientify_sync.engine.documents import Directory
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.mapping.estimates import FacturamaEstimateMapper
from clientify_sync.engine.mapping.facturadirecta_rest import FacturaDirectaRestContactMapper
from clientify_sync.engine.mapping.facturama import FacturamaClientMapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.staging import PageStager, id_reader, mapping_fingerprint
from clientify_sync.engine.vocabulary import Side
from tests.engine.mapping.test_facturadirecta_rest import REST_COMPANY, REST_PERSON


class CountingReads:
    """Mixed in before a real mapper: counts its ``read`` calls (``_reads`` is private: not a setting)."""

    _reads: list[int]

    @property
    def reads(self) -> int:
        return self._reads[0]

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        self._reads[0] += 1
        return super().read(rtype, raw)  # type: ignore[misc]  # the mapper it is mixed into


class CountingMapper(CountingReads, FacturamaClientMapper):
    """Facturama's client mapping, counting its reads."""

    def __init__(self) -> None:
        self._reads = [0]


class CountingEstimateMapper(CountingReads, FacturamaEstimateMapper):
    """Facturama's estimate mapping (it also reads the directory), counting its reads."""

    def __init__(self, directory: Directory) -> None:
        super().__init__(directory)
        self._reads = [0]


class CountingRestMapper(CountingReads, FacturaDirectaRestContactMapper):
    """FacturaDirecta REST's contact mapping (its id is nested: ``content.uuid``), counting its reads."""

    def __init__(self) -> None:
        super().__init__()
        self._reads = [0]


class Unversioned(CountingMapper):
    """A mapping with no ``MAPPING_VERSION`` (``None`` shadows the inherited one)."""

    MAPPING_VERSION = None  # type: ignore[assignment]


def estimate(rid: str, quantity: int = 2) -> dict[str, Any]:
    item = {"IdentificationNumber": "SKU-1", "Description": "Linea", "Quantity": quantity, "UnitPrice": 10.0,
            "Discount": 0, "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False}]}  # fmt: skip
    return {"Id": rid, "Folio": "COT-1", "Date": "2026-05-03T10:00:00", "Currency": "MXN", "Status": "Pending",
            "Receiver": {"Id": "c1", "Rfc": "URE180429TM6"}, "Items": [item]}  # fmt: skip


def directory(*links: tuple[str, str]) -> Directory:
    """A directory where customer ``c1`` (RFC URE180429TM6) and product SKU-1 are linked as given."""
    return Directory.build(
        [("client", "c1", "URE180429TM6", None)],
        [("contact", crm, "URE180429TM6", None) for crm, _ in links],
        [("client", "c1", "contact", crm) for crm, _ in links],
        [("product", "p1", "SKU-1", None)],
        [("product", product, "SKU-1", None) for _, product in links],
        [("product", "p1", "product", product) for _, product in links],
    )


def client(rid: str, name: str = "ACME SA") -> dict[str, Any]:
    return {"Id": rid, "Rfc": "URE180429TM6", "Name": name, "Email": "a@example.mx", "TaxZipCode": "01000"}


@pytest.fixture
def ledger(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "contacts")
    yield ledger
    ledger.close()


def stage(ledger: Ledger, mapper: CountingReads, run_id: str, raws: list[dict[str, Any]]) -> dict[str, int]:
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


def test_a_document_is_skipped_only_while_it_and_the_directory_are_unchanged(ledger):
    unlinked = CountingEstimateMapper(directory())
    stage(ledger, unlinked, "r1", [estimate("E1"), estimate("E2")])
    stage(ledger, unlinked, "r2", [estimate("E1"), estimate("E2", quantity=3)])
    assert unlinked.reads == 3 and seen(ledger, "r2") == {"E1", "E2"}  # E1 unchanged: not mapped again
    # The customer got linked since: every document is mapped again, changed or not.
    linked = CountingEstimateMapper(directory(("9001", "77")))
    assert mapping_fingerprint(linked) != mapping_fingerprint(unlinked)
    stage(ledger, linked, "r3", [estimate("E1"), estimate("E2", quantity=3)])
    assert linked.reads == 2
    stage(ledger, linked, "r4", [estimate("E1"), estimate("E2", quantity=3)])
    assert linked.reads == 2 and seen(ledger, "r4") == {"E1", "E2"}


def test_the_directory_fingerprint_does_not_depend_on_row_order():
    """Each task builds the directory again from the ledger, whose rows come in no promised order."""
    customers = [("client", f"c{n}", f"RFC{n}", None) for n in range(5)]
    crm = [("contact", f"90{n}", f"RFC{n}", "out_of_scope" if n % 2 else None) for n in range(5)]
    links = [("client", f"c{n}", "contact", f"90{n}") for n in range(3)]
    products = [("product", f"p{n}", f"SKU-{n}", None) for n in range(4)]
    product_links = [("product", f"p{n}", "product", f"7{n}") for n in range(4)]
    rows = [customers, crm, links, products, products, product_links]
    forward = Directory.build(*rows)
    backward = Directory.build(*(list(reversed(r)) for r in rows))
    assert forward.fingerprint() == backward.fingerprint()
    assert Directory.build(customers, crm, links[:2], products, products, product_links).fingerprint() != (
        forward.fingerprint()
    )


def test_the_directory_fingerprint_is_computed_once_when_both_extracts_ask_at_once(monkeypatch):
    """The bench's two extract jobs share one directory and ask for its fingerprint at the same moment."""
    customers = [("client", f"c{n}", f"RFC{n}", None) for n in range(20_000)]
    directory = Directory.build(customers, [], [], [], [], [])
    made = []
    real = documents.hashlib.blake2b
    monkeypatch.setattr(documents.hashlib, "blake2b", lambda **kw: made.append(1) or real(**kw))
    together = threading.Barrier(4)

    def ask(_: int) -> str:
        together.wait(timeout=30)
        return directory.fingerprint()

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = set(pool.map(ask, range(4)))
    assert len(found) == 1 and len(made) == 1


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


def test_a_nested_id_is_read_by_its_dotted_path(ledger):
    """FacturaDirecta REST records carry their id in the envelope (``identity`` ``content.uuid``)."""
    assert id_reader("content.uuid")(REST_COMPANY) == REST_COMPANY["content"]["uuid"]
    assert id_reader("Id")({"Id": 7}) == "7"
    mapper = CountingRestMapper()
    stage(ledger, mapper, "r1", [REST_COMPANY, REST_PERSON])
    edited = copy.deepcopy(REST_PERSON)
    edited["content"]["main"]["city"] = "Cádiz"
    counts = stage(ledger, mapper, "r2", [REST_COMPANY, edited])
    assert counts["unchanged"] == 1 and mapper.reads == 3  # only the edited person is mapped again
    assert seen(ledger, "r2") == {REST_COMPANY["content"]["uuid"], REST_PERSON["content"]["uuid"]}
    row = ledger.records.fetch("invoicing", [("client", REST_PERSON["content"]["uuid"])])
    assert row[("client", REST_PERSON["content"]["uuid"])]["data"]["city"] == "Cádiz"


def test_a_version_bump_maps_everything_once(ledger, monkeypatch):
    mapper = CountingMapper()
    stage(ledger, mapper, "r1", [client("A"), client("B")])
    before = mapping_fingerprint(mapper)
    monkeypatch.setattr(FacturamaClientMapper, "MAPPING_VERSION", FacturamaClientMapper.MAPPING_VERSION + 1)
    assert mapping_fingerprint(mapper) != before
    stage(ledger, mapper, "r2", [client("A"), client("B")])
    assert mapper.reads == 4  # the stored records were mapped by another version
    stage(ledger, mapper, "r3", [client("A"), client("B")])
    assert mapper.reads == 4


def test_another_version_of_a_mapping_library_maps_everything_once(ledger, monkeypatch):
    """A deployment resolves python-stdnum within a range, not the lock: its version is in the fingerprint."""
    mapper = CountingMapper()
    stage(ledger, mapper, "r1", [client("A")])
    assert "python-stdnum==" in staging._library_versions()
    monkeypatch.setattr(staging, "_library_versions", lambda: "python-stdnum==99.0")
    stage(ledger, mapper, "r2", [client("A")])
    assert mapper.reads == 2


def test_a_mapping_without_a_version_is_always_mapped(ledger):
    mapper = Unversioned()
    stage(ledger, mapper, "r1", [client("A")])
    stage(ledger, mapper, "r2", [client("A")])
    assert mapper.reads == 2 and ledger.meta.get("mapping:facturama:contacts:invoicing") is None
