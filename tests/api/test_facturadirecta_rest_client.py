"""The FacturaDirecta REST client against the sandbox's REST emulator, over HTTP on loopback.

Paging both ways, errors into our tree, the idempotent create (a POST whose answer was lost is re-sent with
its key and replayed, never created twice), the budget the rate-limit headers drive, the plan cap and the
activity feed resumed from a stored position (past an instant once it is settled). Time runs on the sandbox clock (``PUT /_sandbox/rest/clock``):
a test's "sleep" moves it forward instead of waiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest

from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient, idempotency_key, record_id
from clientify_sync.api.facturadirecta_rest_activity import (
    SETTLE_S,
    ActivityFeed,
    FeedPosition,
    next_instant,
    settled_at,
)
from clientify_sync.api.http import ApiSession
from clientify_sync.api.protocols import InvoicingClient, ListingResource
from clientify_sync.api.ratelimit import TokenBucket
from clientify_sync.api.ratelimit_headers import RateLimitGate
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.engine.budget import SharedRequestBudget, account_key
from clientify_sync.engine.ledger import Ledger
from clientify_sync.errors import (
    AuthenticationError,
    ConflictError,
    MalformedResponseError,
    NotFoundError,
    PlanLimitExceededError,
    UnconfirmedWriteError,
    ValidationError,
)
from tests.fixtures.sandbox import SandboxHandle

from .sandbox_clients import QUICK, sent

API = "facturadirecta"
KEY = "sync-pending-create-000042"


class SandboxTime:
    """A clock and a sleep on the sandbox's clock: sleeping moves the (frozen) sandbox clock forward."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        self.sandbox = sandbox
        self.now = rest_control(sandbox, "GET", "/clock")["now_ms"] / 1000
        self.waits: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        rest_control(self.sandbox, "PUT", "/clock", {"advance_s": seconds})


class Unmetered:
    """An ordinary budget that never waits: only the gate limits."""

    def acquire(self) -> float:
        return 0.0


def rest_control(sandbox: SandboxHandle, method: str, path: str, body: Any = None) -> Any:
    response = sandbox.http.request(method, f"{sandbox.facturadirecta_url}/_sandbox/rest{path}", json=body)
    response.raise_for_status()
    return response.json()


