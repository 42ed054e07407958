"""Call accounting."""

from __future__ import annotations

import json
import threading

from clientify_sync.api.stats import CallStats


def test_summary_is_small_json_with_totals_and_per_route_counts() -> None:
    stats = CallStats("facturama")
    stats.record("GET", "/Clients", 503, 1, 0.25, failed=True)
    stats.record("GET", "/Clients", 200, 2, 0.5, failed=False)
    stats.record("POST", "/Client", None, 1, 1.0, failed=True)
    summary = stats.summary()
    assert json.loads(json.dumps(summary)) == summary
    assert summary == {
        "api": "facturama",
        "calls": 3,
        "retries": 1,
        "errors": 2,
        "seconds": 1.75,
        "routes": {
            "GET /Clients": {
                "calls": 2,
                "retries": 1,
                "errors": 1,
                "seconds": 0.75,
                "statuses": {"200": 1, "503": 1},
            },
            "POST /Client": {"calls": 1, "retries": 0, "errors": 1, "seconds": 1.0, "statuses": {"none": 1}},
        },
    }


def test_concurrent_records_are_all_counted() -> None:
    stats = CallStats("clientify")

    def hammer() -> None:
        for _ in range(1000):
            stats.record("GET", "/v1/contacts/", 200, 1, 0.001, failed=False)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stats.calls == 8000
    stats.reset()
    assert stats.summary()["calls"] == 0
