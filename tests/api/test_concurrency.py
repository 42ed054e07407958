"""Thread safety: one client shared by many threads, the concurrency cap and the rate budget."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.ratelimit import TokenBucket

from .scripted import Sleeps, clientify_settings, handler_transport, json_response


class InFlight:
    """A handler that remembers the most requests seen at once; with ``gate``, each request waits at a
    barrier until ``gate`` of them are in flight together (released together, ``gate`` at a time).

    No request is held for a length of time: a client that lets fewer than ``gate`` through at once
    never fills the barrier (its timeout only guards against a hang), one that lets more through
    shows them in ``peak`` before any is released.
    """

    def __init__(self, gate: int | None = None) -> None:
        self.current = 0
        self.peak = 0
        self.seen = 0
        self._lock = threading.Lock()
        self._barrier = threading.Barrier(gate, timeout=30) if gate else None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
            self.seen += 1
        try:
            if self._barrier is not None:
                self._barrier.wait()
        finally:
            with self._lock:
                self.current -= 1
        return json_response(200, {"id": int(request.url.path.split("/")[-2])})


def test_concurrency_caps_requests_in_flight_across_threads() -> None:
    handler = InFlight(gate=3)  # 24 requests, released three at a time
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
    handler = InFlight()
    settings = clientify_settings(concurrency=4, requests_per_minute=1200)  # one every 50 ms
    client = ClientifyClient(settings, transport=handler_transport(handler))
    waits = Sleeps()
    client._session.share_budget(TokenBucket(1200, clock=lambda: 0.0, sleep=waits))
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(client.contacts.get, range(8)))
    assert sorted(round(w, 3) for w in waits) == [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
    assert handler.seen == 8
