"""The watermark rules (pure functions): parsing, normalisation, monotonic advance, full reset, lookback."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from clientify_sync import watermark
from clientify_sync.watermark import next_watermark, normalise, parse_timestamp, since


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("2026-03-01T10:15:00Z", "2026-03-01T10:15:00Z", id="utc-z"),
        pytest.param("2026-03-01T10:15:00+00:00", "2026-03-01T10:15:00Z", id="utc-offset"),
        pytest.param("2026-03-01T11:15:00+01:00", "2026-03-01T10:15:00Z", id="cet-winter"),
        pytest.param("2026-07-01T12:15:00+02:00", "2026-07-01T10:15:00Z", id="cest-summer"),
        pytest.param("2026-03-01T04:15:00-06:00", "2026-03-01T10:15:00Z", id="mexico-city"),
        pytest.param("2026-03-01T00:30:00+02:00", "2026-02-28T22:30:00Z", id="crosses-midnight"),
        pytest.param("2026-03-01 10:15:00", "2026-03-01T10:15:00Z", id="naive-space-is-utc"),
        pytest.param("2026-03-01T10:15:00.5Z", "2026-03-01T10:15:00.500000Z", id="fraction"),
        pytest.param("2026-03-01T10:15:00.123456+0100", "2026-03-01T09:15:00.123456Z", id="compact-offset"),
        pytest.param(datetime(2026, 3, 1, 10, 15, tzinfo=UTC), "2026-03-01T10:15:00Z", id="aware-datetime"),
        pytest.param(None, None, id="none"),
        pytest.param("", None, id="empty"),
        pytest.param("  ", None, id="blank"),
    ],
)
def test_normalise(raw, expected):
    assert normalise(raw) == expected


def test_normalise_is_idempotent():
    value = normalise("2026-07-01T12:15:00.25+02:00")
    assert normalise(value) == value


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01T00:00:00Z", "1700000000"])
def test_parse_rejects_non_iso(raw):
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_timestamp(raw)


def test_parse_reads_naive_values_in_the_given_zone():
    madrid_winter = timezone(timedelta(hours=1))
    assert parse_timestamp("2026-03-01T11:15:00", naive_tz=madrid_winter) == datetime(
        2026, 3, 1, 10, 15, tzinfo=UTC
    )


def test_parse_returns_aware_utc():
    parsed = parse_timestamp("2026-07-01T12:15:00+02:00")
    assert parsed.tzinfo is UTC and parsed.hour == 10


def test_formatting_refuses_naive_datetimes():
    with pytest.raises(ValueError, match="naive"):
        watermark.format_timestamp(datetime(2026, 3, 1))


@pytest.mark.parametrize(
    ("previous", "seen_max", "expected"),
    [
        pytest.param(None, None, None, id="first-run-nothing-seen"),
        pytest.param(None, "2026-03-01T10:00:00Z", "2026-03-01T10:00:00Z", id="first-run"),
        pytest.param("2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", "2026-03-01T11:00:00Z", id="advances"),
        pytest.param("2026-03-01T10:00:00Z", None, "2026-03-01T10:00:00Z", id="nothing-seen-keeps"),
        pytest.param("2026-03-01T10:00:00Z", "2026-03-01T09:00:00Z", "2026-03-01T10:00:00Z", id="never-back"),
        pytest.param(
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:30:00+01:00",
            "2026-03-01T10:00:00Z",
            id="offset-is-earlier",
        ),
        pytest.param(
            "2026-03-01T10:00:00Z", "2026-03-01T12:30:00+02:00", "2026-03-01T10:30:00Z", id="offset-is-later"
        ),
        pytest.param(
            "2026-03-01T10:00:00.000001Z",
            "2026-03-01T10:00:00Z",
            "2026-03-01T10:00:00.000001Z",
            id="microsecond",
        ),
    ],
)
def test_modified_runs_advance_monotonically(previous, seen_max, expected):
    assert next_watermark(previous, seen_max, "modified") == expected


@pytest.mark.parametrize(
    ("previous", "seen_max", "expected"),
    [
        pytest.param("2026-03-01T10:00:00Z", "2026-02-01T08:00:00Z", "2026-02-01T08:00:00Z", id="moves-back"),
        pytest.param(
            "2026-03-01T10:00:00Z", "2026-03-02T08:00:00+01:00", "2026-03-02T07:00:00Z", id="forward"
        ),
        pytest.param("2026-03-01T10:00:00Z", None, None, id="empty-crm-clears"),
        pytest.param(None, None, None, id="nothing-at-all"),
    ],
)
def test_full_runs_reset(previous, seen_max, expected):
    assert next_watermark(previous, seen_max, "full") == expected


def test_a_sequence_of_runs():
    """Modified, modified with an older straggler, full reset to an earlier max, modified again."""
    mark = None
    for seen, mode in [
        ("2026-03-01T10:00:00+01:00", "modified"),
        ("2026-03-01T08:59:59Z", "modified"),
        ("2026-03-01T07:00:00Z", "full"),
        ("2026-03-01T07:30:00+02:00", "modified"),
        (None, "modified"),
    ]:
        mark = next_watermark(mark, seen, mode)
    assert mark == "2026-03-01T07:00:00Z"


def test_modes_accept_the_engine_enum_values():
    class Mode(str):
        pass

    assert next_watermark("2026-03-01T10:00:00Z", None, Mode("modified")) == "2026-03-01T10:00:00Z"


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="unknown sync mode"):
        next_watermark(None, None, "incremental")


@pytest.mark.parametrize(
    ("mark", "lookback", "expected"),
    [
        pytest.param("2026-03-01T10:00:00Z", timedelta(minutes=10), "2026-03-01T09:50:00Z", id="timedelta"),
        pytest.param("2026-03-01T10:00:00Z", 600, "2026-03-01T09:50:00Z", id="seconds"),
        pytest.param("2026-03-01T00:05:00+01:00", timedelta(minutes=10), "2026-02-28T22:55:00Z", id="offset"),
        pytest.param("2026-03-01T10:00:00Z", 0, "2026-03-01T10:00:00Z", id="no-overlap"),
        pytest.param(None, 600, None, id="no-watermark-reads-all"),
    ],
)
def test_since_applies_the_lookback(mark, lookback, expected):
    assert since(mark, lookback) == expected


def test_since_rejects_a_negative_lookback():
    with pytest.raises(ValueError, match="negative"):
        since("2026-03-01T10:00:00Z", -1)


def test_canonical_strings_sort_like_datetimes_at_equal_precision():
    values = ["2026-03-01T10:00:00+01:00", "2026-03-01T08:00:00Z", "2026-02-28T23:00:00-02:00"]
    canonical = [normalise(v) for v in values]
    assert sorted(canonical) == [normalise(v) for v in sorted(values, key=parse_timestamp)]


def test_module_is_airflow_free():
    tree = ast.parse(Path(watermark.__file__).read_text())
    imported = {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    # The standard library and the shared vocabulary (which imports only the standard library).
    assert imported <= {"__future__", "datetime", "clientify_sync.vocabulary"}
