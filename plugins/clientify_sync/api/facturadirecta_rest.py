"""FacturaDirecta REST/JSON API client ("API pública", facturadirecta-rest-api.md): contacts (the
``clients`` of the sync), products, estimates, custom-field definitions and the activity feed.

Beside the classic XML client (``api.facturadirecta``), with the same resource shape (``iter_pages``,
``get``, ``create``, ``update``), so the engine sees one ``InvoicingClient``. What differs:

- paths ``/api/{companyId}/<resource>``, header ``facturadirecta-api-key``; records are the API's envelopes
  ``{content: {type, uuid, main}, tags, creationDate, modificationDate, …}``;
- offset paging (``offset``/``limit`` ≤ 500, ``{pagination: {total}, items}``), read concurrently once the
  total is known, in a stable order (``sort_by``); cursor paging for the activity feed;
- ``PUT`` replaces the whole record (anything not sent is erased): ``update`` sends what it is given, so the
  caller builds the body from the record it just read (``get``);
- every POST carries an ``Idempotency-Key`` (the caller's, e.g. derived from its pending-create journal
  entry, else a fresh one per call), so ``api.http`` may re-send a POST whose answer was lost and the API
  answers with the stored result (``Idempotent-Replayed: true``) instead of creating it twice;
- the request budget follows the answers' ``X-RateLimit-*`` headers (``api.ratelimit_headers``).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx

from clientify_sync.api.client import ApiClient, Probe
from clientify_sync.api.facturadirecta_rest_activity import ActivityFeed
from clientify_sync.api.facturadirecta_rest_errors import API, FacturaDirectaRestReader
from clientify_sync.api.facturadirecta_rest_webhooks import WebhookEndpoints
from clientify_sync.api.http import ApiSession, RequestBudget
from clientify_sync.api.paging import OffsetPaginator, Page, PageRequest, PageResult, iter_records, read_pages
from clientify_sync.api.ratelimit import TokenBucket
from clientify_sync.api.ratelimit_headers import RateLimitGate
from clientify_sync.api.settings import FacturaDirectaRestSettings
from clientify_sync.errors import (
    AuthenticationError,
    IdempotencyKeyReusedError,
    MalformedResponseError,
    UnconfirmedWriteError,
)

log = logging.getLogger("clientify_sync.api")

KEY_HEADER = "facturadirecta-api-key"
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{16,255}")  # idempotency.md: 16-255 visible ASCII, no spaces
# What the sync needs (authentication.md: <resource>:read for GET, :write for the rest).
REQUIRED_SCOPES = (
    "contacts:read", "contacts:write", "products:read", "products:write", "estimates:read", "estimates:write",
    "customFields:read", "customFields:write", "activity:read",
)  # fmt: skip
Filter = str | int
Record = dict[str, Any]


def idempotency_key(*parts: object) -> str:
    """A stable ``Idempotency-Key`` for one logical create, e.g. ``idempotency_key(ledger, entry_id)``:
    the same parts give the same key, so a re-sent create is replayed, not run twice (kept 24 h)."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
    return f"clientify-sync-{digest[:40]}"


def record_id(record: Mapping[str, Any]) -> str | None:
    """``content.uuid`` of an envelope (``con_…``, ``pro_…``, ``est_…``)."""
    content = record.get("content")
    rid = content.get("uuid") if isinstance(content, dict) else None
    return rid if isinstance(rid, str) else None


class RestOffsetPaginator(OffsetPaginator):
    """``OffsetPaginator`` with the REST API's parameter names (``offset``, ``limit``) and its record ids
    inside the envelope (``content.uuid``), where the loop guard finds them.

    Records are passed on untouched. ``id_key`` (a root field) serves only the concurrent reader's guard:
    ``webUrl`` is one per record at the root (§15.9: where it sits is not documented; absent, that guard
    has nothing to compare and stands aside).
    """

    def update_state(self, result: PageResult) -> None:
        ids = tuple(record_id(record) or record.get("id") for record in result.records)
        if ids and ids == self._last_ids:
            raise MalformedResponseError(
                self.api, "GET", self.route, detail=f"pagination loop: offset={self.start} repeated a page"
            )
        self._last_ids = ids
        self.start += len(result.records)
        total_reached = result.total is not None and self.start >= result.total
        self.has_next_page = bool(result.records) and not total_reached

    def next_request(self) -> PageRequest:
        return PageRequest({**self.filters, "offset": self.start, self.size_param: self.page_size})

    def page_request(self, number: int, served: int) -> PageRequest:
        return PageRequest({**self.filters, "offset": (number - 1) * served, self.size_param: self.page_size})


