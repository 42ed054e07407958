"""``DeadLetters``: failed records, attempts counted, and the status view's dismiss / retry."""

from __future__ import annotations

import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.database import now
from clientify_sync.engine.ledger.dead_letters import Letter
from clientify_sync.engine.ledger.schema import dead_letters

RUN1 = "scheduled__2026-11-28T10:00:00+00:00"
RUN2 = "scheduled__2026-11-29T10:00:00+00:00"


def fail(ledger: Ledger, rid: str, run_id: str, reason: str = "validation_error") -> None:
    with ledger.begin() as conn:
        ledger.dead_letters.record(
            conn, [Letter("invoicing", "client", rid, reason, f"{reason} in {run_id}")], run_id
        )


def stored(ledger: Ledger, rid: str) -> dict[str, object]:
    with ledger.engine.connect() as conn:
        return dict(conn.execute(sa.select(dead_letters).where(dead_letters.c.rid == rid)).mappings().one())


def test_each_failure_counts_one_more_attempt(ledger: Ledger) -> None:
    fail(ledger, "105", RUN1)
    fail(ledger, "105", RUN1)
    fail(ledger, "105", RUN2, reason="server_error")
    row = stored(ledger, "105")
    assert (row["attempts"], row["first_run"], row["last_run"]) == (3, RUN1, RUN2)
    assert (row["reason"], row["detail"]) == ("server_error", f"server_error in {RUN2}")
    [letter] = ledger.dead_letters.open().to_dict("records")
    assert letter == {
        "side": "invoicing",
        "rtype": "client",
        "rid": "105",
        "reason": "server_error",
        "attempts": 3,
    }


def test_a_requested_retry_resets_the_attempts(ledger: Ledger) -> None:
    for _ in range(5):
        fail(ledger, "107", RUN1)
    with ledger.begin() as conn:
        conn.execute(sa.update(dead_letters).values(retry_requested_at=now(), retry_requested_by="ada.admin"))
    assert ledger.dead_letters.open()["attempts"].tolist() == [0]  # no attempt yet since the request
    fail(ledger, "107", RUN2)
    row = stored(ledger, "107")
    assert (row["attempts"], row["retry_requested_at"], row["retry_requested_by"]) == (1, None, None)
    fail(ledger, "107", RUN2)
    assert stored(ledger, "107")["attempts"] == 2


def test_dismissed_letters_are_not_open(ledger: Ledger) -> None:
    fail(ledger, "105", RUN1)
    fail(ledger, "106", RUN1)
    with ledger.begin() as conn:
        conn.execute(sa.update(dead_letters).where(dead_letters.c.rid == "105").values(dismissed_at=now()))
    assert ledger.dead_letters.open()["rid"].tolist() == ["106"]


def test_clear_forgets_one_or_many_records(ledger: Ledger) -> None:
    for rid in ("101", "102", "103"):
        fail(ledger, rid, RUN1)
    fail(ledger, "101", RUN1)
    with ledger.begin() as conn:
        ledger.dead_letters.clear(conn, "invoicing", "client", "101")
        ledger.dead_letters.clear(conn, "invoicing", "client", ["102"])
        ledger.dead_letters.clear(conn, "clientify", "contact", "103")  # another side: kept
    assert ledger.dead_letters.open()["rid"].tolist() == ["103"]
    assert ledger.scoped("products").dead_letters.open().empty


def test_many_failures_recorded_in_one_statement_count_like_single_ones(ledger: Ledger) -> None:
    fail(ledger, "105", RUN1)
    letters = [
        Letter("invoicing", "client", "105", "server_error", "HTTP 500"),
        Letter("invoicing", "client", "106", "validation_error", "no e-mail"),
        Letter(
            "invoicing", "client", "105", "server_error", "HTTP 502"
        ),  # the same record twice in one batch
    ]
    with ledger.begin() as conn:
        ledger.dead_letters.record(conn, letters, RUN2)
        ledger.dead_letters.record(conn, [], RUN2)
    again, new = stored(ledger, "105"), stored(ledger, "106")
    assert (again["attempts"], again["first_run"], again["last_run"], again["detail"]) == (
        3,
        RUN1,
        RUN2,
        "HTTP 502",
    )
    assert (new["attempts"], new["first_run"], new["reason"]) == (1, RUN2, "validation_error")
