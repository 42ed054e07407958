"""Paginators and the one paging loop (``read_pages``), sequential and concurrent, without HTTP."""

from __future__ import annotations

import threading

import pytest

from clientify_sync.api.paging import (
    OffsetPaginator,
    Page,
    PageNumberPaginator,
    PageRequest,
    PageResult,
    read_pages,
)
from clientify_sync.errors import MalformedResponseError


def offset(page_size: int = 2) -> OffsetPaginator:
    return OffsetPaginator(
        api="facturama", route="/Clients", size_param="length", page_size=page_size, id_key="Id"
    )


class OffsetListing:
    """A ``start``/``length`` listing of ``count`` records; remembers every query, optionally drops the total."""

    def __init__(self, count: int, *, report_total: bool = True, ignore_start: bool = False) -> None:
        self.rows = [{"Id": str(i)} for i in range(count)]
        self.report_total = report_total
        self.ignore_start = ignore_start
        self.queries: list[dict[str, str | int | float]] = []
        self._lock = threading.Lock()

    def __call__(self, request: PageRequest) -> PageResult:
        with self._lock:
            self.queries.append(request.params)
        start = 0 if self.ignore_start else int(request.params["start"])
        size = int(request.params["length"])
        return PageResult(self.rows[start : start + size], len(self.rows) if self.report_total else None)


def test_sequential_offset_paging_stops_at_total() -> None:
    listing = OffsetListing(5)
    pages = list(read_pages(offset(), listing, concurrency=1))
    assert [page.number for page in pages] == [1, 2, 3]
    assert [page.position for page in pages] == [1, 2, 3]
    assert [page.seen for page in pages] == [2, 4, 5]
    assert listing.queries == [
        {"start": 0, "length": 2},
        {"start": 2, "length": 2},
        {"start": 4, "length": 2},
    ]
    assert pages[-1].progress() == "page 3/3, 5/5 records"


def test_offset_paging_stops_on_an_empty_page_without_a_total() -> None:
    results = [PageResult([{"Id": "1"}, {"Id": "2"}], None), PageResult([], None)]
    pages = list(read_pages(offset(), lambda _: results.pop(0), concurrency=4))
    assert len(pages) == 1 and pages[0].progress() == "page 1/?, 2/? records"


def test_sequential_offset_paging_raises_when_the_server_repeats_a_page() -> None:
    with pytest.raises(MalformedResponseError, match="pagination loop"):
        list(read_pages(offset(), lambda _: PageResult([{"Id": "1"}, {"Id": "2"}], 100), concurrency=1))


def test_filters_travel_with_every_page_request() -> None:
    paginator = OffsetPaginator(
        api="facturadirecta", route="/api/clients.xml", size_param="limit", page_size=2, id_key="Id",
        params={"taxCode": "B1"},
    )  # fmt: skip
    requests: list[PageRequest] = []

    def answer(request: PageRequest) -> PageResult:
        requests.append(request)
        start = int(request.params["start"])
        return PageResult([{"Id": start}, {"Id": start + 1}], 6)

    assert sum(len(page.records) for page in read_pages(paginator, answer, concurrency=3)) == 6
    assert all(request.params["taxCode"] == "B1" and request.params["limit"] == 2 for request in requests)
    assert sorted(int(request.params["start"]) for request in requests) == [0, 2, 4]


@pytest.mark.parametrize("concurrency", [pytest.param(2, id="two"), pytest.param(5, id="five")])
def test_concurrent_offset_paging_returns_the_same_records_as_sequential(concurrency: int) -> None:
    sequential = [
        r["Id"] for page in read_pages(offset(3), OffsetListing(100), concurrency=1) for r in page.records
    ]
    listing = OffsetListing(100)
    pages = list(read_pages(offset(3), listing, concurrency=concurrency))
    concurrent = [r["Id"] for page in pages for r in page.records]
    assert sorted(concurrent) == sorted(sequential) and len(concurrent) == 100
    assert len(listing.queries) == 34  # one request per page, none past the end
    assert [page.number for page in pages] == list(range(1, 35))
    assert sorted(page.position or 0 for page in pages) == list(range(1, 35))
    assert pages[-1].seen == 100 and pages[-1].progress() == "page 34/34, 100/100 records"