class RestResource:
    """``/api/{companyId}/{plural}`` list/create and ``/{plural}/{id}`` get/replace/delete."""

    natural_key_filter = ""  # the list filter that finds a record by its natural key

    def __init__(
        self, session: ApiSession, settings: FacturaDirectaRestSettings, *, plural: str, kind: str
    ) -> None:
        self._session = session
        self._settings = settings
        self.page_size = settings.page_size
        self.concurrency = settings.concurrency
        self.kind = kind  # content.type
        self.list_route = f"{settings.company_root}/{plural}"
        self.item_route = f"{self.list_route}/{{id}}"

    def iter_pages(self, **filters: Filter) -> Iterator[Page]:
        """Pages of ``offset``/``limit`` (concurrently once ``total`` is known), sorted by ``sort_by``.

        Args:
            **filters: the API's list filters, e.g. ``fiscalId``, ``externalId`` (contacts), ``sku``,
                ``minModificationDate`` (products, estimates: ``YYYY-MM-DDTHH:mm:ss.sssZ``), ``contact``.
        """
        params: dict[str, str | int | float] = {key: str(value) for key, value in filters.items()}
        if self._settings.sort_by and "sortBy" not in params:
            params["sortBy"] = self._settings.sort_by
        paginator = RestOffsetPaginator(
            api=API, route=self.list_route, size_param="limit", page_size=self.page_size, id_key="webUrl",
            params=params,
        )  # fmt: skip
        return read_pages(paginator, self.request_page, concurrency=self.concurrency)

    def iter_records(self, **filters: Filter) -> Iterator[Record]:
        """Every matching record, streamed a few pages at a time."""
        return iter_records(self.iter_pages(**filters))

    def find(self, **filters: Filter) -> list[Record]:
        """Every record matching the filters (at least one is required, so this never lists everything)."""
        if not filters:
            raise ValueError("find() needs at least one filter")
        return list(self.iter_records(**filters))

    def find_by_natural_key(self, value: str) -> list[Record]:
        """Records whose natural key (contacts ``fiscalId``, products ``sku``) equals ``value``."""
        if not self.natural_key_filter:
            raise NotImplementedError(f"{self.kind} has no natural-key filter")
        return self.find(**{self.natural_key_filter: value})

    def request_page(self, request: PageRequest) -> PageResult:
        """One ``{pagination: {offset, limit, total}, items}`` page.

        Raises:
            MalformedResponseError: the answer is not an offset page.
        """
        body = self._session.request("GET", self.list_route, params=request.params)
        pagination = body.get("pagination") if isinstance(body, dict) else None
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(pagination, dict) or not isinstance(items, list):
            raise MalformedResponseError(API, "GET", self.list_route, 200, "expected {pagination, items}")
        total = pagination.get("total")
        records = [item for item in items if isinstance(item, dict)]
        return PageResult(records, total if isinstance(total, int) else None)

    def get(self, record_id: str) -> Record:
        """One record, as its envelope (read it before a full-replace ``update``)."""
        return self._record(
            self._session.request("GET", self.item_route, path_params={"id": record_id}), "GET"
        )

    def create(
        self, body: Mapping[str, Any], *, natural_key: str | None = None, idempotency_key: str | None = None
    ) -> Record:
        """POST the envelope ``{content: {type, main}, tags?}``; returns the created record.

        Args:
            natural_key: carried by ``UnconfirmedWriteError`` so the caller can look the record up.
            idempotency_key: the key of this logical create (16-255 visible ASCII; see ``idempotency_key()``);
                without one a fresh key covers this call's own re-sends.

        Raises:
            UnconfirmedWriteError: even the re-sends left the outcome open, or the key was used before for
                another body (that earlier create went through).
            PlanLimitExceededError: the plan's cap (e.g. 10 clients on the free plan) stops every create.
            ConflictError: a duplicate (``fiscalId``, product ``externalId``, estimate number).
        """
        headers = self._idempotency_headers(idempotency_key)
        try:
            answer = self._session.request("POST", self.list_route, json=dict(body), natural_key=natural_key,
                                           headers=headers)  # fmt: skip
        except IdempotencyKeyReusedError as error:
            raise UnconfirmedWriteError(
                API, "POST", self.list_route, natural_key, error.status,
                "idempotency_key_reused: an earlier create with this key went through with another body",
            ) from error  # fmt: skip
        if record_id(answer if isinstance(answer, dict) else {}) is None:
            raise UnconfirmedWriteError(
                API, "POST", self.list_route, natural_key, None, "created, but no record returned"
            )
        return self._record(answer, "POST")

    def update(self, record_id: str, body: Mapping[str, Any]) -> Record:
        """Full-replace PUT: anything ``body`` leaves out is erased on the API (build it from ``get``)."""
        answer = self._session.request("PUT", self.item_route, path_params={"id": record_id}, json=dict(body))
        return self._record(answer, "PUT")

    def delete(self, record_id: str) -> None:
        """DELETE (the API archives: activity ``archived``); answered ``{"result": true}``."""
        self._session.request("DELETE", self.item_route, path_params={"id": record_id})

    def _idempotency_headers(self, key: str | None) -> dict[str, str]:
        if self._settings.idempotency == "off":
            return {}
        key = key or f"clientify-sync-{uuid.uuid4()}"
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise ValueError("an Idempotency-Key is 16-255 visible ASCII characters without spaces")
        return {"Idempotency-Key": key}

    def _record(self, answer: Any, method: str) -> Record:
        route = self.list_route if method == "POST" else self.item_route
        if not isinstance(answer, dict) or record_id(answer) is None:
            raise MalformedResponseError(API, method, route, 200, f"expected a {self.kind} envelope")
        content_type = answer["content"].get("type")
        if content_type not in (None, self.kind):
            raise MalformedResponseError(
                API, method, route, 200, f"expected a {self.kind}, got {content_type!r}"
            )
        return answer


