"""One run's steps (``SyncJob``) on literal records: the API clients in memory, a real SQLite ledger.

A whole run, then one test per rule a step owns: what extract settles and reads, ``store_plan``'s one
transaction per chunk, the merge bases ``commit`` moves, the apply step's lease and the pending creates
it hands to the applier, and ``check_supported``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from clientify_sync.api.client import ProbeResult, ProbeStatus
from clientify_sync.engine import job as job_module
from clientify_sync.engine.apply import Applier
from clientify_sync.engine.job import SyncJob, check_supported, store_plan
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.database import LeaseTaken
from clientify_sync.engine.ledger.pending import Create
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.plan import ConflictRow, Direction, PlanItem, Reason, Ref
from clientify_sync.engine.reconcile import PlanChunk
from clientify_sync.engine.vocabulary import CRM, INV, Entity, JobSpec, Mode, Platform, Side, SyncOptions
from clientify_sync.errors import SystemicFailure
from tests.engine import memory_api
from tests.engine.memory_api import ClientifyApi, InvoicingApi

RUN = "run-1"
FM = Platform.FACTURAMA

# Facturama: A exists only there, B is also in Clientify (company 20, same RFC, another e-mail).
CLIENT_A = {"Id": "A", "Rfc": "CPB130412IH9", "Name": "COMERCIAL PB", "Email": "pb@example.mx", "TaxZipCode": "01000",
            "Address": {"Street": "Reforma", "Municipality": "Cuauhtémoc", "State": "CDMX", "Country": "MEX"}}  # fmt: skip
CLIENT_B = {
    "Id": "B",
    "Rfc": "ION891007V24",
    "Name": "ION SA",
    "Email": "ion@example.mx",
    "TaxZipCode": "02000",
}
# Clientify: company 20 is B; contact 10 (a person) exists only there.
COMPANY_20 = {"id": "20", "name": "ION SA", "taxpayer_identification_number": "ION891007V24",
              "emails": [{"type": 4, "email": "ventas@ion.example.mx"}]}  # fmt: skip
CONTACT_10 = {"id": "10", "first_name": "VERONICA", "last_name": "GUZMAN CASTILLO",
              "taxpayer_identification_number": "DIRV680925MN4", "emails": [{"type": 4, "email": "vero@example.mx"}],
              "addresses": [{"type": 3, "street": "Independencia 6190", "city": "Culiacán", "state": "Sinaloa",
                             "postal_code": "80499", "country": "MX"}]}  # fmt: skip


@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", FM.value, Entity.CONTACTS.value)
    yield opened
    opened.close()


@pytest.fixture
def apis() -> tuple[InvoicingApi, ClientifyApi]:
    facturama, clientify = memory_api.facturama(), memory_api.clientify()
    facturama.clients.add(CLIENT_A, CLIENT_B)
    clientify.companies.add(COMPANY_20)
    clientify.contacts.add(CONTACT_10)
    return facturama, clientify


def sync_job(
    ledger: Ledger,
    apis: tuple[InvoicingApi, ClientifyApi],
    *,
    run_id: str = RUN,
    mode: Mode = Mode.FULL,
    dry_run: bool = False,
    options: SyncOptions | None = None,
) -> SyncJob:
    facturama, clientify = apis
    spec = JobSpec(FM, Entity.CONTACTS, run_id, mode, dry_run)
    return SyncJob(spec, invoicing=facturama, clientify=clientify, ledger=ledger, options=options)


def run_steps(job: SyncJob, previous: str | None = None) -> dict[str, Any]:
    """Every step in the DAG's order, the watermark carried as the DAG carries it."""
    job.extract_invoicing()
    seen_max = job.extract_clientify(previous)["max_modified"]
    job.reconcile()
    job.apply_clientify()
    job.apply_invoicing()
    return job.commit(previous, seen_max)


