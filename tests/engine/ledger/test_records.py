"""``Records``: staging what a run read, and reading it back for matching and writes."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.records import raw_hash
from clientify_sync.engine.ledger.schema import remote_records
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.vocabulary import Side

RUN1 = "scheduled__2026-11-28T10:00:00+00:00"
RUN2 = "scheduled__2026-11-29T10:00:00+00:00"
INV = Side.INVOICING


def client(rid: str, name: str = "Ana Godínez", **overrides: Any) -> SideRecord:
    fields: dict[str, Any] = {
        "side": INV,
        "rtype": "client",
        "rid": rid,
        "data": {"tax_id": "GODE561231GR8", "name": name},
        "key": "GODE561231GR8",
        "link": "9001",
        "modified": "2026-11-28T09:00:00Z",
        "raw": {"Id": rid, "Rfc": "GODE561231GR8", "Name": name, "Phone": "5555555555"},
    }
    return SideRecord(**(fields | overrides))


def stored(ledger: Ledger, rid: str) -> dict[str, Any]:
    t = remote_records
    with ledger.engine.connect() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.rid == rid)).mappings().one())


def overwrite_data(ledger: Ledger, rid: str, data: dict[str, Any]) -> None:
    """Change the stored payload behind the ledger's back: a rewrite by ``stage`` would undo it."""
    with ledger.begin() as conn:
        conn.execute(sa.update(remote_records).where(remote_records.c.rid == rid).values(data=data))


def test_a_new_record_has_no_previous_hash(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1)
    row = stored(ledger, "101")
    assert row["prev_hash"] is None
    assert row["hash"] == client("101").content_hash
    assert row["seen_run"] == RUN1
    assert row["raw"]["Phone"] == "5555555555"


def test_an_unchanged_record_is_seen_again_without_rewriting_its_payload(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1)
    overwrite_data(ledger, "101", {"tax_id": "GODE561231GR8", "name": "kept as stored"})
    ledger.records.stage([client("101")], RUN2)
    row = stored(ledger, "101")
    assert row["seen_run"] == RUN2
    assert row["prev_hash"] == row["hash"] == client("101").content_hash
    assert row["data"]["name"] == "kept as stored"  # no JSON written for an unchanged record


def test_a_changed_record_is_replaced_and_keeps_the_hash_before(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1)
    ledger.records.stage([client("101", name="Ana Godínez Ruiz")], RUN2)
    row = stored(ledger, "101")
    assert row["prev_hash"] == client("101").content_hash
    assert row["hash"] == client("101", name="Ana Godínez Ruiz").content_hash != row["prev_hash"]
    assert row["data"]["name"] == "Ana Godínez Ruiz"
    assert row["seen_run"] == RUN2


def test_columns_the_hash_does_not_cover_are_refreshed_on_an_unchanged_record(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1)
    overwrite_data(ledger, "101", {"tax_id": "GODE561231GR8", "name": "kept as stored"})
    later = client("101", modified="2026-11-29T08:00:00Z", problem="no_email", kind="person")
    assert later.content_hash == client("101").content_hash
    ledger.records.stage([later], RUN2)
    row = stored(ledger, "101")
    assert (row["modified"], row["problem"], row["kind"]) == ("2026-11-29T08:00:00Z", "no_email", "person")
    assert row["prev_hash"] == row["hash"]
    assert row["data"]["name"] == "kept as stored"


def test_a_change_outside_the_mapped_fields_replaces_the_stored_raw(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1)
    phone_changed = client(
        "101", raw={"Id": "101", "Rfc": "GODE561231GR8", "Name": "Ana Godínez", "Phone": "1"}
    )
    ledger.records.stage([phone_changed], RUN2)
    row = stored(ledger, "101")
    assert row["raw"]["Phone"] == "1"  # a later read-modify-write must not send the old phone back
    assert row["prev_hash"] == row["hash"]  # the mapped content did not change


def test_without_raw_nothing_of_the_api_record_is_stored(ledger: Ledger) -> None:
    ledger.records.stage([client("101")], RUN1, keep_raw=False)
    assert stored(ledger, "101")["raw"] is None