class RestContacts(RestResource):
    natural_key_filter = "fiscalId"


class RestProducts(RestResource):
    natural_key_filter = "sku"


class CustomFieldDefinitions:
    """``/api/{companyId}/customFields``: the definitions whose ``cfi_…`` ids key ``main.customFields``."""

    def __init__(self, session: ApiSession, settings: FacturaDirectaRestSettings) -> None:
        self._session = session
        self.page_size = settings.page_size
        self.list_route = f"{settings.company_root}/customFields"

    def definitions(self, *, archived: str = "false", **filters: Filter) -> list[Record]:
        """Every definition (``{id, title, docTypes, archived}``); ``archived``: ``false``, ``true`` or ``all``."""
        params: dict[str, str | int | float] = {
            "archived": archived,
            **{k: str(v) for k, v in filters.items()},
        }
        paginator = RestOffsetPaginator(
            api=API,
            route=self.list_route,
            size_param="limit",
            page_size=self.page_size,
            id_key="id",
            params=params,
        )
        return list(iter_records(read_pages(paginator, self._request_page)))

    def create(self, title: str, doc_types: list[str], *, field_id: str | None = None) -> Record:
        """Define a field (a 409 when ``field_id`` exists, even archived; 403 ``plan_limit_exceeded`` past 20)."""
        body: dict[str, Any] = {"title": title, "docTypes": list(doc_types)}
        if field_id is not None:
            body["id"] = field_id
        headers = {"Idempotency-Key": f"clientify-sync-{uuid.uuid4()}"}
        answer = self._session.request("POST", self.list_route, json=body, headers=headers)
        return self._definition(answer, "POST")

    def ensure(self, title: str, doc_types: list[str]) -> Record:
        """The active definition titled ``title`` covering ``doc_types``, created when there is none (an
        archived one is not reused: its values stay hidden)."""
        for definition in self.definitions(title=title):
            if definition.get("title") == title and set(doc_types) <= set(definition.get("docTypes") or []):
                return definition
        return self.create(title, doc_types)

    def _request_page(self, request: PageRequest) -> PageResult:
        body = self._session.request("GET", self.list_route, params=request.params)
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise MalformedResponseError(API, "GET", self.list_route, 200, "expected {pagination, items}")
        total = (body.get("pagination") or {}).get("total")
        return PageResult(
            [i for i in body["items"] if isinstance(i, dict)], total if isinstance(total, int) else None
        )

    def _definition(self, answer: Any, method: str) -> Record:
        content = answer.get("content") if isinstance(answer, dict) else None
        if not isinstance(content, dict) or not str(content.get("id", "")).startswith("cfi_"):
            raise MalformedResponseError(API, method, self.list_route, 200, "expected {content: {id: cfi_…}}")
        return content