def link_field(record: dict[str, Any], name: str = "in_facturama") -> str | None:
    return next((f["value"] for f in record.get("custom_fields") or [] if f["field"] == name), None)


# -- a whole run ----------------------------------------------------------------------------------
def test_a_full_run_creates_links_and_merges_then_an_idle_run_writes_nothing(ledger, apis):
    facturama, clientify = apis
    report = run_steps(sync_job(ledger, apis))

    [created_company] = [r for rid, r in clientify.companies.records.items() if rid != "20"]
    assert link_field(created_company) == "A"  # A reached Clientify, carrying its Facturama id
    [created_client] = [r for rid, r in facturama.clients.records.items() if rid not in ("A", "B")]
    assert created_client["Rfc"] == "DIRV680925MN4" and created_client["Name"] == "VERONICA GUZMAN CASTILLO"
    assert link_field(clientify.contacts.records["10"]) == created_client["Id"]  # the new id written back
    pairs = sorted((inv_id, crm_type, crm_id) for _, inv_id, crm_type, crm_id in ledger.links.pairs())
    assert pairs == sorted(
        [
            ("A", "company", created_company["id"]),
            ("B", "company", "20"),
            (created_client["Id"], "contact", "10"),
        ]
    )
    # B and company 20 matched by RFC: after the run both sides hold the same e-mail.
    assert facturama.clients.records["B"]["Email"] == clientify.companies.records["20"]["emails"][0]["email"]
    assert report["counts"]["invoicing→clientify"]["created"] == 1
    assert report["counts"]["clientify→invoicing"]["created"] == 1
    assert report["matched"] == 1 and report["failures"] == []
    assert set(ledger.runs.steps(RUN)) == {
        "extract_invoicing", "extract_clientify", "reconcile", "apply_clientify", "apply_invoicing",
    }  # fmt: skip
    assert clientify.custom_fields.calls == [("in_facturama", "contacts | contact"),
                                             ("in_facturama", "companies | company")]  # fmt: skip

    writes = (len(facturama.clients.writes()), len(clientify.writes()))
    idle = run_steps(sync_job(ledger, apis, run_id="run-2", mode=Mode.MODIFIED), report["watermark_out"])
    assert (len(facturama.clients.writes()), len(clientify.writes())) == writes  # nothing written
    assert idle["failures"] == [] and idle["watermark_out"] >= report["watermark_out"]
    assert len(clientify.custom_fields.calls) == 2  # the link field's definition is remembered


def test_a_dry_run_writes_nothing_and_keeps_the_watermark(ledger, apis):
    facturama, clientify = apis
    job = sync_job(ledger, apis, dry_run=True)
    job.extract_invoicing()
    job.extract_clientify(None)
    job.reconcile()
    assert job.apply_clientify() == {"dry_run": True, "would_write": 2}  # A's create, B's merge
    assert job.apply_invoicing()["would_write"] >= 1  # contact 10's create at least
    report = job.commit("2026-01-01T00:00:00Z", "2026-05-01T10:00:02Z")
    assert report["watermark_out"] == "2026-01-01T00:00:00Z"
    assert facturama.clients.writes() == [] and clientify.writes() == []
    assert list(ledger.links.pairs()) == [] and ledger.conflicts.list(RUN) == []


# -- extract -------------------------------------------------------------------------------------
def test_a_modified_run_reads_clientify_from_the_watermark_minus_the_lookback(ledger, apis):
    _, clientify = apis
    options = SyncOptions(lookback=timedelta(minutes=5))
    summary = sync_job(ledger, apis, mode=Mode.MODIFIED, options=options).extract_clientify(
        "2026-05-01T10:05:00Z"
    )
    assert summary["since"] == "2026-05-01T10:00:00Z"
    assert clientify.contacts.calls == clientify.companies.calls == [("list", "2026-05-01T10:00:00Z")]
    assert summary["max_modified"] == "2026-05-01T10:00:02.000000+00:00"  # the newer of the two records
    assert summary["records"] == 2 and "modified_filter_ignored" not in summary


