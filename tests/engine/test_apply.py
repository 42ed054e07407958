"""The applier on literal plan items: tiny fake sides (create, update, find) and a real SQLite ledger.

Each test stages the records an item writes from, stores the item, runs ``Applier.run`` and reads back
what the ledger holds: the item's outcome, the link, the pending-create journal and the dead letters.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from clientify_sync.engine.apply import Applier, ApplyStats
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.pending import Create
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.plan import Direction, Outcome, PlanItem, Reason, Ref, Status
from clientify_sync.engine.vocabulary import CRM, INV, Side
from clientify_sync.errors import (
    AuthenticationError,
    MissingEmailError,
    SystemicFailure,
    TotalsNotRepresentableError,
    TransientApiError,
    UnconfirmedWriteError,
    ValidationError,
)

RUN = "run-1"
RFC = "URE180429TM6"
WAIT = 10  # seconds a barrier or event may wait before the test fails (never reached when it passes)


# -- fake sides -------------------------------------------------------------------------------------
class InvoicingMapper:
    """What the applier asks of the invoicing side's mapper: the type it creates and a ``read``."""

    def rtype_for(self, kind: str | None) -> str:
        return "client"

    def read(self, rtype: str, raw: dict[str, Any]) -> SideRecord:
        return SideRecord(
            Side.INVOICING, rtype, raw["Id"], dict(raw["data"]), key=raw["key"], link=raw.get("link")
        )


Hook = Callable[[str], None]  # called with the source record's id before a write answers


@dataclasses.dataclass
class FakeInvoicing:
    """The invoicing side: creates and updates answered from what was sent, a listing for ``find``."""

    link_supported: bool = True
    listing: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    hook: Hook | None = None
    rounding: Decimal = Decimal("0")
    mapper: InvoicingMapper = dataclasses.field(default_factory=InvoicingMapper)
    created: list[tuple[str, str | None, str | None]] = dataclasses.field(default_factory=list)
    updated: list[tuple[str, frozenset[str], str | None]] = dataclasses.field(default_factory=list)
    listings_read: int = 0
    _ids: Iterator[int] = dataclasses.field(default_factory=lambda: itertools.count(1))

    def pages(self) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        self.listings_read += 1
        yield "", self.listing

    def create(
        self, rtype: str, data: dict[str, Any], link: str | None, idempotency_key: str | None = None
    ) -> SideRecord:
        self.created.append((rtype, link, idempotency_key))  # every create sent, answered or not
        if self.hook:
            self.hook(link or "")
        return SideRecord(
            Side.INVOICING, rtype, f"F{next(self._ids)}", dict(data), link=link, rounding=self.rounding
        )

    def update(
        self,
        rtype: str,
        rid: str,
        raw: dict[str, Any],
        data: dict[str, Any],
        changed: set[str],
        link: str | None,
    ) -> SideRecord:
        if self.hook:
            self.hook(rid)
        self.updated.append((rid, frozenset(changed), link))
        return SideRecord(Side.INVOICING, rtype, rid, dict(data), link=link, raw=raw, rounding=self.rounding)


@dataclasses.dataclass
class FakeClientify:
    """Clientify: creates get ids 100, 101...; ``found`` answers ``find`` by link value; ``hook`` may
    raise (an API error) or wait before a write answers."""

    hook: Hook | None = None
    found: dict[str, list[SideRecord]] = dataclasses.field(default_factory=dict)
    rounding: Decimal = Decimal("0")
    created: list[tuple[str, str | None]] = dataclasses.field(default_factory=list)
    updated: list[tuple[str, frozenset[str], str | None]] = dataclasses.field(default_factory=list)
    finds: list[tuple[str | None, str | None]] = dataclasses.field(default_factory=list)
    _ids: Iterator[int] = dataclasses.field(default_factory=lambda: itertools.count(100))
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def create(self, rtype: str, data: dict[str, Any], link: str | None) -> SideRecord:
        if self.hook:
            self.hook(link or "")
        with self._lock:
            self.created.append((rtype, link))
            rid = str(next(self._ids))
        return SideRecord(Side.CLIENTIFY, rtype, rid, dict(data), link=link, rounding=self.rounding)

    def update(
        self,
        rtype: str,
        rid: str,
        raw: dict[str, Any],
        data: dict[str, Any],
        changed: set[str],
        link: str | None,
    ) -> SideRecord:
        if self.hook:
            self.hook(rid)
        with self._lock:
            self.updated.append((rid, frozenset(changed), link))
        return SideRecord(Side.CLIENTIFY, rtype, rid, dict(data), link=link, raw=raw, rounding=self.rounding)

    def find(self, link_value: str | None, key: str | None) -> list[SideRecord]:
        self.finds.append((link_value, key))
        return self.found.get(link_value or "", [])