def freeze_at_minute_start(sandbox: SandboxHandle) -> None:
    """The sandbox clock frozen 1 s into the next calendar minute (a fresh rate-limit window)."""
    now = rest_control(sandbox, "GET", "/clock")["now_ms"]
    start = datetime.fromtimestamp(((now // 60_000 + 1) * 60_000 + 1000) / 1000, UTC)
    rest_control(sandbox, "PUT", "/clock", {"now": start.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "frozen": True})


def rest_settings(sandbox: SandboxHandle, **overrides: Any) -> FacturaDirectaRestSettings:
    cfg = sandbox.config(API)
    values: dict[str, Any] = {"base_url": sandbox.facturadirecta_url, "api_key": cfg["rest_api_key"],
                              "company_id": cfg["rest_company_id"], **QUICK, **overrides}  # fmt: skip
    return FacturaDirectaRestSettings(**values)


def rest_for(
    sandbox: SandboxHandle, *, sleep: Callable[[float], None] | None = None, gate: RateLimitGate | None = None,
    **overrides: Any,
) -> FacturaDirectaRestClient:  # fmt: skip
    settings = rest_settings(sandbox, **overrides)
    recorder = sleep or (lambda seconds: None)
    return FacturaDirectaRestClient(
        settings, sleep=recorder, gate=gate or RateLimitGate(Unmetered(), sleep=recorder)
    )


def contact(name: str, **main: Any) -> dict[str, Any]:
    return {"content": {"type": "contact", "main": {"name": name, **main}}}


def statuses(sandbox: SandboxHandle) -> dict[int, int]:
    counts: dict[int, int] = {}
    for row in sandbox.stats(API)["by_route"]:
        counts[row["status"]] = counts.get(row["status"], 0) + row["count"]
    return counts


def total_contacts(client: FacturaDirectaRestClient) -> int | None:
    return next(client.clients.iter_pages()).total


@pytest.fixture
def sandbox(clean_sandbox: SandboxHandle) -> Iterator[SandboxHandle]:
    yield clean_sandbox
    rest_control(clean_sandbox, "DELETE", "/hold")


# -- the engine's protocol, paging -----------------------------------------------------------------


def test_the_client_is_an_invoicing_client(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox) as client:
        typed: InvoicingClient = client
        assert all(isinstance(r, ListingResource) for r in (typed.clients, typed.products, typed.estimates))


@pytest.mark.parametrize("concurrency", [1, 3])
def test_offset_paging_reads_every_record_once(sandbox: SandboxHandle, concurrency: int) -> None:
    """offset/limit pages, sorted by creationDate so concurrent pages never overlap (pagination.md)."""
    ids = sandbox.seed(API, clients=23, target="rest")["ids"]["rest_contacts"]
    sandbox.reset_stats(API)
    with rest_for(sandbox, page_size=5, concurrency=concurrency) as client:
        pages = list(client.clients.iter_pages())
    assert sorted(page.position for page in pages) == [1, 2, 3, 4, 5]
    assert {page.total for page in pages} == {23}
    seen = [record_id(record) for page in pages for record in page.records]
    assert sorted(seen) == sorted(ids) and len(set(seen)) == 23
    assert sent(sandbox, API, "GET") == 5
    assert pages[0].records[0]["content"]["type"] == "contact"


def test_products_and_estimates_list_in_the_same_stable_order(sandbox: SandboxHandle) -> None:
    ids = sandbox.seed(API, clients=2, products=7, estimates=6, target="rest")["ids"]
    with rest_for(sandbox, page_size=2, concurrency=2) as client:
        for resource, kind in ((client.products, "rest_products"), (client.estimates, "rest_estimates")):
            assert sorted(record_id(r) or "" for r in resource.iter_records()) == sorted(ids[kind])


def test_listing_filters_and_find(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox) as client:
        made = client.clients.create(contact("Acme Diseño S.L.", fiscalId="B12345674"))
        client.clients.create(contact("Otra S.L."))
        assert [record_id(r) for r in client.clients.find_by_natural_key("B12345674")] == [record_id(made)]
        assert client.clients.find(fiscalId="B87654321") == []
        with pytest.raises(ValueError, match="at least one filter"):
            client.clients.find()
        since = made["creationDate"]
        product = client.products.create({"content": {"type": "product", "main": {
            "name": "Consultoría", "currency": "EUR", "sku": "CONS-1",
            "sales": {"tax": ["S_IVA_21"], "account": "7050000", "price": 1800}}}})  # fmt: skip
        assert [record_id(r) for r in client.products.iter_records(minModificationDate=since)] == [
            record_id(product)
        ]


def test_activity_cursor_pages_and_stored_positions(sandbox: SandboxHandle) -> None:
    """Ascending, cursor by cursor; a run that stored its position resumes exactly there, also after the
    last page, whose nextCursor is null (§15.12): nothing skipped, nothing twice."""
    with rest_for(sandbox) as client:
        made = [record_id(client.clients.create(contact(f"Cliente {n} S.L."))) for n in range(7)]
        pages = list(client.activity.pages(page_size=3))
        assert [len(page.events) for page in pages] == [3, 3, 1]
        assert [page.has_more for page in pages] == [True, True, False]
        assert [e["document"]["id"] for page in pages for e in page.events] == made
        assert pages[0].position.cursor and pages[-1].position.cursor is None
        stopped = pages[1].position.encode()  # a run that processed two pages, then stopped
        client.clients.update(made[0], contact("Cliente 0 renombrado S.L."))
        later = record_id(client.clients.create(contact("Nuevo S.L.")))
        resumed = [
            e
            for page in client.activity.pages(FeedPosition.decode(stopped), page_size=3)
            for e in page.events
        ]
        assert [(e["document"]["id"], e["type"]) for e in resumed] == [
            (made[6], "inserted"),
            (made[0], "updated"),
            (later, "inserted"),
        ]
        end = list(client.activity.pages(FeedPosition.decode(stopped), page_size=3))[-1].position
        assert end.cursor is None and [e for p in client.activity.pages(end) for e in p.events] == []
        client.clients.delete(later)
        tail = [e for page in client.activity.pages(end) for e in page.events]
        assert [(e["document"]["id"], e["type"]) for e in tail] == [(later, "archived")]


def test_activity_filters_and_head(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox) as client:
        first = record_id(client.clients.create(contact("Uno S.L.")))
        client.custom_fields.create("Nota", ["contact"])  # a customField event: not a synced document
        head = client.activity.head()
        assert head.last_id is not None and head.cursor is None
        second = record_id(client.clients.create(contact("Dos S.L.")))
        assert [e["document"]["id"] for p in client.activity.pages(head) for e in p.events] == [second]
        everything = [e["document"]["id"] for p in client.activity.pages() for e in p.events]
        assert everything == [first, second]
        assert [
            e["type"] for p in client.activity.pages(document_types=["customField"]) for e in p.events
        ] == ["inserted"]


def test_activity_resumes_by_timestamp_without_rereading_the_same_instant(sandbox: SandboxHandle) -> None:
    """Several events share a millisecond (frozen clock): the resume by ``minDate`` drops those read."""
    freeze_at_minute_start(sandbox)
    with rest_for(sandbox) as client:
        made = [record_id(client.clients.create(contact(f"Mismo instante {n} S.L."))) for n in range(4)]
        pages = list(client.activity.pages(page_size=2))
        stored = FeedPosition(None, pages[0].position.timestamp, pages[0].position.last_id)  # no cursor kept
        assert [e["document"]["id"] for p in client.activity.pages(stored) for e in p.events] == made[2:]


def test_a_cursor_the_api_refuses_falls_back_to_the_stored_timestamp(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox) as client:
        made = [record_id(client.clients.create(contact(f"C{n} S.L."))) for n in range(3)]
        first = next(client.activity.pages(page_size=1)).position
        forged = FeedPosition("bm90LWEtY3Vyc29y", first.timestamp, first.last_id)
        assert [e["document"]["id"] for p in client.activity.pages(forged) for e in p.events] == made[1:]
        with pytest.raises(ValidationError) as caught:
            list(client.activity.pages(FeedPosition("bm90LWEtY3Vyc29y")))
        assert "cursor" in caught.value.field_errors


# -- the settled instant: a resume past an instant no event can still reach -----------------------------

T = "2026-03-02T10:00:00.000Z"
T_EPOCH = datetime(2026, 3, 2, 10, tzinfo=UTC).timestamp()


class LiteralFeed:
    """A session that serves literal activity pages and keeps the params of each request."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages
        self.params: list[dict[str, Any]] = []

    def request(self, method: str, route: str, *, params: dict[str, Any]) -> dict[str, Any]:
        self.params.append(params)
        return self.pages[len(self.params) - 1]


def event(number: int, stamp: str = T, document: str = "pro_1") -> dict[str, Any]:
    return {
        "id": number,
        "timestamp": stamp,
        "type": "inserted",
        "document": {"id": document, "type": "product"},
    }


def literal_feed(pages: list[dict[str, Any]], *, age_s: float) -> tuple[ActivityFeed, LiteralFeed]:
    session = LiteralFeed(pages)
    feed = ActivityFeed(cast(ApiSession, session), "/api/com_1", clock=lambda: T_EPOCH + age_s)
    return feed, session


def test_positions_stored_before_settled_existed_decode_as_unsettled() -> None:
    old = '{"cursor": null, "id": 42, "timestamp": "2026-03-02T10:00:00.000Z"}'
    assert FeedPosition.decode(old) == FeedPosition(None, T, 42, settled=False)
    assert FeedPosition.decode(old).encode() == old  # an unsettled position is stored as before
    settled = FeedPosition(None, T, 42, settled=True)
    assert FeedPosition.decode(settled.encode()) == settled
    assert (
        FeedPosition.decode('{"cursor": null, "id": 42, "timestamp": "x", "settled": "yes"}').settled is False
    )


def test_a_settled_position_resumes_one_timestamp_unit_after_its_instant() -> None:
    assert FeedPosition(None, T, 42).min_date() == T  # inclusive: that instant's events up to 42 dropped
    assert FeedPosition(None, T, 42, settled=True).min_date() == "2026-03-02T10:00:00.001Z"
    assert next_instant("2026-03-02T23:59:59.999Z") == "2026-03-03T00:00:00.000Z"
    assert next_instant("2026-03-02T10:00:00Z") == "2026-03-02T10:00:01Z"  # whole seconds: one second
    assert next_instant("2026-03-02T11:00:00.000001+01:00") == "2026-03-02T10:00:00.000002Z"
    with pytest.raises(ValueError):
        next_instant("yesterday")


def test_an_instant_is_settled_only_once_older_than_the_margin_at_the_read() -> None:
    assert settled_at(T, T_EPOCH + SETTLE_S, SETTLE_S)
    assert not settled_at(T, T_EPOCH + SETTLE_S - 0.001, SETTLE_S)
    assert not settled_at(T, T_EPOCH - 30, SETTLE_S)  # ahead of our clock: never settled
    assert not settled_at("not a time", T_EPOCH + 10 * SETTLE_S, SETTLE_S)


def test_literal_feed_settles_an_old_instant_and_keeps_a_young_one_inclusive() -> None:
    last_page = {"items": [event(1), event(2)], "hasMore": False, "nextCursor": None}
    old, session = literal_feed([last_page, {"items": [], "hasMore": False, "nextCursor": None}], age_s=121)
    [page] = list(old.pages())
    assert page.position == FeedPosition(None, T, 2, settled=True)
    assert list(old.pages(page.position)) == []
    assert "minDate" not in session.params[0] and session.params[1]["minDate"] == "2026-03-02T10:00:00.001Z"

    young, session = literal_feed([last_page, {"items": [event(2), event(3)], "hasMore": False,
                                               "nextCursor": None}], age_s=119)  # fmt: skip
    [page] = list(young.pages())
    assert page.position == FeedPosition(None, T, 2, settled=False)
    [resumed] = list(young.pages(page.position))
    assert session.params[1]["minDate"] == T and [e["id"] for e in resumed.events] == [3]
    assert resumed.position == FeedPosition(None, T, 3, settled=False)


def test_literal_head_is_settled_when_the_newest_event_is_old() -> None:
    newest = {"items": [event(9)], "hasMore": True, "nextCursor": "abc"}
    assert literal_feed([newest], age_s=600)[0].head() == FeedPosition(None, T, 9, settled=True)
    assert literal_feed([newest], age_s=5)[0].head() == FeedPosition(None, T, 9, settled=False)


def activity_reads(sandbox: SandboxHandle) -> int:
    return sum(row["count"] for row in sandbox.stats(API)["by_route"]
               if row["method"] == "GET" and row["route"].endswith("/activity"))  # fmt: skip


def frozen_now(sandbox: SandboxHandle) -> float:
    """The frozen sandbox clock, in epoch seconds: the instant its writes are stamped with."""
    return float(rest_control(sandbox, "GET", "/clock")["now_ms"]) / 1000


def test_a_settled_instant_of_250_events_is_not_read_again(sandbox: SandboxHandle) -> None:
    """A bulk import's 250 events at one instant: once it is settled the resume is one call, not the 3
    pages an inclusive resume is served again."""
    freeze_at_minute_start(sandbox)
    seeded = sandbox.seed(API, products=250, target="rest", seed=3)["ids"]["rest_products"]
    instant = frozen_now(sandbox)
    with rest_for(sandbox) as client:
        client.activity.clock = lambda: instant + SETTLE_S  # the read happens 2 min after the import
        pages = list(client.activity.pages(document_types=["product"]))
        assert [len(page.events) for page in pages] == [100, 100, 50]
        assert sorted(e["document"]["id"] for p in pages for e in p.events) == sorted(seeded)
        end = pages[-1].position
        assert end.cursor is None and end.settled
        assert client.activity.head(document_types=["product"]) == end
        stored = FeedPosition.decode(end.encode())
        unsettled = FeedPosition(None, end.timestamp, end.last_id)

        sandbox.reset_stats(API)
        assert [e for p in client.activity.pages(stored, document_types=["product"]) for e in p.events] == []
        assert activity_reads(sandbox) == 1
        sandbox.reset_stats(API)
        assert [
            e for p in client.activity.pages(unsettled, document_types=["product"]) for e in p.events
        ] == []
        assert activity_reads(sandbox) == 3  # what every idle run read before: the instant served again

        rest_control(sandbox, "PUT", "/clock", {"advance_s": 1})
        made = record_id(client.products.create({"content": {"type": "product", "main": {
            "name": "Nuevo", "currency": "EUR"}}}))  # fmt: skip
        after = [(e["document"]["id"], e["type"]) for p in client.activity.pages(stored) for e in p.events]
        assert after == [(made, "inserted")]


def test_an_unsettled_instant_resumes_inclusively_and_keeps_an_event_written_after_the_read(
    sandbox: SandboxHandle,
) -> None:
    """Read at the instant the events were written (not settled); one more event at that same instant
    afterwards (frozen clock) is read by the next resume, and those read before are not."""
    freeze_at_minute_start(sandbox)
    seeded = sandbox.seed(API, products=250, target="rest", seed=4)["ids"]["rest_products"]
    instant = frozen_now(sandbox)
    with rest_for(sandbox) as client:
        client.activity.clock = lambda: instant + SETTLE_S - 1
        end = list(client.activity.pages(document_types=["product"]))[-1].position
        assert not end.settled and end.cursor is None
        late = record_id(client.products.create({"content": {"type": "product", "main": {
            "name": "Mismo instante", "currency": "EUR"}}}))  # fmt: skip
        pages = list(client.activity.pages(FeedPosition.decode(end.encode()), document_types=["product"]))
        assert [(e["document"]["id"], e["timestamp"]) for p in pages for e in p.events] == [
            (late, end.timestamp)
        ]
        assert late not in seeded and pages[-1].position.last_id != end.last_id


# -- writes and errors -----------------------------------------------------------------------------


def test_read_modify_write_with_full_replace(sandbox: SandboxHandle) -> None:
    """PUT replaces the record: the client sends what it is given, so a body built from ``get`` keeps
    every field (the mapper's job), and one built from scratch erases the rest."""
    with rest_for(sandbox) as client:
        made = client.clients.create(contact("Acme S.L.", email="a@acme.es", phone="911000000"))
        read = client.clients.get(record_id(made) or "")
        read["content"]["main"]["email"] = "b@acme.es"
        kept = client.clients.update(
            record_id(made) or "", {"content": read["content"], "tags": read["tags"]}
        )
        assert (kept["content"]["main"]["email"], kept["content"]["main"]["phone"]) == (
            "b@acme.es",
            "911000000",
        )
        erased = client.clients.update(record_id(made) or "", contact("Acme S.L."))
        assert "phone" not in erased["content"]["main"]


def test_errors_map_into_the_error_tree(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox) as client:
        with pytest.raises(ValidationError) as invalid:
            client.estimates.create({"content": {"type": "estimate", "main": {
                "lines": [{"text": "x", "quantity": 1}]}}})  # fmt: skip
        assert {"content.main.contact", "content.main.lines.0.unitPrice"} <= set(invalid.value.field_errors)
        assert invalid.value.status == 400 and "Validation failed" in invalid.value.detail
        client.clients.create(contact("Acme S.L.", fiscalId="B12345674"))
        with pytest.raises(ConflictError) as duplicate:
            client.clients.create(contact("Acme bis S.L.", fiscalId="B12345674"))
        assert duplicate.value.status == 409 and "content.main.fiscalId" in duplicate.value.field_errors
        with pytest.raises(NotFoundError):
            client.clients.get("con_00000000-0000-4000-8000-000000000000")
    assert statuses(sandbox).get(400) == 1  # nothing retried


def test_bad_key_and_missing_scopes_are_authentication_errors(sandbox: SandboxHandle) -> None:
    with rest_for(sandbox, api_key="wrongK." + "0" * 32) as client:
        with pytest.raises(AuthenticationError) as unknown:
            client.clients.get("con_00000000-0000-4000-8000-000000000000")
        assert unknown.value.status == 401
        assert client.test_connection()[0] is False
    sandbox.config(API, rest_scopes="contacts:read,products:read,estimates:read")
    with rest_for(sandbox) as client:
        with pytest.raises(AuthenticationError) as scope:
            client.clients.create(contact("Sin permiso S.L."))
        assert scope.value.status == 403 and "contacts:write" in scope.value.detail
        ok, message = client.test_connection()
        assert not ok and "contacts:write" in message and "activity:read" in message


def test_connection_test_names_the_company_and_probes_each_resource(sandbox: SandboxHandle) -> None:
    sandbox.seed(API, clients=3, target="rest")
    with rest_for(sandbox) as client:
        ok, message = client.test_connection()
        assert ok and "3 contacts" in message and client.settings.company_id in message
        assert [p.resource for p in client.probe() if p.supported] == [
            "contacts",
            "products",
            "estimates",
            "custom_fields",
            "activity",
        ]


def test_a_transient_failure_of_a_read_is_retried(sandbox: SandboxHandle) -> None:
    sandbox.faults(API, [{"method": "GET", "path": "^/api/com_", "rates": {"503": 1.0}, "count": 1}])
    with rest_for(sandbox) as client:
        assert list(client.clients.iter_pages()) == []
    assert statuses(sandbox) == {503: 1, 200: 1}


def test_custom_field_definitions_list_create_and_ensure(sandbox: SandboxHandle) -> None:
    """``cfi_…`` definitions: the link field is defined on first use, found after; its values live in
    ``main.customFields``; past 20 active fields the plan cap answers."""
    with rest_for(sandbox) as client:
        link = client.custom_fields.ensure("ID_CRM", ["contact", "estimate"])
        assert link["id"].startswith("cfi_") and link["docTypes"] == ["contact", "estimate"]
        assert client.custom_fields.ensure("ID_CRM", ["contact"])["id"] == link["id"]
        made = client.clients.create(contact("Enlazada S.L.", customFields={link["id"]: "735"}))
        assert client.clients.get(record_id(made) or "")["content"]["main"]["customFields"] == {
            link["id"]: "735"
        }
        for n in range(19):
            client.custom_fields.create(f"Campo {n}", ["contact"])
        assert len(client.custom_fields.definitions()) == 20
        with pytest.raises(PlanLimitExceededError):
            client.custom_fields.create("Campo 21", ["contact"])
        with pytest.raises(ConflictError):
            client.custom_fields.create("Otro", ["contact"], field_id=link["id"])


# -- idempotent creates ----------------------------------------------------------------------------


def test_a_create_whose_answer_was_lost_is_replayed_not_made_twice(sandbox: SandboxHandle) -> None:
    """The write happens, the connection drops before the answer: the client re-sends with the same key
    and the API answers from its idempotency store. One record, one ``inserted``."""
    sandbox.faults(API, [{"method": "POST", "path": "/contacts$", "rates": {"truncate": 1.0}, "count": 1}])
    with rest_for(sandbox) as client:
        made = client.clients.create(contact("Perdida S.L."), idempotency_key=KEY)
        assert client.replayed == 1 and total_contacts(client) == 1
        assert sent(sandbox, API, "POST") == 2
        events = [e["type"] for p in client.activity.pages() for e in p.events]
        assert events == ["inserted"]
    # A later run re-sending the same journal entry's create (its key) gets the same record back.
    with rest_for(sandbox) as again:
        assert record_id(again.clients.create(contact("Perdida S.L."), idempotency_key=KEY)) == record_id(
            made
        )
        assert again.replayed == 1 and total_contacts(again) == 1


def test_every_post_carries_a_key_so_even_keyless_creates_are_safe_to_resend(sandbox: SandboxHandle) -> None:
    sandbox.faults(API, [{"method": "POST", "path": "/products$", "rates": {"truncate": 1.0}, "count": 1}])
    body = {"content": {"type": "product", "main": {"name": "P", "currency": "EUR"}}}
    with rest_for(sandbox) as client:
        client.products.create(body)
        assert client.replayed == 1 and len(list(client.products.iter_records())) == 1


def test_with_idempotency_off_a_lost_answer_is_unconfirmed_and_never_resent(sandbox: SandboxHandle) -> None:
    """The classic rule, kept for ``idempotency: off``: the caller looks the record up instead."""
    sandbox.faults(API, [{"method": "POST", "path": "/contacts$", "rates": {"truncate": 1.0}, "count": 1}])
    with rest_for(sandbox, idempotency="off") as client:
        with pytest.raises(UnconfirmedWriteError) as caught:
            client.clients.create(contact("Perdida S.L.", fiscalId="B12345674"), natural_key="B12345674")
        assert caught.value.natural_key == "B12345674"
        assert sent(sandbox, API, "POST") == 1 and total_contacts(client) == 1


def test_a_create_still_running_under_the_same_key_is_waited_for(sandbox: SandboxHandle) -> None:
    """409 ``idempotency_key_in_use`` is retried after ``Retry-After``; then the first request's answer
    is replayed (here the "wait" lets the held first request finish)."""
    settings = rest_settings(sandbox)
    body = contact("Lenta S.L.")
    first: list[httpx.Response] = []
    rest_control(sandbox, "PUT", "/hold", {"method": "POST", "path": "/contacts$", "count": 1})
    worker = threading.Thread(target=lambda: first.append(httpx.post(
        f"{settings.base_url}{settings.company_root}/contacts", json=body, timeout=30,
        headers={"facturadirecta-api-key": settings.api_key, "Idempotency-Key": KEY})))  # fmt: skip
    worker.start()
    assert rest_control(sandbox, "GET", "/hold?wait_s=10") == {"held": 1}
    waits: list[float] = []

    def let_the_first_finish(seconds: float) -> None:
        waits.append(seconds)
        rest_control(sandbox, "DELETE", "/hold")
        worker.join(timeout=30)

    with rest_for(sandbox, sleep=let_the_first_finish) as client:
        made = client.clients.create(body, idempotency_key=KEY)
        assert record_id(made) == record_id(first[0].json()) and client.replayed == 1
        assert waits == [1.0] and total_contacts(client) == 1


def test_a_create_still_running_after_every_retry_is_unconfirmed(sandbox: SandboxHandle) -> None:
    rest_control(
        sandbox, "PUT", "/hold", {"method": "POST", "path": "/contacts$", "count": 1, "timeout_s": 20}
    )
    settings = rest_settings(sandbox)
    worker = threading.Thread(target=lambda: httpx.post(
        f"{settings.base_url}{settings.company_root}/contacts", json=contact("Lenta S.L."), timeout=30,
        headers={"facturadirecta-api-key": settings.api_key, "Idempotency-Key": KEY}))  # fmt: skip
    worker.start()
    try:
        assert rest_control(sandbox, "GET", "/hold?wait_s=10") == {"held": 1}
        with rest_for(sandbox) as client, pytest.raises(UnconfirmedWriteError) as caught:
            client.clients.create(contact("Lenta S.L."), idempotency_key=KEY)
        assert caught.value.status == 409 and "idempotency_key_in_use" in caught.value.reason
    finally:
        rest_control(sandbox, "DELETE", "/hold")
        worker.join(timeout=30)


def test_a_key_reused_for_another_body_is_an_unconfirmed_create(sandbox: SandboxHandle) -> None:
    """422 ``idempotency_key_reused``: the earlier create with this key went through; look it up."""
    with rest_for(sandbox) as client:
        client.clients.create(contact("Primera S.L."), idempotency_key=KEY)
        with pytest.raises(UnconfirmedWriteError) as caught:
            client.clients.create(contact("Otra S.L."), idempotency_key=KEY)
        assert caught.value.status == 422 and "idempotency_key_reused" in caught.value.reason
        with pytest.raises(ValueError, match="16-255"):
            client.clients.create(contact("Corta S.L."), idempotency_key="short")
        assert total_contacts(client) == 1


def test_idempotency_keys_are_stable_per_logical_create() -> None:
    assert idempotency_key("ledger-a", 42) == idempotency_key("ledger-a", 42)
    assert idempotency_key("ledger-a", 42) != idempotency_key("ledger-b", 42)
    assert 16 <= len(idempotency_key("x")) <= 255


# -- plan caps and rate limits ---------------------------------------------------------------------


def test_the_plan_cap_stops_creates_with_one_clear_error(sandbox: SandboxHandle) -> None:
    sandbox.config(API, rest_plan="gratis")
    sandbox.seed(API, clients=10, target="rest")
    sandbox.reset_stats(API)
    with rest_for(sandbox) as client:
        with pytest.raises(PlanLimitExceededError) as caught:
            client.clients.create(contact("Undécima S.L."), idempotency_key=KEY)
        assert isinstance(caught.value, AuthenticationError) and caught.value.reason == "plan_limit_exceeded"
        assert caught.value.status == 403 and "(10)" in caught.value.detail
        assert "plan_limit_exceeded" in caught.value.field_errors
        assert sent(sandbox, API, "POST") == 1  # not retried
        provider = client.clients.create(contact("Proveedor S.L.", accounts={"provider": "4000001"}))
        assert record_id(provider)  # only clients are capped


def test_the_rate_limit_headers_drive_the_budget(sandbox: SandboxHandle) -> None:
    """Free plan, 30 requests per calendar minute, enforced (429 past it): 45 reads never meet a 429; the
    gate waits once, for the window's reset, when the headers say none is left."""
    sandbox.config(API, rest_plan="gratis", rest_rate_limit_enforced=True)
    with rest_for(sandbox) as writer:
        record = record_id(writer.clients.create(contact("Leída S.L.")))
    freeze_at_minute_start(sandbox)
    sandbox.reset_stats(API)
    clock = SandboxTime(sandbox)
    gate = RateLimitGate(Unmetered(), sleep=clock.sleep, wall_clock=clock, clock=clock)
    with rest_for(sandbox, sleep=clock.sleep, gate=gate, concurrency=1) as client:
        for _ in range(45):
            client.clients.get(record or "")
    assert statuses(sandbox) == {200: 45}
    assert gate.limit == 30 and gate.pauses == 1 and clock.waits == [60.0]  # 59 s to the reset + 1 s margin


def test_the_stated_limit_becomes_the_shared_budgets(sandbox: SandboxHandle, tmp_path: Any) -> None:
    """``share_budget`` (the hooks' ledger-kept budget of the account) goes behind the gate and takes the
    limit the API states, whatever the settings guessed."""
    sandbox.config(API, rest_plan="bronce")
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", API, "contacts")
    try:
        shared = SharedRequestBudget(ledger.engine, account_key(API, "rest", "company"), 600)
        gate = RateLimitGate(TokenBucket(600), sleep=lambda seconds: None)
        with rest_for(sandbox, gate=gate) as client:
            client.share_budget(shared)
            assert gate.inner is shared
            list(client.clients.iter_pages())
        assert shared.limit == 60 and gate.limit == 60
    finally:
        ledger.close()


def test_by_default_the_budget_starts_at_the_plan_and_follows_the_headers(sandbox: SandboxHandle) -> None:
    sandbox.config(API, rest_plan="bronce")
    with FacturaDirectaRestClient(rest_settings(sandbox, plan="diamante")) as client:
        bucket = client.gate.inner
        assert isinstance(bucket, TokenBucket) and bucket.rate_per_second == 10.0  # 600 a minute, the guess
        list(client.clients.iter_pages())
        assert bucket.rate_per_second == 1.0  # the 60 a minute the API states


def test_a_configured_rate_caps_what_the_api_states(sandbox: SandboxHandle) -> None:
    """A connection's requests_per_minute leaves the company's other integrations room: the API stating
    600 a minute (diamante) does not lift a budget configured at 60 (found by the e2e budget check)."""
    sandbox.config(API, rest_plan="diamante")
    with FacturaDirectaRestClient(rest_settings(sandbox, requests_per_minute=60)) as client:
        bucket = client.gate.inner
        list(client.clients.iter_pages())
        assert client.gate.limit == 600
        assert isinstance(bucket, TokenBucket) and bucket.rate_per_second == 1.0  # 60 a minute, kept


def test_a_429_waits_for_the_window_and_is_retried(sandbox: SandboxHandle) -> None:
    """Another caller of the company spent the window: 429 + Retry-After, retried once it has passed."""
    sandbox.config(API, rest_plan="gratis", rest_rate_limit_enforced=True)
    freeze_at_minute_start(sandbox)
    settings = rest_settings(sandbox)
    with httpx.Client(headers={"facturadirecta-api-key": settings.api_key}) as other:
        for _ in range(30):
            other.get(f"{settings.base_url}{settings.company_root}/contacts")
    sandbox.reset_stats(API)
    clock = SandboxTime(sandbox)
    gate = RateLimitGate(Unmetered(), sleep=clock.sleep, wall_clock=clock, clock=clock)
    with rest_for(sandbox, sleep=clock.sleep, gate=gate) as client:
        assert list(client.clients.iter_pages()) == []
    assert statuses(sandbox) == {429: 1, 200: 1} and clock.waits == [59.0]


def test_an_answer_that_is_not_an_envelope_is_malformed(sandbox: SandboxHandle) -> None:
    sandbox.faults(API, [{"method": "GET", "path": "/contacts$", "rates": {"html": 1.0}, "count": 1}])
    with rest_for(sandbox) as client, pytest.raises(MalformedResponseError):
        list(client.clients.iter_pages())
