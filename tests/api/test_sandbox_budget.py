"""Rate budget and concurrency cap, measured against the sandbox."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from .sandbox_clients import clientify_for, facturama_for


def test_requests_per_minute_spaces_calls(clean_sandbox) -> None:
    ids = clean_sandbox.seed("facturama", products=6)["ids"]["products"]
    with facturama_for(clean_sandbox, requests_per_minute=600) as client:  # one every 100 ms
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(client.products.get, ids))
        elapsed = time.monotonic() - started
    assert elapsed >= 0.5 - 0.02  # 6 calls: the first is free, 5 gaps of 100 ms


def test_concurrency_caps_requests_in_flight(clean_sandbox) -> None:
    clean_sandbox.seed("clientify", products=1)
    clean_sandbox.faults("clientify", [{"path": "^/v1/products/", "latency_ms": 150}])

    def timed(concurrency: int) -> float:
        with clientify_for(clean_sandbox, concurrency=concurrency) as client:
            product_id = next(client.products.iter_records())["id"]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(lambda _: client.products.get(product_id), range(8)))
            return time.monotonic() - started

    capped, wide = timed(2), timed(8)
    assert capped >= 4 * 0.15 - 0.02  # 8 requests, 2 at a time, 150 ms each
    assert wide < capped / 2
