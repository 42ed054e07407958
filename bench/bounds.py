"""The lower bound of API calls for a scenario's work, counted from what the sandbox holds.

Reads that must happen:
- the invoicing platform has no modified filter, so each entity's full listing:
  ``max(1, ceil(records / page size))`` (Facturama 100, FacturaDirecta 250);
- Clientify, per resource read: ``max(1, ceil(records modified since the watermark / 100))`` (all
  records in a full run). Right after a run that wrote to Clientify, the sync's own writes are in that
  window: a correct sync must re-read them (a user may have edited them since), so they count.
- the custom-field definitions listing, once, when a definition must be created.
- FacturaDirecta's REST API (``--fd-api rest``) keeps an activity feed: a run with a stored feed position
  must read the feed's pages since it (``max(1, ceil(events / 100))`` per entity; without a cursor the
  API resumes at the stored instant, inclusive, so that instant's events count again) plus each record it
  names once (one GET per changed record; archived ones are not read); a full run (or one without a
  position) the full listing (500 per page) plus the feed's head (one GET: where the next run starts).
  Its link custom field (contacts, estimates) must be looked up once per ledger (the integration's first
  scenario) and defined (one POST) when missing.

Writes that must happen: one per record that must change on a side, plus one link write-back per
record created on the other side where the API keeps the link (a PUT of ``ID_CRM`` on FacturaDirecta
for a record created in Clientify, on REST for contacts and estimates only: its products take no custom
field; a PUT of the Clientify link field for a record created in the
invoicing platform; in a Clientify POST the link travels in the body), plus one POST per link field
definition missing. Unedited runs take them from the run reports; a run after edits takes them from
the edits (each edit must reach the other side once).

All counting requests happen outside the measured window (stats are reset after them).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from bench.sandbox import Calls, SandboxHandle
from clientify_sync.api.clientify import content_type_key
from clientify_sync.api.facturadirecta_rest_activity import FeedPosition
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
REST_LISTS = {Entity.CONTACTS: "contacts", Entity.PRODUCTS: "products", Entity.ESTIMATES: "estimates"}
REST_FEED_TYPES = {Entity.CONTACTS: "contact", Entity.PRODUCTS: "product", Entity.ESTIMATES: "estimate"}
REST_FEED_CHANGES = ("inserted", "updated", "archived", "unarchived")
REST_FEED_PAGE = 100  # the activity feed's largest page
REST_LINKED = (Entity.CONTACTS, Entity.ESTIMATES)  # the REST entities with a link custom field
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


# -- FacturaDirecta's REST API: its listing, activity feed and link field, read with plain HTTP ----------


@dataclass(frozen=True)
class RestAccount:
    """The sandbox's REST company: where its routes hang and the key that reads them."""

    url: str
    company_id: str
    api_key: str

    @classmethod
    def of(cls, handle: SandboxHandle) -> RestAccount:
        cfg = handle.config("facturadirecta")
        return cls(f"{handle.facturadirecta_url}/api/{cfg['rest_company_id']}", cfg["rest_company_id"],
                   cfg["rest_api_key"])  # fmt: skip

    def get(self, handle: SandboxHandle, path: str, params: Any) -> Any:
        response = handle.http.get(f"{self.url}/{path}", params=params,
                                   headers={"facturadirecta-api-key": self.api_key})  # fmt: skip
        response.raise_for_status()
        return response.json()


def rest_count(handle: SandboxHandle, account: RestAccount, entity: Entity) -> int:
    body = account.get(handle, REST_LISTS[entity], {"limit": 1})
    return int((body.get("pagination") or {}).get("total") or 0)


@dataclass(frozen=True)
class FeedCount:
    """What the activity feed holds after a stored position for one document type."""

    events: int  # events after the position
    changed: int  # distinct records those events name whose last event is not ``archived``
    served: int  # events the API must serve to reach them: without a cursor, those of the stored instant too


def feed_count(handle: SandboxHandle, account: RestAccount, entity: Entity, position: str) -> FeedCount:
    """Events after ``position`` (``FeedPosition.encode()``'s JSON: cursor, else timestamp and id of the
    last event read), oldest first, 100 a page; the position's own events are not counted again, but
    without a cursor they are served again: the API resumes at an instant (``minDate``, inclusive) and
    has no filter after an event id, and it issues no cursor on the last page (reference §15.12) — unless
    the position is settled (its instant older than the client's margin), which asks from the next
    instant (``FeedPosition.min_date``)."""
    stored = json.loads(position) if position else {}
    cursor, stamp, last_id = stored.get("cursor"), stored.get("timestamp"), stored.get("id")
    since = FeedPosition.decode(position).min_date()  # a settled instant is not asked for again
    params: list[tuple[str, Any]] = [("sortBy", "timestamp"), ("limit", REST_FEED_PAGE),
                                     ("documentType", REST_FEED_TYPES[entity]),
                                     *(("type", kind) for kind in REST_FEED_CHANGES)]  # fmt: skip
    if not cursor and since:
        params.append(("minDate", since))
    events, served, last = 0, 0, {}
    for _ in range(1_000_000):  # bounded: the feed's cursors end
        body = account.get(handle, "activity", params + ([("cursor", cursor)] if cursor else []))
        served += len(body.get("items") or [])
        for event in body.get("items") or []:
            if (
                not stored.get("cursor")
                and event.get("timestamp") == stamp
                and (event.get("id") or 0) <= (last_id or 0)
            ):
                continue  # read by the run that stored the position
            events += 1
            document = event.get("document") or {}
            if document.get("id"):
                last[str(document["id"])] = str(event.get("type"))
        cursor = body.get("nextCursor")
        if not body.get("hasMore") or not cursor:
            break
    return FeedCount(events, sum(kind != "archived" for kind in last.values()), served)


