"""The hooks hand every task of one API account the budget kept in the ledger (issue 11)."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.schema import request_log
from clientify_sync.hooks.clientify import ClientifyHook
from tests.hooks.test_hooks_unit import set_connection


def answer(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"count": 0, "next": None, "previous": None, "results": []})


@pytest.fixture
def ledger(tmp_path):
    opened = Ledger.open(f"sqlite:///{tmp_path}/ledger.db", "facturama", "contacts")
    yield opened
    opened.close()


def granted(ledger: Ledger) -> list[str]:
    with ledger.engine.connect() as conn:
        return list(conn.scalars(sa.select(request_log.c.account)))


def test_two_hooks_of_one_account_count_their_requests_in_one_budget(monkeypatch, ledger):
    set_connection(monkeypatch, "clientify_default", host="https://api.clientify.net", password="k-1",
                   extra={"requests_per_minute": 120})  # fmt: skip
    hooks = [ClientifyHook(transport=httpx.MockTransport(answer)) for _ in range(2)]
    for hook in hooks:
        hook.share_budget(ledger.engine)
        assert hook.test_connection()[0]
    accounts = granted(ledger)
    assert len(accounts) >= 2 and len(set(accounts)) == 1  # every call recorded, under one account
    assert "k-1" not in accounts[0]


def test_an_unlimited_connection_keeps_its_own_bucket_and_writes_nothing(monkeypatch, ledger):
    set_connection(monkeypatch, "clientify_default", host="https://api.clientify.net", password="k-1")
    hook = ClientifyHook(transport=httpx.MockTransport(answer))
    hook.share_budget(ledger.engine)
    assert hook.test_connection()[0]
    assert granted(ledger) == []
