"""``Conflicts``: same-field conflicts a run resolved."""

from __future__ import annotations

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.plan import ConflictRow

RUN1 = "scheduled__2026-11-28T10:00:00+00:00"
RUN2 = "scheduled__2026-11-29T10:00:00+00:00"


def conflict(field: str, winner: str) -> ConflictRow:
    return ConflictRow(
        inv_id="101", crm_type="contact", crm_id="9001", field=field, invoicing_value="ana@empresa.mx",
        clientify_value="ana.g@empresa.mx", base_value="ana@example.mx", winner=winner, first_match=False,
    )  # fmt: skip


def test_conflicts_are_listed_in_the_order_recorded_per_run(ledger: Ledger) -> None:
    ledger.conflicts.add(RUN1, [conflict("email", "clientify"), conflict("name", "invoicing")])
    ledger.conflicts.add(RUN2, [conflict("street", "clientify")])
    ledger.conflicts.add(RUN2, [])
    assert [c["field"] for c in ledger.conflicts.list()] == ["email", "name", "street"]
    [only] = ledger.conflicts.list(RUN2)
    assert (only["field"], only["winner"], only["run_id"], only["base_value"]) == (
        "street",
        "clientify",
        RUN2,
        "ana@example.mx",
    )
    assert only["created_at"] is not None
    assert ledger.scoped("products").conflicts.list() == []
