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


ALL_DATE_FORMATS = frozenset({"iso", "minute", "date"})
_DATE = re.compile(r"\d{4}([-/])\d{2}\1\d{2}")
_MINUTE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}([+-]\d{2}:?\d{2})?")
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([+-]\d{2}:?\d{2})?")


def filter_format(text: str) -> str | None:
    """Which accepted shape a filter value has: ``iso``, ``minute``, ``date`` or None (none of them)."""
    if _DATE.fullmatch(text):
        return "date"
    if _MINUTE.fullmatch(text):
        return "minute"
    if _ISO.fullmatch(text):
        return "iso"
    return None


def parse_filter_datetime(raw: str, tz: str, formats: frozenset[str] = ALL_DATE_FORMATS) -> int:
    """A ``created[...]``/``modified[...]`` value -> epoch microseconds.

    ``formats`` are the shapes the account honours (clientify ``date_filter_formats``): ``iso`` full
    date-times with seconds (optional microseconds, ``Z`` or an offset), ``minute``
    ``YYYY-MM-DDTHH:MM``, ``date`` ``YYYY-MM-DD`` or ``YYYY/MM/DD``. A naive value is read in the
    account's time zone. A ``+`` left unencoded in a query string arrives as a space, so
    ``...T10:00:00 02:00`` is read as ``+02:00``. Raises ``ValueError`` for anything else.
    """
    text = raw.strip()
    if not text:
        raise ValueError("empty date")
    text = _SPACE_OFFSET.sub(r"+\1", text)
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    shape = filter_format(text)
    if shape is None or shape not in formats:
        raise ValueError(f"unaccepted date format: {raw!r}")
    if shape == "date":
        parsed = datetime.combine(date.fromisoformat(text.replace("/", "-")), datetime.min.time())
    else:
        parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(tz))
    return to_micros(parsed)


def today(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()
