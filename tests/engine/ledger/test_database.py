"""The ledger's transaction retry: a database restart or dropped connection is ridden out, a real
error is not (issue 22: a PostgreSQL restart failed the apply task through one ledger write)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.database import LeaseTaken, is_transient, lease, retry_transient
from clientify_sync.engine.ledger.pending import Create


def shutting_down() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("INSERT ...", {}, Exception("the database system is shutting down"))


def test_transient_errors_are_the_operational_and_invalidated_ones():
    assert is_transient(shutting_down())
    dropped = sa.exc.DBAPIError(
        "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
    )
    assert is_transient(dropped)
    assert not is_transient(sa.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key")))
    assert not is_transient(ValueError("a bug"))


def test_a_transaction_is_run_again_after_a_transient_error_and_once_otherwise():
    attempts: list[int] = []

    def work() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise shutting_down()
        return "written"

    assert retry_transient(work, seconds=30) == "written" and len(attempts) == 3
    attempts.clear()

    def broken() -> None:
        attempts.append(1)
        raise sa.exc.IntegrityError("INSERT ...", {}, Exception("duplicate key"))

    with pytest.raises(sa.exc.IntegrityError):
        retry_transient(broken, seconds=30)
    assert len(attempts) == 1


def test_the_last_transient_error_is_raised_when_the_database_stays_away():
    def away() -> None:
        raise shutting_down()

    with pytest.raises(sa.exc.OperationalError):
        retry_transient(away, seconds=0)


def test_ledger_write_rolls_back_the_failed_attempt_and_commits_the_retry(ledger_url: str):
    ledger = Ledger.open(ledger_url, "facturama", "contacts")
    failures = [shutting_down()]
    create = Create("clientify", "contact", ("client", "c1"), "URE180429TM6")

    def work(conn: sa.Connection) -> list[int]:
        ids = ledger.pending.add(conn, [create], "run-1")
        if failures:
            raise failures.pop()  # after the INSERT: the attempt must leave nothing behind
        return ids

    try:
        ids = ledger.write(work)
        assert [entry.id for entry in ledger.pending.all()] == ids and len(ids) == 1
    finally:
        ledger.close()


@pytest.mark.postgres
def test_a_lease_held_by_one_session_keeps_another_out_until_released(postgres_server: dict[str, str]):
    """Two tries of one apply step (the second started while a zombie first still writes): the second
    waits for the first and gets the lease once it lets go. PostgreSQL only: SQLite serves one process."""
    url = postgres_server["postgres"]
    first, second = (Ledger.open(url, "facturama", "contacts") for _ in range(2))
    try:
        with lease(first.engine, "apply:facturama:contacts:clientify", wait_s=0):
            with (
                pytest.raises(LeaseTaken),
                lease(second.engine, "apply:facturama:contacts:clientify", wait_s=0),
            ):
                pass
            with lease(second.engine, "apply:facturama:contacts:invoicing", wait_s=0):
                pass  # another step's lease is free
        with lease(second.engine, "apply:facturama:contacts:clientify", wait_s=0):
            pass  # released with the block
    finally:
        first.close()
        second.close()
