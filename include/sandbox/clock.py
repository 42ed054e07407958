"""Write timestamps (Clientify ``created``/``modified``) and the date filters that compare them.

Timestamps are stored as integer microseconds since the epoch (UTC): exact, indexable, and free of
offset arithmetic. The clock is strictly increasing across every write in the process, so two writes
in the same microsecond still get distinct, ordered ``modified`` values and watermark tests are
deterministic.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SPACE_OFFSET = re.compile(r" (\d{2}:?\d{2})$")


class MonotonicClock:
    """Microsecond wall clock that never repeats or goes back (adds 1 µs when it has not moved)."""

    def __init__(self, last: int = 0) -> None:
        self._last = last
        self._lock = threading.Lock()

    def advance_past(self, value: int) -> None:
        """Make every later tick greater than ``value`` (e.g. the newest ``modified`` in the database)."""
        with self._lock:
            self._last = max(self._last, value)

    def tick(self) -> int:
        with self._lock:
            now = time.time_ns() // 1000
            self._last = now if now > self._last else self._last + 1
            return self._last


def to_datetime(micros: int, tz: str) -> datetime:
    return (EPOCH + timedelta(microseconds=micros)).astimezone(ZoneInfo(tz))


def format_timestamp(micros: int | None, tz: str) -> str | None:
    """ISO-8601 with microseconds and the account's offset: ``2025-11-18T08:36:12.997736+01:00``."""
    if micros is None:
        return None
    return to_datetime(micros, tz).isoformat(timespec="microseconds")


def to_micros(value: datetime) -> int:
    delta = value.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def parse_filter_datetime(raw: str, tz: str) -> int:
    """A ``created[...]``/``modified[...]`` value -> epoch microseconds.

    Accepts ISO dates and date-times (``Z`` or an offset), and ``YYYY/MM/DD``; a naive value is read in
    the account's time zone. A ``+`` left unencoded in a query string arrives as a space, so
    ``...T10:00:00 02:00`` is read as ``+02:00``.
    """
    text = raw.strip()
    if not text:
        raise ValueError("empty date")
    text = _SPACE_OFFSET.sub(r"+\1", text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    if re.fullmatch(r"\d{4}/\d{2}/\d{2}", text):
        text = text.replace("/", "-")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        parsed = datetime.combine(date.fromisoformat(text), datetime.min.time())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return to_micros(parsed)


def today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()
