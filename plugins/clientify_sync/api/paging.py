"""Paginators: one small class per paging mechanism, each with a loop guard.

A resource asks for a fresh paginator per listing, sends ``paginator.params()`` (or follows
``paginator.next_url``), and reports each response back through ``advance``. The paginators know
tokens and counts only; they never send requests or keep records.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from clientify_sync.errors import MalformedResponseError


@dataclass(frozen=True)
class Page:
    """One page of a listing, with enough context to log progress."""

    records: list[dict[str, Any]]
    number: int
    total: int | None
    page_size: int
    seen: int

    @property
    def pages(self) -> int | None:
        """Pages in the whole listing, when the API reports a total."""
        return None if self.total is None else max(1, math.ceil(self.total / self.page_size))

    def progress(self) -> str:
        """``"page 3/100, 300/10000 records"``."""
        pages = "?" if self.pages is None else self.pages
        total = "?" if self.total is None else self.total
        return f"page {self.number}/{pages}, {self.seen}/{total} records"


@dataclass(frozen=True)
class PageResult:
    """What one list response said: its records, the reported total and the next link, if any."""

    records: list[dict[str, Any]]
    total: int | None
    next_url: str | None = None


class OffsetPaginator:
    """``start`` + size parameter paging (Facturama ``length``, FacturaDirecta ``limit``).

    Stops when ``start`` reaches the reported total or a page comes back empty. Raises if the API
    returns the same page twice (it ignored ``start``), instead of looping until ``total``.
    """

    def __init__(self, *, api: str, route: str, size_param: str, page_size: int, id_key: str) -> None:
        self.api = api
        self.route = route
        self.size_param = size_param
        self.page_size = page_size
        self.id_key = id_key
        self.start = 0
        self.finished = False
        self._last_ids: tuple[Any, ...] | None = None

    def params(self) -> dict[str, int]:
        return {"start": self.start, self.size_param: self.page_size}

    def advance(self, result: PageResult) -> None:
        ids = tuple(record.get(self.id_key) for record in result.records)
        if ids and ids == self._last_ids:
            raise MalformedResponseError(
                self.api, "GET", self.route, detail=f"pagination loop: start={self.start} repeated a page"
            )
        self._last_ids = ids
        self.start += len(result.records)
        total_reached = result.total is not None and self.start >= result.total
        self.finished = not result.records or total_reached


class NextLinkPaginator:
    """Follow the ``next`` URL (Clientify/DRF) until it is null; raise if a link repeats."""

    def __init__(self, *, api: str, route: str, page_size: int) -> None:
        self.api = api
        self.route = route
        self.page_size = page_size
        self.next_url: str | None = None
        self.finished = False
        self._seen: set[str] = set()

    def advance(self, result: PageResult) -> None:
        if result.next_url is None or not result.records:
            self.finished = True
            return
        if result.next_url in self._seen:
            raise MalformedResponseError(
                self.api, "GET", self.route, detail="pagination loop: next link repeated"
            )
        self._seen.add(result.next_url)
        self.next_url = result.next_url


P = TypeVar("P", OffsetPaginator, NextLinkPaginator)


def iter_pages(paginator: P, fetch: Callable[[P], PageResult]) -> Iterator[Page]:
    """The paging loop: fetch, advance, yield non-empty pages; holds one page in memory at a time."""
    number = 0
    seen = 0
    while not paginator.finished:
        result = fetch(paginator)
        paginator.advance(result)
        if not result.records:
            break
        number += 1
        seen += len(result.records)
        yield Page(result.records, number, result.total, paginator.page_size, seen)


def iter_records(pages: Iterator[Page]) -> Iterator[dict[str, Any]]:
    """Flatten pages into records, streaming."""
    for page in pages:
        yield from page.records
