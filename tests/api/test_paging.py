"""Paginators and the paging loop."""

from __future__ import annotations

import pytest

from clientify_sync.api.paging import NextLinkPaginator, OffsetPaginator, Page, PageResult, iter_pages
from clientify_sync.errors import MalformedResponseError


def offset(page_size: int = 2) -> OffsetPaginator:
    return OffsetPaginator(
        api="facturama", route="/Clients", size_param="length", page_size=page_size, id_key="Id"
    )


def test_offset_paging_stops_at_total() -> None:
    rows = [{"Id": str(i)} for i in range(5)]
    seen_params = []

    def fetch(paginator: OffsetPaginator) -> PageResult:
        params = paginator.params()
        seen_params.append(params)
        return PageResult(rows[params["start"] : params["start"] + params["length"]], 5)

    pages = list(iter_pages(offset(), fetch))
    assert [page.number for page in pages] == [1, 2, 3]
    assert [page.seen for page in pages] == [2, 4, 5]
    assert seen_params == [{"start": 0, "length": 2}, {"start": 2, "length": 2}, {"start": 4, "length": 2}]
    assert pages[-1].progress() == "page 3/3, 5/5 records"


def test_offset_paging_stops_on_an_empty_page_without_a_total() -> None:
    results = [PageResult([{"Id": "1"}, {"Id": "2"}], None), PageResult([], None)]
    pages = list(iter_pages(offset(), lambda _: results.pop(0)))
    assert len(pages) == 1 and pages[0].progress() == "page 1/?, 2/? records"


def test_offset_paging_raises_when_the_server_repeats_a_page() -> None:
    with pytest.raises(MalformedResponseError, match="pagination loop"):
        list(iter_pages(offset(), lambda _: PageResult([{"Id": "1"}, {"Id": "2"}], 100)))


def test_next_link_paging_follows_until_null() -> None:
    answers = {
        None: PageResult([{"id": 1}], 3, "https://c/v1/contacts/?page=2"),
        "https://c/v1/contacts/?page=2": PageResult([{"id": 2}], 3, "https://c/v1/contacts/?page=3"),
        "https://c/v1/contacts/?page=3": PageResult([{"id": 3}], 3, None),
    }
    paginator = NextLinkPaginator(api="clientify", route="/v1/contacts/", page_size=1)
    pages = list(iter_pages(paginator, lambda current: answers[current.next_url]))
    assert [record["id"] for page in pages for record in page.records] == [1, 2, 3]


def test_next_link_paging_raises_when_a_link_repeats() -> None:
    paginator = NextLinkPaginator(api="clientify", route="/v1/contacts/", page_size=1)
    with pytest.raises(MalformedResponseError, match="next link repeated"):
        list(iter_pages(paginator, lambda _: PageResult([{"id": 1}], 9, "https://c/v1/contacts/?page=2")))


def test_page_count_rounds_up() -> None:
    assert Page([{}], number=1, total=10001, page_size=100, seen=100).pages == 101
