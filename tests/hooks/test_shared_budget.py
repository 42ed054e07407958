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


def test_the_rest_api_budget_is_the_companys_whatever_the_key_or_host(monkeypatch, ledger):
    """FacturaDirecta's REST API counts requests per company (facturadirecta-rest-api.md §3): two keys of
    one company draw from one budget, another company from its own."""
    from clientify_sync.api.facturadirecta_rest import REQUIRED_SCOPES
    from clientify_sync.engine.budget import account_key
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from tests.hooks.test_hooks_unit import COMPANY, REST_KEY, rest_api

    other_key = "zZ9yY8.Another0Key0Of0The0Same0Company00"
    other_company = "com_0b7e5f1a-9c3d-4a2b-8e6f-7d1c2b3a4e5f"
    connections = {
        "fd_a": (REST_KEY, COMPANY),
        "fd_b": (other_key, COMPANY),
        "fd_c": (REST_KEY, other_company),
    }
    for conn_id, (key, company) in connections.items():
        set_connection(monkeypatch, conn_id, host="https://app.facturadirecta.com" if conn_id == "fd_b" else None,
                       password=key, extra={"api": "rest", "company_id": company})  # fmt: skip
    for conn_id, (key, _) in connections.items():
        hook = FacturaDirectaHook(
            facturadirecta_conn_id=conn_id, transport=rest_api(list(REQUIRED_SCOPES), key=key)
        )
        hook.share_budget(ledger.engine)
        assert hook.get_conn().scopes()
        hook.close()
    accounts = granted(ledger)
    assert accounts == [
        account_key("facturadirecta", "rest", company) for company in (COMPANY, COMPANY, other_company)
    ]
    assert not any(
        key in account or company in account for account in accounts for key, company in connections.values()
    )
