"""Webhook delivery contract of the sandbox: Clientify's v2 slots (realtime.md §1.1) and FacturaDirecta's
REST endpoints (facturadirecta-rest-api.md §12), over real HTTP on loopback.

A small receiver in this process (``Receiver``: a threaded ``http.server`` on 127.0.0.1, bounded, stopped
at the end) records what the sandbox sends and answers from a script (a status; ``"close"``: hang up
without answering; ``"hang"``: answer nothing until the test ends). Waits are bounded condition waits (the receiver's, or the sandbox's
``/_sandbox/webhooks?wait_idle_s=``), never sleeps; retry waits are compressed by the time-scale switches.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from include.sandbox.webhook_hub import CLIENTIFY_POLICY, Job, WebhookHub
from include.sandbox.webhook_targets import target_problem
from tests.fixtures.sandbox import SandboxHandle, start_sandbox, stop_sandbox

SECRET = "s3cr3t-clientify-webhook-0123456789"
KEY_HEADER = "facturadirecta-api-key"
WAIT_S = 15.0
MAX_RECORDED = 1000
MAX_BODY = 1 << 20


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Records POSTs; ``script[path]`` lists the answers to give in turn (then 200)."""

    server: ThreadingHTTPServer
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[int | str]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, path: str) -> int | str:
        with self.cond:
            queue = self.script.get(path)
            return queue.pop(0) if queue else 200

    def record(self, request: Received) -> None:
        with self.cond:
            if len(self.requests) < MAX_RECORDED:
                self.requests.append(request)
            self.cond.notify_all()

    def wait_for(self, count: int, path: str | None = None) -> list[Received]:
        """At least ``count`` requests (to ``path``) have arrived; fails after ``WAIT_S``."""
        with self.cond:
            ok = self.cond.wait_for(lambda: len(self.at(path)) >= count, WAIT_S)
            got = self.at(path)
        assert ok, f"expected {count} deliveries, got {len(got)}"
        return got

    def at(self, path: str | None) -> list[Received]:
        return [r for r in self.requests if path is None or r.path == path]


