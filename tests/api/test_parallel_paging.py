"""Concurrent page reads: same records as a sequential read, never more than ``concurrency`` in flight.

Over loopback against the sandbox for every listing the sync reads; scripted transports only for what the
sandbox cannot do (an API without totals, an API that ignores ``start`` / ``page``).
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.errors import MalformedResponseError

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for
from .scripted import Sleeps, clientify_settings, facturama_settings, handler_transport, json_response

BUILDERS = {"facturama": facturama_for, "clientify": clientify_for, "facturadirecta": facturadirecta_for}
LISTINGS = [
    pytest.param("facturama", "clients", "Id", id="facturama-clients"),
    pytest.param("facturama", "products", "Id", id="facturama-products"),
    pytest.param("facturadirecta", "clients", "id", id="facturadirecta-clients"),
    pytest.param("facturadirecta", "products", "id", id="facturadirecta-products"),
    pytest.param("clientify", "contacts", "id", id="clientify-contacts"),
    pytest.param("clientify", "companies", "id", id="clientify-companies"),
    pytest.param("clientify", "products", "id", id="clientify-products"),
]
PAGE_SIZE = 25


class InFlight(httpx.BaseTransport):
    """The real transport, counting requests in flight under a lock.

    With ``gate`` set, the 2nd to ``gate + 1``-th requests (the pages after the first) wait at a barrier
    until ``gate`` of them are in flight together: the read passes only if it really keeps ``gate``
    requests in flight (the barrier's timeout only guards against a hang).
    """

    def __init__(self, gate: int | None = None) -> None:
        self.inner = httpx.HTTPTransport()
        self.current = 0
        self.peak = 0
        self.requests: list[httpx.URL] = []
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(gate, timeout=30) if gate else None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            number = len(self.requests)
            self.requests.append(request.url)
        try:
            if self._barrier is not None and 1 <= number <= self._barrier.parties:
                self._barrier.wait()
            return self.inner.handle_request(request)
        finally:
            with self._lock:
                self.current -= 1

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def seeded(sandbox):
    """Enough records for at least six pages of ``PAGE_SIZE`` in every listing, with a partial last page."""
    sandbox.reset()
    sandbox.seed("facturama", clients=180, products=140, estimates=0, seed=11)
    sandbox.seed("clientify", contacts=170, companies=130, products=120, seed=11)
    sandbox.seed("facturadirecta", clients=160, products=130, estimates=0, seed=11)
    yield sandbox
    sandbox.reset()


def read(
    sandbox: Any, api: str, resource: str, transport: InFlight, concurrency: int
) -> list[dict[str, Any]]:
    with BUILDERS[api](sandbox, transport=transport, concurrency=concurrency, page_size=PAGE_SIZE) as client:
        return list(getattr(client, resource).iter_records())


@pytest.mark.parametrize(("api", "resource", "id_key"), LISTINGS)
def test_a_concurrent_read_returns_exactly_the_records_of_a_sequential_one(
    seeded, api: str, resource: str, id_key: str
) -> None:
    one_by_one = InFlight()
    sequential = read(seeded, api, resource, one_by_one, concurrency=1)
    gated = InFlight(gate=4)
    concurrent = read(seeded, api, resource, gated, concurrency=4)

    assert len(sequential) > 4 * PAGE_SIZE  # five pages or more: the first, then at least four together
    assert len({record[id_key] for record in concurrent}) == len(concurrent) == len(sequential)
    by_id = {record[id_key]: record for record in sequential}
    assert all(by_id[record[id_key]] == record for record in concurrent)
    assert one_by_one.peak == 1
    assert gated.peak == 4  # the barrier let the pages through only once four were in flight together
    assert len(gated.requests) == len(one_by_one.requests)  # one request per page either way


def test_in_flight_never_exceeds_concurrency(seeded) -> None:
    transport = InFlight(gate=3)
    with facturadirecta_for(seeded, transport=transport, concurrency=3, page_size=10) as client:
        records = sum(1 for _ in client.clients.iter_records())
    assert records == 160
    assert len(transport.requests) == 16
    assert transport.peak == 3


def test_pages_carry_progress_whatever_order_they_complete_in(seeded) -> None:
    with clientify_for(seeded, concurrency=4, page_size=PAGE_SIZE) as client:
        pages = list(client.contacts.iter_pages())
    assert [page.number for page in pages] == list(range(1, 8))
    assert sorted(page.position or 0 for page in pages) == list(range(1, 8))
    assert [page.seen for page in pages] == [sum(len(p.records) for p in pages[: i + 1]) for i in range(7)]
    assert pages[-1].progress() == "page 7/7, 170/170 records"


def test_an_ignored_modified_filter_is_noticed_on_concurrent_pages(seeded) -> None:
    before = seeded.config("clientify")["modified_filter"]
    seeded.config("clientify", modified_filter="ignored")
    try:
        with clientify_for(seeded, concurrency=4, page_size=PAGE_SIZE) as client:
            records = list(client.contacts.iter_records(modified_gte="2999-01-01T00:00:00+00:00"))
            noticed = client.contacts.ignored_filter
    finally:
        seeded.config("clientify", modified_filter=before)
    assert len(records) == 170
    assert noticed is not None and noticed.route == "/v1/contacts/"


def test_a_stopped_listing_does_not_read_on(seeded) -> None:
    transport = InFlight()
    with facturama_for(seeded, transport=transport, concurrency=2, page_size=10) as client:
        first = next(client.clients.iter_records())
    assert first["Id"]
    assert len(transport.requests) <= 1 + 2  # the first page, and at most the two already in flight


# -- what the sandbox cannot do: scripted ------------------------------------------------------------


def test_clientify_without_a_count_follows_the_next_links() -> None:
    def drf_without_count(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        following = f"https://clientify.test/v1/contacts/?page_size=2&page={page + 1}" if page < 3 else None
        return json_response(200, {"next": following, "results": [{"id": 2 * page - 1}, {"id": 2 * page}]})

    transport = InFlight()
    transport.inner = handler_transport(drf_without_count)  # type: ignore[assignment]
    client = ClientifyClient(clientify_settings(page_size=2, concurrency=4), transport, sleep=Sleeps())
    pages = list(client.contacts.iter_pages())
    assert [record["id"] for page in pages for record in page.records] == [1, 2, 3, 4, 5, 6]
    assert [page.progress() for page in pages][-1] == "page 3/?, 6/? records"
    assert transport.peak == 1
    assert [url.params.get("page") for url in transport.requests] == [None, "2", "3"]


def test_clientify_ignoring_page_is_a_malformed_listing() -> None:
    def ignores_page(request: httpx.Request) -> httpx.Response:
        return json_response(200, {"count": 9, "next": "https://clientify.test/v1/contacts/?page=2",
                                   "results": [{"id": 1}, {"id": 2}, {"id": 3}]})  # fmt: skip

    client = ClientifyClient(clientify_settings(page_size=3), handler_transport(ignores_page), sleep=Sleeps())
    with pytest.raises(MalformedResponseError, match="paging parameters were ignored"):
        list(client.contacts.iter_records())


def test_facturama_ignoring_start_is_a_malformed_listing() -> None:
    def ignores_start(request: httpx.Request) -> httpx.Response:
        return json_response(
            200, {"recordsTotal": 300, "recordsFiltered": 300, "data": [{"Id": "a"}, {"Id": "b"}]}
        )

    client = FacturamaClient(
        facturama_settings(page_size=2), handler_transport(ignores_start), sleep=Sleeps()
    )
    with pytest.raises(MalformedResponseError, match="paging parameters were ignored"):
        list(client.clients.iter_records())