# -- ledger helpers ---------------------------------------------------------------------------------
@pytest.fixture
def ledger(tmp_path) -> Iterator[Ledger]:
    opened = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "contacts")
    yield opened
    opened.close()


def inv(rid: str, key: str = RFC, *, rtype: str = "client", link: str | None = None) -> SideRecord:
    data = {"tax_id": key, "name": f"Cliente {rid}"}
    return SideRecord(
        Side.INVOICING, rtype, rid, data, key=key, link=link, raw={"Id": rid, "data": data, "key": key}
    )


def crm(rid: str, key: str = RFC, *, rtype: str = "company", link: str | None = None) -> SideRecord:
    data = {"tax_id": key, "name": f"Empresa {rid}"}
    return SideRecord(Side.CLIENTIFY, rtype, rid, data, key=key, link=link, raw={"id": rid})


def to_clientify(rid: str) -> PlanItem:
    return PlanItem.create(Direction.TO_CLIENTIFY, Ref("client", rid), target_type="company")


def to_invoicing(rid: str) -> PlanItem:
    return PlanItem.create(Direction.TO_INVOICING, Ref("company", rid), target_type="client")


def store(ledger: Ledger, records: list[SideRecord], *items: PlanItem) -> list[PlanItem]:
    """Stage ``records`` and store ``items``; return the items as stored (with their ids)."""
    ledger.records.stage(records, "run-0")
    ledger.plan.add(RUN, list(items))
    return ledger.plan.page(RUN)


def outcome(ledger: Ledger, item: PlanItem) -> PlanItem:
    [found] = [i for i in ledger.plan.page(RUN) if i.id == item.id]
    return found


def pending(ledger: Ledger) -> list[tuple[str, str, str, str, str]]:
    return sorted(
        (e.target, e.target_type, e.source_type, e.source_id, e.natural_key) for e in ledger.pending.all()
    )


def dead(ledger: Ledger) -> list[tuple[str, str, str, str]]:
    frame = ledger.dead_letters.open()
    return sorted(zip(frame["side"], frame["rtype"], frame["rid"], frame["reason"], strict=True))


def journal(ledger: Ledger, source: tuple[str, str], target: str = CRM, target_type: str = "company") -> int:
    """A pending create an earlier try of the step left behind; its id."""
    [entry] = ledger.write(
        lambda c: ledger.pending.add(c, [Create(target, target_type, source, RFC)], "run-0")
    )
    return entry


