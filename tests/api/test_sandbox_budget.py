"""Rate budget and concurrency cap, measured against the sandbox (counts and recorded waits, no clock)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from clientify_sync.api.ratelimit import TokenBucket

from .sandbox_clients import clientify_for, facturama_for


class RecordedSleep:
    """A sleep that records what the budget asked for and advances a fake clock instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self._lock = threading.Lock()

    def clock(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.waits.append(seconds)


def test_requests_per_minute_spaces_calls(clean_sandbox) -> None:
    ids = clean_sandbox.seed("facturama", products=6)["ids"]["products"]
    recorded = RecordedSleep()
    with facturama_for(clean_sandbox, requests_per_minute=600) as client:  # one every 100 ms
        client._session.share_budget(TokenBucket(600, clock=recorded.clock, sleep=recorded.sleep))
        with ThreadPoolExecutor(max_workers=4) as pool:
            assert len(list(pool.map(client.products.get, ids))) == 6
    # 6 calls in the same instant: the first is free, the others queue 100 ms apart.
    assert sorted(round(w, 3) for w in recorded.waits) == [0.1, 0.2, 0.3, 0.4, 0.5]
    assert clean_sandbox.stats("facturama")["by_method"]["GET"] == 6


def test_concurrency_caps_requests_in_flight(clean_sandbox) -> None:
    clean_sandbox.seed("clientify", products=1)
    clean_sandbox.faults("clientify", [{"path": "^/v1/products/", "latency_ms": 150}])

    def most_in_flight(concurrency: int) -> int:
        """The most requests the sandbox held at once (its latency layer counts overlapping delays)."""
        with clientify_for(clean_sandbox, concurrency=concurrency) as client:
            product_id = next(client.products.iter_records())["id"]
            clean_sandbox.control("clientify", "DELETE", "latency")  # zero the counters, keep the rules
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda _: client.products.get(product_id), range(8)))
        counters = clean_sandbox.latency("clientify")["counters"]
        assert counters["delayed"] == 8
        return counters["max_concurrent"]

    assert most_in_flight(2) == 2
    assert most_in_flight(8) > 2