def test_a_full_run_reads_everything_and_says_when_the_api_ignored_the_filter(ledger, apis):
    _, clientify = apis
    clientify.companies.ignored_filter = SimpleNamespace(
        message="/v1/companies/ ignored modified[gte]: full read"
    )
    summary = sync_job(ledger, apis).extract_clientify("2026-05-01T10:05:00Z")
    assert summary["since"] is None and clientify.contacts.calls == [("list", None)]
    assert summary["modified_filter_ignored"] == ["/v1/companies/ ignored modified[gte]: full read"]


def journal(ledger: Ledger, target: str, target_type: str, source: tuple[str, str], key: str) -> int:
    [entry] = ledger.write(
        lambda c: ledger.pending.add(c, [Create(target, target_type, source, key)], "run-0")
    )
    return entry


def test_extract_settles_a_create_a_crash_left_unknown_by_finding_it_first(ledger, apis):
    _, clientify = apis
    made = {"id": "25", "name": "COMERCIAL PB", "taxpayer_identification_number": "CPB130412IH9",
            "custom_fields": [{"field": "in_facturama", "value": "A"}]}  # fmt: skip
    clientify.companies.add(made)  # the POST went through, then the worker died
    journal(ledger, CRM, "company", ("client", "A"), "CPB130412IH9")
    sync_job(ledger, apis, mode=Mode.MODIFIED).extract_clientify("2026-06-01T00:00:00Z")  # after every record

    assert ("find_by_custom_field", "in_facturama", "A") in clientify.companies.calls
    assert ledger.pending.all() == []
    found = ledger.records.fetch(CRM, [("company", "25")])
    assert found[("company", "25")]["link"] == "A"  # staged: the planner now matches it, never creates it


def test_a_dry_run_leaves_pending_creates_for_a_real_run(ledger, apis):
    journal(ledger, CRM, "company", ("client", "A"), "CPB130412IH9")
    sync_job(ledger, apis, dry_run=True).extract_clientify(None)
    assert len(ledger.pending.all()) == 1


# -- store_plan -------------------------------------------------------------------------------------
def chunk(n: int) -> PlanChunk:
    """A chunk with one of everything: an item, a conflict, a pair matched now, a deferred document."""
    item = PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", f"A{n}"), target_type="company")
    deferred = PlanItem.create(Direction.TO_INVOICING, Ref("budget", f"B{n}"), target_type="estimate")
    conflict = ConflictRow(inv_id=f"C{n}", crm_type="company", crm_id=f"{n}", field="email", invoicing_value="a",
                           clientify_value="b", base_value=None, winner="clientify", first_match=False)  # fmt: skip
    return PlanChunk(
        items=[item],
        conflicts=[conflict],
        new_links=[(Ref("client", f"C{n}"), Ref("company", f"{n}"))],
        dead_letters=[deferred.deferred(f"customer X{n}")],
    )


def stored(ledger: Ledger) -> tuple[list[str | None], list[str], list[str], list[tuple[str, str, str]]]:
    items = [i.inv_id for i in ledger.plan.page(RUN)]
    conflicts = [c["inv_id"] for c in ledger.conflicts.list(RUN)]
    links = sorted(inv_id for _, inv_id, _, _ in ledger.links.pairs())
    frame = ledger.dead_letters.open()
    letters = sorted(zip(frame["side"], frame["rid"], frame["reason"], strict=True))
    return items, conflicts, links, letters


def test_store_plan_writes_a_chunk_and_what_goes_with_it_in_one_transaction(ledger, monkeypatch):
    transactions: list[object] = []
    write = ledger.write
    monkeypatch.setattr(ledger, "write", lambda work: transactions.append(work) or write(work))
    store_plan(ledger, RUN, [chunk(1), chunk(2)], dry_run=False)

    assert len(transactions) == 2  # one per chunk
    assert stored(ledger) == (
        ["A1", "A2"],
        ["C1", "C2"],
        ["C1", "C2"],
        [(CRM, "B1", Reason.DEPENDENCY_MISSING), (CRM, "B2", Reason.DEPENDENCY_MISSING)],
    )


