"""The webhook receiver, mounted as Airflow mounts the status app: who may store an inbox row, and how
many; a flood of deliveries and the trigger's firings; the status pages still closed to anonymous users."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from starlette.routing import Mount

from clientify_sync.engine.ledger import create_ledger_engine
from clientify_sync.engine.ledger.schema import inbox
from clientify_sync.ui import app as ui
from clientify_sync.ui import queries as Q
from clientify_sync.webhooks import receiver
from clientify_sync.webhooks.config import WebhookConfig
from clientify_sync.webhooks.trigger import InboxTrigger
from clientify_sync.webhooks.verify import sign
from tests.webhooks.conftest import FakeClock, drive

NOW = 1_795_000_000  # the receiver's fixed Unix time
COMPANY = "com_3a7e8d29-0000-4000-8000-000000000001"
FD_SECRET = "whsec_" + "a1" * 16
FD_OLD_SECRET = "whsec_" + "b2" * 16
CF_SECRET = "cf-secret-" + "c3" * 12
CF_TOKEN = "tok-" + "d4" * 16
FD_URL = f"{ui.URL_PREFIX}/webhooks/facturadirecta/main"
CONNECTIONS: dict[str, dict[str, Any]] = {
    "clientify_sync_webhooks_clientify": {"webhook_secret": CF_SECRET, "webhook_path_token": CF_TOKEN},
    "clientify_sync_webhooks_facturadirecta_main": {"webhook_secret": FD_SECRET, "company_id": COMPANY},
}


def cf_url(slot: str = "contacts", token: str = CF_TOKEN) -> str:
    return f"{ui.URL_PREFIX}/webhooks/clientify/{slot}/{token}"


def make_client(engine: Engine, connections: dict[str, dict[str, Any]] | None = None,
                ledger: Callable[[], Engine] | None = None, config: WebhookConfig | None = None,
                real_ledger: bool = False) -> TestClient:  # fmt: skip
    """The status app (with the receiver it mounts) under ``/clientify-sync``, as the API server mounts it.

    The webhook connections are ``connections`` (default ``CONNECTIONS``) unless ``config`` is given;
    the ledger is ``engine`` unless ``real_ledger`` (then the status view's, from its connection).
    """
    status_app = ui.create_app()
    status_app.dependency_overrides[ui.get_view] = lambda: Q.LedgerView(engine)
    [webhooks] = [r.app for r in status_app.routes if isinstance(r, Mount) and r.path == ui.WEBHOOKS_PATH]
    known = CONNECTIONS if connections is None else connections
    webhooks.dependency_overrides.update({
        receiver.get_config: lambda: config or WebhookConfig(read=lambda conn_id: known.get(conn_id)),
        receiver.get_clientify_consumers: lambda: ("facturama", "facturadirecta"),
        receiver.get_clock: lambda: (lambda: float(NOW)),
    })  # fmt: skip
    if not real_ledger:
        webhooks.dependency_overrides[receiver.get_ledger] = lambda: ledger or (lambda: engine)
    root = FastAPI()
    root.mount(ui.URL_PREFIX, status_app)
    return TestClient(root, base_url="https://airflow.test")


@pytest.fixture
def client(engine: Engine) -> TestClient:
    return make_client(engine)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(inbox).order_by(inbox.c.id)).mappings()]


def fd_event(event_id: str = "whe_5a8b1c34-0001", type_: str = "contact.updated", object_id: str = "con_77",
             company: str = COMPANY, livemode: bool = True) -> bytes:  # fmt: skip
    body = {
        "id": event_id, "type": type_, "object_type": type_.split(".")[0], "created": NOW - 2, "livemode": livemode,
        "company_id": company,
        "data": {"object": {"id": object_id, "name": "Ana Pérez", "email": "ana@example.com"},
                 "previous_attributes": {"email": "old@example.com"}},
    }  # fmt: skip
    return json.dumps(body).encode()


def fd_post(client: TestClient, raw: bytes, *, secret: str = FD_SECRET, t: int = NOW, url: str = FD_URL,
            headers: dict[str, str] | None = None) -> Any:  # fmt: skip
    sent = {
        "Webhook-Signature": sign(raw, secret, t),
        "Webhook-Timestamp": str(t),
        "Content-Type": "application/json",
    }
    return client.post(url, content=raw, headers={**sent, **(headers or {})})


def cf_body(rid: int | str = 101, event: str = "contact.saved", modified: str | None = "2026-11-29T10:00:00Z",
            **data: Any) -> bytes:  # fmt: skip
    record: dict[str, Any] = {
        "id": rid,
        "first_name": "Ana",
        "emails": [{"email": "ana@example.com"}],
        **data,
    }
    if modified is not None:
        record["modified"] = modified
    return json.dumps(
        {"hook": {"id": 412, "event": event, "target": "https://x.test/hook"}, "data": record}
    ).encode()


def cf_post(client: TestClient, raw: bytes, *, url: str | None = None, secret: str | None = CF_SECRET) -> Any:
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers["X-Clientify-Secret"] = secret
    return client.post(url or cf_url(), content=raw, headers=headers)


# -- FacturaDirecta -------------------------------------------------------------------------------------


def test_a_signed_event_is_stored_as_one_row_without_its_payload(client: TestClient, engine: Engine) -> None:
    raw = fd_event()
    response = fd_post(client, raw)
    assert (response.status_code, response.json()) == (200, {"status": "stored"})
    [row] = rows(engine)
    assert {k: row[k] for k in ("integration", "entity", "source", "record_type", "external_id", "event_type",
                                "status")} == {  # fmt: skip
        "integration": "facturadirecta", "entity": "contacts", "source": "facturadirecta", "record_type": "contact",
        "external_id": "con_77", "event_type": "contact.updated", "status": "pending",
    }  # fmt: skip
    assert row["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    assert row["source_ts"].replace(tzinfo=UTC) == datetime.fromtimestamp(NOW - 2, UTC)
    assert not any(pii in str(row) for pii in ("Ana", "ana@", "old@", "whe_5a8b"))


@pytest.mark.parametrize(
    "headers",
    [
        {"Webhook-Signature": ""},
        {"Webhook-Signature": f"t={NOW},v1={'0' * 64}"},
        {"Webhook-Signature": f"t={NOW}"},
        {"Webhook-Signature": "v1=abc"},
        {"Webhook-Signature": f"t={NOW},v0=whatever"},
        {"Webhook-Timestamp": str(NOW - 1)},  # not the timestamp that was signed
    ],
    ids=["missing", "wrong", "no-v1", "no-t", "other-scheme", "timestamp-header-differs"],
)
def test_a_bad_or_missing_signature_is_401_and_nothing_is_stored(
    client: TestClient, engine: Engine, headers: dict[str, str]
) -> None:
    response = fd_post(client, fd_event(), headers=headers)
    assert response.status_code == 401 and response.json() == {"detail": "unauthorized"}
    assert rows(engine) == []


def test_a_signature_with_another_secret_is_refused(client: TestClient, engine: Engine) -> None:
    assert fd_post(client, fd_event(), secret="whsec_" + "ee" * 16).status_code == 401
    assert rows(engine) == []


@pytest.mark.parametrize(("age", "expected"), [(299, 200), (300, 200), (301, 401), (-301, 401), (-299, 200)])
def test_the_timestamp_must_be_within_five_minutes(
    client: TestClient, engine: Engine, age: int, expected: int
) -> None:
    assert fd_post(client, fd_event(), t=NOW - age).status_code == expected
    assert len(rows(engine)) == (1 if expected == 200 else 0)


def test_a_body_modified_after_signing_is_refused(client: TestClient, engine: Engine) -> None:
    raw = fd_event()
    header = sign(raw, FD_SECRET, NOW)
    tampered = raw.replace(b"con_77", b"con_78")
    response = client.post(FD_URL, content=tampered, headers={"Webhook-Signature": header})
    assert response.status_code == 401 and rows(engine) == []
    spaced = raw.replace(b'", "', b'","', 1)  # the same JSON, other bytes
    assert client.post(FD_URL, content=spaced, headers={"Webhook-Signature": header}).status_code == 401


def test_during_a_rotation_both_secrets_are_accepted(engine: Engine) -> None:
    rotating = {**CONNECTIONS, "clientify_sync_webhooks_facturadirecta_main": {
        "webhook_secret": FD_SECRET, "webhook_secret_previous": FD_OLD_SECRET, "company_id": COMPANY}}  # fmt: skip
    client = make_client(engine, rotating)
    assert fd_post(client, fd_event("whe_new"), secret=FD_SECRET).status_code == 200
    assert fd_post(client, fd_event("whe_old"), secret=FD_OLD_SECRET).status_code == 200
    assert len(rows(engine)) == 2
    after = make_client(engine)  # the previous secret removed from the connection
    assert fd_post(after, fd_event("whe_late"), secret=FD_OLD_SECRET).status_code == 401
    assert len(rows(engine)) == 2


@pytest.mark.parametrize(
    "raw",
    [fd_event(company="com_someone-else"), fd_event(livemode=False)],
    ids=["another-company", "test-mode-event"],
)
def test_another_companys_or_a_test_mode_event_is_ignored(
    client: TestClient, engine: Engine, raw: bytes
) -> None:
    response = fd_post(client, raw)
    assert (response.status_code, response.json()) == (200, {"status": "ignored"})
    assert rows(engine) == []


def test_a_sandbox_account_takes_test_mode_events_only(engine: Engine) -> None:
    sandbox = {"clientify_sync_webhooks_facturadirecta_sandbox": {
        "webhook_secret": FD_SECRET, "company_id": COMPANY, "livemode": "false"}}  # fmt: skip
    client = make_client(engine, sandbox)
    url = f"{ui.URL_PREFIX}/webhooks/facturadirecta/sandbox"
    assert fd_post(client, fd_event("whe_live", livemode=True), url=url).json() == {"status": "ignored"}
    assert fd_post(client, fd_event("whe_test", livemode=False), url=url).json() == {"status": "stored"}
    assert len(rows(engine)) == 1


@pytest.mark.parametrize(
    ("connections", "url"),
    [
        ({}, FD_URL),  # no connection at all
        ({"clientify_sync_webhooks_facturadirecta_main": {"company_id": COMPANY}}, FD_URL),  # no secret
        (
            {
                "clientify_sync_webhooks_facturadirecta_main": {
                    "webhook_secret": "short",
                    "company_id": COMPANY,
                }
            },
            FD_URL,
        ),
        (
            {"clientify_sync_webhooks_facturadirecta_main": {"webhook_secret": FD_SECRET}},
            FD_URL,
        ),  # no company
        (CONNECTIONS, f"{ui.URL_PREFIX}/webhooks/facturadirecta/other"),  # an account never configured
        (CONNECTIONS, f"{ui.URL_PREFIX}/webhooks/facturadirecta/Main"),  # not an account name
    ],
    ids=["no-connection", "no-secret", "short-secret", "no-company", "unknown-account", "bad-account"],
)
def test_without_a_configured_secret_every_delivery_is_refused(
    engine: Engine, connections: dict[str, dict[str, Any]], url: str
) -> None:
    client = make_client(engine, connections)
    secret = "short" if "short" in json.dumps(connections) else FD_SECRET
    assert fd_post(client, fd_event(), url=url, secret=secret).status_code == 401
    assert rows(engine) == []


def test_duplicate_deliveries_of_one_event_are_one_row(client: TestClient, engine: Engine) -> None:
    answers = [fd_post(client, fd_event("whe_same"), t=NOW - i).json()["status"] for i in range(3)]
    assert answers == ["stored", "duplicate", "duplicate"]
    assert len(rows(engine)) == 1


@pytest.mark.parametrize("type_", ["invoice.created", "contact.merged", "estimates.updated", ""])
def test_events_we_do_not_sync_are_ignored(client: TestClient, engine: Engine, type_: str) -> None:
    assert fd_post(client, fd_event(type_=type_)).json() == {"status": "ignored"}
    assert rows(engine) == []


def test_each_entity_goes_to_its_inbox(client: TestClient, engine: Engine) -> None:
    for n, type_ in enumerate(["contact.archived", "product.created", "estimate.unarchived"]):
        assert fd_post(client, fd_event(f"whe_{n}", type_=type_, object_id=f"id_{n}")).status_code == 200
    assert [(r["entity"], r["record_type"], r["external_id"]) for r in rows(engine)] == [
        ("contacts", "contact", "id_0"), ("products", "product", "id_1"), ("estimates", "estimate", "id_2")]  # fmt: skip


def test_a_signed_body_that_is_not_an_event_is_400(client: TestClient, engine: Engine) -> None:
    assert fd_post(client, b"not json").status_code == 400
    no_object = json.dumps({"id": "whe_x", "type": "contact.created", "livemode": True, "company_id": COMPANY,
                            "data": {}}).encode()  # fmt: skip
    assert fd_post(client, no_object).status_code == 400
    assert rows(engine) == []


# -- Clientify ------------------------------------------------------------------------------------------


def test_a_clientify_event_is_one_row_per_enabled_platform(client: TestClient, engine: Engine) -> None:
    raw = cf_body(101)
    assert cf_post(client, raw).json() == {"status": "stored"}
    stored = rows(engine)
    assert [(r["integration"], r["entity"], r["record_type"], r["external_id"]) for r in stored] == [
        ("facturama", "contacts", "contact", "101"), ("facturadirecta", "contacts", "contact", "101")]  # fmt: skip
    expected_key = hashlib.sha256(b"contact.saved|101|2026-11-29T10:00:00Z").hexdigest()
    assert {r["dedupe_key"] for r in stored} == {expected_key}
    assert not any(pii in str(stored) for pii in ("Ana", "ana@"))


@pytest.mark.parametrize(
    ("secret", "token"),
    [
        (None, CF_TOKEN),
        ("", CF_TOKEN),
        ("wrong-" + CF_SECRET, CF_TOKEN),
        (CF_SECRET, "tok-" + "00" * 16),
        (CF_SECRET[:-1], CF_TOKEN),
    ],  # fmt: skip
    ids=["missing-header", "empty-header", "wrong-secret", "wrong-path-token", "prefix-of-secret"],
)
def test_a_wrong_or_missing_secret_or_token_is_401_and_nothing_is_stored(
    client: TestClient, engine: Engine, secret: str | None, token: str
) -> None:
    response = cf_post(client, cf_body(), url=cf_url(token=token), secret=secret)
    assert response.status_code == 401 and rows(engine) == []


@pytest.mark.parametrize(
    "connections",
    [
        {},
        {"clientify_sync_webhooks_clientify": {"webhook_secret": CF_SECRET}},
        {"clientify_sync_webhooks_clientify": {"webhook_path_token": CF_TOKEN}},
    ],  # fmt: skip
    ids=["no-connection", "no-path-token", "no-secret"],
)
def test_clientify_fails_closed_without_its_secret_and_token(
    engine: Engine, connections: dict[str, Any]
) -> None:
    assert cf_post(make_client(engine, connections), cf_body()).status_code == 401
    assert rows(engine) == []


def test_clientify_duplicates_are_one_row_and_a_new_modified_is_a_new_event(
    client: TestClient, engine: Engine
) -> None:
    assert [cf_post(client, cf_body(5)).json()["status"] for _ in range(2)] == ["stored", "duplicate"]
    assert cf_post(client, cf_body(5, modified="2026-11-29T10:05:00Z")).json()["status"] == "stored"
    assert cf_post(client, cf_body(5, event="contact.deleted")).json()["status"] == "stored"
    assert len(rows(engine)) == 3 * 2


def test_without_modified_the_content_hash_decides(client: TestClient, engine: Engine) -> None:
    first = cf_body(6, modified=None, first_name="Ana")
    reordered = json.dumps({"data": json.loads(first)["data"], "hook": {"event": "contact.saved"}}).encode()
    assert cf_post(client, first).json()["status"] == "stored"
    assert cf_post(client, reordered).json()["status"] == "duplicate"  # same record, keys in another order
    assert cf_post(client, cf_body(6, modified=None, first_name="Anna")).json()["status"] == "stored"
    assert len(rows(engine)) == 2 * 2


def test_each_slot_maps_to_its_entity_and_the_old_payload_shape_is_read(
    client: TestClient, engine: Engine
) -> None:
    assert cf_post(client, cf_body(1, event="company.saved"), url=cf_url("companies")).status_code == 200
    assert cf_post(client, cf_body(2, event="product.deleted"), url=cf_url("products")).status_code == 200
    legacy = json.dumps(
        {"event": "budget.saved", "budget": {"id": 3, "modified": "2026-11-29T10:00:00Z"}}
    ).encode()
    assert cf_post(client, legacy, url=cf_url("budgets")).json() == {"status": "stored"}
    found = {(r["entity"], r["record_type"], r["external_id"], r["event_type"]) for r in rows(engine)}
    assert found == {("contacts", "company", "1", "company.saved"), ("products", "product", "2", "product.deleted"),
                     ("estimates", "budget", "3", "budget.saved")}  # fmt: skip


def test_an_event_of_another_entity_on_a_slot_is_ignored(client: TestClient, engine: Engine) -> None:
    assert cf_post(client, cf_body(1, event="deal.saved")).json() == {"status": "ignored"}
    assert cf_post(client, cf_body(1, event="contact.won")).json() == {"status": "ignored"}
    assert cf_post(client, cf_body(), url=cf_url("deals")).status_code == 404
    assert rows(engine) == []


def test_a_record_without_a_usable_id_is_400(client: TestClient, engine: Engine) -> None:
    for rid in (None, "", True, "x" * 65, {"id": 1}):
        assert cf_post(client, cf_body(rid)).status_code == 400  # type: ignore[arg-type]
    assert rows(engine) == []


# -- both -----------------------------------------------------------------------------------------------


def test_an_oversized_body_is_413_and_nothing_is_stored(client: TestClient, engine: Engine) -> None:
    big = cf_body(1, notes="x" * receiver.MAX_BODY_BYTES)
    assert cf_post(client, big).status_code == 413
    assert fd_post(client, big).status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream is counted
        for _ in range(receiver.MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    headers = {"X-Clientify-Secret": CF_SECRET}
    assert client.post(cf_url(), content=chunks(), headers=headers).status_code == 413
    assert rows(engine) == []


def test_when_the_row_cannot_be_stored_the_answer_is_503(tmp_path: Path, engine: Engine) -> None:
    broken = create_ledger_engine(f"sqlite:///{tmp_path}/no_schema.db")  # no cs_inbox table

    def unreachable() -> Engine:
        raise sa.exc.OperationalError("connect", {}, Exception("could not connect to server"))

    for ledger in (lambda: broken, unreachable):
        client = make_client(engine, ledger=ledger)
        assert fd_post(client, fd_event()).status_code == 503
        assert cf_post(client, cf_body()).status_code == 503
    assert rows(engine) == []
    broken.dispose()


def test_secrets_never_reach_the_log(
    client: TestClient, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fd_post(client, fd_event())
    fd_post(client, fd_event(), secret=FD_OLD_SECRET)
    cf_post(client, cf_body())
    cf_post(client, cf_body(), secret="wrong-" + CF_SECRET)
    cf_post(client, cf_body(), url=cf_url(token="tok-" + "00" * 16))
    # The product's own log lines (the test's HTTP client logs the URLs it calls, path token included,
    # when another test turned httpx's logger up: that is the sender's log, not ours).
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))
    assert "refused" in ours
    for secret in (FD_SECRET, FD_OLD_SECRET, CF_SECRET, CF_TOKEN, "ana@example.com", "Ana"):
        assert secret not in ours


def test_the_real_connection_lookups(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets and the ledger read through Airflow's secrets backends (here ``AIRFLOW_CONN_*``) as in the
    API server: the receiver stores into the ledger the status view resolves, not a test double."""
    extra = {"webhook_secret": FD_SECRET, "company_id": COMPANY, "livemode": True}
    monkeypatch.setenv("AIRFLOW_CONN_CLIENTIFY_SYNC_WEBHOOKS_FACTURADIRECTA_MAIN",
                       json.dumps({"conn_type": "generic", "extra": extra}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_CLIENTIFY_SYNC_STATE",
                       json.dumps({"conn_type": "generic", "extra": {"url": str(engine.url)}}))  # fmt: skip
    monkeypatch.setattr(ui, "_views", ui._ViewCache())  # no engine cached by an earlier test
    client = make_client(engine, config=WebhookConfig(), real_ledger=True)
    assert fd_post(client, fd_event()).json() == {"status": "stored"}
    assert ui._views.url == str(engine.url) and len(rows(engine)) == 1
    ui._views.view.engine.dispose()  # type: ignore[union-attr]
    assert fd_post(client, fd_event("whe_2"), secret=FD_OLD_SECRET).status_code == 401
    assert cf_post(client, cf_body()).status_code == 401  # no Clientify webhook connection: closed


# -- the status view beside it --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/records?q=x", "/dead-letters", "/conflicts"])
def test_the_status_pages_still_refuse_an_anonymous_request(client: TestClient, path: str) -> None:
    response = client.get(f"{ui.URL_PREFIX}{path}")  # Airflow's own get_user: no cookie, no token
    assert response.status_code in (401, 403)
    anonymous_post = client.post(f"{ui.URL_PREFIX}/dead-letters/facturama_contacts/dismiss",
                                 data={"side": "invoicing", "rtype": "client", "rid": "1"})  # fmt: skip
    assert anonymous_post.status_code in (401, 403)


def test_the_plugin_mounts_the_receiver_inside_the_status_app() -> None:
    [mount] = [r for r in ui.app.routes if isinstance(r, Mount)]
    assert mount.path == ui.WEBHOOKS_PATH
    paths = {route.path for route in mount.app.routes}  # type: ignore[attr-defined]
    assert paths == {"/facturadirecta/{account}", "/clientify/{slot}/{path_token}"}  # nothing else on it
    assert all(not getattr(route, "dependencies", None) for route in mount.app.routes)  # type: ignore[attr-defined]


# -- a flood --------------------------------------------------------------------------------------------


def flood(client: TestClient, total: int, per_tick: int) -> Callable[[float], None]:
    """Deliveries arriving while the trigger polls: ``per_tick`` Clientify events per fake second, each
    fifth one a re-delivery of the previous one (Clientify sends duplicates)."""
    sent = {"deliveries": 0, "edits": 0}

    def tick(_now: float) -> None:
        for _ in range(min(per_tick, total - sent["deliveries"])):
            if sent["deliveries"] % 5 != 4:  # else: the previous edit again
                sent["edits"] += 1
            edit = sent["edits"] - 1
            rid, version = edit % 200, edit // 200
            response = cf_post(client, cf_body(rid, modified=f"2026-11-29T10:{version:02d}:00Z"))
            assert response.status_code == 200
            sent["deliveries"] += 1

    return tick


@pytest.mark.slow  # seconds (make test runs it; make unit does not, issue 23)
def test_a_flood_of_1000_deliveries_in_10_s_is_deduplicated_and_wakes_one_run(
    client: TestClient, engine: Engine
) -> None:
    trigger = InboxTrigger(
        integration="facturama", entity="contacts", poll_s=1.0, quiet_s=10.0, max_wait_s=40.0
    )
    trigger.engine = engine
    trigger.clock = FakeClock(stop_at=200, on_tick=flood(client, total=1000, per_tick=100))
    fired = asyncio.run(drive(trigger))
    stored = rows(engine)
    distinct = {r["dedupe_key"] for r in stored}
    assert len(stored) == 2 * len(distinct) == 2 * 800  # one row per platform; 200 re-deliveries dropped
    ours = [r for r in stored if r["integration"] == "facturama"]
    assert [(t, p["reason"], p["new"], p["max_id"]) for t, p in fired] == [
        (20.0, "quiet", 800, ours[-1]["id"])
    ]


def test_a_flood_that_lasts_a_minute_wakes_two_runs(client: TestClient, engine: Engine) -> None:
    trigger = InboxTrigger(
        integration="facturadirecta", entity="contacts", poll_s=5.0, quiet_s=10.0, max_wait_s=40.0
    )
    trigger.engine = engine
    trigger.clock = FakeClock(stop_at=200, on_tick=flood(client, total=360, per_tick=30))  # 12 polls of 5 s
    fired = asyncio.run(drive(trigger))
    assert [(t, p["reason"]) for t, p in fired] == [(45.0, "max_wait"), (70.0, "quiet")]
    assert sum(p["new"] for _, p in fired) == 288  # each row signalled once


def test_clientify_events_go_to_the_enabled_platforms_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "integrations.yaml"
    config.write_text("integrations:\n  facturama:\n    enabled: false\n")
    monkeypatch.setenv("CLIENTIFY_SYNC_INTEGRATIONS", str(config))
    assert receiver._Consumers()() == ("facturadirecta",)
    config.write_text("integrations: [not, a, mapping]\n")  # unreadable: every platform, as the status view
    assert receiver._Consumers()() == ("facturama", "facturadirecta")