def test_the_last_state_of_a_record_read_twice_wins(ledger: Ledger) -> None:
    ledger.records.stage([client("101", name="first"), client("101", name="second")], RUN1)
    assert stored(ledger, "101")["data"]["name"] == "second"


def test_staging_many_records_spans_chunks(ledger: Ledger) -> None:
    records = [client(str(n), name=f"Cliente {n}") for n in range(1000)]
    ledger.records.stage(records, RUN1)
    ledger.records.stage(records[:500] + [client(str(n), name="changed") for n in range(500, 1000)], RUN2)
    frame = ledger.records.identities("invoicing", seen_run=RUN2)
    assert len(frame) == 1000
    unchanged = frame[frame["prev_hash"] == frame["hash"]]
    assert sorted(unchanged["rid"], key=int) == [str(n) for n in range(500)]


def test_identities_are_scoped_and_filtered_by_run(ledger: Ledger) -> None:
    ledger.records.stage([client("101"), client("102")], RUN1)
    ledger.records.stage([client("102")], RUN2)
    Ledger(ledger.engine, "facturama", "products").records.stage([client("900")], RUN2)
    frame = ledger.records.identities("invoicing")
    assert sorted(frame["rid"]) == ["101", "102"]
    assert "data" not in frame.columns and "raw" not in frame.columns
    assert list(ledger.records.identities("invoicing", seen_run=RUN2)["rid"]) == ["102"]
    assert ledger.records.identities("clientify").empty


def test_fetch_reads_full_rows_by_type_and_id(ledger: Ledger) -> None:
    ledger.records.stage([client("101"), client("102", name="Beto")], RUN1)
    found = ledger.records.fetch("invoicing", [("client", "102"), ("client", "102"), ("client", "404")])
    assert list(found) == [("client", "102")]
    assert found[("client", "102")]["data"]["name"] == "Beto"
    assert found[("client", "102")]["raw"]["Name"] == "Beto"
    lean = ledger.records.fetch("invoicing", [("client", "101")], with_raw=False)
    assert "raw" not in lean[("client", "101")] and lean[("client", "101")]["link"] == "9001"


def test_max_modified_is_the_latest_of_one_run(ledger: Ledger) -> None:
    ledger.records.stage([client("101", modified="2026-11-28T09:00:00Z")], RUN1)
    ledger.records.stage([client("102", modified="2026-11-29T07:00:00Z")], RUN2)
    ledger.records.stage([client("103", modified="2026-11-29T06:00:00Z")], RUN2)
    assert ledger.records.max_modified("invoicing", RUN2) == "2026-11-29T07:00:00Z"
    assert ledger.records.max_modified("clientify", RUN2) is None


def test_staging_joins_the_callers_transaction(ledger: Ledger) -> None:
    try:
        with ledger.begin() as conn:
            ledger.records.stage([client("101")], RUN1, conn=conn)
            raise RuntimeError("the write failed")
    except RuntimeError:
        pass
    assert ledger.records.identities("invoicing").empty  # rolled back with the caller's transaction


def test_the_raw_digest_tells_records_apart_by_value_and_type() -> None:
    record = {
        "Id": "7",
        "Name": "Ana",
        "Price": 1.5,
        "Taxes": [{"Rate": 0.16, "IsRetention": False}],
        "Note": None,
    }
    same = json.loads(json.dumps(record))  # another parse of the same text: other objects, equal values
    assert raw_hash(record) == raw_hash(same) and raw_hash(None) is None
    for changed in ({**record, "Name": "Ana "}, {**record, "Price": 1.50001}, {**record, "Note": ""},
                    {**record, "Taxes": [{"Rate": 0.16, "IsRetention": 0}]}, {**record, "Price": "1.5"}):  # fmt: skip
        assert raw_hash(changed) != raw_hash(record), changed
    # Key order is not normalised: a reordered record only counts as changed (one re-map).
    assert raw_hash(dict(reversed(list(record.items())))) != raw_hash(record)
    # A value no decoder produces is still digested (by repr), not refused.
    assert raw_hash({**record, "Price": Decimal("1.5")}) not in (None, raw_hash(record))
