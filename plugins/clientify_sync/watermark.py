"""Watermark rules for incremental syncs: pure functions, no Airflow, no I/O.

The watermark is the API's own clock: the highest Clientify ``modified`` seen by the last run that
finished completely. It is stored as an ISO-8601 UTC string (``2026-03-01T10:15:00Z``, microseconds
only when present) and compared as a datetime, never as text.

- ``modified`` runs advance it monotonically: ``max(previous, seen_max)``. A run that saw nothing
  keeps the previous value; a lower ``seen_max`` (clock skew, a deleted record) never moves it back.
- ``full`` runs reset it: the new value is whatever the full read saw, even if lower or ``None``.
- The next run re-reads from ``since(watermark, lookback)``: an overlap, so that records written in
  the same second as the watermark, or committed late by the API, are not missed. Writes are
  idempotent, so re-reading a few records costs only reads.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo

from clientify_sync.vocabulary import Mode

__all__ = [
    "format_timestamp",
    "next_watermark",
    "normalise",
    "parse_timestamp",
    "since",
]


def parse_timestamp(value: str | datetime, *, naive_tz: tzinfo = UTC) -> datetime:
    """Parse an ISO-8601 timestamp (or a datetime) into an aware UTC datetime.

    Accepts ``Z`` and numeric offsets (``+01:00``, ``+0200``), a space instead of ``T`` and 1-6
    fractional digits. A naive value is read in ``naive_tz`` (UTC unless told otherwise).

    Args:
        value: the timestamp.
        naive_tz: the zone a value without offset is in.

    Returns:
        The moment as an aware datetime in UTC.

    Raises:
        ValueError: the value is empty or not an ISO-8601 timestamp.
        TypeError: the value is neither a string nor a datetime.
    """
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty timestamp")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"not an ISO-8601 timestamp: {value!r}") from exc
    else:
        raise TypeError(f"expected an ISO-8601 string or a datetime, got {type(value).__name__}")
    if parsed.tzinfo is None or parsed.tzinfo.utcoffset(parsed) is None:
        parsed = parsed.replace(tzinfo=naive_tz)
    return parsed.astimezone(UTC)


def format_timestamp(value: datetime) -> str:
    """Format an aware datetime as ISO-8601 UTC with a ``Z`` suffix (microseconds only if set).

    Raises:
        ValueError: the datetime is naive.
    """
    if value.tzinfo is None:
        raise ValueError("refusing to format a naive datetime as UTC")
    utc = value.astimezone(UTC)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds").replace("+00:00", "Z")


def normalise(value: str | datetime | None) -> str | None:
    """Return the canonical ISO-8601 UTC form of a timestamp; ``None`` and ``""`` stay ``None``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return format_timestamp(parse_timestamp(value))


def next_watermark(
    previous: str | datetime | None,
    seen_max: str | datetime | None,
    mode: Mode | str,
) -> str | None:
    """Return the watermark a successful run stores.

    Args:
        previous: the watermark the run started from (``None`` on a first run).
        seen_max: the highest ``modified`` the run read from the API (``None`` if it read nothing).
        mode: ``Mode.MODIFIED`` advances monotonically; ``Mode.FULL`` resets to ``seen_max``. Its
            string value (``"modified"``, ``"full"``, as DAG params carry it) is accepted too.

    Returns:
        The new watermark in canonical ISO-8601 UTC form, or ``None`` when there is none.

    Raises:
        ValueError: unknown mode or unparseable timestamp.
    """
    try:
        mode = Mode(mode)
    except ValueError:
        raise ValueError(f"unknown sync mode {mode!r}; expected one of {[m.value for m in Mode]}") from None
    if mode is Mode.FULL:
        return normalise(seen_max)
    if mode is Mode.EVENTS:  # read only what events named: the clock run still reads from here
        return normalise(previous)
    candidates = [
        parse_timestamp(v) for v in (previous, seen_max) if v is not None and normalise(v) is not None
    ]
    if not candidates:
        return None
    return format_timestamp(max(candidates))


def since(watermark: str | datetime | None, lookback: timedelta | float) -> str | None:
    """Return the lower bound to re-read from: the watermark minus the lookback overlap.

    Args:
        watermark: the stored watermark; ``None`` means read everything (returns ``None``).
        lookback: a ``timedelta`` or a number of seconds, not negative.

    Returns:
        The ISO-8601 UTC lower bound, or ``None`` when there is no watermark.

    Raises:
        ValueError: the lookback is negative.
    """
    delta = lookback if isinstance(lookback, timedelta) else timedelta(seconds=lookback)
    if delta < timedelta(0):
        raise ValueError(f"lookback must not be negative, got {delta}")
    if watermark is None or normalise(watermark) is None:
        return None
    return format_timestamp(parse_timestamp(watermark) - delta)