# -- creates --------------------------------------------------------------------------------------
def test_a_create_towards_clientify_links_both_sides_and_settles_its_journal_entry(ledger):
    invoicing, clientify = FakeInvoicing(link_supported=True), FakeClientify()
    [item] = store(ledger, [inv("A")], to_clientify("A"))
    applier = Applier(ledger, RUN, Side.CLIENTIFY, invoicing, clientify, concurrency=2)
    stats = applier.run([item])

    assert clientify.created == [("company", "A")]  # the invoicing id travels as the link field
    assert invoicing.updated == [("A", frozenset(), "100")]  # and the new id is written back
    assert clientify.finds == []  # nothing to settle: no earlier try journaled it
    done = outcome(ledger, item)
    assert (done.status, done.outcome, done.reason) == (Status.DONE, Outcome.CREATED, Reason.NO_MATCH)
    assert done.result is not None and (done.result["rtype"], done.result["rid"]) == ("company", "100")
    link = ledger.links.find(inv=("client", "A"))
    assert link is not None and (link["crm_type"], link["crm_id"]) == ("company", "100")
    assert link["base"] == inv("A").data
    written_back = SideRecord(Side.INVOICING, "client", "A", inv("A").data, link="100")
    assert (link["inv_hash"], link["crm_hash"]) == (written_back.content_hash, done.result["hash"])
    staged = ledger.records.fetch(CRM, [("company", "100")]) | ledger.records.fetch(INV, [("client", "A")])
    assert staged[("client", "A")]["link"] == "100" and ("company", "100") in staged
    assert pending(ledger) == [] and stats.outcomes == {"created": 1}


def test_without_a_link_on_the_invoicing_side_nothing_is_written_back(ledger):
    invoicing, clientify = FakeInvoicing(link_supported=False), FakeClientify()
    [item] = store(ledger, [inv("A")], to_clientify("A"))
    Applier(ledger, RUN, Side.CLIENTIFY, invoicing, clientify).run([item])
    assert invoicing.updated == [] and clientify.created == [("company", "A")]
    link = ledger.links.find(crm=("company", "100"))
    assert link is not None and link["inv_hash"] == inv("A").content_hash  # the source as staged


def test_a_create_towards_the_invoicing_side_sends_the_items_idempotency_key(ledger):
    invoicing, clientify = FakeInvoicing(), FakeClientify()
    [item] = store(ledger, [crm("9")], to_invoicing("9"))
    applier = Applier(ledger, RUN, Side.INVOICING, invoicing, clientify)
    applier.run([item])
    assert invoicing.created == [("client", "9", applier._idempotency_key(item))]
    assert clientify.updated == [("9", frozenset(), "F1")]  # Clientify's record gets the new link
    link = ledger.links.find(crm=("company", "9"))
    assert link is not None and (link["inv_type"], link["inv_id"]) == ("client", "F1")
    assert outcome(ledger, item).outcome is Outcome.CREATED


def test_the_pending_create_is_journaled_before_the_post(ledger):
    seen: list[list[tuple[str, str, str, str, str]]] = []
    clientify = FakeClientify(hook=lambda _source: seen.append(pending(ledger)))
    [item] = store(ledger, [inv("A")], to_clientify("A"))
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify).run([item])
    assert seen == [[(CRM, "company", "client", "A", RFC)]]  # committed when the POST went out
    assert pending(ledger) == []  # and settled with the link


def test_the_idempotency_key_is_one_per_item_and_run(ledger):
    item = dataclasses.replace(to_invoicing("9"), id=7)
    sides = (FakeInvoicing(), FakeClientify())
    key = Applier(ledger, RUN, Side.INVOICING, *sides)._idempotency_key(item)
    assert re.fullmatch(r"cs-[0-9a-f]{40}", key)
    assert Applier(ledger, RUN, Side.INVOICING, *sides)._idempotency_key(dataclasses.replace(item)) == key
    assert Applier(ledger, "run-2", Side.INVOICING, *sides)._idempotency_key(item) != key
    assert (
        Applier(ledger, RUN, Side.INVOICING, *sides)._idempotency_key(dataclasses.replace(item, id=8)) != key
    )
    other_scope = ledger.scoped("products")
    assert Applier(other_scope, RUN, Side.INVOICING, *sides)._idempotency_key(item) != key