def _handler(receiver_box: list[Receiver]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            receiver = receiver_box[0]
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            body = self.rfile.read(length)
            receiver.record(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
            answer = receiver.answer(self.path)
            if answer == "hang":
                receiver.release.wait(WAIT_S)  # bounded: the fixture releases it at the end
                answer = "close"
            if answer == "close":
                self.close_connection = True  # no answer at all
                return
            self.send_response(int(answer))
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
            return

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    box: list[Receiver] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(box))
    server.daemon_threads = True
    box.append(Receiver(server))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        box[0].release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def hooks(clean_sandbox: SandboxHandle) -> SandboxHandle:
    """The sandbox, reset, with the retry waits compressed (Clientify's 31 s to 0.31 s, FacturaDirecta's
    first three waits to 90 ms)."""
    clean_sandbox.config("clientify", webhook_time_scale=0.01)
    clean_sandbox.config("facturadirecta", rest_webhook_time_scale=0.0005)
    return clean_sandbox


def state(sandbox: SandboxHandle, api: str, wait: bool = True) -> dict[str, Any]:
    """``/_sandbox/webhooks`` after everything queued was settled (a bounded wait)."""
    path = "webhooks?wait_idle_s=20" if wait else "webhooks"
    found = sandbox.control(api, "GET", path, timeout=60)
    if wait:
        assert found["idle"], found
    return found


def wait_until_held(sandbox: SandboxHandle, api: str, count: int) -> dict[str, Any]:
    """``/_sandbox/webhooks`` once ``count`` jobs sit in a held (reorder) batch; fails after ``WAIT_S``."""
    deadline = time.monotonic() + WAIT_S
    while True:
        found = sandbox.control(api, "GET", "webhooks")
        if found["held"] >= count or time.monotonic() > deadline:
            assert found["held"] == count, found
            return found
        time.sleep(0.05)


# -- Clientify --------------------------------------------------------------------------------------------


def clientify(sandbox: SandboxHandle) -> httpx.Client:
    return sandbox.clientify_client()


def register_slot(sandbox: SandboxHandle, target: str, entity: str = "contacts") -> dict[str, Any]:
    with clientify(sandbox) as http:
        response = http.post(
            f"/v2/webhooks/{entity}/", json={"target": target, "headers": {"X-Clientify-Secret": SECRET}}
        )
    assert response.status_code == 201, response.text
    return response.json()


def new_contact(sandbox: SandboxHandle, **fields: Any) -> dict[str, Any]:
    with clientify(sandbox) as http:
        response = http.post("/v1/contacts/", json={"first_name": "Grace", "last_name": "Hopper", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def emit(sandbox: SandboxHandle, api: str, **body: Any) -> list[dict[str, Any]]:
    return sandbox.control(api, "POST", "webhooks/emit", body)["emitted"]


def test_clientify_slots_follow_the_v2_lifecycle(hooks: SandboxHandle, receiver: Receiver) -> None:
    target = receiver.url("/crm")
    with clientify(hooks) as http:
        free = http.get("/v2/webhooks/contacts/")
        assert free.status_code == 200
        assert free.json() == {
            "entity": "contacts",
            "target": "",
            "is_active": False,
            "events": ["contact.saved", "contact.deleted"],
        }
        created = http.post(
            "/v2/webhooks/contacts/", json={"target": target, "headers": {"X-Clientify-Secret": SECRET}}
        )
        assert created.status_code == 201
        assert created.json() == {
            "entity": "contacts",
            "target": target,
            "is_active": True,
            "events": ["contact.saved", "contact.deleted"],
        }
        taken = http.post("/v2/webhooks/contacts/", json={"target": receiver.url("/other")})
        assert (taken.status_code, taken.json()) == (409, {"detail": "Already configured"})
        assert http.get("/v2/webhooks/contacts/").json()["target"] == target
        assert http.get("/v2/webhooks/budgets/").json()["events"] == ["budget.saved", "budget.deleted"]
        assert http.get("/v2/webhooks/invoices/").status_code == 404  # six fixed slots only
        hooks.control("clientify", "POST", "webhooks/slots/contacts/deactivate")
        assert http.get("/v2/webhooks/contacts/").json()["is_active"] is False
        assert http.post("/v2/webhooks/contacts/activate/").status_code == 200
        assert http.get("/v2/webhooks/contacts/").json()["is_active"] is True
        assert http.delete("/v2/webhooks/contacts/").status_code == 204
        assert http.delete("/v2/webhooks/contacts/").status_code == 404
        assert http.get("/v2/webhooks/contacts/").json()["target"] == ""
        bad = http.post("/v2/webhooks/contacts/", json={"target": "not a url"})
        assert (bad.status_code, bad.json()) == (400, {"target": ["Enter a valid URL."]})
    registered = state(hooks, "clientify")["registrations"]
    assert registered == []  # deleted; secrets are never shown by the control surface either


def test_clientify_slots_need_the_key_of_an_administrator(hooks: SandboxHandle) -> None:
    assert httpx.get(f"{hooks.clientify_url}/v2/webhooks/contacts/").status_code == 404  # no key
    wrong = httpx.get(f"{hooks.clientify_url}/v2/webhooks/contacts/", headers={"Authorization": "Token nope"})
    assert wrong.status_code == 401
    hooks.config("clientify", webhook_admin_key=False)
    with clientify(hooks) as http:
        assert http.get("/v2/webhooks/contacts/").status_code == 403


@pytest.mark.parametrize(
    "target",
    [
        "https://example.com/hook",
        "http://10.0.0.7/hook",
        "http://192.168.1.2:8080/x",
        "http://2130706433/",
        "http://169.254.169.254/latest",
        "ftp://127.0.0.1/x",
        "http://user:pw@127.0.0.1/x",
    ],
)
def test_only_loopback_targets_are_accepted(hooks: SandboxHandle, target: str) -> None:
    with clientify(hooks) as http:
        refused = http.post("/v2/webhooks/contacts/", json={"target": target})
    assert refused.status_code == 400
    assert "target" in refused.json()
    rest = fd_rest(hooks)
    response = rest.post(
        "/webhooks/endpoints", json={"name": "x", "url": target, "events": ["contact.created"]}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["path"] == "url"
    assert state(hooks, "clientify")["registrations"] == []


def test_loopback_check() -> None:
    for ok in ("http://127.0.0.1:9/x", "http://127.8.9.10/", "http://[::1]:80/h", "https://localhost/h"):
        assert target_problem(ok) is None, ok
    for bad in (
        "http://0.0.0.0/",
        "http://localhost.example.com/",
        "http://[::ffff:10.0.0.1]/",
        "",
        None,
        "http://127.1/",
        "mailto:x@127.0.0.1",
    ):
        assert target_problem(bad) is not None, bad


def test_clientify_does_not_echo_writes_made_with_our_own_key(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    with clientify(hooks) as http:
        assert http.patch(f"/v1/contacts/{contact['id']}/", json={"title": "Rear Admiral"}).status_code == 200
        assert http.delete(f"/v1/contacts/{contact['id']}/").status_code == 204
    found = state(hooks, "clientify")
    assert found["counts"].get("submitted", 0) == 0
    assert receiver.requests == []


def test_clientify_ui_edits_deliver_the_record_unsigned_with_the_registered_header(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    slot = register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    emitted = emit(hooks, "clientify", entity="contacts", id=contact["id"], changes={"first_name": "Ada"})
    assert emitted[0]["event"] == "contact.saved"
    [saved] = receiver.wait_for(1)
    assert saved.headers["x-clientify-secret"] == SECRET
    assert saved.headers["content-type"] == "application/json"
    assert "webhook-signature" not in saved.headers
    payload = saved.json()
    hook_id = state(hooks, "clientify")["registrations"][0]["hook_id"]
    assert payload["hook"] == {"id": hook_id, "event": "contact.saved", "target": slot["target"]}
    with clientify(hooks) as http:
        assert payload["data"] == http.get(f"/v1/contacts/{contact['id']}/").json()  # the full record
    assert payload["data"]["first_name"] == "Ada"
    assert payload["data"]["modified"] > contact["modified"]

    emit(hooks, "clientify", entity="contacts", id=contact["id"], action="deleted")
    deleted = receiver.wait_for(2)[1].json()
    assert deleted["hook"]["event"] == "contact.deleted"
    assert deleted["data"]["id"] == contact["id"] and deleted["data"]["first_name"] == "Ada"  # as it was
    with clientify(hooks) as http:
        assert http.get(f"/v1/contacts/{contact['id']}/").status_code == 404


def test_clientify_imports_and_bulk_actions_are_delivered(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    ids = [new_contact(hooks, first_name=f"C{i}")["id"] for i in range(3)]
    emit(hooks, "clientify", entity="contacts", ids=ids, source="import")
    got = receiver.wait_for(3)
    assert sorted(r.json()["data"]["id"] for r in got) == sorted(ids)
    assert state(hooks, "clientify")["counts"]["delivered"] == 3


def test_clientify_echo_switch_delivers_api_writes(hooks: SandboxHandle, receiver: Receiver) -> None:
    hooks.config("clientify", webhook_echo_api_writes=True)
    register_slot(hooks, receiver.url("/products"), "products")
    with clientify(hooks) as http:
        product = http.post(
            "/v1/products/", json={"name": "Consulting", "sku": "C-1", "price": "10.00"}
        ).json()
    [got] = receiver.wait_for(1)
    assert got.json()["hook"]["event"] == "product.saved"
    assert got.json()["data"]["id"] == product["id"]


def test_clientify_retries_only_when_nothing_answers(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    receiver.script["/crm"] = ["close", "close", 200]
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert len(receiver.requests) == 3
    assert len({r.body for r in receiver.requests}) == 1  # the same notification each time
    assert found["counts"]["no_answer"] == 2 and found["counts"]["delivered"] == 1
    assert [a["state"] for a in found["attempts"]] == ["retrying", "retrying", "delivered"]
    assert [a["next_attempt_in_s"] for a in found["attempts"][:2]] == [0.01, 0.02]  # 1 s, 2 s scaled


def test_clientify_gives_up_after_five_retries(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    receiver.script["/crm"] = ["close"] * 10
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert len(receiver.requests) == 6  # the first try and 5 retries (1, 2, 4, 8, 16 s)
    assert found["counts"]["failed"] == 1
    assert [a["platform_wait_s"] for a in found["attempts"][:5]] == [1, 2, 4, 8, 16]
    assert [a["next_attempt_in_s"] for a in found["attempts"][:5]] == [0.01, 0.02, 0.04, 0.08, 0.16]


def test_clientify_retries_after_its_timeout(hooks: SandboxHandle, receiver: Receiver) -> None:
    hooks.config("clientify", webhook_timeout_s=1.0)  # 5 s by default; the hang lasts until the test ends
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    receiver.script["/crm"] = ["hang", 200]
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert len(receiver.requests) == 2
    assert found["attempts"][0]["error"] == "ReadTimeout" and found["attempts"][1]["status"] == 200


@pytest.mark.parametrize("status", [500, 404, 410])
def test_clientify_counts_any_answer_as_delivered(
    hooks: SandboxHandle, receiver: Receiver, status: int
) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    receiver.script["/crm"] = [status, 200]
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert len(receiver.requests) == 1  # not retried
    assert found["counts"]["delivered"] == 1 and found["statuses"] == {str(status): 1}


def test_clientify_inactive_slot_sends_nothing(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    hooks.control("clientify", "POST", "webhooks/slots/contacts/deactivate")
    contact = new_contact(hooks)
    assert emit(hooks, "clientify", entity="contacts", id=contact["id"])[0]["delivery"] is None
    assert state(hooks, "clientify")["counts"].get("submitted", 0) == 0
    assert receiver.requests == []


# -- delivery rules ---------------------------------------------------------------------------------------


def test_duplicate_rule_delivers_twice(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    hooks.control(
        "clientify", "PUT", "webhooks/rules", {"rules": [{"action": "duplicate", "event": "contact.*"}]}
    )
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body  # no delivery id tells them apart
    assert found["counts"]["duplicated"] == 1
    assert sorted(a["copy"] for a in found["attempts"]) == [False, True]


def test_drop_rule_loses_the_event_and_counts_it(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    first, second = new_contact(hooks), new_contact(hooks)
    hooks.control("clientify", "PUT", "webhooks/rules", {"rules": [{"action": "drop", "count": 1}]})
    emit(hooks, "clientify", entity="contacts", id=first["id"])
    emit(hooks, "clientify", entity="contacts", id=second["id"])
    found = state(hooks, "clientify")
    assert [r.json()["data"]["id"] for r in receiver.requests] == [second["id"]]
    assert found["counts"]["dropped"] == 1
    assert found["rules"][0]["applied"] == 1


def test_delay_rule_postpones_the_first_attempt(hooks: SandboxHandle, receiver: Receiver) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    hooks.control("clientify", "PUT", "webhooks/rules", {"rules": [{"action": "delay", "delay_s": 0.2}]})
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    found = state(hooks, "clientify")
    assert found["counts"]["delayed"] == 1 and found["counts"]["delivered"] == 1
    assert len(receiver.requests) == 1


def _reordered(hooks: SandboxHandle, receiver: Receiver, seed: int, order: str) -> list[int]:
    register_slot(hooks, receiver.url("/crm"))
    ids = [new_contact(hooks, first_name=f"R{i}")["id"] for i in range(5)]
    rule = {"action": "reorder", "window": 5, "order": order, "hold_s": 60}
    hooks.control("clientify", "PUT", "webhooks/rules", {"seed": seed, "rules": [rule]})
    for ident in ids:  # one event at a time, in id order
        emit(hooks, "clientify", entity="contacts", id=ident)
    state(hooks, "clientify")
    arrived = [r.json()["data"]["id"] for r in receiver.requests]
    assert sorted(arrived) == ids
    return [ids.index(i) for i in arrived]


def test_reorder_rule_reverses_a_batch(hooks: SandboxHandle, receiver: Receiver) -> None:
    assert _reordered(hooks, receiver, 0, "reverse") == [4, 3, 2, 1, 0]


def test_reorder_shuffle_is_deterministic_with_a_seed(hooks: SandboxHandle, receiver: Receiver) -> None:
    first = _reordered(hooks, receiver, 7, "shuffle")
    assert first != [0, 1, 2, 3, 4]
    hooks.reset("clientify")
    hooks.config("clientify", webhook_time_scale=0.01)
    receiver.requests.clear()
    assert _reordered(hooks, receiver, 7, "shuffle") == first


def test_probabilistic_rules_replay_with_the_same_seed(hooks: SandboxHandle, receiver: Receiver) -> None:
    def run() -> list[tuple[int, str]]:
        register_slot(hooks, receiver.url("/crm"))
        ids = [new_contact(hooks, first_name=f"P{i}")["id"] for i in range(12)]
        hooks.control(
            "clientify",
            "PUT",
            "webhooks/rules",
            {"seed": 3, "rules": [{"action": "drop", "probability": 0.5}]},
        )
        for ident in ids:
            emit(hooks, "clientify", entity="contacts", id=ident)
        attempts = state(hooks, "clientify")["attempts"]
        return sorted((ids.index(int(a["ref"].split("/")[1])), a["state"]) for a in attempts)

    first = run()
    assert {"dropped", "delivered"} == {outcome for _, outcome in first}
    hooks.reset("clientify")
    hooks.config("clientify", webhook_time_scale=0.01)
    assert run() == first


def test_held_batch_is_released_by_flush_and_reset_forgets_rules(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    register_slot(hooks, receiver.url("/crm"))
    contact = new_contact(hooks)
    hooks.control(
        "clientify", "PUT", "webhooks/rules", {"rules": [{"action": "reorder", "window": 3, "hold_s": 120}]}
    )
    emit(hooks, "clientify", entity="contacts", id=contact["id"])
    # The hub's worker thread holds the job once it comes due: wait for that, not just for the submit.
    held = wait_until_held(hooks, "clientify", 1)
    assert held["outstanding"] == 1
    assert receiver.requests == []
    assert hooks.control("clientify", "POST", "webhooks/flush")["released"] == 1
    receiver.wait_for(1)
    hooks.reset("clientify")
    after = hooks.control("clientify", "GET", "webhooks")
    assert after["rules"] == [] and after["counts"] == {} and after["registrations"] == []


def test_bad_rules_are_refused(hooks: SandboxHandle) -> None:
    for body in (
        {"rules": [{"action": "explode"}]},
        {"rules": [{"action": "drop", "probability": 2}]},
        {"rules": [{"action": "drop", "colour": "red"}]},
        {"seed": "x", "rules": []},
    ):
        response = hooks.http.put(f"{hooks.clientify_url}/_sandbox/webhooks/rules", json=body)
        assert response.status_code == 400, body


# -- FacturaDirecta ---------------------------------------------------------------------------------------


class Rest:
    """The main company's REST client."""

    def __init__(self, sandbox: SandboxHandle) -> None:
        cfg = sandbox.config("facturadirecta")
        self.company = cfg["rest_company_id"]
        self.http = httpx.Client(
            base_url=f"{sandbox.facturadirecta_url}/api/{self.company}",
            headers={KEY_HEADER: cfg["rest_api_key"]},
            timeout=30,
        )

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json: Any = None) -> httpx.Response:
        return self.http.post(path, json=json)

    def put(self, path: str, json: Any = None) -> httpx.Response:
        return self.http.put(path, json=json)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(path)


def fd_rest(sandbox: SandboxHandle) -> Rest:
    return Rest(sandbox)


def endpoint(rest: Rest, url: str, events: list[str] | None = None) -> tuple[str, str]:
    events = events or ["contact.created", "contact.updated", "contact.archived"]
    response = rest.post("/webhooks/endpoints", {"name": "sync", "url": url, "events": events})
    assert response.status_code == 200, response.text
    return response.json()["content"]["id"], response.json()["signing_secret"]


def fd_contact(rest: Rest, name: str = "Acme Diseño S.L.") -> dict[str, Any]:
    response = rest.post("/contacts", {"content": {"type": "contact", "main": {"name": name}}})
    assert response.status_code == 200, response.text
    return response.json()


def verify(request: Received, secret: str) -> int:
    """The receiver's check: HMAC-SHA256(secret, "<t>.<raw body>") == v1, t == Webhook-Timestamp."""
    parts = dict(p.split("=", 1) for p in request.headers["webhook-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, parts["v1"])
    assert request.headers["webhook-timestamp"] == parts["t"]
    return int(parts["t"])


def test_facturadirecta_endpoints_api(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    created = rest.post(
        "/webhooks/endpoints", {"name": "sync", "url": receiver.url("/fd"), "events": ["contact.created"]}
    )
    assert created.status_code == 200
    content, secret = created.json()["content"], created.json()["signing_secret"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 64
    assert content["id"].startswith("whe_") and content["enabled"] is True
    listed = rest.get("/webhooks/endpoints").json()["items"]
    assert [e["id"] for e in listed] == [content["id"]]
    assert (
        secret not in json.dumps(listed)
        and secret not in rest.get(f"/webhooks/endpoints/{content['id']}").text
    )
    updated = rest.put(
        f"/webhooks/endpoints/{content['id']}", {"events": ["contact.updated", "product.created"]}
    )
    assert updated.json()["content"]["events"] == ["contact.updated", "product.created"]
    assert updated.json()["content"]["name"] == "sync"  # partial update
    rotated = rest.post(f"/webhooks/endpoints/{content['id']}/rotateSecret").json()["signing_secret"]
    assert rotated.startswith("whsec_") and rotated != secret
    assert rest.post(f"/webhooks/endpoints/{content['id']}/disable").json()["content"]["enabled"] is False
    assert rest.post(f"/webhooks/endpoints/{content['id']}/enable").json()["content"]["enabled"] is True
    unknown = rest.post(
        "/webhooks/endpoints", {"name": "x", "url": receiver.url("/fd"), "events": ["contact.*"]}
    )
    assert unknown.status_code == 400 and unknown.json()["errors"][0]["path"] == "events.0"
    missing = rest.post("/webhooks/endpoints", {"url": receiver.url("/fd")})
    assert missing.status_code == 400
    assert rest.delete(f"/webhooks/endpoints/{content['id']}").json() == {"result": True}
    assert rest.get("/webhooks/endpoints").json()["items"] == []
    assert rest.get(f"/webhooks/endpoints/{content['id']}").status_code == 404
    assert rest.post(f"/webhooks/endpoints/{content['id']}/rotateSecret").status_code == 409
    hooks.config("facturadirecta", rest_scopes="contacts:read,contacts:write")
    denied = rest.get("/webhooks/endpoints")
    assert denied.status_code == 403 and denied.json()["requiredScope"] == "webhooks:read"


def test_facturadirecta_delivers_signed_events(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    _, secret = endpoint(rest, receiver.url("/fd"))
    clock = hooks.http.put(f"{hooks.facturadirecta_url}/_sandbox/rest/clock", json={"frozen": True}).json()
    contact = fd_contact(rest)
    rid = contact["content"]["uuid"]
    [created] = receiver.wait_for(1)
    assert verify(created, secret) == clock["now_ms"] // 1000  # signed at send time, on the sandbox clock
    assert created.headers["content-type"] == "application/json"
    event = created.json()
    assert event["id"].startswith("whe_") and event["type"] == "contact.created"
    assert (event["object_type"], event["livemode"], event["company_id"]) == ("contact", True, rest.company)
    assert event["created"] == clock["now_ms"] // 1000
    assert event["data"]["object"] == rest.get(f"/contacts/{rid}").json()
    assert "previous_attributes" not in event["data"]

    main = dict(contact["content"]["main"], name="Acme Renamed S.L.")
    replaced = rest.put(f"/contacts/{rid}", {"content": {"type": "contact", "main": main}})
    assert replaced.status_code == 200, replaced.text
    updated = receiver.wait_for(2)[1]
    verify(updated, secret)
    data = updated.json()["data"]
    assert updated.json()["type"] == "contact.updated"
    assert data["object"]["content"]["main"]["name"] == "Acme Renamed S.L."
    assert data["previous_attributes"]["content"]["main"]["name"] == "Acme Diseño S.L."
    assert rest.delete(f"/contacts/{rid}").status_code == 200
    assert receiver.wait_for(3)[2].json()["type"] == "contact.archived"

    state(hooks, "facturadirecta")
    events = rest.get("/webhooks/events").json()
    assert [e["type"] for e in events["items"]] == ["contact.archived", "contact.updated", "contact.created"]
    assert all(e["status"] == "delivered" and e["attempts"] == 1 for e in events["items"])
    one = rest.get(f"/webhooks/events/{event['id']}").json()["content"]
    assert one["payload"] == event and one["lastAttempt"]["responseStatus"] == 200
    activity = rest.get("/activity", params={"type": "webhook"}).json()["items"]
    assert len(activity) == 3 and activity[0]["details"]["success"] is True


def test_facturadirecta_only_subscribed_types_are_sent(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    endpoint(rest, receiver.url("/fd"), ["contact.updated"])
    fd_contact(rest)
    state(hooks, "facturadirecta")
    assert receiver.requests == []
    assert rest.get("/webhooks/events").json()["items"] == []


def test_facturadirecta_retries_a_5xx_with_the_same_event_id(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    rest = fd_rest(hooks)
    _, secret = endpoint(rest, receiver.url("/fd"))
    receiver.script["/fd"] = [500, "close", 503, 200]
    fd_contact(rest)
    found = state(hooks, "facturadirecta")
    assert len(receiver.requests) == 4
    assert len({r.json()["id"] for r in receiver.requests}) == 1  # stable across retries
    for request in receiver.requests:
        verify(request, secret)  # each attempt signed anew
    assert [a["state"] for a in found["attempts"]] == ["retrying"] * 3 + ["delivered"]
    assert [a["platform_wait_s"] for a in found["attempts"][:3]] == [15, 45, 120]
    assert [a["next_attempt_in_s"] for a in found["attempts"][:3]] == [0.0075, 0.0225, 0.06]  # scaled
    [event] = rest.get("/webhooks/events").json()["items"]
    assert (event["status"], event["attempts"], event["lastAttempt"]["responseStatus"]) == (
        "delivered",
        4,
        200,
    )


def test_facturadirecta_fails_after_twelve_attempts_and_retries_by_api(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    hooks.config("facturadirecta", rest_webhook_time_scale=0.00001)  # 72 h in about 2.6 s
    rest = fd_rest(hooks)
    endpoint_id, secret = endpoint(rest, receiver.url("/fd"))
    receiver.script["/fd"] = [500] * 12
    fd_contact(rest)
    found = state(hooks, "facturadirecta")
    assert len(receiver.requests) == 12 and found["counts"]["failed"] == 1
    failed = rest.get("/webhooks/events", params={"status": "failed", "endpointId": endpoint_id}).json()[
        "items"
    ]
    assert len(failed) == 1 and failed[0]["attempts"] == 12
    assert rest.get("/webhooks/events", params={"status": "pending"}).json()["items"] == []

    retried = rest.post(f"/webhooks/events/{failed[0]['id']}/retry")
    assert retried.status_code == 200 and retried.json()["content"]["status"] == "pending"
    manual = receiver.wait_for(13)[12]
    verify(manual, secret)
    assert manual.json()["id"] == failed[0]["id"] and manual.json()["livemode"] is False  # "manual retries"
    state(hooks, "facturadirecta")
    assert rest.get(f"/webhooks/events/{failed[0]['id']}").json()["content"]["status"] == "delivered"
    # Delivered events can be retried too.
    assert rest.post(f"/webhooks/events/{failed[0]['id']}/retry").status_code == 200
    receiver.wait_for(14)


def test_facturadirecta_rotated_secret_signs_at_once(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    endpoint_id, old = endpoint(rest, receiver.url("/fd"))
    new = rest.post(f"/webhooks/endpoints/{endpoint_id}/rotateSecret").json()["signing_secret"]
    fd_contact(rest)
    [got] = receiver.wait_for(1)
    verify(got, new)
    with pytest.raises(AssertionError):
        verify(got, old)


def test_facturadirecta_disabled_endpoint_drops_queued_events(
    hooks: SandboxHandle, receiver: Receiver
) -> None:
    rest = fd_rest(hooks)
    endpoint_id, _ = endpoint(rest, receiver.url("/fd"))
    hooks.control(
        "facturadirecta",
        "PUT",
        "webhooks/rules",
        {"rules": [{"action": "reorder", "window": 2, "hold_s": 120}]},
    )
    fd_contact(rest)
    assert wait_until_held(hooks, "facturadirecta", 1)["outstanding"] == 1  # held, not sent
    rest.post(f"/webhooks/endpoints/{endpoint_id}/disable")
    hooks.control("facturadirecta", "POST", "webhooks/flush")
    found = state(hooks, "facturadirecta")
    assert receiver.requests == [] and found["counts"]["cancelled"] == 1
    [event] = rest.get("/webhooks/events").json()["items"]
    assert event["status"] == "failed" and event["lastAttempt"]["error"] == "endpoint disabled"


def test_facturadirecta_drop_rule_marks_the_event_failed(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    endpoint(rest, receiver.url("/fd"))
    hooks.control("facturadirecta", "PUT", "webhooks/rules", {"rules": [{"action": "drop"}]})
    fd_contact(rest)
    state(hooks, "facturadirecta")
    assert receiver.requests == []
    [event] = rest.get("/webhooks/events", params={"status": "failed"}).json()["items"]
    assert event["attempts"] == 0 and event["lastAttempt"]["error"] == "dropped by a sandbox rule"


def test_facturadirecta_duplicates_keep_the_event_id(hooks: SandboxHandle, receiver: Receiver) -> None:
    rest = fd_rest(hooks)
    _, secret = endpoint(rest, receiver.url("/fd"))
    hooks.control(
        "facturadirecta", "PUT", "webhooks/rules", {"rules": [{"action": "duplicate", "copies": 2}]}
    )
    fd_contact(rest)
    state(hooks, "facturadirecta")
    assert len(receiver.requests) == 3
    assert len({r.json()["id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        verify(request, secret)


def test_facturadirecta_web_app_edits_emit(hooks: SandboxHandle, receiver: Receiver) -> None:
    hooks.config("facturadirecta", rest_webhook_echo_api_writes=False)
    rest = fd_rest(hooks)
    endpoint(
        rest,
        receiver.url("/fd"),
        ["contact.created", "contact.updated", "contact.archived", "contact.unarchived"],
    )
    rid = fd_contact(rest)["content"]["uuid"]
    emitted = emit(hooks, "facturadirecta", id=rid, changes={"email": "ui@example.com"})
    assert emitted[0]["event"] == "contact.updated"
    [got] = receiver.wait_for(1)  # the API create was not echoed (switch), the UI edit was
    data = got.json()["data"]
    assert data["object"]["content"]["main"]["email"] == "ui@example.com"
    assert "email" in data["previous_attributes"]["content"]["main"]
    emit(hooks, "facturadirecta", id=rid, action="archived")
    hooks.http.post(
        f"{hooks.facturadirecta_url}/_sandbox/rest/unarchive", json={"id": rid}
    ).raise_for_status()
    assert [r.json()["type"] for r in receiver.wait_for(3)] == [
        "contact.updated",
        "contact.archived",
        "contact.unarchived",
    ]


def test_facturadirecta_content_object_switch(hooks: SandboxHandle, receiver: Receiver) -> None:
    hooks.config("facturadirecta", rest_webhook_object="content", rest_webhook_livemode=False)
    rest = fd_rest(hooks)
    endpoint(rest, receiver.url("/fd"))
    contact = fd_contact(rest)
    event = receiver.wait_for(1)[0].json()
    assert event["data"]["object"] == contact["content"] and event["livemode"] is False


# -- the worker -------------------------------------------------------------------------------------------


def test_the_queue_is_bounded() -> None:
    hub = WebhookHub(max_queue=2)
    try:

        def job() -> Job:
            return Job(
                api="clientify",
                event="contact.saved",
                ref="contacts/1",
                target="http://127.0.0.1:9/",
                policy=CLIENTIFY_POLICY,
                scale=1.0,
                timeout_s=1.0,
                prepare=lambda: (b"{}", {}),
            )

        assert hub.submit(job(), delay_s=600) > 0
        assert hub.submit(job(), delay_s=600) > 0
        assert hub.submit(job(), delay_s=600) == 0  # refused: the queue holds two
        snapshot = hub.snapshot("clientify")
        assert snapshot["counts"] == {"overflow": 1, "submitted": 2} and snapshot["outstanding"] == 2
        hub.reset("clientify")
        assert hub.outstanding("clientify") == 0
    finally:
        hub.stop()
    assert not hub.running


@pytest.mark.slow  # seconds (make test runs it; make unit does not, issue 23)
def test_pending_events_survive_a_restart_and_the_worker_stops_with_the_server(
    receiver: Receiver, tmp_path: Any
) -> None:
    """A file database: an event still pending (its next try 15 s away) when the process stops is sent by
    the next process at once; SIGTERM ends the process cleanly while a delivery is waiting."""
    db = tmp_path / "sandbox.db"
    first = start_sandbox(db=db)
    try:
        rest = fd_rest(first)
        _, secret = endpoint(rest, receiver.url("/fd"))
        receiver.script["/fd"] = [500]
        fd_contact(rest)
        receiver.wait_for(1)
        assert first.control("facturadirecta", "GET", "webhooks")["outstanding"] == 1  # retry in 15 s
    finally:
        assert first.process is not None
        first.process.terminate()
        assert first.process.wait(timeout=30) == 0  # the worker did not keep it alive
        stop_sandbox(first)
    second = start_sandbox(db=db)
    try:
        again = receiver.wait_for(2)[1]
        verify(again, secret)
        assert again.body == receiver.requests[0].body
        state(second, "facturadirecta")
        [event] = fd_rest(second).get("/webhooks/events").json()["items"]
        assert (event["status"], event["attempts"]) == ("delivered", 2)
    finally:
        stop_sandbox(second)
