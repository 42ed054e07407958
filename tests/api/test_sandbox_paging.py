"""Paging across many pages, over real loopback HTTP against the sandbox emulators.

The pages after the first are read concurrently (the clients' default ``concurrency`` is 4).
"""

from __future__ import annotations

import datetime

import pytest

from clientify_sync.api.paging import Page

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for


def progress_by_position(pages: list[Page]) -> dict[int | None, int]:
    """Records per page position; the pages after the first arrive in any order, numbered as yielded."""
    assert [page.number for page in pages] == list(range(1, len(pages) + 1))
    assert pages[0].position == 1
    return {page.position: len(page.records) for page in pages}


@pytest.fixture(scope="module")
def seeded(sandbox):
    """One seed shared by the read-only paging tests of this module."""
    sandbox.reset()
    sandbox.seed("facturama", clients=260, products=120, estimates=30, seed=3)
    sandbox.seed("clientify", contacts=260, companies=30, products=110, seed=3)
    sandbox.seed("facturadirecta", clients=600, products=260, estimates=5, seed=3)
    yield sandbox
    sandbox.reset()


def test_facturama_clients_products_and_estimates_page_with_start_and_length(seeded) -> None:
    seeded.reset_stats()
    with facturama_for(seeded) as client:
        pages = list(client.clients.iter_pages())
        assert progress_by_position(pages) == {1: 100, 2: 100, 3: 60}
        assert pages[-1].progress() == "page 3/3, 260/260 records"
        ids = [r["Id"] for r in client.clients.iter_records()]
        assert len(ids) == len(set(ids)) == 260
        assert sum(1 for _ in client.products.iter_records()) == 120
        assert sum(1 for _ in client.estimates.iter_records()) == 30
        summary = client.stats.summary()
    assert summary["routes"]["GET /Clients"]["calls"] == 6
    assert summary["routes"]["GET /Products"]["calls"] == 2
    assert summary["routes"]["GET /Estimates"]["calls"] == 1
    assert seeded.stats("facturama")["total"] == summary["calls"]


def test_facturama_finders_match_exactly_through_the_paged_search(seeded) -> None:
    with facturama_for(seeded) as client:
        some_client = next(client.clients.iter_records())
        some_product = next(p for p in client.products.iter_records() if p.get("IdentificationNumber"))
        some_estimate = next(e for e in client.estimates.iter_records() if e.get("Folio"))
        assert [c["Id"] for c in client.clients.find_by_rfc(some_client["Rfc"].lower())] == [
            some_client["Id"]
        ]
        assert some_product["Id"] in [
            p["Id"] for p in client.products.find_by_sku(some_product["IdentificationNumber"])
        ]
        assert some_estimate["Id"] in [
            e["Id"] for e in client.estimates.find_by_folio(some_estimate["Folio"])
        ]


def test_clientify_contacts_follow_next_links(seeded) -> None:
    with clientify_for(seeded) as client:
        pages = list(client.contacts.iter_pages())
        assert progress_by_position(pages) == {1: 100, 2: 100, 3: 60}
        assert pages[-1].progress() == "page 3/3, 260/260 records"
        assert len({r["id"] for page in pages for r in page.records}) == 260
        assert sum(1 for _ in client.products.iter_records()) == 110
        assert client.stats.summary()["routes"]["GET /v1/contacts/"]["calls"] == 3


def test_clientify_modified_gte_filters_server_side(seeded) -> None:
    with clientify_for(seeded) as client:
        everything = list(client.contacts.iter_records())
        stamps = sorted(r["modified"] for r in everything)
        cutoff = datetime.datetime.fromisoformat(stamps[-10])
        recent = list(client.contacts.iter_records(modified_gte=cutoff))
        future = list(
            client.contacts.iter_records(modified_gte=datetime.datetime(2999, 1, 1, tzinfo=datetime.UTC))
        )
    assert len(recent) == 10
    assert all(datetime.datetime.fromisoformat(r["modified"]) >= cutoff for r in recent)
    assert future == []


def test_clientify_tax_id_and_sku_finders(seeded) -> None:
    with clientify_for(seeded) as client:
        company = next(c for c in client.companies.iter_records() if c.get("taxpayer_identification_number"))
        product = next(p for p in client.products.iter_records() if p.get("sku"))
        assert company["id"] in [
            c["id"] for c in client.companies.find_by_tax_id(company["taxpayer_identification_number"])
        ]
        assert [p["id"] for p in client.products.find_by_sku(product["sku"])] == [product["id"]]


def test_facturadirecta_clients_and_products_page_with_start_and_limit(seeded) -> None:
    with facturadirecta_for(seeded) as client:
        pages = list(client.clients.iter_pages())
        assert progress_by_position(pages) == {1: 250, 2: 250, 3: 100}
        assert pages[-1].progress() == "page 3/3, 600/600 records"
        assert len({r["id"] for page in pages for r in page.records}) == 600
        assert sum(1 for _ in client.products.iter_records()) == 260
        assert sum(1 for _ in client.estimates.iter_records()) == 5
        some = pages[1].records[0]
        assert some["id"] in [c["id"] for c in client.clients.find(taxCode=some["taxCode"])]
