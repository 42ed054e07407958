"""FacturaDirecta's activity feed (``GET /api/{companyId}/activity``, facturadirecta-rest-api.md §4 B, §11):
what changed, oldest first, read from a stored position.

Why a position and not only the cursor: the API's cursor is opaque and ``nextCursor`` is null on the last
page (§15.12), which is exactly where a poller stops. So a ``FeedPosition`` keeps the cursor when the API
issued one, and always the last event read (timestamp and id); without a cursor the next read asks
``minDate=<that timestamp>`` (inclusive) and drops the events at that instant up to that id (events of one
instant are ordered by id). A caller stores ``ActivityPage.position`` once it has processed the page, so it
resumes exactly there: no event skipped, none read twice.

Why "settled": that inclusive resume serves the last instant's events again on every read, which is 20 pages
for the 2,000 events a bulk import writes at one instant, forever until the next event. Once the last event
read is older than ``SETTLE_S`` at the time of the read, no event can still arrive at its instant, so the
position says so and the next read asks for events strictly after it (``minDate`` one unit of the
timestamp's resolution later): none of that instant's events is served again. The time of the read is the
local clock just before the request (see ``ActivityFeed``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from clientify_sync.api.http import ApiSession
from clientify_sync.api.paging import PageRequest, PageResult, read_pages
from clientify_sync.errors import MalformedResponseError, ValidationError

API = "facturadirecta"
SYNCED_DOCUMENTS = ("contact", "product", "estimate")
CHANGES = ("inserted", "updated", "archived", "unarchived")
MAX_PAGE = 100
# How old the last event read must be, at the time of the read, for its instant to count as settled (no
# event can still be written or become visible at it). Far above the clock skew between NTP-synced hosts
# and the time a write takes to become readable (docs/api-assumptions.md, REST open questions): a margin
# too short could skip an event, one too long only re-reads an instant's events for a while longer.
SETTLE_S = 120.0
# ``YYYY-MM-DDTHH:mm:ss.sssZ`` (§4, §14), with any number of fraction digits (or none) and any UTC offset.
_STAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,6}))?(Z|[+-]\d{2}:\d{2})")

Record = dict[str, Any]


@dataclass(frozen=True)
class FeedPosition:
    """Where a reader of the feed stopped; ``FeedPosition()`` is the feed's beginning.

    Attributes:
        cursor: the API's ``nextCursor`` after the last page read, when it issued one.
        timestamp: the ``timestamp`` of the last event read (the fallback when there is no cursor).
        last_id: the ``id`` of the last event read.
        settled: ``timestamp`` was older than the settle margin when it was read, so no event can still
            arrive at that instant: a resume without a cursor starts strictly after it.
    """

    cursor: str | None = None
    timestamp: str | None = None
    last_id: int | None = None
    settled: bool = False

    def encode(self) -> str:
        """A short JSON text, to store beside a watermark (``settled`` only when true: positions stored
        before it existed read as unsettled, which is what they were)."""
        data: dict[str, Any] = {"cursor": self.cursor, "timestamp": self.timestamp, "id": self.last_id}
        if self.settled:
            data["settled"] = True
        return json.dumps(data, sort_keys=True)

    @classmethod
    def decode(cls, text: str | None) -> FeedPosition:
        """The position ``encode`` wrote; the beginning for None or ""."""
        if not text:
            return cls()
        data = json.loads(text)
        last_id = data.get("id")
        return cls(
            data.get("cursor"), data.get("timestamp"), int(last_id) if last_id is not None else None,
            data.get("settled") is True,
        )  # fmt: skip

    def min_date(self) -> str | None:
        """The ``minDate`` of a resume without a cursor: the last instant read (inclusive; its events up to
        ``last_id`` are dropped) or, once settled, the first instant after it."""
        if self.timestamp is None:
            return None
        return next_instant(self.timestamp) if self.settled else self.timestamp

    def already_read(self, event: Record) -> bool:
        """True for an event at or before this position (only events of ``timestamp`` can be: see
        ``minDate``)."""
        if self.timestamp is None or self.last_id is None:
            return False
        stamp, number = event.get("timestamp"), event.get("id")
        return stamp == self.timestamp and isinstance(number, int) and number <= self.last_id


def parse_timestamp(stamp: str) -> tuple[datetime, int] | None:
    """An event's ``timestamp`` and how many fraction digits it carries; None when it is not ISO 8601."""
    match = _STAMP.fullmatch(stamp)
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    digits = len(fraction or "")
    moment = datetime.fromisoformat(
        f"{whole}.{(fraction or '').ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"
    )
    return moment.astimezone(UTC), digits


