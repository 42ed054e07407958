"""FacturaDirecta's activity feed (``GET /api/{companyId}/activity``, facturadirecta-rest-api.md §4 B, §11):
what changed, oldest first, read from a stored position.

Why a position and not only the cursor: the API's cursor is opaque and ``nextCursor`` is null on the last
page (§15.12), which is exactly where a poller stops. So a ``FeedPosition`` keeps the cursor when the API
issued one, and always the last event read (timestamp and id); without a cursor the next read asks
``minDate=<that timestamp>`` (inclusive) and drops the events at that instant up to that id (events of one
instant are ordered by id). A caller stores ``ActivityPage.position`` once it has processed the page, so it
resumes exactly there: no event skipped, none read twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from clientify_sync.api.http import ApiSession
from clientify_sync.api.paging import PageRequest, PageResult, read_pages
from clientify_sync.errors import MalformedResponseError, ValidationError

API = "facturadirecta"
SYNCED_DOCUMENTS = ("contact", "product", "estimate")
CHANGES = ("inserted", "updated", "archived", "unarchived")
MAX_PAGE = 100

Record = dict[str, Any]


@dataclass(frozen=True)
class FeedPosition:
    """Where a reader of the feed stopped; ``FeedPosition()`` is the feed's beginning.

    Attributes:
        cursor: the API's ``nextCursor`` after the last page read, when it issued one.
        timestamp: the ``timestamp`` of the last event read (the fallback when there is no cursor).
        last_id: the ``id`` of the last event read.
    """

    cursor: str | None = None
    timestamp: str | None = None
    last_id: int | None = None

    def encode(self) -> str:
        """A short JSON text, to store beside a watermark."""
        return json.dumps(
            {"cursor": self.cursor, "timestamp": self.timestamp, "id": self.last_id}, sort_keys=True
        )

    @classmethod
    def decode(cls, text: str | None) -> FeedPosition:
        """The position ``encode`` wrote; the beginning for None or ""."""
        if not text:
            return cls()
        data = json.loads(text)
        last_id = data.get("id")
        return cls(data.get("cursor"), data.get("timestamp"), int(last_id) if last_id is not None else None)

    def already_read(self, event: Record) -> bool:
        """True for an event at or before this position (only events of ``timestamp`` can be: see
        ``minDate``)."""
        if self.timestamp is None or self.last_id is None:
            return False
        stamp, number = event.get("timestamp"), event.get("id")
        return stamp == self.timestamp and isinstance(number, int) and number <= self.last_id


@dataclass(frozen=True)
class ActivityPage:
    """One page of the feed: its new events and the position to store once they are processed.

    ``events`` may be empty when every event of the page had been read before (a resume by timestamp).
    """

    events: list[Record]
    position: FeedPosition
    has_more: bool
    number: int


@dataclass(frozen=True)
class CursorPageResult(PageResult):
    """A cursor page: ``{items, hasMore, nextCursor}``."""

    has_more: bool = False
    next_cursor: str | None = None


class CursorPaginator:
    """Cursor paging (§4 B): the first page without ``cursor``, then each ``nextCursor`` verbatim.

    Sequential only. Raises when the API repeats a cursor or says ``hasMore`` without a cursor, rather
    than looping or stopping silently.
    """

    random_access = False

    def __init__(
        self, *, route: str, page_size: int, params: dict[str, str | int | float], cursor: str | None
    ) -> None:
        self.api = API
        self.route = route
        self.page_size = page_size
        self.id_key = "id"
        self.filters = params
        self.cursor = cursor  # the cursor of the next request (None: the first page of a query)
        self.issued: str | None = None  # the nextCursor of the last page read
        self.has_next_page = True
        self._seen: set[str] = set()

    def init_request(self) -> PageRequest:
        return self.next_request()

    def next_request(self) -> PageRequest:
        cursor = {"cursor": self.cursor} if self.cursor else {}
        return PageRequest({**self.filters, "limit": self.page_size, **cursor})

    def page_request(self, number: int, served: int) -> PageRequest:
        raise NotImplementedError("cursor pages are read one after another")

    def update_state(self, result: PageResult) -> None:
        if not isinstance(result, CursorPageResult):
            raise TypeError("CursorPaginator reads CursorPageResult pages")
        self.issued = result.next_cursor
        if result.has_more and not result.next_cursor:
            raise MalformedResponseError(API, "GET", self.route, detail="hasMore without a nextCursor")
        if result.next_cursor in self._seen:
            raise MalformedResponseError(
                API, "GET", self.route, detail="pagination loop: nextCursor repeated"
            )
        if result.next_cursor:
            self._seen.add(result.next_cursor)
        self.cursor = result.next_cursor
        self.has_next_page = result.has_more and bool(result.records)


class ActivityFeed:
    """``GET /api/{companyId}/activity``, ascending (``sortBy=timestamp``), filtered by document type and
    kind of change."""

    def __init__(self, session: ApiSession, company_root: str) -> None:
        self._session = session
        self.route = f"{company_root}/activity"

    def pages(
        self,
        since: FeedPosition | None = None,
        *,
        document_types: Sequence[str] = SYNCED_DOCUMENTS,
        events: Sequence[str] = CHANGES,
        page_size: int = MAX_PAGE,
    ) -> Iterator[ActivityPage]:
        """The events after ``since`` (the whole feed when None), oldest first, a page at a time.

        A stored cursor the API no longer accepts (400 on ``cursor``) falls back to the stored timestamp.
        """
        since = since or FeedPosition()
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"activity pages hold 1..{MAX_PAGE} events, not {page_size}")
        read = 0
        try:
            for page in self._pages(since, since.cursor, document_types, events, page_size):
                read += 1
                yield page
        except ValidationError as error:
            if read or not (since.cursor and since.timestamp and "cursor" in error.field_errors):
                raise
            yield from self._pages(since, None, document_types, events, page_size)

    def _pages(
        self, since: FeedPosition, cursor: str | None, document_types: Sequence[str], events: Sequence[str],
        page_size: int,
    ) -> Iterator[ActivityPage]:  # fmt: skip
        params: dict[str, str | int | float] = {"sortBy": "timestamp"}
        if cursor is None and since.timestamp:
            params["minDate"] = since.timestamp
        repeated = {"documentType": list(document_types), "type": list(events)}
        paginator = CursorPaginator(route=self.route, page_size=page_size, params=params, cursor=cursor)

        def request_page(request: PageRequest) -> PageResult:
            return self._request_page({**request.params, **repeated})

        position = since
        for page in read_pages(paginator, request_page):
            fresh = [event for event in page.records if not since.already_read(event)]
            last = page.records[-1]
            stamp, number = last.get("timestamp"), last.get("id")
            position = FeedPosition(
                paginator.issued,
                stamp if isinstance(stamp, str) else position.timestamp,
                number if isinstance(number, int) else position.last_id,
            )
            yield ActivityPage(fresh, position, paginator.has_next_page, page.number)

    def head(
        self, *, document_types: Sequence[str] = SYNCED_DOCUMENTS, events: Sequence[str] = CHANGES
    ) -> FeedPosition:
        """The position after the newest matching event (the beginning when there is none): where a
        reader starts that has just listed everything."""
        params = {"limit": 1, "documentType": list(document_types), "type": list(events)}
        newest = self._request_page(params).records
        if not newest:
            return FeedPosition()
        stamp, number = newest[0].get("timestamp"), newest[0].get("id")
        if not isinstance(stamp, str) or not isinstance(number, int):
            raise MalformedResponseError(
                API, "GET", self.route, 200, "an activity event without timestamp or id"
            )
        return FeedPosition(None, stamp, number)

    def _request_page(self, params: dict[str, Any]) -> CursorPageResult:
        body = self._session.request("GET", self.route, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list) or "hasMore" not in body:
            raise MalformedResponseError(API, "GET", self.route, 200, "expected {items, hasMore, nextCursor}")
        cursor = body.get("nextCursor")
        return CursorPageResult(
            [item for item in body["items"] if isinstance(item, dict)], None,
            has_more=bool(body["hasMore"]), next_cursor=cursor if isinstance(cursor, str) and cursor else None,
        )  # fmt: skip