def test_a_retried_create_sends_the_same_key_as_the_try_before(ledger):
    failing = iter([TransientApiError("facturama", "POST", "/Client", 503)])

    def first_try_fails(_source: str) -> None:
        error = next(failing, None)
        if error:
            raise error

    invoicing = FakeInvoicing(hook=first_try_fails)
    [item] = store(ledger, [crm("9")], to_invoicing("9"))
    for _ in range(2):  # the step, then Airflow's retry of it in the same run
        Applier(ledger, RUN, Side.INVOICING, invoicing, FakeClientify()).run([item])
    [first, second] = [key for _, _, key in invoicing.created]
    assert first == second is not None
    assert outcome(ledger, item).outcome is Outcome.CREATED


# -- outcomes per error type ----------------------------------------------------------------------
API = ("clientify", "POST", "/v1/companies/")


@pytest.mark.parametrize(
    ("error", "status", "reason", "dead_letter", "journal_kept", "transient"),
    [
        pytest.param(
            TransientApiError(*API, 503), Status.FAILED, "transient_error", True, False, True, id="transient"
        ),
        pytest.param(
            ValidationError(*API, 400, field_errors={"name": ["too long"]}),
            Status.FAILED,
            "validation_error",
            True,
            False,
            False,
            id="validation",
        ),
        pytest.param(
            UnconfirmedWriteError(*API, natural_key=RFC, reason="ReadTimeout"),
            Status.FAILED,
            "unconfirmed_create",
            True,
            True,
            True,
            id="unconfirmed",
        ),
        pytest.param(
            MissingEmailError("no e-mail"),
            Status.SKIPPED,
            "missing_email",
            False,
            False,
            False,
            id="skipped-record",
        ),
        pytest.param(
            TotalsNotRepresentableError("0.02 apart"),
            Status.FAILED,
            "totals_not_representable",
            True,
            False,
            False,
            id="failed-record",
        ),
    ],
)
def test_each_error_type_ends_the_item_its_own_way(
    ledger, error, status, reason, dead_letter, journal_kept, transient
):
    def fail(_source: str) -> None:
        raise error

    [item] = store(ledger, [inv("A")], to_clientify("A"))
    applier = Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), FakeClientify(hook=fail))
    stats = applier.run([item])

    ended = outcome(ledger, item)
    assert (ended.status, ended.outcome, ended.reason) == (status, Outcome(status.value), reason)
    assert dead(ledger) == ([(INV, "client", "A", reason)] if dead_letter else [])
    assert pending(ledger) == ([(CRM, "company", "client", "A", RFC)] if journal_kept else [])
    assert applier.consecutive_transient == (1 if transient else 0)
    assert ledger.links.find(inv=("client", "A")) is None
    listed = stats.skips if status is Status.SKIPPED else stats.failures
    assert [(f["side"], f["rtype"], f["id"], f["reason"]) for f in listed] == [(INV, "client", "A", reason)]


def test_the_apis_field_messages_are_the_failures_detail(ledger):
    def fail(_source: str) -> None:
        raise ValidationError(
            *API, 400, detail="bad", field_errors={"name": ["too long"], "email": ["invalid"]}
        )

    [item] = store(ledger, [inv("A")], to_clientify("A"))
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), FakeClientify(hook=fail)).run([item])
    assert outcome(ledger, item).detail == "name: too long; email: invalid"


@pytest.mark.parametrize(
    "error",
    [AuthenticationError("clientify", "POST", "/v1/companies/", 401), RuntimeError("a bug")],
    ids=["bad-credentials", "a-bug"],
)
def test_bad_credentials_or_a_bug_stop_the_run_and_leave_the_item_and_its_journal_entry(ledger, error):
    def fail(_source: str) -> None:
        raise error

    [item] = store(ledger, [inv("A")], to_clientify("A"))
    with pytest.raises(type(error)):
        Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), FakeClientify(hook=fail)).run([item])
    assert outcome(ledger, item).status is Status.PLANNED  # the next try writes it again
    assert pending(ledger) == [(CRM, "company", "client", "A", RFC)]  # after looking for it first
    assert dead(ledger) == []


