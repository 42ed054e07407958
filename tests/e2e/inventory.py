"""Everything the three sandbox APIs hold, read through their public APIs, and the duplicates in it.

Why through the APIs: a duplicate is what a user of Facturama, FacturaDirecta or Clientify would see
in their lists, so it is read the way they read it (paged lists), not from the sandbox's storage.
Tax ids are compared normalised (case, spaces, dashes, dots); generic ids that identify no one
(público en general, placeholder NIFs) and empty values are not identities and are left out.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

GENERIC_TAX_IDS = frozenset({"XAXX010101000", "XEXX010101000", "00000000T", "X0000000T"})
MAX_PAGES = 500  # bound on every paged read: a sandbox that never ends a list fails the read


def tax_key(value: Any) -> str | None:
    """The comparable form of a tax id, or ``None`` when it identifies no one."""
    key = re.sub(r"[\s.\-_/]", "", str(value or "")).upper()
    return None if not key or key in GENERIC_TAX_IDS else key


def duplicates(values: Iterable[str | None]) -> dict[str, int]:
    """Values (ignoring ``None``/empty) that occur more than once, with their counts."""
    counts = Counter(v for v in values if v)
    return {value: n for value, n in sorted(counts.items()) if n > 1}


@dataclass
class Inventory:
    """Records per API and kind, as the APIs list them."""

    records: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)

    def counts(self) -> dict[str, dict[str, int]]:
        return {api: {kind: len(rows) for kind, rows in kinds.items()} for api, kinds in self.records.items()}

    def duplicate_report(self) -> dict[str, dict[str, int]]:
        """``{"<api> <identity>": {value: count}}`` for every identity that must be unique; empty when clean."""
        fm, fd, crm = self.records["facturama"], self.records["facturadirecta"], self.records["clientify"]
        checks = {
            "facturama client RFC": (tax_key(c.get("Rfc")) for c in fm["clients"]),
            "facturama product SKU": (p.get("IdentificationNumber") for p in fm["products"]),
            "facturama estimate Folio": (e.get("Folio") for e in fm["estimates"]),
            "facturadirecta client taxCode": (tax_key(c.get("taxCode")) for c in fd["clients"]),
            "facturadirecta product code": (p.get("code") for p in fd["products"]),
            "facturadirecta estimate serial/number": (
                f"{e.get('estimateSerial') or ''}/{e.get('estimateNumber')}" for e in fd["estimates"]
            ),
            "facturadirecta estimate ID_CRM": (e.get("custom", {}).get("ID_CRM") for e in fd["estimates"]),
            "clientify contact/company tax id": (
                tax_key(r.get("taxpayer_identification_number")) for r in crm["contacts"] + crm["companies"]
            ),
            "clientify product SKU": (p.get("sku") for p in crm["products"]),
            "clientify budget code": (b.get("code") for b in crm["budgets"]),
        }
        report = {name: duplicates(values) for name, values in checks.items()}
        return {name: found for name, found in report.items() if found}


def read_inventory(urls: dict[str, str], credentials: dict[str, Any]) -> Inventory:
    """Read every client/contact, company, product and estimate/budget of the three APIs."""
    inventory = Inventory()
    with httpx.Client(
        base_url=urls["facturama"],
        timeout=60,
        auth=(credentials["facturama_user"], credentials["facturama_password"]),
    ) as fm:
        inventory.records["facturama"] = {
            kind: list(_facturama_pages(fm, plural))
            for kind, plural in (("clients", "Clients"), ("products", "Products"), ("estimates", "Estimates"))
        }
    with httpx.Client(
        base_url=urls["facturadirecta"], timeout=60, auth=(credentials["facturadirecta_token"], "x")
    ) as fd:
        inventory.records["facturadirecta"] = {
            kind: list(_facturadirecta_pages(fd, kind)) for kind in ("clients", "products", "estimates")
        }
    headers = {"Authorization": f"Token {credentials['clientify_token']}"}
    with httpx.Client(base_url=urls["clientify"], timeout=60, headers=headers) as crm:
        inventory.records["clientify"] = {
            kind: list(_clientify_pages(crm, kind))
            for kind in ("contacts", "companies", "products", "budgets")
        }
    return inventory


def _facturama_pages(client: httpx.Client, plural: str) -> Iterator[dict[str, Any]]:
    start = 0
    for _ in range(MAX_PAGES):
        response = client.get(f"/{plural}", params={"start": start, "length": 100, "search": ""})
        response.raise_for_status()
        body = response.json()
        yield from body["data"]
        start += len(body["data"])
        if not body["data"] or start >= body["recordsTotal"]:
            return
    raise AssertionError(f"Facturama /{plural} did not end within {MAX_PAGES} pages")


def _facturadirecta_pages(client: httpx.Client, plural: str) -> Iterator[dict[str, Any]]:
    singular = plural[:-1]
    start = 0
    for _ in range(MAX_PAGES):
        response = client.get(f"/api/{plural}.xml", params={"start": start, "limit": 250})
        response.raise_for_status()
        root = ET.fromstring(response.content)  # noqa: S314 - our own sandbox on loopback
        rows = root.findall(singular)
        for row in rows:
            record: dict[str, Any] = {
                child.tag: (child.text or "").strip() for child in row if len(child) == 0
            }
            record["custom"] = {
                (a.findtext("label") or ""): (a.findtext("value") or "").strip()
                for a in row.iter("customAttribute")
            }
            yield record
        start += len(rows)
        if not rows or start >= int(root.get("total", "0")):
            return
    raise AssertionError(f"FacturaDirecta /api/{plural}.xml did not end within {MAX_PAGES} pages")


def _clientify_pages(client: httpx.Client, kind: str) -> Iterator[dict[str, Any]]:
    url: str | None = f"/v1/{kind}/?page_size=100&ordering=id"
    for _ in range(MAX_PAGES):
        if url is None:
            return
        response = client.get(url)
        response.raise_for_status()
        body = response.json()
        yield from body["results"]
        url = body.get("next")
    raise AssertionError(f"Clientify /v1/{kind}/ did not end within {MAX_PAGES} pages")
