"""Thread safety: one client shared by many threads, the concurrency cap and the rate budget."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.ratelimit import TokenBucket

from .scripted import Sleeps, clientify_settings, handler_transport, json_response


class InFlight:
    """A handler that holds each request briefly and remembers the most requests seen at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.current = 0
        self.peak = 0
        self.times: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            self.times.append(time.monotonic())
        time.sleep(self.hold)
        with self._lock:
            self.current -= 1
        return json_response(200, {"id": int(request.url.path.split("/")[-2])})


def test_concurrency_caps_requests_in_flight_across_threads() -> None:
    handler = InFlight(hold=0.03)
    client = ClientifyClient(
        clientify_settings(concurrency=3), transport=handler_transport(handler), sleep=Sleeps()
    )
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(client.contacts.get, range(24)))
    assert [r["id"] for r in results] == list(range(24))
    assert handler.peak == 3
    assert client.stats.summary()["calls"] == 24


def test_rate_budget_spaces_requests_from_all_threads() -> None:
    """One bucket for all threads: 8 calls at one instant queue 50 ms apart (a frozen clock, waits recorded)."""
    handler = InFlight(hold=0.0)
    settings = clientify_settings(concurrency=4, requests_per_minute=1200)  # one every 50 ms
    client = ClientifyClient(settings, transport=handler_transport(handler))
    waits = Sleeps()
    client._session.share_budget(TokenBucket(1200, clock=lambda: 0.0, sleep=waits))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(client.contacts.get, range(8)))
    assert sorted(round(w, 3) for w in waits) == [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
    assert len(handler.times) == 8