def test_a_written_record_closes_its_dead_letters_on_both_sides(ledger):
    letters = [Letter(INV, "client", "A", "transient_error", None), Letter(CRM, "company", "10", "x", None)]
    ledger.write(lambda c: ledger.dead_letters.record(c, letters, "run-0"))
    item = PlanItem.update(
        Direction.TO_CLIENTIFY,
        Ref("client", "A"),
        Ref("company", "10"),
        fields=("name",),
        merged=inv("A").data,
        reason=None,
    )
    [stored] = store(ledger, [inv("A"), crm("10")], item)
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), FakeClientify()).run([stored])
    assert dead(ledger) == []


# -- a create an earlier try may have made ----------------------------------------------------------
@pytest.mark.parametrize("made_earlier", [True, False], ids=["found", "not-found"])
def test_an_earlier_tries_pending_create_is_looked_for_before_any_post(ledger, made_earlier):
    entry = journal(ledger, ("client", "A"))
    clientify = FakeClientify()
    if made_earlier:
        clientify.found["A"] = [crm("55", link="A")]
    [item] = store(ledger, [inv("A")], to_clientify("A"))
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify, unsettled={("client", "A"): entry}).run(
        [item]
    )

    assert clientify.finds == [("A", RFC)]  # by link field and tax ID
    assert clientify.created == ([] if made_earlier else [("company", "A")])
    link = ledger.links.find(inv=("client", "A"))
    assert link is not None and link["crm_id"] == ("55" if made_earlier else "100")
    assert outcome(ledger, item).outcome is Outcome.CREATED
    assert pending(ledger) == []  # the earlier entry is settled; no second one was written


def test_two_records_left_by_an_interrupted_create_are_a_link_conflict_not_a_guess(ledger):
    entry = journal(ledger, ("client", "A"))
    clientify = FakeClientify(found={"A": [crm("55", link="A"), crm("56", link="A")]})
    [item] = store(ledger, [inv("A")], to_clientify("A"))
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify, unsettled={("client", "A"): entry}).run(
        [item]
    )

    ended = outcome(ledger, item)
    assert (ended.status, ended.reason) == (Status.FAILED, "link_conflict")
    assert ended.detail is not None and "company 55" in ended.detail and "company 56" in ended.detail
    assert clientify.created == [] and ledger.links.find(inv=("client", "A")) is None
    assert dead(ledger) == [(INV, "client", "A", "link_conflict")]


def test_on_the_invoicing_side_an_earlier_create_is_found_in_its_listing_read_once(ledger):
    entries = [journal(ledger, ("company", rid), INV, "client") for rid in ("9", "8")]
    listing = [{"Id": "F7", "data": crm("9").data, "key": RFC, "link": "9"}]  # created, then the try died
    invoicing = FakeInvoicing(listing=listing)
    items = store(ledger, [crm("9"), crm("8", "XAXX010101000")], to_invoicing("9"), to_invoicing("8"))
    unsettled = {("company", "9"): entries[0], ("company", "8"): entries[1]}
    Applier(ledger, RUN, Side.INVOICING, invoicing, FakeClientify(), unsettled=unsettled).run(items)

    assert invoicing.listings_read == 1  # no lookup by key on the invoicing side: one listing for all
    assert [link for _, link, _ in invoicing.created] == ["8"]  # 9's record was there already
    found = ledger.links.find(crm=("company", "9"))
    assert found is not None and found["inv_id"] == "F7"
    assert pending(ledger) == []


