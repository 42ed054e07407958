"""100k records in one resource: deep pages still return the right records in insertion order.

How fast those pages are is not asserted here (no wall-clock assertions in tests): ``make bench``
measures the median page at 100k records against its 100 ms target (bench/sandbox_checks.py), and
docs/sandbox.md quotes ``python -m include.sandbox.measure``.
"""

from __future__ import annotations

from tests.fixtures.sandbox import SandboxHandle

RECORDS = 100_000


def test_deep_pages_with_100k_records(clean_sandbox: SandboxHandle) -> None:
    created = clean_sandbox.seed("facturama", products=RECORDS, seed=1)["created"]
    assert created["products"] == RECORDS
    try:
        with clean_sandbox.facturama_client() as api:
            first_ids: list[str] = []
            for start in (0, RECORDS // 2, RECORDS - 100):
                page = api.get("/api/Products", params={"start": start, "length": 100}).json()
                assert page["recordsTotal"] == RECORDS and page["recordsFiltered"] == RECORDS
                assert len(page["data"]) == 100
                skus = [p["IdentificationNumber"] for p in page["data"] if p["IdentificationNumber"]]
                assert skus == sorted(skus)  # SKUs are numbered in creation order
                first_ids.append(page["data"][0]["Id"])
            assert len(set(first_ids)) == 3
            assert api.get("/api/Products", params={"start": RECORDS, "length": 100}).json()["data"] == []
            stats = clean_sandbox.stats("facturama")["by_route"]
            assert stats == [{"method": "GET", "route": "/products", "status": 200, "count": 4}]
    finally:
        clean_sandbox.reset("facturama")
