"""Request statistics: route templates, statuses, injected faults counted as the client saw them."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, HTTPException

from include.sandbox import stats as stats_module
from include.sandbox.faults import FaultInjector, FaultMiddleware
from include.sandbox.stats import RequestStats, StatsMiddleware, busiest_window, route_template

api = FastAPI()


@api.get("/v1/contacts/")
def list_contacts() -> dict:
    return {"results": []}


@api.get("/v1/contacts/{contact_id}/")
def get_contact(contact_id: int) -> dict:
    if contact_id == 404:
        raise HTTPException(404, "Not found.")
    return {"id": contact_id}


@api.post("/v1/contacts/", status_code=201)
def create_contact() -> dict:
    return {"id": 1}


@api.get("/boom")
def boom() -> dict:
    raise RuntimeError("boom")


@api.get("/_sandbox/stats")
def control() -> dict:
    return {}


STATS = RequestStats()
INJECTOR = FaultInjector()
APP = StatsMiddleware(FaultMiddleware(api, INJECTOR), STATS)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(APP, log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=5)
    sock.close()


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    STATS.reset()
    INJECTOR.clear()
    with httpx.Client(base_url=base_url, timeout=5) as c:
        yield c
    INJECTOR.clear()


def test_counts_by_route_template_and_status(client: httpx.Client) -> None:
    client.get("/v1/contacts/")
    client.get("/v1/contacts/")
    client.get("/v1/contacts/7/")
    client.get("/v1/contacts/8/")
    client.get("/v1/contacts/404/")
    client.post("/v1/contacts/")
    snap = STATS.snapshot()
    assert snap["total"] == 6
    assert snap["by_method"] == {"GET": 5, "POST": 1}
    assert snap["by_route"] == [
        {"method": "GET", "route": "/v1/contacts/", "status": 200, "count": 2},
        {"method": "GET", "route": "/v1/contacts/{contact_id}/", "status": 200, "count": 2},
        {"method": "GET", "route": "/v1/contacts/{contact_id}/", "status": 404, "count": 1},
        {"method": "POST", "route": "/v1/contacts/", "status": 201, "count": 1},
    ]


def test_unrouted_path_falls_back_to_raw_path(client: httpx.Client) -> None:
    assert client.get("/nowhere").status_code == 404
    assert STATS.count(route="/nowhere", status=404) == 1


def test_control_paths_not_counted(client: httpx.Client) -> None:
    client.get("/_sandbox/stats")
    assert STATS.snapshot()["total"] == 0


def test_exception_counts_as_500(client: httpx.Client) -> None:
    assert client.get("/boom").status_code == 500
    assert STATS.count(method="GET", route="/boom", status=500) == 1


def test_injected_status_fault_counted(client: httpx.Client) -> None:
    INJECTOR.configure([{"path": "contacts", "rates": {"429": 1.0}, "count": 2}])
    for _ in range(3):
        client.get("/v1/contacts/")
    # A fault answers before routing: the raw path is the route.
    assert STATS.count(status=429) == 2
    assert STATS.count(route="/v1/contacts/", status=200) == 1


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_incomplete_response_counted_as_zero(client: httpx.Client, kind: str) -> None:
    INJECTOR.configure([{"rates": {kind: 1.0}}])
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/v1/contacts/3/")
    deadline = time.monotonic() + 2
    while STATS.snapshot()["total"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert STATS.count(status=0) == 1


def test_reset_and_thread_safety() -> None:
    stats = RequestStats()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: stats.record("get", "/x", 200 if i % 2 else 500), range(1000)))
    snap = stats.snapshot()
    assert snap["total"] == 1000
    assert snap["by_method"] == {"GET": 1000}
    assert stats.count(status=500) == 500
    stats.reset()
    assert stats.snapshot() == {"total": 0, "by_route": [], "by_method": {}}


def test_route_template_fallbacks() -> None:
    class R:
        path = "/p/{id}"

    assert route_template({"path": "/raw"}) == "/raw"
    assert route_template({"path": "/raw", "route": R()}) == "/p/{id}"


def test_arrival_times_kept_and_served(client: httpx.Client) -> None:
    before = time.time()
    client.get("/v1/contacts/")
    client.post("/v1/contacts/")
    client.get("/_sandbox/stats")  # control paths: neither counted nor timed
    after = time.time()
    served = client.get("/_sandbox/stats/arrivals").json()
    assert served["kept"] == 100_000 and served["dropped"] == 0
    assert [(method, status) for _, method, status in served["arrivals"]] == [("GET", 200), ("POST", 201)]
    times = [t for t, _, _ in served["arrivals"]]
    assert before <= times[0] <= times[1] <= after
    # The plain snapshot stays as it was: counts only.
    assert set(STATS.snapshot()) == {"total", "by_route", "by_method"}


def test_arrival_time_is_taken_before_injected_latency(client: httpx.Client, monkeypatch) -> None:
    """The middleware's clock is replaced by one that reads how many injected delays have ended: a
    request stamped when it came in reads the count from before its own delay, one stamped when it was
    answered would read one more. An order of events, not a duration: nothing here depends on how long
    the delay or the machine takes."""
    ended_before = INJECTOR.counters()["delayed"]
    ended = SimpleNamespace(time=lambda: float(INJECTOR.counters()["delayed"]))
    monkeypatch.setattr(stats_module, "time", ended)  # what StatsMiddleware stamps an arrival with
    INJECTOR.configure([{"path": "contacts", "latency_ms": 50}])
    client.get("/v1/contacts/")
    ((arrived, _, _),) = STATS.arrivals()["arrivals"]
    assert INJECTOR.counters()["delayed"] == ended_before + 1  # the delay was applied, and has ended
    assert arrived == ended_before  # recorded when the request came in, before its delay ended


def test_arrivals_bounded_and_reset() -> None:
    ticks = iter(range(10))
    stats = RequestStats(keep_arrivals=3, clock=lambda: float(next(ticks)))
    for _ in range(5):
        stats.record("get", "/x", 200)
    kept = stats.arrivals()
    assert kept["dropped"] == 2
    assert [t for t, _, _ in kept["arrivals"]] == [2.0, 3.0, 4.0]
    assert stats.snapshot()["total"] == 5  # counts are not bounded, only the times
    stats.reset()
    assert stats.arrivals() == {"kept": 3, "dropped": 0, "arrivals": []}


def test_busiest_window_is_half_open_and_slides() -> None:
    assert busiest_window([]) == (0, None)
    # 0 and 60 are a full minute apart: never in the same [t, t + 60) window.
    assert busiest_window([0.0, 60.0]) == (1, 0.0)
    # Not calendar minutes: 50..65 is the fullest window, across the minute mark.
    times = [0.0, 50.0, 55.0, 61.0, 65.0, 130.0]
    assert busiest_window(times) == (4, 50.0)
    assert busiest_window(list(reversed(times)), seconds=10) == (2, 50.0)
