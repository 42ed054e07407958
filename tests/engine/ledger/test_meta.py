"""``Meta``: ledger-wide values by key."""

from __future__ import annotations

from clientify_sync.engine.ledger import Ledger


def test_a_value_is_set_replaced_and_deleted_with_none(ledger: Ledger) -> None:
    assert ledger.meta.get("clientify.custom_field:in_facturama:contacts") is None
    ledger.meta.set("clientify.custom_field:in_facturama:contacts", "defined")
    ledger.meta.set("clientify.custom_field:in_facturama:contacts", "missing")
    assert ledger.meta.get("clientify.custom_field:in_facturama:contacts") == "missing"
    ledger.meta.set("clientify.custom_field:in_facturama:contacts", None)
    assert ledger.meta.get("clientify.custom_field:in_facturama:contacts") is None


def test_meta_is_shared_by_every_scope(ledger: Ledger) -> None:
    ledger.meta.set("cursor", "2026-11-29T10:00:00Z")
    assert Ledger(ledger.engine, "facturadirecta", "products").meta.get("cursor") == "2026-11-29T10:00:00Z"
    assert ledger.meta.get("schema_version") == "7"