def test_concurrent_paging_uses_the_page_length_the_server_serves() -> None:
    """Asked for 10 a page, the server caps at 4: offsets follow the 4 actually served, nothing is skipped."""

    def capped(request: PageRequest) -> PageResult:
        start = int(request.params["start"])
        return PageResult([{"Id": i} for i in range(start, min(start + 4, 18))], 18)

    pages = list(read_pages(offset(10), capped, concurrency=3))
    assert sorted(r["Id"] for page in pages for r in page.records) == list(range(18))


def test_concurrent_paging_raises_when_the_api_ignores_start() -> None:
    with pytest.raises(MalformedResponseError, match="paging parameters were ignored"):
        list(read_pages(offset(), OffsetListing(10, ignore_start=True), concurrency=3))


def test_without_a_total_the_pages_are_read_one_after_another() -> None:
    listing = OffsetListing(7, report_total=False)
    pages = list(read_pages(offset(), listing, concurrency=4))
    assert [r["Id"] for page in pages for r in page.records] == [str(i) for i in range(7)]
    assert [query["start"] for query in listing.queries] == [0, 2, 4, 6, 7]  # until the empty page


def test_concurrent_paging_follows_a_total_that_grows_while_reading() -> None:
    rows = [{"Id": i} for i in range(6)]

    def growing(request: PageRequest) -> PageResult:
        start = int(request.params["start"])
        if start == 4:  # records were added after the first page was read
            rows.extend({"Id": i} for i in range(6, 9))
        return PageResult(rows[start : start + 2], len(rows))

    pages = list(read_pages(offset(), growing, concurrency=2))
    assert sorted(r["Id"] for page in pages for r in page.records) == list(range(9))


def test_an_early_stop_leaves_nothing_running() -> None:
    listing = OffsetListing(40)
    pages = read_pages(offset(), listing, concurrency=3)
    first = next(pages)
    pages.close()  # a consumer that only wanted the first page
    assert first.position == 1
    assert len(listing.queries) <= 1 + 3


def test_next_link_paging_follows_until_null() -> None:
    answers = {
        None: PageResult([{"id": 1}], None, "https://c/v1/contacts/?page=2"),
        "https://c/v1/contacts/?page=2": PageResult([{"id": 2}], None, "https://c/v1/contacts/?page=3"),
        "https://c/v1/contacts/?page=3": PageResult([{"id": 3}], None, None),
    }
    paginator = PageNumberPaginator(api="clientify", route="/v1/contacts/", page_size=1)
    pages = list(read_pages(paginator, lambda request: answers[request.url], concurrency=4))
    assert [record["id"] for page in pages for record in page.records] == [1, 2, 3]


def test_next_link_paging_raises_when_a_link_repeats() -> None:
    paginator = PageNumberPaginator(api="clientify", route="/v1/contacts/", page_size=1)
    with pytest.raises(MalformedResponseError, match="next link repeated"):
        list(read_pages(paginator, lambda _: PageResult([{"id": 1}], None, "https://c/v1/contacts/?page=2")))


def test_page_number_paging_addresses_pages_directly_once_count_is_known() -> None:
    requests: list[PageRequest] = []
    lock = threading.Lock()

    def drf(request: PageRequest) -> PageResult:
        with lock:
            requests.append(request)
        page = int(request.params.get("page", 1))
        return PageResult([{"id": page}], 4, f"https://c/v1/contacts/?page={page + 1}" if page < 4 else None)

    paginator = PageNumberPaginator(api="clientify", route="/v1/contacts/", page_size=1, params={"sku": "A"})
    pages = list(read_pages(paginator, drf, concurrency=3))
    assert sorted(record["id"] for page in pages for record in page.records) == [1, 2, 3, 4]
    assert all(request.url is None and request.params["sku"] == "A" for request in requests)
    assert sorted(int(request.params.get("page", 1)) for request in requests) == [1, 2, 3, 4]


def test_page_count_rounds_up() -> None:
    assert Page([{}], number=1, total=10001, page_size=100, seen=100).pages == 101