def test_a_chunk_that_fails_half_way_leaves_nothing_of_itself(ledger, monkeypatch):
    save_many = ledger.links.save_many
    calls = iter(range(2))

    def failing_on_the_second(conn, pairs, run_id):
        if next(calls) == 1:
            raise RuntimeError("the database went away mid-chunk")
        save_many(conn, pairs, run_id)

    monkeypatch.setattr(ledger.links, "save_many", failing_on_the_second)
    with pytest.raises(RuntimeError, match="mid-chunk"):
        store_plan(ledger, RUN, [chunk(1), chunk(2)], dry_run=False)
    assert stored(ledger) == (["A1"], ["C1"], ["C1"], [(CRM, "B1", Reason.DEPENDENCY_MISSING)])


def test_a_dry_run_stores_the_plan_only(ledger):
    store_plan(ledger, RUN, [chunk(1)], dry_run=True)
    assert stored(ledger) == (["A1"], [], [], [])


# -- apply: the lease and the pending creates of an earlier try -------------------------------------
@pytest.fixture
def leases(monkeypatch) -> list[tuple[str, float]]:
    taken: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def recording(engine: Any, name: str, *, wait_s: float) -> Iterator[None]:
        taken.append((name, wait_s))
        yield

    monkeypatch.setattr(job_module, "lease", recording)
    return taken


def test_each_apply_step_holds_its_own_lease(ledger, apis, leases):
    job = sync_job(ledger, apis, options=SyncOptions(lease_wait=timedelta(seconds=42)))
    job.apply_clientify()
    job.apply_invoicing()
    assert leases == [
        ("apply:facturama:contacts:clientify", 42.0),
        ("apply:facturama:contacts:invoicing", 42.0),
    ]


def test_a_lease_still_held_elsewhere_fails_the_step_for_the_next_try(ledger, apis, monkeypatch):
    @contextlib.contextmanager
    def taken(engine: Any, name: str, *, wait_s: float) -> Iterator[None]:
        raise LeaseTaken(f"{name} is held by another process after 600 s")
        yield

    monkeypatch.setattr(job_module, "lease", taken)
    with pytest.raises(SystemicFailure, match="apply_clientify: apply:facturama:contacts:clientify is held"):
        sync_job(ledger, apis).apply_clientify()


def test_a_dry_run_apply_takes_no_lease(ledger, apis, leases):
    sync_job(ledger, apis, dry_run=True).apply_clientify()
    assert leases == []


def test_the_applier_gets_the_pending_creates_an_earlier_try_of_its_target_left(ledger, apis, monkeypatch):
    to_crm = journal(ledger, CRM, "company", ("client", "A"), "CPB130412IH9")
    journal(ledger, INV, "client", ("contact", "10"), "DIRV680925MN4")  # the other step's
    built: list[tuple[Side, dict[tuple[str, str], int]]] = []

    @dataclasses.dataclass
    class Recording(Applier):
        def __post_init__(self) -> None:
            built.append((self.target, dict(self.unsettled)))

    monkeypatch.setattr(job_module, "Applier", Recording)
    sync_job(ledger, apis).apply_clientify()
    assert built == [(Side.CLIENTIFY, {("client", "A"): to_crm})]


