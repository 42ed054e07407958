"""Paging: one paginator protocol, one small class per mechanism, and the one loop that reads a listing.

A resource builds a fresh paginator per listing (carrying the listing's filters) and hands it to
``read_pages`` with its ``request_page``: a function that sends one ``PageRequest`` and decodes the
answer into a ``PageResult``. The paginators know tokens and counts only; they never send requests or
keep records. ``read_pages`` owns the loop:

- The first page is read alone. When it reports the listing's total and the paginator can address any
  page directly (``random_access``: ``start`` offsets, DRF ``page=N``), the other pages are read
  concurrently, at most ``concurrency`` at a time, and yielded as they complete (in any order).
- Otherwise the pages are read one after another, following ``next_request``; the paginator's loop
  guard raises when the API repeats itself.

Either way a consumer holds at most about ``concurrency`` pages in memory, never the whole listing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from clientify_sync.errors import MalformedResponseError

Query = Mapping[str, str | int | float]
Record = dict[str, Any]


@dataclass(frozen=True)
class Page:
    """One page of a listing, with enough context to log progress.

    Attributes:
        records: the page's records, as decoded.
        number: how many pages of this listing have been yielded, this one included (1, 2, ...).
        total: records in the listing, when the API reports it (the latest count seen).
        page_size: records asked for per page.
        seen: records yielded so far, this page's included.
        position: where this page sits in the listing (1 = first); equals ``number`` when pages are read
            one after another, and may differ when they are read concurrently.
    """

    records: list[Record]
    number: int
    total: int | None
    page_size: int
    seen: int
    position: int | None = None

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
class PageRequest:
    """What to send for one page: the query, or an absolute link to follow instead (a ``next`` URL)."""

    params: dict[str, str | int | float]
    url: str | None = None


@dataclass(frozen=True)
class PageResult:
    """What one list response said: its records, the reported total and the next link, if any."""

    records: list[Record]
    total: int | None
    next_url: str | None = None


RequestPage = Callable[[PageRequest], PageResult]


class Paginator(Protocol):
    """One paging mechanism (after dlt's ``BasePaginator``): which request reads which page.

    Sequential use: ``init_request``, then ``update_state`` with each result and ``next_request`` while
    ``has_next_page``. Random access (only when ``random_access``): ``page_request(n, served)`` for any
    page once the first page has told the total.
    """

    @property
    def api(self) -> str:
        """The API's name, for errors."""
        ...

    @property
    def route(self) -> str:
        """The listing's route template, for errors."""
        ...

    @property
    def page_size(self) -> int:
        """Records asked for per page."""
        ...

    @property
    def id_key(self) -> str:
        """The record field that identifies a record (used to spot an API that repeats pages)."""
        ...

    @property
    def has_next_page(self) -> bool:
        """False once ``update_state`` has seen the last page."""
        ...

    @property
    def random_access(self) -> bool:
        """True when ``page_request`` can address any page directly."""
        ...

    def init_request(self) -> PageRequest:
        """The request for the first page."""
        ...

    def update_state(self, result: PageResult) -> None:
        """Take one page read in sequence: note where the next one starts, or that there is none.

        Raises:
            MalformedResponseError: the API repeated a page (it ignored the paging parameters).
        """
        ...

    def next_request(self) -> PageRequest:
        """The request for the page after the last one passed to ``update_state``."""
        ...

    def page_request(self, number: int, served: int) -> PageRequest:
        """The request for page ``number`` (1-based) when the server serves ``served`` records a page."""
        ...


class OffsetPaginator:
    """``start`` + size parameter paging (Facturama ``length``, FacturaDirecta ``limit``).

    Sequentially, stops when ``start`` reaches the reported total or a page comes back empty, and raises
    if the API returns the same page twice (it ignored ``start``) instead of looping until ``total``.
    Any page can be addressed directly: page n starts at ``(n - 1) * served``.
    """

    random_access = True

    def __init__(
        self,
        *,
        api: str,
        route: str,
        size_param: str,
        page_size: int,
        id_key: str,
        params: Query | None = None,
    ) -> None:
        self.api = api
        self.route = route
        self.size_param = size_param
        self.page_size = page_size
        self.id_key = id_key
        self.filters = dict(params or {})
        self.start = 0
        self.has_next_page = True
        self._last_ids: tuple[Any, ...] | None = None

    def init_request(self) -> PageRequest:
        return self.page_request(1, self.page_size)

    def next_request(self) -> PageRequest:
        return PageRequest({**self.filters, "start": self.start, self.size_param: self.page_size})

    def page_request(self, number: int, served: int) -> PageRequest:
        return PageRequest({**self.filters, "start": (number - 1) * served, self.size_param: self.page_size})

    def update_state(self, result: PageResult) -> None:
        ids = tuple(record.get(self.id_key) for record in result.records)
        if ids and ids == self._last_ids:
            raise MalformedResponseError(
                self.api, "GET", self.route, detail=f"pagination loop: start={self.start} repeated a page"
            )
        self._last_ids = ids
        self.start += len(result.records)
        total_reached = result.total is not None and self.start >= result.total
        self.has_next_page = bool(result.records) and not total_reached


class PageNumberPaginator:
    """DRF ``PageNumberPagination`` (Clientify): ``page_size`` + ``page=N``, with ``count`` and ``next``.

    Sequentially, follows the ``next`` link until it is null, and raises if a link repeats. Any page can
    be addressed directly with ``page=N`` (same filters and ``page_size``): the server decides how many
    records a page holds, so ``served`` is not needed.
    """

    random_access = True

    def __init__(
        self, *, api: str, route: str, page_size: int, params: Query | None = None, id_key: str = "id"
    ) -> None:
        self.api = api
        self.route = route
        self.page_size = page_size
        self.id_key = id_key
        self.filters = dict(params or {})
        self.next_url: str | None = None
        self.has_next_page = True
        self._seen: set[str] = set()

    def init_request(self) -> PageRequest:
        return PageRequest({**self.filters, "page_size": self.page_size})

    def next_request(self) -> PageRequest:
        return PageRequest({}, url=self.next_url)

    def page_request(self, number: int, served: int) -> PageRequest:
        if number == 1:
            return self.init_request()
        return PageRequest({**self.filters, "page_size": self.page_size, "page": number})

    def update_state(self, result: PageResult) -> None:
        if result.next_url is None or not result.records:
            self.has_next_page = False
            return
        if result.next_url in self._seen:
            raise MalformedResponseError(
                self.api, "GET", self.route, detail="pagination loop: next link repeated"
            )
        self._seen.add(result.next_url)
        self.next_url = result.next_url


def read_pages(
    paginator: Paginator, request_page: RequestPage, *, concurrency: int = 1
) -> Generator[Page, None, None]:
    """The paging loop: yield the listing's non-empty pages, concurrently when the paging allows it.

    Args:
        paginator: a fresh paginator for this listing.
        request_page: sends one page's request through the client's session (so its rate budget,
            concurrency slots, retries and call accounting apply to each page) and decodes it.
        concurrency: most page requests in flight at once; 1 reads one page after another.

    Raises:
        MalformedResponseError: the API ignored the paging parameters (it repeated a page).
    """
    first = request_page(paginator.init_request())
    paginator.update_state(first)
    if not first.records:
        return
    counter = _Counter(paginator.page_size)
    yield counter.page(first, 1, first.total)
    if not paginator.has_next_page:
        return
    if concurrency > 1 and first.total is not None and paginator.random_access:
        yield from _concurrent(paginator, request_page, first, concurrency, counter)
    else:
        yield from _sequential(paginator, request_page, counter)


def iter_records(pages: Iterator[Page]) -> Iterator[Record]:
    """Flatten pages into records, streaming."""
    for page in pages:
        yield from page.records


class _Counter:
    """Numbers the pages in the order they are yielded and keeps the running record count."""

    def __init__(self, page_size: int) -> None:
        self.page_size = page_size
        self.number = 0
        self.seen = 0

    def page(self, result: PageResult, position: int, total: int | None) -> Page:
        self.number += 1
        self.seen += len(result.records)
        return Page(result.records, self.number, total, self.page_size, self.seen, position)


def _sequential(paginator: Paginator, request_page: RequestPage, counter: _Counter) -> Iterator[Page]:
    position = 1
    while paginator.has_next_page:
        result = request_page(paginator.next_request())
        paginator.update_state(result)
        if not result.records:
            return
        position += 1
        yield counter.page(result, position, result.total)


def _concurrent(
    paginator: Paginator, request_page: RequestPage, first: PageResult, concurrency: int, counter: _Counter
) -> Iterator[Page]:
    """Pages 2..n, at most ``concurrency`` in flight, yielded as they complete.

    The plan grows if a later page reports a larger total (records added while reading); pages past a
    shrunken end come back empty and are skipped. Only ``concurrency`` results are ever pending.
    """
    served = len(first.records)  # the server's own page length (it may cap the size asked for)
    total = first.total or 0
    planned = math.ceil(total / served)
    guard = _DistinctPages(paginator)
    guard.check(first, 1)
    following = 2
    pending: dict[Future[PageResult], int] = {}
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=f"{paginator.api}-pages") as pool:
        try:
            while True:
                while len(pending) < concurrency and following <= planned:
                    pending[pool.submit(request_page, paginator.page_request(following, served))] = following
                    following += 1
                if not pending:
                    return
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda item: pending[item]):
                    position = pending.pop(future)
                    result = future.result()
                    if result.total is not None and result.total > total:
                        total = result.total
                        planned = math.ceil(total / served)
                    if not result.records:
                        continue
                    guard.check(result, position)
                    yield counter.page(result, position, total)
        finally:
            for future in pending:
                future.cancel()


class _DistinctPages:
    """Raises when two pages of one listing carry the same ids: the API ignored ``start`` / ``page``."""

    def __init__(self, paginator: Paginator) -> None:
        self.paginator = paginator
        self._pages: dict[tuple[Any, ...], int] = {}

    def check(self, result: PageResult, position: int) -> None:
        ids = tuple(record.get(self.paginator.id_key) for record in result.records)
        if not any(value is not None for value in ids):
            return
        earlier = self._pages.setdefault(ids, position)
        if earlier != position:
            raise MalformedResponseError(
                self.paginator.api, "GET", self.paginator.route,
                detail=f"pagination loop: page {position} repeated page {earlier} (the paging parameters were ignored)",
            )  # fmt: skip
