"""The registration command against the sandbox (Clientify's v2 slots, FacturaDirecta's REST endpoints), the
secrets in Airflow's metadata database, and a delivery from each platform reaching the inbox through the
receiver running on a real loopback port."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
from fastapi import FastAPI
from sqlalchemy.engine import Engine
from starlette.routing import Mount

from clientify_sync.api.clientify_webhooks import Slot
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.engine.ledger.schema import inbox
from clientify_sync.errors import ConfigurationError, ValidationError
from clientify_sync.ui import app as ui
from clientify_sync.ui import queries as Q
from clientify_sync.webhooks import receiver
from clientify_sync.webhooks.config import CLIENTIFY_CONN_ID, FACTURADIRECTA_CONN_PREFIX, WebhookConfig
from clientify_sync.webhooks.connection_store import MemoryConnections, MetadataConnections
from clientify_sync.webhooks.register import (
    CLIENTIFY_SLOTS,
    FACTURADIRECTA_EVENTS,
    RECEIVER_PATH,
    Outcome,
    main,
    plan_clientify,
    receiver_base,
    register,
)
from include.sandbox.ports import free_ports
from tests.fixtures.sandbox import SandboxHandle

FD_CONN_ID = FACTURADIRECTA_CONN_PREFIX + "main"
WAIT_S = 20


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """Airflow's test metadata DB (the suite's throwaway AIRFLOW_HOME), with its tables."""
    from airflow import settings

    if not sa.inspect(settings.engine).has_table("connection"):
        from airflow.utils import db

        db.resetdb()


def forget_webhook_connections() -> None:
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        session.execute(sa.delete(Connection).where(Connection.conn_id.like("clientify_sync_webhooks_%")))


@pytest.fixture
def hub(
    clean_sandbox: SandboxHandle, airflow_db: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SandboxHandle]:
    """The sandbox reset; the API connections pointing at it (Clientify, FacturaDirecta on the REST API);
    no webhook connection yet; retry waits compressed."""
    fd = clean_sandbox.config("facturadirecta")
    clean_sandbox.config("clientify", webhook_time_scale=0.01)
    clean_sandbox.config("facturadirecta", rest_webhook_time_scale=0.0005)
    conns = {
        "clientify_default": {"host": clean_sandbox.clientify_url, "password": clean_sandbox.clientify_token},
        "facturadirecta_default": {"host": clean_sandbox.facturadirecta_url, "password": fd["rest_api_key"],
                                   "extra": {"api": "rest", "company_id": fd["rest_company_id"]}},
    }  # fmt: skip
    for conn_id, fields in conns.items():
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "http", **fields}))
    monkeypatch.setenv("CLIENTIFY_SYNC_INTEGRATIONS", "")
    forget_webhook_connections()
    yield clean_sandbox
    forget_webhook_connections()


def public_url(port: int = 9) -> str:
    return f"http://127.0.0.1:{port}"


def slots(hub: SandboxHandle) -> dict[str, dict[str, Any]]:
    with hub.clientify_client() as http:
        return {slot: http.get(f"/v2/webhooks/{slot}/").json() for slot in CLIENTIFY_SLOTS}


def fd_endpoints(hub: SandboxHandle) -> list[dict[str, Any]]:
    cfg = hub.config("facturadirecta")
    answer = httpx.get(f"{hub.facturadirecta_url}/api/{cfg['rest_company_id']}/webhooks/endpoints",
                       headers={"facturadirecta-api-key": cfg["rest_api_key"]}, timeout=30)  # fmt: skip
    answer.raise_for_status()
    return answer.json()["items"]


def outcomes(report: Any) -> dict[str, Outcome]:
    return {f"{s.platform} {s.item}": s.outcome for s in report.steps}


# -- URLs and settings ------------------------------------------------------------------------------------


def test_receiver_base_is_the_https_url_with_the_receiver_path() -> None:
    assert RECEIVER_PATH == ui.URL_PREFIX + ui.WEBHOOKS_PATH
    assert receiver_base("https://sync.example.org") == "https://sync.example.org/clientify-sync/webhooks"
    assert (
        receiver_base("https://sync.example.org/airflow/")
        == "https://sync.example.org/airflow/clientify-sync/webhooks"
    )
    assert receiver_base("https://x.org/clientify-sync/webhooks/") == "https://x.org/clientify-sync/webhooks"
    assert (
        receiver_base("http://127.0.0.1:8080") == "http://127.0.0.1:8080/clientify-sync/webhooks"
    )  # the sandbox
    for bad in ("http://sync.example.org", "ftp://x.org", "https://u:p@x.org", "https://x.org/?a=1", "x.org"):
        with pytest.raises(ConfigurationError):
            receiver_base(bad)


def test_clientify_v2_base_is_derived_from_the_v1_host_unless_set() -> None:
    def v2(**kwargs: Any) -> str:
        return ClientifySettings(
            **{"base_url": ClientifySettings.default_host, "api_key": "k", **kwargs}
        ).v2_base_url()

    assert v2() == "https://api-plus.clientify.com"  # the default host api.clientify.net
    assert v2(base_url="https://api.clientify.com/v1") == "https://api-plus.clientify.com"
    assert v2(base_url="http://127.0.0.1:8702") == "http://127.0.0.1:8702"  # the sandbox serves v2 itself
    assert v2(api_v2_url="https://proxy.example/clientify/v2") == "https://proxy.example/clientify"
    with pytest.raises(ConfigurationError):
        v2(api_v2_url="https://user:pw@proxy.example")


# -- registration on the sandbox --------------------------------------------------------------------------


def test_registers_every_slot_and_the_endpoint_storing_the_secrets(
    hub: SandboxHandle, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    assert main(["--public-url", public_url()]) == 0
    printed = capsys.readouterr().out
    store = MetadataConnections()
    cf, fd = store.read(CLIENTIFY_CONN_ID), store.read(FD_CONN_ID)
    assert cf is not None and fd is not None
    assert len(cf["webhook_secret"]) >= 32 and len(cf["webhook_path_token"]) >= 32
    assert fd["webhook_secret"].startswith("whsec_")
    assert fd["company_id"] == hub.config("facturadirecta")["rest_company_id"]
    base = receiver_base(public_url())
    found = slots(hub)
    for slot in CLIENTIFY_SLOTS:
        assert found[slot]["target"] == f"{base}/clientify/{slot}/{cf['webhook_path_token']}"
        assert found[slot]["is_active"] is True
        assert f"clientify slot {slot}: registered (-> {base}/clientify/{slot}/***)" in printed
    registrations = hub.control("clientify", "GET", "webhooks")["registrations"]
    assert all(r["header_names"] == ["X-Clientify-Secret"] for r in registrations) and len(registrations) == 4
    [endpoint] = fd_endpoints(hub)
    assert endpoint["url"] == f"{base}/facturadirecta/main" and set(endpoint["events"]) == set(
        FACTURADIRECTA_EVENTS
    )
    assert "facturadirecta endpoint main: registered" in printed
    for secret in (cf["webhook_secret"], cf["webhook_path_token"], fd["webhook_secret"]):
        assert secret not in printed and secret not in caplog.text


def test_a_second_run_changes_nothing(hub: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    first = register(public_url())
    assert first.ok and first.changed
    store = MetadataConnections()
    before = (store.read(CLIENTIFY_CONN_ID), store.read(FD_CONN_ID), slots(hub), fd_endpoints(hub))
    second = register(public_url())
    assert second.ok and not second.changed
    assert set(outcomes(second).values()) == {Outcome.UNCHANGED}
    assert len(second.steps) == len(CLIENTIFY_SLOTS) + 1
    assert (store.read(CLIENTIFY_CONN_ID), store.read(FD_CONN_ID), slots(hub), fd_endpoints(hub)) == before
    assert main(["--public-url", public_url()]) == 0
    assert "everything was already registered" in capsys.readouterr().out


def test_refuses_a_slot_that_points_elsewhere_and_names_it(
    hub: SandboxHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    theirs = "http://127.0.0.1:9/their-crm-integration?key=abc123"
    with hub.clientify_client() as http:
        assert http.post("/v2/webhooks/companies/", json={"target": theirs}).status_code == 201
    assert main(["--public-url", public_url(), "--platform", "clientify"]) == 1
    printed = capsys.readouterr().out
    refusal = next(line for line in printed.splitlines() if line.startswith("clientify slot companies"))
    assert "refused" in refusal and "Clientify slot 'companies' already points to" in refusal
    assert "http://127.0.0.1:9/their-crm-integration?key=***" in refusal and "abc123" not in printed
    found = slots(hub)
    assert found["companies"]["target"] == theirs  # not overwritten
    assert all(
        found[s]["target"].startswith(receiver_base(public_url()))
        for s in ("contacts", "products", "budgets")
    )
    assert fd_endpoints(hub) == []  # --platform clientify only


def test_a_dry_run_changes_nothing(hub: SandboxHandle, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--public-url", public_url(), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert (
        "clientify slot contacts: would be registered" in printed
        and "dry run: nothing was changed" in printed
    )
    assert "facturadirecta endpoint main: would be registered" in printed
    assert all(s["target"] == "" for s in slots(hub).values()) and fd_endpoints(hub) == []
    assert (
        MetadataConnections().read(CLIENTIFY_CONN_ID) is None
        and MetadataConnections().read(FD_CONN_ID) is None
    )


def test_a_switched_off_slot_a_disabled_endpoint_and_a_lost_secret_are_repaired(hub: SandboxHandle) -> None:
    assert register(public_url()).ok
    store = MetadataConnections()
    old = store.read(FD_CONN_ID)
    assert old is not None
    store.write(FD_CONN_ID, {k: v for k, v in old.items() if k != "webhook_secret"}, "test: the secret lost")
    hub.control("clientify", "POST", "webhooks/slots/budgets/deactivate")
    [endpoint] = fd_endpoints(hub)
    cfg = hub.config("facturadirecta")
    httpx.post(f"{hub.facturadirecta_url}/api/{cfg['rest_company_id']}/webhooks/endpoints/{endpoint['id']}/disable",
               headers={"facturadirecta-api-key": cfg["rest_api_key"]}, timeout=30).raise_for_status()  # fmt: skip
    again = register(public_url())
    assert again.ok
    got = outcomes(again)
    assert (
        got["clientify slot budgets"] is Outcome.ACTIVATED
        and got["clientify slot contacts"] is Outcome.UNCHANGED
    )
    assert got["facturadirecta endpoint main"] is Outcome.ACTIVATED
    assert got[f"facturadirecta connection {FD_CONN_ID}"] is Outcome.STORED
    new = store.read(FD_CONN_ID)
    assert (
        new is not None
        and new["webhook_secret"].startswith("whsec_")
        and new["webhook_secret"] != old["webhook_secret"]
    )
    assert slots(hub)["budgets"]["is_active"] is True
    assert [e["enabled"] for e in fd_endpoints(hub)] == [True]


def test_a_connection_defined_by_a_variable_is_not_written(
    hub: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"AIRFLOW_CONN_{CLIENTIFY_CONN_ID.upper()}", json.dumps({"conn_type": "generic"}))
    report = register(public_url(), platforms=["clientify"])
    [failed] = [s for s in report.steps if s.outcome is Outcome.FAILED]
    assert f"AIRFLOW_CONN_{CLIENTIFY_CONN_ID.upper()}" in failed.detail
    assert all(
        s["target"] == "" for s in slots(hub).values()
    )  # nothing points at a receiver without the secret


# -- end to end: registration, an edit on each platform, the receiver, the inbox ------------------------------


@pytest.fixture
def live_receiver(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The status app (and the receiver it mounts) under uvicorn on a free loopback port; the receiver reads
    its secrets from the Airflow connections as the API server does, and stores into ``engine``."""
    monkeypatch.setenv("_AIRFLOW_PROCESS_CONTEXT", "server")  # the API server's secrets chain (metadata DB)
    status_app = ui.create_app()
    [webhooks] = [r.app for r in status_app.routes if isinstance(r, Mount) and r.path == ui.WEBHOOKS_PATH]
    fresh = WebhookConfig()  # not the process-wide cache
    webhooks.dependency_overrides.update({
        receiver.get_config: lambda: fresh,
        receiver.get_ledger: lambda: (lambda: engine),
        receiver.get_clientify_consumers: lambda: ("facturama", "facturadirecta"),
    })  # fmt: skip
    status_app.dependency_overrides[ui.get_view] = lambda: Q.LedgerView(engine)
    root = FastAPI()
    root.mount(ui.URL_PREFIX, status_app)
    (port,) = free_ports(1)
    server = uvicorn.Server(
        uvicorn.Config(root, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(200):  # bounded: about 10 s
        if server.started or not thread.is_alive():
            break
        started.wait(0.05)
    try:
        assert server.started, "the receiver did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        assert not thread.is_alive()


def test_after_registration_an_edit_on_each_platform_lands_in_the_inbox(
    hub: SandboxHandle, live_receiver: int, engine: Engine
) -> None:
    assert register(public_url(live_receiver)).ok
    with hub.clientify_client() as http:
        contact = http.post("/v1/contacts/", json={"first_name": "Grace", "last_name": "Hopper"}).json()
    hub.control("clientify", "POST", "webhooks/emit", {"entity": "contacts", "id": contact["id"],
                                                             "changes": {"first_name": "Ada"}})  # fmt: skip
    cfg = hub.config("facturadirecta")
    hub.config("facturadirecta", rest_webhook_echo_api_writes=False)  # only the web app's edit notifies
    fd = httpx.post(f"{hub.facturadirecta_url}/api/{cfg['rest_company_id']}/contacts",
                    json={"content": {"type": "contact", "main": {"name": "Acme Diseño S.L."}}},
                    headers={"facturadirecta-api-key": cfg["rest_api_key"]}, timeout=30).json()  # fmt: skip
    fd_id = fd["content"]["uuid"]
    hub.control(
        "facturadirecta", "POST", "webhooks/emit", {"id": fd_id, "changes": {"email": "ui@example.com"}}
    )
    for api in ("clientify", "facturadirecta"):
        state = hub.control(api, "GET", f"webhooks?wait_idle_s={WAIT_S}", timeout=WAIT_S + 30)
        assert state["idle"], (state["attempts"], state["counts"], state["statuses"])
        assert state["statuses"] == {"200": 1}, state["attempts"]  # delivered and accepted (not a 401)
    with engine.connect() as conn:
        rows = {(r.integration, r.source, r.event_type, r.external_id, r.status)
                for r in conn.execute(sa.select(inbox))}  # fmt: skip
    assert rows == {
        ("facturama", "clientify", "contact.saved", str(contact["id"]), "pending"),
        ("facturadirecta", "clientify", "contact.saved", str(contact["id"]), "pending"),
        ("facturadirecta", "facturadirecta", "contact.updated", fd_id, "pending"),
    }


# -- the plan on fakes: what the sandbox cannot stage ----------------------------------------------------------


class FakeSlots:
    """Clientify's slots in a dict; ``taken_meanwhile`` makes a POST find the slot taken (409)."""

    def __init__(self, targets: dict[str, str], taken_meanwhile: dict[str, str] | None = None) -> None:
        self.targets = dict(targets)
        self.taken_meanwhile = dict(taken_meanwhile or {})
        self.posted: list[str] = []

    def get(self, entity: str) -> Slot:
        target = self.targets.get(entity, "")
        return Slot(entity, target, bool(target))

    def register(self, entity: str, target: str, headers: dict[str, str]) -> Slot:
        if entity in self.taken_meanwhile:
            self.targets[entity] = self.taken_meanwhile.pop(entity)
            raise ValidationError("clientify", "POST", "/v2/webhooks/{entity}/", 409, "Already configured")
        self.posted.append(entity)
        self.targets[entity] = target
        return Slot(entity, target, True)

    def activate(self, entity: str) -> None:
        raise AssertionError("not expected")


def test_a_slot_of_this_receiver_with_a_lost_token_and_a_slot_taken_meanwhile_are_refused() -> None:
    base = receiver_base("https://sync.example.org")
    stale = f"{base}/clientify/contacts/old-token-0123456789abcdef"
    slots_api = FakeSlots({"contacts": stale}, taken_meanwhile={"products": "https://other.example/hook"})
    store = MemoryConnections()
    steps = {s.item: s for s in plan_clientify(slots_api, store, base)}
    assert steps["slot contacts"].outcome is Outcome.REFUSED
    assert "points to this receiver with another path token" in steps["slot contacts"].detail
    assert "old-token" not in steps["slot contacts"].detail  # our own path tokens are never shown
    assert (
        steps["slot products"].outcome is Outcome.REFUSED
        and "https://other.example/hook" in steps["slot products"].detail
    )
    assert steps["slot companies"].outcome is steps["slot budgets"].outcome is Outcome.REGISTERED
    assert store.writes == [CLIENTIFY_CONN_ID] and slots_api.posted == ["companies", "budgets"]
    token = store.connections[CLIENTIFY_CONN_ID]["webhook_path_token"]
    assert slots_api.targets["companies"] == f"{base}/clientify/companies/{token}"
