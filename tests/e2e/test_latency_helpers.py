"""The latency phase's bookkeeping, without a stack: percentiles, which records are paired, the edit plan."""

from __future__ import annotations

from tests.e2e.inventory import Inventory, pick_email
from tests.e2e.latency import (
    CLIENTIFY_TO_FACTURADIRECTA,
    CLIENTIFY_TO_FACTURAMA,
    FACTURADIRECTA_TO_CLIENTIFY,
    Edit,
    Latency,
    pairs,
    percentile,
    plan_edits,
    stayed,
)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 0.5) == 10.0
    assert percentile(values, 0.95) == 19.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None


def _inventory() -> Inventory:
    crm_contacts = [
        {"id": 1, "taxpayer_identification_number": "CARR830905LZ8", "emails": [{"type": 4, "email": "A@x.org"}]},
        {"id": 2, "taxpayer_identification_number": "32886244Q", "emails": [{"type": 1, "email": "b@x.org"}]},
        {"id": 3, "taxpayer_identification_number": "12345678Z", "emails": [{"type": 4, "email": "c@x.org"}]},
        {"id": 4, "taxpayer_identification_number": "87654321X", "emails": [{"type": 4, "email": "old@x.org"}]},
    ]  # fmt: skip
    return Inventory(
        {
            "clientify": {"contacts": crm_contacts, "companies": [], "products": [], "budgets": []},
            "facturama": {"clients": [{"Id": "fm1", "Rfc": "CARR-830905-LZ8", "Email": "a@x.org"}]},
            "facturadirecta": {
                "clients": [
                    {"id": "con_b", "taxCode": "32886244Q", "email": "b@x.org"},
                    {"id": "con_c", "taxCode": "12345678Z", "email": "c@x.org"},
                    # the same tax id, another e-mail: not (yet) linked, never edited
                    {"id": "con_d", "taxCode": "87654321X", "email": "new@x.org"},
                ]
            },
        }
    )


def test_pairs_need_the_tax_id_and_the_same_email() -> None:
    assert pick_email(
        {"emails": [{"type": 1, "email": "Other@x.org"}, {"type": 4, "email": "Main@x.org"}]}
    ) == ("main@x.org")
    assert pairs(_inventory()) == {
        "facturama": [("contacts/1", "fm1")],
        "facturadirecta": [("contacts/2", "con_b"), ("contacts/3", "con_c")],
    }


def test_plan_edits_uses_distinct_records_per_direction_interleaved() -> None:
    edits = plan_edits(_inventory(), count=1)
    assert [(e.direction, e.source, e.target) for e in edits] == [
        (CLIENTIFY_TO_FACTURAMA, "contacts/1", "fm1"),
        (CLIENTIFY_TO_FACTURADIRECTA, "contacts/2", "con_b"),
        (FACTURADIRECTA_TO_CLIENTIFY, "con_c", "contacts/3"),
    ]
    assert len({e.email for e in edits}) == 3


def test_stats_and_stayed_report_what_did_not_arrive_or_was_undone() -> None:
    inventory = _inventory()
    arrived = Edit(CLIENTIFY_TO_FACTURAMA, "contacts/1", "fm1", "a@x.org", 1.0, 12.5)
    undone = Edit(FACTURADIRECTA_TO_CLIENTIFY, "con_c", "contacts/3", "n@x.org", 1.0, 30.0)
    lost = Edit(CLIENTIFY_TO_FACTURADIRECTA, "contacts/2", "con_b", "b@x.org", 1.0, None)
    result = Latency("local", edits=[arrived, undone, lost])
    stats = result.stats()
    assert stats[CLIENTIFY_TO_FACTURAMA] == {
        "edits": 1,
        "arrived": 1,
        "p50_s": 12.5,
        "p95_s": 12.5,
        "max_s": 12.5,
    }
    assert stats[CLIENTIFY_TO_FACTURADIRECTA]["arrived"] == 0
    assert stats[CLIENTIFY_TO_FACTURADIRECTA]["max_s"] is None
    problems = stayed(inventory, result.edits)
    assert len(problems) == 1 and problems[0].startswith(f"{FACTURADIRECTA_TO_CLIENTIFY} con_c")
