"""The run report built from a ledger: here, the conflict policy it shows (issue 23)."""

from __future__ import annotations

import dataclasses

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.model import PRODUCT_SCHEMA
from clientify_sync.engine.report import build_report, format_report_table
from clientify_sync.vocabulary import Entity, JobSpec, Platform


def test_the_report_shows_who_won_which_field_with_the_policy_the_run_used(tmp_path):
    ledger = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "products")
    spec = JobSpec(Platform.FACTURAMA, Entity.PRODUCTS, "run-1")
    configured = dataclasses.replace(PRODUCT_SCHEMA, invoicing_wins=frozenset({"name"}))
    try:
        report = build_report(ledger, spec, None, None, schema=configured)
        unstated = build_report(ledger, spec, None, None)
    finally:
        ledger.close()
    assert report["conflict_policy"] == {"invoicing": ["name"], "clientify": ["sku", "price"]}
    table = format_report_table(report)
    assert "conflicts won by invoicing: name" in table and "conflicts won by clientify: sku, price" in table
    assert "conflict_policy" not in unstated and "conflicts won by" not in format_report_table(unstated)
