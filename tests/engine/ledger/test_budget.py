"""The shared request budget: one requests-per-minute limit for every task and worker of an account."""

from __future__ import annotations

import multiprocessing as mp
from typing import Any

import sqlalchemy as sa

from clientify_sync.engine.budget import SharedRequestBudget, account_key
from clientify_sync.engine.ledger import Ledger, create_ledger_engine
from clientify_sync.engine.ledger.schema import request_log

ACCOUNT = account_key("clientify", "https://api.clientify.net", None, "not-a-real-key")


class FakeTime:
    """A clock the budget reads and a sleep that advances it: the window is tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.slept: list[float] = []

    def clock(self, _conn: Any) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _engine(url: str) -> sa.Engine:
    Ledger.open(url, "facturama", "contacts").close()  # the schema
    return create_ledger_engine(url)


def test_no_window_of_the_account_holds_more_than_the_limit(ledger_url):
    engine, fake = _engine(ledger_url), FakeTime()
    budget = SharedRequestBudget(engine, ACCOUNT, 3, margin_s=1.0, sleep=fake.sleep, clock=fake.clock)
    granted_at = []
    for _ in range(7):
        budget.acquire()
        granted_at.append(fake.now)
    # Three at once, then each next three when the first ones leave the 61-second window.
    assert granted_at == [1_000_000.0] * 3 + [1_000_061.0] * 3 + [1_000_122.0]
    for start in granted_at:
        assert sum(start <= t < start + 61 for t in granted_at) <= 3
    engine.dispose()


def test_two_tasks_of_one_account_draw_from_one_budget(ledger_url):
    engine, fake = _engine(ledger_url), FakeTime()
    first = SharedRequestBudget(engine, ACCOUNT, 4, sleep=fake.sleep, clock=fake.clock)
    second = SharedRequestBudget(engine, ACCOUNT, 4, sleep=fake.sleep, clock=fake.clock)
    other_account = SharedRequestBudget(engine, account_key("facturama", "h", "u", "p"), 4, clock=fake.clock)
    assert [first.try_acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert second.try_acquire() == 0.0
    assert second.try_acquire() == 61.0  # the account's fifth request waits for the first to expire
    assert other_account.try_acquire() == 0.0  # another account has its own budget
    engine.dispose()


def _grab(url: str, barrier: Any, results: Any) -> None:
    engine = create_ledger_engine(url)
    budget = SharedRequestBudget(engine, ACCOUNT, 10)
    barrier.wait(timeout=60)
    results.put(sum(budget.try_acquire() == 0.0 for _ in range(6)))
    engine.dispose()


def test_processes_racing_for_the_budget_get_exactly_the_limit(ledger_url):
    Ledger.open(ledger_url, "facturama", "contacts").close()
    context = mp.get_context("fork")
    barrier, results = context.Barrier(4), context.Queue()
    workers = [context.Process(target=_grab, args=(ledger_url, barrier, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    assert sum(results.get(timeout=5) for _ in workers) == 10  # 24 asked within a second, 10 granted


def test_an_unlimited_connection_stores_nothing(ledger_url):
    engine = _engine(ledger_url)
    assert SharedRequestBudget(engine, ACCOUNT, 0).acquire() == 0.0
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(request_log)) == 0
    engine.dispose()


def test_the_account_name_reveals_no_credential():
    key = account_key("clientify", "https://api.clientify.net", None, "secret-api-key")
    assert key.startswith("clientify:") and "secret" not in key
    assert key != account_key("clientify", "https://api.clientify.net", None, "another-key")
