"""100k records in one resource: a list page must still be served well under 100 ms.

The figure in docs/sandbox.md comes from ``python -m include.sandbox.measure``; this test only guards
against a regression (generous bound: typical pages take a few milliseconds).
"""

from __future__ import annotations

import statistics
import time

from tests.fixtures.sandbox import SandboxHandle

RECORDS = 100_000


def test_list_page_latency_with_100k_records(clean_sandbox: SandboxHandle) -> None:
    created = clean_sandbox.seed("facturama", products=RECORDS, seed=1)["created"]
    assert created["products"] == RECORDS
    try:
        with clean_sandbox.facturama_client() as api:
            timings = []
            for start in (0, RECORDS // 2, RECORDS - 100) * 5:
                began = time.perf_counter()
                page = api.get("/api/Products", params={"start": start, "length": 100})
                timings.append(time.perf_counter() - began)
                assert page.status_code == 200 and len(page.json()["data"]) == 100
            assert page.json()["recordsTotal"] == RECORDS
        median_ms = statistics.median(timings) * 1000
        assert median_ms < 100, f"median list page {median_ms:.1f} ms"
    finally:
        clean_sandbox.reset("facturama")
