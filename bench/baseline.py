"""The naive baseline: the mechanism seed 000 describes, done plainly, Facturama → Clientify.

Page through Facturama (100 per page, as ours); for every client with an RFC (product with a SKU),
look it up in Clientify by the link custom field (contacts, then companies), then by RFC
(``?query=`` on contacts, then companies; products ``?sku=``), then POST it or PUT the mapped fields.
No ledger and no change detection, so every matched record is updated on every run. Records of one
page are handled ``concurrency`` at a time, the same concurrency as ours. Estimates are not part of
it (the comparison with ours is on contacts and products only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx

from bench.edits import Pair
from bench.sandbox import SandboxHandle
from clientify_sync.engine.model import split_person_name
from clientify_sync.engine.vocabulary import Entity

LINK_FIELD = "in_facturama"
CONTENT_TYPES = ("contacts | contact", "companies | company", "products | product")
RTYPES = {"contacts": "contact", "companies": "company", "products": "product"}
Result = tuple[str, Pair | None]


class NaiveSync:
    """One-way, search-per-record sync; ``run()`` does one pass over contacts and products."""

    def __init__(self, handle: SandboxHandle, concurrency: int, page_size: int = 100) -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        self.facturama = httpx.Client(base_url=handle.facturama_url, limits=limits, timeout=60, verify=False,
                                      auth=(handle.facturama_user, handle.facturama_password))  # fmt: skip
        self.clientify = httpx.Client(base_url=handle.clientify_url, limits=limits, timeout=60, verify=False,
                                      headers={"Authorization": f"Token {handle.clientify_token}"})  # fmt: skip
        self.concurrency = concurrency
        self.page_size = page_size
        self.pairs: dict[Entity, list[Pair]] = {}

    def close(self) -> None:
        self.facturama.close()
        self.clientify.close()

    def run(self) -> dict[str, dict[str, int]]:
        """One pass; returns the outcomes per entity (created/updated/skipped/failed)."""
        self._define_link_field()
        outcomes: dict[str, dict[str, int]] = {}
        plan: tuple[tuple[Entity, str, Callable[[dict[str, Any]], Result]], ...] = (
            (Entity.CONTACTS, "Clients", self._client), (Entity.PRODUCTS, "Products", self._product))  # fmt: skip
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="naive") as pool:
            for entity, plural, handle_record in plan:
                counts: Counter[str] = Counter()
                pairs: list[Pair] = []
                for page in self._pages(plural):
                    for outcome, pair in pool.map(handle_record, page):
                        counts[outcome] += 1
                        if pair is not None:
                            pairs.append(pair)
                self.pairs[entity] = pairs
                outcomes[entity.value] = dict(counts)
        return outcomes

    # -- Facturama paging ---------------------------------------------------------------------------
    def _pages(self, plural: str) -> Iterator[list[dict[str, Any]]]:
        start = 0
        while True:
            response = self.facturama.get(
                f"/{plural}", params={"start": start, "length": self.page_size, "search": ""}
            )
            response.raise_for_status()
            body = response.json()
            if not body["data"]:
                return
            yield body["data"]
            start += len(body["data"])
            if start >= int(body["recordsFiltered"]):
                return

    # -- Clientify lookups --------------------------------------------------------------------------
    def _define_link_field(self) -> None:
        response = self.clientify.get("/v1/custom-fields/")
        response.raise_for_status()
        body = response.json()
        rows = body if isinstance(body, list) else body.get("results", [])
        defined = {(r.get("name"), str(r.get("content_type", "")).split("|")[0].strip()) for r in rows}
        for content_type in CONTENT_TYPES:
            if (LINK_FIELD, content_type.split("|")[0].strip()) not in defined:
                self.clientify.post("/v1/custom-fields/", json={"name": LINK_FIELD, "content_type": content_type,
                                                                "field_type": 3}).raise_for_status()  # fmt: skip

    def _first(
        self, resource: str, params: dict[str, str], match: Callable[[dict[str, Any]], bool]
    ) -> str | None:
        response = self.clientify.get(f"/v1/{resource}/", params=params)
        response.raise_for_status()
        return next((str(r["id"]) for r in response.json()["results"] if match(r)), None)

    def _find(self, resources: tuple[str, ...], inv_id: str, key: str, key_param: str,
              key_field: str) -> tuple[str, str] | None:  # fmt: skip
        """By link field on each resource, then by natural key on each resource."""
        for resource in resources:
            found = self._first(resource, {f"cf_{LINK_FIELD}": inv_id}, lambda r: True)
            if found:
                return resource, found
        for resource in resources:
            found = self._first(
                resource, {key_param: key}, lambda r: str(r.get(key_field) or "").strip().upper() == key
            )
            if found:
                return resource, found
        return None

    def _write(
        self, resource: str, target: tuple[str, str] | None, body: dict[str, Any], inv_id: str
    ) -> Result:
        if target is not None:
            response = self.clientify.put(f"/v1/{target[0]}/{target[1]}/", json=body)
            outcome, resource, rid = "updated", target[0], target[1]
        else:
            response = self.clientify.post(f"/v1/{resource}/", json=body)
            outcome, rid = "created", ""
        response.raise_for_status()
        rid = rid or str(response.json()["id"])
        return outcome, Pair(inv_id, RTYPES[resource], rid)

    # -- one record ---------------------------------------------------------------------------------
    def _client(self, record: dict[str, Any]) -> Result:
        rfc = str(record.get("Rfc") or "").strip().upper()
        if not rfc:
            return "skipped", None
        try:
            target = self._find(("contacts", "companies"), record["Id"], rfc, "query",
                                "taxpayer_identification_number")  # fmt: skip
            resource = target[0] if target else ("companies" if len(rfc) == 12 else "contacts")
            return self._write(resource, target, contact_body(record, rfc, resource), record["Id"])
        except httpx.HTTPError:
            return "failed", None

    def _product(self, record: dict[str, Any]) -> Result:
        sku = str(record.get("IdentificationNumber") or "").strip()
        if not sku:
            return "skipped", None
        try:
            target = self._find(("products",), record["Id"], sku.upper(), "sku", "sku")
            body = {"name": record.get("Name") or "", "sku": sku,
                    "price": str(Decimal(str(record.get("Price") or 0)).quantize(Decimal("0.01"))),
                    "custom_fields": [{"field": LINK_FIELD, "value": record["Id"]}]}  # fmt: skip
            return self._write("products", target, body, record["Id"])
        except httpx.HTTPError:
            return "failed", None


def contact_body(record: dict[str, Any], rfc: str, resource: str) -> dict[str, Any]:
    """The mapped fields of a Facturama client, as a Clientify contact or company."""
    address = record.get("Address") or {}
    body: dict[str, Any] = {
        "taxpayer_identification_number": rfc,
        "addresses": [{
            "street": " ".join(str(x) for x in (address.get("Street"), address.get("ExteriorNumber")) if x),
            "city": address.get("Municipality") or address.get("Locality") or "",
            "state": address.get("State") or "",
            "postal_code": record.get("TaxZipCode") or address.get("ZipCode") or "",
            "country": "MX", "type": 3,
        }],
        "custom_fields": [{"field": LINK_FIELD, "value": record["Id"]}],
    }  # fmt: skip
    if record.get("Email"):
        body["emails"] = [{"type": 4, "email": record["Email"]}]
    if resource == "companies":
        body["name"] = record.get("Name") or ""
    else:
        body["first_name"], body["last_name"] = split_person_name(str(record.get("Name") or ""))
    return body