def next_instant(stamp: str) -> str:
    """The first instant after ``stamp`` the API can print: one unit of its last digit (1 ms for ``.sss``),
    in the same format (UTC, ``Z``)."""
    parsed = parse_timestamp(stamp)
    if parsed is None:
        raise ValueError(f"not an ISO 8601 timestamp: {stamp!r}")
    moment, digits = parsed
    later = moment + timedelta(microseconds=10 ** (6 - digits))
    text = later.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{later.strftime('%f')[:digits]}Z" if digits else f"{text}Z"


def settled_at(stamp: str, read_at: float, settle_s: float) -> bool:
    """True when ``stamp`` was at least ``settle_s`` old at ``read_at`` (epoch seconds); an unreadable
    timestamp is never settled (the inclusive resume stays correct without knowing its age)."""
    parsed = parse_timestamp(stamp)
    return parsed is not None and read_at - parsed[0].timestamp() >= settle_s


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
    kind of change.

    ``clock`` (epoch seconds) is the time of a read, taken just before its request is sent (an earlier time
    only makes an instant look younger). It is the local clock, not the response's ``Date`` header: the
    session returns bodies only, and the sandbox's ``Date`` is its web server's wall clock, not the clock
    that stamps its events (which tests freeze or move forward), so it would tell no more than ours. A local
    clock ahead of the API's by more than ``settle_s`` could settle an instant too early; ``SETTLE_S`` is
    far above NTP skew. Tests set ``clock`` and ``settle_s`` on the instance.
    """

    def __init__(
        self, session: ApiSession, company_root: str, *, settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self._session = session
        self.route = f"{company_root}/activity"
        self.settle_s = settle_s
        self.clock = clock

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
        min_date = since.min_date() if cursor is None else None
        if min_date:
            params["minDate"] = min_date
        repeated = {"documentType": list(document_types), "type": list(events)}
        paginator = CursorPaginator(route=self.route, page_size=page_size, params=params, cursor=cursor)
        read_at = [self.clock()]

        def request_page(request: PageRequest) -> PageResult:
            read_at[0] = self.clock()
            return self._request_page({**request.params, **repeated})

        position = since
        for page in read_pages(paginator, request_page):
            fresh = [event for event in page.records if not since.already_read(event)]
            last = page.records[-1]
            stamp, number = last.get("timestamp"), last.get("id")
            if isinstance(stamp, str) and isinstance(number, int):
                settled = settled_at(stamp, read_at[0], self.settle_s)
                position = FeedPosition(paginator.issued, stamp, number, settled)
            else:
                position = FeedPosition(
                    paginator.issued, position.timestamp, position.last_id, position.settled
                )
            yield ActivityPage(fresh, position, paginator.has_next_page, page.number)

    def head(
        self, *, document_types: Sequence[str] = SYNCED_DOCUMENTS, events: Sequence[str] = CHANGES
    ) -> FeedPosition:
        """The position after the newest matching event (the beginning when there is none): where a
        reader starts that has just listed everything."""
        params = {"limit": 1, "documentType": list(document_types), "type": list(events)}
        read_at = self.clock()
        newest = self._request_page(params).records
        if not newest:
            return FeedPosition()
        stamp, number = newest[0].get("timestamp"), newest[0].get("id")
        if not isinstance(stamp, str) or not isinstance(number, int):
            raise MalformedResponseError(
                API, "GET", self.route, 200, "an activity event without timestamp or id"
            )
        return FeedPosition(None, stamp, number, settled_at(stamp, read_at, self.settle_s))

    def _request_page(self, params: dict[str, Any]) -> CursorPageResult:
        body = self._session.request("GET", self.route, params=params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list) or "hasMore" not in body:
            raise MalformedResponseError(API, "GET", self.route, 200, "expected {items, hasMore, nextCursor}")
        cursor = body.get("nextCursor")
        return CursorPageResult(
            [item for item in body["items"] if isinstance(item, dict)], None,
            has_more=bool(body["hasMore"]), next_cursor=cursor if isinstance(cursor, str) and cursor else None,
        )  # fmt: skip