def test_a_retried_apply_links_what_the_killed_try_created_instead_of_creating_it_again(ledger, apis):
    facturama, clientify = apis
    job = sync_job(ledger, apis)
    job.extract_invoicing()
    job.extract_clientify(None)
    job.reconcile()
    # The first try of apply_clientify journaled A's create, POSTed it, and was killed before recording it.
    journal(ledger, CRM, "company", ("client", "A"), "CPB130412IH9")
    clientify.companies.add({"id": "25", "name": "COMERCIAL PB", "taxpayer_identification_number": "CPB130412IH9",
                             "custom_fields": [{"field": "in_facturama", "value": "A"}]})  # fmt: skip
    job.apply_clientify()

    assert [c for c in clientify.companies.calls if c[0] == "create"] == []  # found, not created again
    link = ledger.links.find(inv=("client", "A"))
    assert link is not None and (link["crm_type"], link["crm_id"]) == ("company", "25")
    assert ledger.pending.all() == []


# -- check_supported ----------------------------------------------------------------------------------
def probe(api: str, status: ProbeStatus) -> ProbeResult:
    return ProbeResult(api, "estimates", "/Estimates", "estimates", status, hint="set estimates_path")


def test_only_estimates_are_probed(ledger, apis):
    facturama, clientify = apis
    facturama.probe = clientify.probe = lambda: pytest.fail("probed")  # type: ignore[method-assign]
    assert check_supported(JobSpec(FM, Entity.CONTACTS, RUN), ledger, facturama, clientify) == []


def test_an_account_without_estimates_gets_a_finished_run_saying_why(ledger, apis):
    facturama, clientify = apis
    facturama.probes = [probe("facturama", ProbeStatus.UNSUPPORTED)]
    clientify.probes = [probe("clientify", ProbeStatus.SUPPORTED)]
    spec = JobSpec(FM, Entity.ESTIMATES, RUN, Mode.MODIFIED, dry_run=True)
    found = check_supported(spec, ledger, facturama, clientify)

    assert [f["message"] for f in found] == [
        "unsupported: facturama answered 404 on /Estimates (set estimates_path)"
    ]
    assert ledger.runs.report(RUN) == {
        "run_id": RUN, "platform": "facturama", "entity": "estimates", "mode": "modified", "dry_run": True,
        "unsupported": found,
    }  # fmt: skip


def test_a_supported_or_unknown_probe_records_nothing(ledger, apis):
    facturama, clientify = apis
    facturama.probes = [probe("facturama", ProbeStatus.UNKNOWN)]  # a 503 proves nothing
    assert check_supported(JobSpec(FM, Entity.ESTIMATES, RUN), ledger, facturama, clientify) == []
    assert ledger.runs.report(RUN) is None


# -- estimates: the directory -----------------------------------------------------------------------
def test_an_estimates_job_reads_its_customers_and_products_from_the_other_ledgers(ledger, apis):
    contacts, products = ledger.scoped("contacts"), ledger.scoped("products")
    contacts.records.stage([SideRecord(Side.INVOICING, "client", "A", {}, key="CPB130412IH9"),
                            SideRecord(Side.CLIENTIFY, "company", "25", {}, key="CPB130412IH9")], "run-0")  # fmt: skip
    products.records.stage(
        [SideRecord(Side.INVOICING, "product", "P1", {}, key="WEB-1", raw={"Id": "P1"})], "run-0"
    )
    contacts.links.save(
        ("client", "A"), ("company", "25"), base=None, inv_hash="", crm_hash="", run_id="run-0"
    )
    facturama, clientify = apis
    spec = JobSpec(FM, Entity.ESTIMATES, RUN)
    job = SyncJob(spec, invoicing=facturama, clientify=clientify, ledger=ledger.scoped("estimates"))

    assert job.directory is not None
    assert job.directory.customers == {"CPB130412IH9": {"inv": "A", "crm": ("company", "25")}}
    assert job.directory.inv_products_raw == {"WEB-1": {"Id": "P1"}}
    assert job.directory.missing({"customer": "CPB130412IH9", "lines": [{"sku": "WEB-1"}]}, "clientify") == [
        "product WEB-1"
    ]  # the customer is linked, the product is not yet
    assert job.invoicing.mapper.directory is job.directory and job.clientify.mapper.directory is job.directory