class FacturaDirectaRestClient(ApiClient):
    """``FacturaDirectaRestClient(settings, transport=None)`` with ``.clients`` (contacts), ``.products``,
    ``.estimates``, ``.custom_fields``, ``.activity`` and ``.webhooks`` (the company's webhook endpoints)."""

    display_name = "FacturaDirecta (REST API)"
    api_name = API
    settings: FacturaDirectaRestSettings

    def __init__(
        self,
        settings: FacturaDirectaRestSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        gate: RateLimitGate | None = None,
    ) -> None:
        """``gate``: the rate-limit gate to use (tests give one with their own clocks); by default one in
        front of a token bucket at ``settings.requests_per_minute``, capped at ``settings.rate_cap``."""
        self.replayed = 0  # POSTs the API answered from its idempotency store
        self._replays = threading.Lock()
        self.gate = gate or RateLimitGate(
            TokenBucket(settings.requests_per_minute, sleep=sleep), sleep=sleep, cap=settings.rate_cap
        )
        headers = {KEY_HEADER: settings.api_key, "Accept": "application/json"}
        if settings.api_version:
            headers["accept-version"] = settings.api_version
        session = ApiSession(
            FacturaDirectaRestReader(), settings, headers=headers, transport=transport, sleep=sleep,
            on_response=self._observe,
        )  # fmt: skip
        session.share_budget(self.gate)
        super().__init__(session)
        self.settings = settings
        self.clients = RestContacts(session, settings, plural="contacts", kind="contact")
        self.products = RestProducts(session, settings, plural="products", kind="product")
        self.estimates = RestResource(session, settings, plural="estimates", kind="estimate")
        self.custom_fields = CustomFieldDefinitions(session, settings)
        self.activity = ActivityFeed(session, settings.company_root)
        self.webhooks = WebhookEndpoints(session, settings.company_root)

    def share_budget(self, budget: RequestBudget) -> None:
        """Draw from ``budget`` (e.g. the ledger-shared one of the account) behind the rate-limit gate,
        whose stated limit becomes the budget's."""
        self.gate.use(budget)

    def scopes(self) -> list[str]:
        """The calling key's scopes (``GET /apiKeyInfo``)."""
        route = f"{self.settings.company_root}/apiKeyInfo"
        body = self._session.request("GET", route)
        scopes = body.get("scopes") if isinstance(body, dict) else None
        if not isinstance(scopes, list):
            raise MalformedResponseError(API, "GET", route, 200, "expected {scopes: [...]}")
        return [str(scope) for scope in scopes]

    def _observe(self, response: httpx.Response) -> None:
        self.gate.observe(response)
        if response.headers.get("idempotent-replayed", "").lower() == "true":
            with self._replays:
                self.replayed += 1
            log.info("%s %s answered from the API's idempotency store (the first try's answer was lost)",
                     response.request.method, response.request.url.path)  # fmt: skip

    def _probes(self) -> list[Probe]:
        """One read per resource the sync uses; a 404 rules the entity out, a missing scope is a 403."""
        root = self.settings.company_root

        def read(route: str) -> Callable[[], Any]:
            return lambda: self._session.request("GET", route, params={"limit": 1})

        def activity() -> Any:
            return self._session.request("GET", f"{root}/activity", params={"limit": 1})

        return [
            Probe("contacts", self.clients.list_route, "contacts", "", read(self.clients.list_route)),
            Probe("products", self.products.list_route, "products", "", read(self.products.list_route)),
            Probe("estimates", self.estimates.list_route, "estimates",
                  "disable estimates for facturadirecta", read(self.estimates.list_route)),
            Probe("custom_fields", self.custom_fields.list_route, None, "", read(self.custom_fields.list_route)),
            Probe("activity", f"{root}/activity", None, "", activity),
        ]  # fmt: skip

    def _probe(self) -> str:
        """The key's scopes against what the sync needs, then the number of contacts."""
        missing = [scope for scope in REQUIRED_SCOPES if scope not in set(self.scopes())]
        if missing:
            raise AuthenticationError(
                API, "GET", f"{self.settings.company_root}/apiKeyInfo", 403,
                f"the API key lacks the scopes {', '.join(missing)}: create a key with them (Ajustes → API keys)",
            )  # fmt: skip
        body = self._session.request("GET", self.clients.list_route, params={"limit": 1})
        total = (body.get("pagination") or {}).get("total") if isinstance(body, dict) else None
        return f"company {self.settings.company_id}, {total if total is not None else 'unknown number of'} contacts"
