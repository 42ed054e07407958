"""The facts both layers share (``clientify_sync/facts.py``), on literal records."""

from __future__ import annotations

from clientify_sync.facts import custom_field_value


def test_custom_field_value_reads_the_field_and_treats_blank_and_dashes_as_no_value():
    record = {
        "custom_fields": [{"field": "ID_FM", "value": "  A  1 "}, {"name": "ID_FD", "value": "--"}, "junk"]
    }
    assert custom_field_value(record, "ID_FM") == "A 1"
    assert custom_field_value(record, "ID_FD") is None  # what Clientify's web client saves for "empty"
    assert custom_field_value({"custom_fields": [{"field": "X", "value": None}]}, "X") is None
    assert custom_field_value({}, "ID_FM") is None
