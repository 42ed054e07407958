"""Everything the three sandbox APIs hold, read through their public APIs, and the duplicates in it.

Why through the APIs: a duplicate is what a user of Facturama, FacturaDirecta or Clientify would see
in their lists, so it is read the way they read it (paged lists), not from the sandbox's storage.
Tax ids are compared normalised (case, spaces, dashes, dots); generic ids that identify no one
(público en general, placeholder NIFs) and empty values are not identities and are left out.

FacturaDirecta is read through the API the stack syncs with: the classic XML API, or the REST API
(``facturadirecta_api="rest"``), whose records are flattened to the classic field names the checks use
(``taxCode``, ``code``, ``estimateSerial``/``estimateNumber``, ``custom``), with ``id`` and ``email``.
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


def pick_email(record: dict[str, Any]) -> str:
    """A Clientify contact's or company's e-mail as the sync reads it: the main one, else the first."""
    emails = record.get("emails") or []
    main = [e for e in emails if e.get("type") == 4] or emails
    return str(main[0].get("email") or "").strip().lower() if main else ""


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


def read_inventory(
    urls: dict[str, str], credentials: dict[str, Any], facturadirecta_api: str = "classic"
) -> Inventory:
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
    if facturadirecta_api == "rest":
        inventory.records["facturadirecta"] = read_facturadirecta_rest(
            urls["facturadirecta"], credentials["facturadirecta_rest_company"],
            credentials["facturadirecta_rest_key"],
        )  # fmt: skip
    else:
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


REST_KINDS = {"clients": "contacts", "products": "products", "estimates": "estimates"}


def read_facturadirecta_rest(url: str, company: str, key: str) -> dict[str, list[dict[str, Any]]]:
    """Every contact, product and estimate of the REST API, as flat records (see the module doc)."""
    with httpx.Client(
        base_url=f"{url}/api/{company}", timeout=60, headers={"facturadirecta-api-key": key}
    ) as fd:
        return {
            kind: [_flat_rest(kind, item) for item in _facturadirecta_rest_pages(fd, resource)]
            for kind, resource in REST_KINDS.items()
        }


def _flat_rest(kind: str, item: dict[str, Any]) -> dict[str, Any]:
    main = item["content"]["main"]
    custom = {str(k): str(v) for k, v in (main.get("customFields") or {}).items()}
    record: dict[str, Any] = {"id": item["content"]["uuid"], "custom": custom, "raw": item}
    if kind == "clients":
        record |= {"taxCode": main.get("fiscalId"), "name": main.get("name"), "email": main.get("email")}
    elif kind == "products":
        record |= {"code": main.get("sku"), "name": main.get("name")}
    else:
        # The link to the Clientify budget is the one custom field the sync writes (ID_CRM's place).
        record |= {"estimateSerial": main.get("series"), "estimateNumber": main.get("docNumber")}
        record["custom"] = {"ID_CRM": "|".join(sorted(custom.values()))} if custom else {}
    return record


def _facturadirecta_rest_pages(client: httpx.Client, resource: str) -> Iterator[dict[str, Any]]:
    offset = 0
    for _ in range(MAX_PAGES):
        response = client.get(f"/{resource}", params={"offset": offset, "limit": 100})
        response.raise_for_status()
        body = response.json()
        yield from body["items"]
        offset += len(body["items"])
        if not body["items"] or offset >= body["pagination"]["total"]:
            return
    raise AssertionError(f"FacturaDirecta REST /{resource} did not end within {MAX_PAGES} pages")


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
