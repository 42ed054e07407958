"""The lower bound of API calls for a scenario's work, counted from what the sandbox holds.

Reads that must happen:
- the invoicing platform has no modified filter, so each entity's full listing:
  ``max(1, ceil(records / page size))`` (Facturama 100, FacturaDirecta 250);
- Clientify, per resource read: ``max(1, ceil(records modified since the watermark / 100))`` (all
  records in a full run). Right after a run that wrote to Clientify, the sync's own writes are in that
  window: a correct sync must re-read them (a user may have edited them since), so they count.
- the custom-field definitions listing, once, when a definition must be created.

Writes that must happen: one per record that must change on a side, plus one link write-back per
record created on the other side where the API keeps the link (a PUT of ``ID_CRM`` on FacturaDirecta
for a record created in Clientify; a PUT of the Clientify link field for a record created in the
invoicing platform; in a Clientify POST the link travels in the body), plus one POST per link field
definition missing. Unedited runs take them from the run reports; a run after edits takes them from
the edits (each edit must reach the other side once).

All counting requests happen outside the measured window (stats are reset after them).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.sandbox import Calls, SandboxHandle
from clientify_sync.api.clientify import content_type_key
from clientify_sync.engine.plan import Direction
from clientify_sync.engine.sides import CONTENT_TYPES
from clientify_sync.engine.vocabulary import Entity, Mode, Platform

CLIENTIFY_PAGE = 100
CRM_RESOURCES = {Entity.CONTACTS: ("contacts", "companies"), Entity.PRODUCTS: ("products",),
                 Entity.ESTIMATES: ("budgets",)}  # fmt: skip
CRM_RTYPES = {"contacts": "contact", "companies": "company", "products": "product", "budgets": "budget"}
FACTURAMA_LISTS = {Entity.CONTACTS: "/Clients", Entity.PRODUCTS: "/Products", Entity.ESTIMATES: "/Estimates"}
FACTURADIRECTA_LISTS = {Entity.CONTACTS: "/api/clients.xml", Entity.PRODUCTS: "/api/products.xml",
                        Entity.ESTIMATES: "/api/estimates.xml"}  # fmt: skip
LINK_FIELDS = {Platform.FACTURAMA: "in_facturama", Platform.FACTURADIRECTA: "in_facturadirecta"}
_TOTAL = re.compile(rb'total="(\d+)"')


@dataclass
class Bound:
    """Lower-bound calls per (api, method), with one line of reasoning per term."""

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def add(self, api: str, method: str, n: int, why: str) -> None:
        self.calls[(api, method)] += n
        self.lines.append({"api": api, "method": method, "calls": n, "why": why})

    def get(self, api: str, method: str) -> int:
        return self.calls.get((api, method), 0)

    def sum(self, *, writes: bool | None = None) -> int:
        return sum(n for (_, m), n in self.calls.items() if writes is None or (m != "GET") == writes)


# -- counting what the sandbox holds ------------------------------------------------------------------


def invoicing_count(handle: SandboxHandle, platform: Platform, entity: Entity) -> int:
    if platform is Platform.FACTURAMA:
        response = handle.http.get(f"{handle.facturama_url}{FACTURAMA_LISTS[entity]}", params={"start": 0, "length": 1},
                                   auth=(handle.facturama_user, handle.facturama_password))  # fmt: skip
        response.raise_for_status()
        return int(response.json()["recordsTotal"])
    response = handle.http.get(f"{handle.facturadirecta_url}{FACTURADIRECTA_LISTS[entity]}", params={"limit": 1},
                               auth=(handle.facturadirecta_token, "x"))  # fmt: skip
    response.raise_for_status()
    match = _TOTAL.search(response.content)
    return int(match.group(1)) if match else 0


def clientify_count(handle: SandboxHandle, resource: str, since: str | None) -> int:
    params: dict[str, Any] = {"page_size": 1}
    if since:
        params["modified[gte]"] = since
    response = handle.http.get(f"{handle.clientify_url}/v1/{resource}/", params=params,
                               headers={"Authorization": f"Token {handle.clientify_token}"})  # fmt: skip
    response.raise_for_status()
    return int(response.json()["count"])


def pages(records: int, page_size: int) -> int:
    return max(1, math.ceil(records / page_size))


# -- reads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    """What the bound needs to know about one integration at the start of a scenario."""

    platform: Platform
    page_size: int
    watermarks: dict[Entity, str | None]


def read_bound(
    handle: SandboxHandle, integrations: Iterable[Integration], mode: Mode, lookback: timedelta
) -> tuple[Bound, list[dict[str, Any]]]:
    """Reads of the bound, and per Clientify resource the window the engine will actually read
    (``watermark - lookback``), to explain any reads above the bound."""
    bound, windows = Bound(), []
    for integration in integrations:
        api = integration.platform.value
        for entity in CRM_RESOURCES:
            n = invoicing_count(handle, integration.platform, entity)
            bound.add(api, "GET", pages(n, integration.page_size),
                      f"{api} {entity}: full listing, {n} records / {integration.page_size} per page")  # fmt: skip
            since = None if mode is Mode.FULL else integration.watermarks.get(entity)
            engine_since = (datetime.fromisoformat(since) - lookback).isoformat() if since else None
            for resource in CRM_RESOURCES[entity]:
                n = clientify_count(handle, resource, since)
                what = (
                    f"modified since the watermark {since}"
                    if since
                    else "all records (full run)"
                    if mode is Mode.FULL
                    else "all records (no watermark yet)"
                )
                bound.add(
                    "clientify", "GET", pages(n, CLIENTIFY_PAGE), f"clientify {resource} ({api}): {n} {what}"
                )
                engine_n = clientify_count(handle, resource, engine_since) if engine_since else n
                windows.append({"integration": api, "resource": resource, "watermark": since, "records": n,
                                "engine_since": engine_since, "engine_records": engine_n,
                                "engine_pages": pages(engine_n, CLIENTIFY_PAGE)})  # fmt: skip
    return bound, windows


# -- writes -----------------------------------------------------------------------------------------


def _written(counts: dict[str, int]) -> tuple[int, int]:
    """(created, updated) of one direction; an update that settled a conflict is still one write."""
    return counts.get("created", 0), counts.get("updated", 0) + counts.get("conflict", 0)


def writes_from_report(bound: Bound, platform: Platform, entity: Entity, report: dict[str, Any]) -> None:
    api = platform.value
    to_crm_created, to_crm_updated = _written(report["counts"].get(Direction.TO_CLIENTIFY, {}))
    to_inv_created, to_inv_updated = _written(report["counts"].get(Direction.TO_INVOICING, {}))
    bound.add("clientify", "POST", to_crm_created, f"{entity}: created in Clientify (link in the POST)")
    bound.add("clientify", "PUT", to_crm_updated, f"{entity}: updated in Clientify (fields and/or link)")
    bound.add(api, "POST", to_inv_created, f"{entity}: created in {api}")
    bound.add(
        "clientify", "PUT", to_inv_created, f"{entity}: Clientify link write-back of records created in {api}"
    )
    bound.add(api, "PUT", to_inv_updated, f"{entity}: updated in {api}")
    if platform is Platform.FACTURADIRECTA:
        bound.add(api, "PUT", to_crm_created, f"{entity}: ID_CRM write-back of records created in Clientify")


def writes_from_edits(bound: Bound, edits: Iterable[Any]) -> None:
    """Each edit must reach the other side: one PUT there (on a Clientify record linked by several
    integrations, one PUT on each of their platforms)."""
    per: Counter[tuple[str, str]] = Counter()
    for edit in edits:
        targets = ["clientify"] if edit.side == "invoicing" else list(edit.reach or (edit.platform.value,))
        for target in targets:
            per[(target, f"{edit.platform.value} {edit.entity.value}")] += 1
    for (target, what), n in sorted(per.items()):
        bound.add(target, "PUT", n, f"{what}: {n} records edited on the other side")


def definitions(handle: SandboxHandle) -> set[tuple[str, str]]:
    """Clientify custom-field definitions as (name, content type key), read on the control surface."""
    rows = handle.control("clientify", "GET", "custom-fields")
    return {(str(r.get("name")), content_type_key(str(r.get("content_type") or ""))) for r in rows}


def definition_writes(
    bound: Bound, calls_by_platform: dict[Platform, Calls], defined_before: set[tuple[str, str]]
) -> None:
    """A link field must be defined on each content type an integration wrote to and that lacked it;
    finding out which exist is one listing."""
    missing = 0
    for platform, calls in calls_by_platform.items():
        written = {route.split("/")[2] for (api, method, route, _), n in calls.routes.items()
                   if api == "clientify" and method in ("POST", "PUT") and n and route.count("/") >= 3}  # fmt: skip
        for resource in sorted(written & set(CRM_RTYPES)):
            wanted = (LINK_FIELDS[platform], content_type_key(CONTENT_TYPES[CRM_RTYPES[resource]]))
            missing += wanted not in defined_before
    if missing:
        bound.add("clientify", "GET", 1, "custom-field definitions listing (one-off)")
        bound.add("clientify", "POST", missing, f"link field definitions (one-off): {missing} content types")
