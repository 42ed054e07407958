"""Fault injection middleware: every fault as an httpx client sees it over a real socket."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from include.sandbox import faults
from include.sandbox.faults import (
    FAULT_KINDS,
    XXE_HTTP_TARGET,
    FaultInjector,
    FaultMiddleware,
)

# ---------------------------------------------------------------------------------------------------
# A tiny app behind two fault layers (JSON at /..., XML at /xml/...) sharing one injector
# ---------------------------------------------------------------------------------------------------

CALLS: list[str] = []


async def items(request: Request) -> Response:
    CALLS.append(f"{request.method} {request.url.path}")
    if request.method == "POST":
        return JSONResponse({"echo": json.loads(await request.body() or b"null")}, status_code=201)
    return JSONResponse({"data": [{"id": i, "name": f"item {i}"} for i in range(20)]})


async def ping(request: Request) -> Response:
    return JSONResponse({"ok": True})


INNER = Starlette(
    routes=[
        Route("/items", items, methods=["GET", "POST"]),
        Route("/other", items, methods=["GET"]),
        Route("/xml/items", items, methods=["GET", "POST"]),
        Route("/_sandbox/ping", ping),
    ]
)


class _Split:
    """Routes /xml/* through the XML-flavoured fault layer, the rest through the JSON one."""

    def __init__(self, injector: FaultInjector) -> None:
        self.json = FaultMiddleware(INNER, injector, "json")
        self.xml = FaultMiddleware(INNER, injector, "xml")

    async def __call__(self, scope, receive, send) -> None:
        target = self.xml if scope.get("path", "").startswith("/xml/") else self.json
        await target(scope, receive, send)


class _Server:
    def __init__(self, app) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="critical", lifespan="off", timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.sock.close()


INJECTOR = FaultInjector(seed=0)


@pytest.fixture(scope="module")
def server() -> Iterator[_Server]:
    with _Server(_Split(INJECTOR)) as srv:
        yield srv


@pytest.fixture
def client(server: _Server) -> Iterator[httpx.Client]:
    INJECTOR.clear()
    INJECTOR.set_profile("none", [])
    INJECTOR.reset_counters()
    CALLS.clear()
    with httpx.Client(base_url=server.url, timeout=5) as c:
        yield c
    INJECTOR.clear()


def always(kind: str, **extra) -> dict:
    return {"rates": {kind: 1.0}, **extra}


# ---------------------------------------------------------------------------------------------------
# Status faults
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "504"])
def test_status_fault_answers_without_calling_the_app(client: httpx.Client, kind: str) -> None:
    INJECTOR.configure([always(kind, retry_after=7)])
    response = client.get("/items")
    assert response.status_code == int(kind)
    assert response.headers["content-type"].startswith("application/json")
    assert "detail" in response.json()
    if kind in ("429", "503"):
        assert response.headers["retry-after"] == "7"
    else:
        assert "retry-after" not in response.headers
    assert CALLS == []


def test_xml_error_body(client: httpx.Client) -> None:
    INJECTOR.configure([always("503")])
    response = client.get("/xml/items")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "xml" in response.headers["content-type"]
    assert response.text.startswith("<?xml")
    assert "<httpStatus>503</httpStatus>" in response.text


def test_custom_error_body() -> None:
    injector = FaultInjector([always("500")])
    app = FaultMiddleware(
        INNER, injector, error_body=lambda s: (b'{"Message":"An error has occurred."}', "application/json")
    )
    messages = asyncio.run(_call(app, "GET", "/items"))
    assert messages[0]["status"] == 500
    assert messages[1]["body"] == b'{"Message":"An error has occurred."}'


async def _call(app, method: str, path: str) -> list[dict]:
    """Drive an ASGI app directly and collect what it sends."""
    sent: list[dict] = []
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [],
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "server": ("t", 80),
        "http_version": "1.1",
    }

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


# ---------------------------------------------------------------------------------------------------
# Socket-level faults
# ---------------------------------------------------------------------------------------------------


def _wait_for(predicate, seconds: float = 10.0) -> None:
    """Poll until ``predicate()`` holds (a bounded wait, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_timeout_client_gives_up(client: httpx.Client) -> None:
    INJECTOR.configure([always("timeout", timeout_s=30)])
    with pytest.raises(httpx.ReadTimeout):
        client.get("/items", timeout=0.3)
    # The server notices the hang-up and drops the request: the app never runs (it would after 30 s).
    _wait_for(lambda: INJECTOR.counters()["timeouts_abandoned"] == 1)
    assert INJECTOR.counters()["timeouts_completed"] == 0 and CALLS == []


def test_timeout_then_passes_through_with_body(client: httpx.Client) -> None:
    INJECTOR.configure([always("timeout", timeout_s=0.2)])
    response = client.post("/items", json={"a": 1})
    assert response.status_code == 201
    assert response.json() == {"echo": {"a": 1}}
    assert INJECTOR.counters()["timeouts_completed"] == 1 and INJECTOR.rules()[0]["applied"] == 1
    assert CALLS == ["POST /items"]


def test_drop_is_a_protocol_error_and_skips_the_app(client: httpx.Client) -> None:
    INJECTOR.configure([always("drop")])
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/items", json={"a": 1})
    assert CALLS == []
    # The server is still healthy afterwards.
    INJECTOR.clear()
    assert client.get("/items").status_code == 200


def test_truncate_runs_the_app_and_cuts_the_body(client: httpx.Client) -> None:
    INJECTOR.configure([always("truncate")])
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/items", json={"a": 1})
    assert CALLS == ["POST /items"]


def test_truncate_partial_body_visible_when_streaming(client: httpx.Client) -> None:
    INJECTOR.configure([always("truncate")])
    received = b""
    with pytest.raises(httpx.RemoteProtocolError), client.stream("GET", "/items") as response:
        declared = int(response.headers["content-length"])
        for chunk in response.iter_bytes():
            received += chunk
    assert 0 < len(received) < declared


# ---------------------------------------------------------------------------------------------------
# Hostile bodies
# ---------------------------------------------------------------------------------------------------


def test_html_page_with_200(client: httpx.Client) -> None:
    INJECTOR.configure([always("html")])
    response = client.get("/items")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_html_status_configurable_or_inner(client: httpx.Client) -> None:
    INJECTOR.configure([always("html", html_status=502)])
    assert client.get("/items").status_code == 502
    INJECTOR.configure([always("html", html_status=None)])
    response = client.post("/items", json={})
    assert response.status_code == 201
    assert response.text.startswith("<!DOCTYPE html>")
    assert CALLS == ["POST /items"]


def test_xml_bomb(client: httpx.Client) -> None:
    INJECTOR.configure([always("xml_bomb")])
    response = client.get("/items")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert "<!DOCTYPE lolz [" in response.text and "&lol9;" in response.text
    assert len(response.content) < 4096  # the expansion is the client's problem


@pytest.mark.parametrize("target", ["file:///etc/passwd", XXE_HTTP_TARGET])
def test_xxe(client: httpx.Client, target: str) -> None:
    INJECTOR.configure([always("xxe", xxe_target=target)])
    response = client.get("/xml/items")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    assert f'<!ENTITY xxe SYSTEM "{target}">' in response.text
    assert "<name>&xxe;</name>" in response.text


# ---------------------------------------------------------------------------------------------------
# Rule semantics
# ---------------------------------------------------------------------------------------------------


def _outcomes(client: httpx.Client, n: int = 50) -> list[int]:
    return [client.get("/items").status_code for _ in range(n)]


def test_seeded_sequence_is_reproducible(client: httpx.Client) -> None:
    rule = {"rates": {"500": 0.3, "429": 0.2}}
    INJECTOR.configure([rule])
    first = _outcomes(client)
    INJECTOR.configure([rule])
    assert _outcomes(client) == first
    assert {200, 500, 429} <= set(first)
    INJECTOR.configure([{**rule, "seed": 99}])
    assert _outcomes(client) != first


def test_decide_sequence_matches_injector_seed() -> None:
    def run(seed: int) -> list[str | None]:
        injector = FaultInjector([{"rates": {"503": 0.25, "drop": 0.25}}], seed=seed)
        return [injector.decide("GET", "/x").fault for _ in range(50)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    assert abs(sum(f is not None for f in run(3)) - 25) < 12


def test_count_makes_rule_inert(client: httpx.Client) -> None:
    INJECTOR.configure([always("503", count=3)])
    assert _outcomes(client, 6) == [503, 503, 503, 200, 200, 200]
    assert INJECTOR.rules()[0]["applied"] == 3


def test_count_is_thread_safe() -> None:
    injector = FaultInjector([always("500", count=100)])
    with ThreadPoolExecutor(8) as pool:
        faults = list(pool.map(lambda _: injector.decide("GET", "/x").fault, range(400)))
    assert faults.count("500") == 100


def test_control_paths_exempt(client: httpx.Client) -> None:
    INJECTOR.configure([always("503", latency_ms=500)])
    assert client.get("/_sandbox/ping").status_code == 200
    assert INJECTOR.counters()["delayed"] == 0
    assert INJECTOR.rules()[0]["delayed"] == 0 and INJECTOR.rules()[0]["applied"] == 0


def test_method_and_path_matching(client: httpx.Client) -> None:
    INJECTOR.configure([always("503", method="post", path=r"^/items$")])
    assert client.get("/items").status_code == 200
    assert client.post("/items", json={}).status_code == 503
    assert client.get("/other").status_code == 200


def test_first_faulting_rule_wins_and_later_rules_untouched(client: httpx.Client) -> None:
    INJECTOR.configure([always("429", path="^/items"), always("500")])
    assert client.get("/items").status_code == 429
    assert client.get("/other").status_code == 500
    assert [r["applied"] for r in INJECTOR.rules()] == [1, 1]


def test_latency_added(client: httpx.Client) -> None:
    INJECTOR.configure([{"latency_ms": 150}, {"path": "^/other$", "latency_ms": 40}])
    response = client.get("/items")
    assert response.status_code == 200
    assert INJECTOR.counters()["delayed"] == 1 and INJECTOR.counters()["delay_ms"] == 150
    assert client.get("/other").status_code == 200  # matching rules add up
    assert INJECTOR.counters()["delay_ms"] == 150 + 190
    assert [(r["delayed"], r["delay_ms"]) for r in INJECTOR.rules()] == [(2, 300), (1, 40)]


def test_latency_applies_even_with_a_fault(client: httpx.Client) -> None:
    INJECTOR.configure([always("500", latency_ms=120)])
    assert client.get("/items").status_code == 500
    assert (INJECTOR.counters()["delayed"], INJECTOR.counters()["delay_ms"]) == (1, 120)
    assert INJECTOR.rules()[0]["applied"] == 1


def test_latency_per_item_scales_with_the_page_size_asked_for(client: httpx.Client) -> None:
    INJECTOR.configure(
        [
            {
                "path": "^/items$",
                "latency_ms": 5,
                "latency_per_item_ms": 2,
                "items_param": "size",
                "items_default": 10,
                "items_max": 50,
            }
        ]
    )
    for query, expected in (("", 25), ("?size=20", 45), ("?size=500", 105), ("?size=x", 25), ("?size=0", 7)):
        INJECTOR.reset_counters()
        assert client.get(f"/items{query}").status_code == 200
        assert INJECTOR.counters()["delay_ms"] == expected, query


def test_profile_is_first_match_and_survives_fault_rule_changes(client: httpx.Client) -> None:
    INJECTOR.set_profile(
        "test", [{"method": "GET", "path": "^/items$", "latency_ms": 30}, {"latency_ms": 10}]
    )
    INJECTOR.configure([{"latency_ms": 1}])
    client.get("/items")
    client.post("/items", json={})
    assert INJECTOR.counters()["delay_ms"] == 30 + 1 + 10 + 1
    INJECTOR.clear()
    client.get("/other")
    assert INJECTOR.counters()["delay_ms"] == 42 + 10
    assert INJECTOR.profile()["profile"] == "test"
    assert [r["delayed"] for r in INJECTOR.profile()["rules"]] == [1, 2]
    with pytest.raises(ValueError):
        INJECTOR.set_profile("bad", [{"rates": {"500": 1.0}}])


class _HeldAsyncio:
    """``asyncio`` as the fault layer sees it in one test: its ``sleep`` replaced, the rest unchanged."""

    def __init__(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        self.sleep = sleep

    def __getattr__(self, name: str) -> object:
        return getattr(asyncio, name)


def test_parallel_delays_overlap(
    client: httpx.Client, server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Six delayed requests are in their delay at once. Each delay is held, in place of its sleep, until
    the injector counts six in flight (an event, not a race against the 1.5 s): a server that handled
    the delays one at a time never gets there, and its requests fail on the hold's timeout."""
    all_in: list[asyncio.Event] = []  # made on the server's event loop by the first delayed request

    async def held(seconds: float) -> None:
        if not all_in:
            all_in.append(asyncio.Event())
        if INJECTOR.counters()["max_concurrent"] == 6:
            all_in[0].set()
        await asyncio.wait_for(all_in[0].wait(), timeout=8)

    monkeypatch.setattr(faults, "asyncio", _HeldAsyncio(held))
    INJECTOR.configure([{"path": "^/items$", "latency_ms": 1500}])
    clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(6)]
    try:
        with ThreadPoolExecutor(max_workers=6) as pool:
            statuses = list(pool.map(lambda c: c.get("/items").status_code, clients))
    finally:
        for c in clients:
            c.close()
    assert statuses == [200] * 6
    assert INJECTOR.counters()["delayed"] == 6 and INJECTOR.counters()["max_concurrent"] == 6


def test_rules_round_trip_and_add() -> None:
    injector = FaultInjector()
    injector.add({"path": "^/a", "rates": {"500": 0.5}})
    injector.add({"method": "GET", "latency_ms": 10})
    listed = injector.rules()
    assert [r["path"] for r in listed] == ["^/a", ".*"]
    assert listed[0]["method"] == "*" and listed[0]["retry_after"] == 1 and listed[0]["timeout_s"] == 30
    injector.configure(listed)
    assert injector.rules() == listed
    injector.clear()
    assert injector.rules() == []


@pytest.mark.parametrize(
    "bad",
    [{"rate": {"500": 1}}, {"rates": {"501": 1}}, {"rates": {"500": 1.5}}, {"method": "FETCH"}],
)
def test_invalid_rules_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        FaultInjector().configure([bad])


def test_every_fault_kind_is_known() -> None:
    injector = FaultInjector([{"rates": dict.fromkeys(FAULT_KINDS, 0.01)}])
    assert set(injector.rules()[0]["rates"]) == set(FAULT_KINDS)