def rest_link_field_defined(handle: SandboxHandle, account: RestAccount, title: str) -> bool:
    body = account.get(handle, "customFields", {"title": title, "archived": "false", "limit": 100})
    return any(d.get("title") == title and set(REST_FEED_TYPES[e] for e in REST_LINKED) <= set(d.get("docTypes") or [])
               for d in body.get("items") or [])  # fmt: skip


# -- reads ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    """What the bound needs to know about one integration at the start of a scenario."""

    platform: Platform
    page_size: int
    watermarks: dict[Entity, str | None]
    api: str = "classic"  # "rest": FacturaDirecta's REST API
    feed_positions: dict[Entity, str | None] = field(default_factory=dict)  # REST: the ledger's, per entity
    first_scenario: bool = True  # REST: its link field is looked up once per ledger
    link_title: str = "ID_CRM"  # REST: the link custom field's title


def read_bound(
    handle: SandboxHandle, integrations: Iterable[Integration], mode: Mode, lookback: timedelta
) -> tuple[Bound, list[dict[str, Any]]]:
    """Reads of the bound, and per Clientify resource the window the engine will actually read
    (``watermark - lookback``), to explain any reads above the bound."""
    bound, windows = Bound(), []
    for integration in integrations:
        api = integration.platform.value
        if integration.api == "rest":
            _rest_link_field_bound(bound, handle, integration)
        for entity in CRM_RESOURCES:
            if integration.api == "rest":
                _rest_reads(bound, handle, integration, entity, mode)
            else:
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


def _rest_reads(
    bound: Bound, handle: SandboxHandle, integration: Integration, entity: Entity, mode: Mode
) -> None:
    """FacturaDirecta REST: the feed since the stored position and each record it names, or (no position,
    or a full run) the full listing and the feed's head."""
    api, account = integration.platform.value, RestAccount.of(handle)
    position = None if mode is Mode.FULL else integration.feed_positions.get(entity)
    if position is None:
        n = rest_count(handle, account, entity)
        bound.add(api, "GET", pages(n, integration.page_size),
                  f"{api} REST {entity}: full listing, {n} records / {integration.page_size} per page")  # fmt: skip
        bound.add(api, "GET", 1, f"{api} REST {entity}: activity feed head (where the next run starts)")
        return
    found = feed_count(handle, account, entity, position)
    again = found.served - found.events
    bound.add(api, "GET", pages(found.served, REST_FEED_PAGE),
              f"{api} REST {entity}: activity feed since the stored position, {found.events} new events"
              + (f" + {again} of the stored instant served again (no cursor on the last page)" if again else "")
              + f" / {REST_FEED_PAGE} per page")  # fmt: skip
    bound.add(
        api,
        "GET",
        found.changed,
        f"{api} REST {entity}: the {found.changed} records the feed names, one read each",
    )


def _rest_link_field_bound(bound: Bound, handle: SandboxHandle, integration: Integration) -> None:
    """The link custom field: looked up once per ledger, defined when missing (contacts and estimates)."""
    if not integration.first_scenario:
        return
    api = integration.platform.value
    bound.add(
        api, "GET", 1, f"{api} REST: link custom field {integration.link_title} looked up (once per ledger)"
    )
    if not rest_link_field_defined(handle, RestAccount.of(handle), integration.link_title):
        bound.add(api, "POST", 1, f"{api} REST: link custom field {integration.link_title} defined (one-off)")


# -- writes -----------------------------------------------------------------------------------------


def _written(counts: dict[str, int]) -> tuple[int, int]:
    """(created, updated) of one direction; an update that settled a conflict is still one write."""
    return counts.get("created", 0), counts.get("updated", 0) + counts.get("conflict", 0)


def writes_from_report(
    bound: Bound, platform: Platform, entity: Entity, report: dict[str, Any], api_kind: str = "classic"
) -> None:
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
    if platform is Platform.FACTURADIRECTA and (api_kind != "rest" or entity in REST_LINKED):
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