# -- stopping early -----------------------------------------------------------------------------------
def test_the_breaker_waits_for_the_writes_under_way_and_records_them(ledger):
    """A fails (transient) while C is being written: the breaker trips on A, and C, which reached the
    API, is still recorded and linked. C finishes only once A's failure was counted (an event), and both
    run at once (a barrier), so the order is the same on every run."""
    both_running = threading.Barrier(2, timeout=WAIT)
    a_counted = threading.Event()
    stats = ApplyStats()
    count = stats.count

    def counting(outcome_name: str) -> None:
        count(outcome_name)
        if outcome_name == Outcome.FAILED.value:
            a_counted.set()

    stats.count = counting  # type: ignore[method-assign]

    def write(source: str) -> None:
        both_running.wait()
        if source == "A":
            raise TransientApiError(*API, 503)
        assert a_counted.wait(WAIT), "A's failure was never counted"

    clientify = FakeClientify(hook=write)
    items = store(ledger, [inv("A"), inv("C", "XAXX010101000")], to_clientify("A"), to_clientify("C"))
    applier = Applier(
        ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify, concurrency=2, breaker_limit=1, stats=stats
    )
    with pytest.raises(SystemicFailure, match="1 consecutive transient failures writing to clientify"):
        applier.run(items)

    a, c = (outcome(ledger, item) for item in items)
    assert (a.status, a.reason) == (Status.FAILED, "transient_error")
    assert (c.status, c.outcome) == (Status.DONE, Outcome.CREATED)  # reached the API: never forgotten
    link = ledger.links.find(inv=("client", "C"))
    assert link is not None and link["crm_id"] == "100"
    assert pending(ledger) == []  # A's entry dropped (the POST failed), C's settled by its link


# -- updates ----------------------------------------------------------------------------------------
def update(
    target: Direction, fields: tuple[str, ...], *, reason: str | None = None, pair: str = "A"
) -> PlanItem:
    merged = {"customer": "C1", "lines": "[]", "total": "116.00", "notes": "n"}
    return PlanItem.update(
        target, Ref("estimate", pair), Ref("budget", f"B{pair}"), fields=fields, merged=merged, reason=reason
    )


def test_a_write_that_carried_a_rounding_line_says_so_in_its_result(ledger):
    lines, notes = (
        update(Direction.TO_CLIENTIFY, ("lines", "total")),
        update(Direction.TO_CLIENTIFY, ("notes",), pair="B"),
    )
    records = [inv("A", rtype="estimate"), inv("B", rtype="estimate"), crm("BA", rtype="budget"),
               crm("BB", rtype="budget")]  # fmt: skip
    items = store(ledger, records, lines, notes, to_clientify("C"))
    ledger.records.stage([inv("C")], "run-0")
    clientify = FakeClientify(rounding=Decimal("-0.01"))  # every record it answers holds our rounding line
    Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify).run(items)

    results = [outcome(ledger, item).result or {} for item in items]
    assert [r.get("rounding") for r in results] == ["-0.01", None, "-0.01"]  # a notes edit did not write it


def test_an_update_is_a_conflict_when_both_sides_changed_the_field(ledger):
    items = store(
        ledger,
        [inv("A", rtype="estimate"), crm("BA", rtype="budget")],
        update(Direction.TO_CLIENTIFY, ("notes",), reason=Reason.CONFLICT),
    )
    clientify = FakeClientify()
    stats = Applier(ledger, RUN, Side.CLIENTIFY, FakeInvoicing(), clientify).run(items)
    assert outcome(ledger, items[0]).outcome is Outcome.CONFLICT and stats.outcomes == {"conflict": 1}
    assert clientify.updated == [("BA", frozenset({"notes"}), "A")]  # only the changed field, with our link


@pytest.mark.parametrize("link_supported", [True, False])
def test_an_update_of_the_invoicing_side_carries_the_link_only_where_it_has_one(ledger, link_supported):
    items = store(
        ledger,
        [inv("A", rtype="estimate"), crm("BA", rtype="budget")],
        update(Direction.TO_INVOICING, ("customer",)),
    )
    invoicing = FakeInvoicing(link_supported=link_supported)
    Applier(ledger, RUN, Side.INVOICING, invoicing, FakeClientify()).run(items)
    assert invoicing.updated == [("A", frozenset({"customer"}), "BA" if link_supported else None)]
    assert outcome(ledger, items[0]).outcome is Outcome.UPDATED
    assert ledger.links.find(inv=("estimate", "A")) is None  # an update's base moves at commit, not here
