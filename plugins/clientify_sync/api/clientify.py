"""Clientify v1 client (JSON, ``Authorization: Token``): contacts, companies, products, budgets,
custom-field definitions.

Listing follows the ``next`` links (``page_size=100``); incremental listing filters server-side with
``modified[gte]``. Every path keeps its trailing slash (the API redirects or 404s without it).
"""

from __future__ import annotations

import datetime
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from clientify_sync.api.auth import TokenHeaderAuth
from clientify_sync.api.client import ApiClient, Probe
from clientify_sync.api.http import ApiSession, RequestBudget, Requester
from clientify_sync.api.paging import (
    Page,
    PageNumberPaginator,
    PageRequest,
    PageResult,
    iter_records,
    read_pages,
)
from clientify_sync.api.responses import JsonReader, json_or_none, parse_retry_after, text_detail
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.api.statusmap import error_class_for
from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    MalformedResponseError,
    NotFoundError,
    RetriableApiError,
    TransientApiError,
    UnconfirmedWriteError,
    ValidationError,
)
from clientify_sync.facts import custom_field_value

log = logging.getLogger("clientify_sync.api")
API = "clientify"
MISSING_KEY_DETAIL = "Api key not provided."
Filter = str | int | float


def normalise_tax_id(tax_id: str) -> str:
    """Upper-case, without spaces, dashes, dots or slashes."""
    return re.sub(r"[\s\-./]", "", tax_id).upper()


# A naive filter value is read in the account's time zone, which the API does not tell: a value written
# this much earlier than the UTC instant starts at or before it in any zone (UTC-12 at the latest).
NAIVE_WIDENING = datetime.timedelta(hours=12)
# ...and the earliest instant a naive value can mean (UTC+14): older records prove the filter ignored.
NAIVE_EARLIEST = datetime.timedelta(hours=14)
# An ISO value is exact; a second of slack for servers that truncate microseconds.
ISO_SLACK = datetime.timedelta(seconds=1)
INVALID_PAGE_DETAIL = "Invalid page."


def _as_utc(value: datetime.datetime | datetime.date | str) -> datetime.datetime | None:
    """A filter value as an aware UTC datetime (naive values are taken as UTC); None if unreadable."""
    if isinstance(value, str):
        try:
            value = datetime.datetime.fromisoformat(value.strip().replace("/", "-").replace("Z", "+00:00"))
        except ValueError:
            return None
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime(value.year, value.month, value.day)
    aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
    return aware.astimezone(datetime.UTC)


def format_modified(value: datetime.datetime | datetime.date | str, style: str = "iso") -> str:
    """A ``modified[gte]`` value in the connection's ``modified_format``.

    ``iso``: aware datetimes in UTC ISO-8601 with microseconds (naive ones are taken as UTC; a string
    is sent as given). ``minute`` (``YYYY-MM-DDTHH:MM``) and ``date`` (``YYYY-MM-DD``) carry no zone
    and the API reads them in the account's zone, so they are written ``NAIVE_WIDENING`` earlier:
    re-reading a few hours is harmless (unchanged records are recognised by hash), starting late is not.
    """
    if style == "iso":
        if isinstance(value, str):
            return value
        if isinstance(value, datetime.datetime):
            aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
            return aware.astimezone(datetime.UTC).isoformat()
        return value.isoformat()
    moment = _as_utc(value)
    if moment is None:
        raise ValueError(f"cannot write {value!r} as a {style!r} modified[gte] value")
    earlier = moment - NAIVE_WIDENING
    return earlier.strftime("%Y-%m-%dT%H:%M") if style == "minute" else earlier.date().isoformat()


def filter_floor(sent: str) -> datetime.datetime | None:
    """The earliest instant the API can take a sent ``modified[gte]`` value for (UTC).

    A listing that returns a record modified before it proves the API ignored the filter.
    """
    try:
        parsed = datetime.datetime.fromisoformat(sent.strip().replace("/", "-").replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=datetime.UTC) - NAIVE_EARLIEST
    return parsed.astimezone(datetime.UTC) - ISO_SLACK


def _modified_of(record: dict[str, Any]) -> datetime.datetime | None:
    value = record.get("modified")
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment.astimezone(datetime.UTC) if moment.tzinfo else None


@dataclass(frozen=True)
class IgnoredFilter:
    """A listing that sent ``modified[gte]`` and got back records modified before it.

    The API ignored (or could not read) the filter, so that listing was a full read: nothing was
    missed, but a modified run costs as much as a full one until ``modified_format`` is fixed.
    """

    route: str
    sent: str
    oldest_seen: str

    @property
    def message(self) -> str:
        return (
            f"clientify ignored modified[gte]={self.sent} on {self.route} (a record modified at "
            f"{self.oldest_seen} came back): this read was a full read; set the Clientify connection "
            "extra 'modified_format' to a format the API honours (iso, minute or date)"
        )


def clientify_error(response: httpx.Response, method: str, route: str) -> ApiError | None:
    """The one status-to-exception function for Clientify (DRF ``detail`` / field-map bodies).

    A 404 whose detail is "Api key not provided." is how Clientify answers a request without
    credentials: it is an ``AuthenticationError``, not a missing record.
    """
    status = response.status_code
    error_class = error_class_for(status)
    if error_class is None:
        return None
    body = json_or_none(response)
    detail, field_errors = _drf_detail(body) if body is not None else (text_detail(response), {})
    if status == 404 and detail == MISSING_KEY_DETAIL:
        error_class = AuthenticationError
    kwargs: dict[str, Any] = {}
    if issubclass(error_class, RetriableApiError):
        kwargs["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
    return error_class(API, method, route, status, detail, field_errors, **kwargs)


def _drf_detail(body: Any) -> tuple[str, dict[str, list[str]]]:
    """``{"detail": "..."}``, a field map ``{"name": ["..."]}`` or a bare list of messages."""
    if isinstance(body, list):
        return "; ".join(str(item) for item in body), {}
    if not isinstance(body, dict):
        return str(body), {}
    field_errors: dict[str, list[str]] = {}
    for key, value in body.items():
        if key != "detail":
            _flatten(value, str(key), field_errors)
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail, field_errors
    summary = "; ".join(field_errors.get("non_field_errors", [])) or "validation failed"
    return summary, field_errors


def _flatten(value: Any, path: str, out: dict[str, list[str]]) -> None:
    """Nested serializer errors -> dotted paths (``emails[1].email``)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, f"{path}.{key}", out)
    elif isinstance(value, list) and any(isinstance(item, dict | list) for item in value):
        for index, item in enumerate(value):
            if item:
                _flatten(item, f"{path}[{index}]", out)
    else:
        out.setdefault(path, []).extend(str(item) for item in (value if isinstance(value, list) else [value]))


class ClientifyResource:
    """One v1 collection: ``{path}`` list/create, ``{path}{id}/`` get/update/delete."""

    natural_key_field = ""

    def __init__(self, session: Requester, settings: ClientifySettings, path: str) -> None:
        self._session = session
        self.page_size = settings.page_size
        self.concurrency = settings.concurrency
        self.modified_format = settings.modified_format
        self.list_route = path
        self.item_route = f"{path}{{id}}/"
        # Set by the last listing filtered on modified[gte] when the API ignored the filter.
        self.ignored_filter: IgnoredFilter | None = None

    def iter_pages(
        self, modified_gte: datetime.datetime | datetime.date | str | None = None, **filters: Filter
    ) -> Iterator[Page]:
        """The listing's pages: ``page=2..n`` concurrently once the first page gave ``count``.

        Other filters go to the query as given (``query=``, ``cf_<name>=``, ``sku=``,
        ``**{"modified[lt]": ...}``). A filtered listing that gets back records older than the filter
        sets ``ignored_filter`` (and logs it) and still yields every record: it was a full read.

        Args:
            modified_gte: sent as ``modified[gte]`` in the connection's ``modified_format``.
            **filters: further query parameters, sent as given.
        """
        params: dict[str, Filter] = dict(filters)
        if modified_gte is None:
            return self._read(params)
        sent = format_modified(modified_gte, self.modified_format)
        params["modified[gte]"] = sent
        self.ignored_filter = None
        return self._watch_filter(self._read(params), sent)

    def _read(self, params: dict[str, Filter]) -> Iterator[Page]:
        paginator = PageNumberPaginator(
            api=API, route=self.list_route, page_size=self.page_size, params=params
        )
        return read_pages(paginator, self.request_page, concurrency=self.concurrency)

    def _watch_filter(self, pages: Iterator[Page], sent: str) -> Iterator[Page]:
        """Yield the pages, noting the first record modified before the filter could start."""
        floor = filter_floor(sent)
        for page in pages:
            if floor is not None and self.ignored_filter is None:
                older = [
                    moment
                    for moment in map(_modified_of, page.records)
                    if moment is not None and moment < floor
                ]
                if older:
                    self.ignored_filter = IgnoredFilter(self.list_route, sent, min(older).isoformat())
                    log.warning("%s", self.ignored_filter.message)
            yield page

    def iter_records(
        self, modified_gte: datetime.datetime | datetime.date | str | None = None, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """Every matching record, streamed a few pages at a time."""
        return iter_records(self.iter_pages(modified_gte, **filters))

    def request_page(self, request: PageRequest) -> PageResult:
        """One DRF page (``{count, next, results}``); a page past the end (``Invalid page.``) is empty.

        Raises:
            MalformedResponseError: the answer has no ``results`` array.
        """
        try:
            body = self._session.request(
                "GET", self.list_route, params=request.params or None, url=request.url
            )
        except NotFoundError as error:
            if is_invalid_page(error):
                return PageResult([], None)  # records went away while paging: the listing is complete
            raise
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            count = body.get("count")
            return PageResult(body["results"], count if isinstance(count, int) else None, body.get("next"))
        raise MalformedResponseError(API, "GET", self.list_route, 200, "list without a 'results' array")

    def get(self, record_id: int | str) -> dict[str, Any]:
        """One record."""
        body = self._session.request("GET", self.item_route, path_params={"id": record_id})
        if not isinstance(body, dict):
            raise NotFoundError(API, "GET", self.item_route, 200, "empty body for this id")
        return body

    def create(self, body: dict[str, Any], *, natural_key: str | None = None) -> dict[str, Any]:
        """POST (201 with the full record).

        Raises:
            UnconfirmedWriteError: the POST may or may not have been applied (see ``api.http``).
        """
        key = natural_key or body.get(self.natural_key_field) or None
        created = self._session.request("POST", self.list_route, json=body, natural_key=key)
        if not isinstance(created, dict) or "id" not in created:
            raise UnconfirmedWriteError(
                API, "POST", self.list_route, key, None, "created, but no record returned"
            )
        return created

    def update(self, record_id: int | str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT a partial body (Clientify's PUT behaves like PATCH); returns the full record."""
        answer: dict[str, Any] | None = self._session.request(
            "PUT", self.item_route, path_params={"id": record_id}, json=body
        )
        return answer

    def delete(self, record_id: int | str) -> None:
        """DELETE (204)."""
        self._session.request("DELETE", self.item_route, path_params={"id": record_id})

    def find_by_custom_field(self, name: str, value: str) -> list[dict[str, Any]]:
        """Records whose custom field ``name`` equals ``value``.

        Filters server-side with ``cf_<name>=value`` and re-checks each record, so the result stays
        exact even if the server ignores or loosens the filter.
        """
        wanted = str(value)
        return [
            record
            for record in self.iter_records(**{f"cf_{name}": wanted})
            if custom_field_value(record, name) == wanted
        ]


def is_invalid_page(error: NotFoundError) -> bool:
    """DRF's answer to a page past the end (``404 {"detail": "Invalid page."}``): the end, not an error."""
    return error.detail == INVALID_PAGE_DETAIL


class ClientifyParties(ClientifyResource):
    """Contacts and companies: they carry a ``taxpayer_identification_number``."""

    natural_key_field = "taxpayer_identification_number"

    def find_by_tax_id(self, tax_id: str) -> list[dict[str, Any]]:
        """``?query=<tax id>`` then an exact comparison of the normalised tax id."""
        wanted = normalise_tax_id(tax_id)
        if not wanted:
            return []
        return [
            record
            for record in self.iter_records(query=wanted)
            if normalise_tax_id(str(record.get("taxpayer_identification_number") or "")) == wanted
        ]


class ClientifyProducts(ClientifyResource):
    natural_key_field = "sku"

    def find_by_sku(self, sku: str) -> list[dict[str, Any]]:
        """``?sku=`` then an exact comparison (surrounding spaces ignored)."""
        wanted = sku.strip()
        if not wanted:
            return []
        return [
            record
            for record in self.iter_records(sku=wanted)
            if str(record.get("sku") or "").strip() == wanted
        ]


class ClientifyBudgets(ClientifyResource):
    natural_key_field = "code"

    def find_by_code(self, code: str) -> list[dict[str, Any]]:
        """``?query=<code>`` then an exact comparison of ``code``."""
        wanted = code.strip()
        if not wanted:
            return []
        return [
            record
            for record in self.iter_records(query=wanted)
            if str(record.get("code") or "").strip() == wanted
        ]


def content_type_key(content_type: str) -> str:
    """``"deals | oportunidad"`` -> ``"deals"``: the part after ``|`` may be localised."""
    return content_type.split("|", 1)[0].strip().lower()


class ClientifyCustomFields:
    """Custom-field definitions (``/v1/custom-fields/``), per content type."""

    route = "/v1/custom-fields/"

    def __init__(self, session: Requester) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._known: list[dict[str, Any]] | None = None

    def list(self) -> list[dict[str, Any]]:
        """Every definition (pages through ``next`` / ``page=N`` if the endpoint pages at all)."""
        paginator = PageNumberPaginator(api=API, route=self.route, page_size=100)
        return [record for page in read_pages(paginator, self.request_page) for record in page.records]

    def request_page(self, request: PageRequest) -> PageResult:
        """One page of definitions: a bare list, or a DRF page.

        Raises:
            MalformedResponseError: neither a list nor a ``results`` array.
        """
        following = request.url is not None or "page" in request.params
        try:
            body = self._session.request("GET", self.route, params=request.params or None, url=request.url)
        except NotFoundError as error:
            if following and is_invalid_page(error):
                return PageResult([], None)
            raise
        if isinstance(body, list):
            return PageResult(body, len(body))
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            count = body.get("count")
            return PageResult(body["results"], count if isinstance(count, int) else None, body.get("next"))
        raise MalformedResponseError(API, "GET", self.route, 200, "list without a 'results' array")

    def create(self, name: str, content_type: str, field_type: int = 3) -> dict[str, Any]:
        """Define a field (``field_type`` 3 = Text)."""
        body = {"name": name, "content_type": content_type, "field_type": field_type}
        created = self._session.request("POST", self.route, json=body, natural_key=name)
        if not isinstance(created, dict):
            raise UnconfirmedWriteError(
                API, "POST", self.route, name, None, "created, but no record returned"
            )
        return created

    def ensure(self, name: str, content_type: str) -> dict[str, Any]:
        """The definition of ``name`` for ``content_type``; created if missing (listed once per client).

        When the answer to the create is lost (or a lost earlier answer left the field defined, so the
        create is refused as a duplicate), the list is read again: the field may well exist.
        """
        with self._lock:
            found = self._find(name, content_type, refresh=False)
            if found is not None:
                return found
            try:
                created = self.create(name, content_type)
            except (UnconfirmedWriteError, MalformedResponseError, ValidationError):
                found = self._find(name, content_type, refresh=True)
                if found is not None:
                    return found
                raise
            self._known = [*(self._known or []), created]
            return created

    def _find(self, name: str, content_type: str, *, refresh: bool) -> dict[str, Any] | None:
        if refresh or self._known is None:
            self._known = self.list()
        wanted = content_type_key(content_type)
        for definition in self._known:
            if (
                definition.get("name") == name
                and content_type_key(str(definition.get("content_type", ""))) == wanted
            ):
                return definition
        return None


class ReadFailover:
    """Sends reads to ``fallback_host`` once the main host has failed them with transient errors.

    Clientify support pointed an integrator to ``api.clientify.com`` when ``api.clientify.net`` kept
    answering 504. Only GETs move (a write whose outcome is unknown must not be replayed on another
    host); once a read has failed over, later reads go to the fallback first, so a down host costs its
    retries once, not once per page. Calls on both hosts are counted in the main session's ``stats``.
    """

    def __init__(self, primary: ApiSession, fallback: ApiSession | None) -> None:
        self.primary = primary
        self.fallback = fallback
        self.api = primary.api
        self.settings = primary.settings
        self.stats = primary.stats
        self.on_fallback = False
        if fallback is not None:
            fallback.stats = primary.stats

    def request(self, method: str, route: str, **kwargs: Any) -> Any:
        """``ApiSession.request``, on the fallback host for reads after the main one failed."""
        if self.fallback is None or method != "GET":
            return self.primary.request(method, route, **kwargs)
        if not self.on_fallback:
            try:
                return self.primary.request(method, route, **kwargs)
            except TransientApiError as error:
                log.warning(
                    "clientify %s %s failed on the main host (%s): reading from the fallback host %s",
                    method,
                    route,
                    error.status or "no response",
                    self.fallback.settings.base_url,
                )
                self.on_fallback = True
        return self.fallback.request(method, route, **kwargs)

    def close(self) -> None:
        self.primary.close()
        if self.fallback is not None:
            self.fallback.close()


class ClientifyClient(ApiClient):
    """``ClientifyClient(settings, transport=None)`` with ``.contacts``, ``.companies``, ``.products``,
    ``.budgets`` and ``.custom_fields``."""

    display_name = "Clientify"
    api_name = API
    settings: ClientifySettings

    def __init__(
        self,
        settings: ClientifySettings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        def session_for(host_settings: ClientifySettings) -> ApiSession:
            return ApiSession(
                JsonReader(API, clientify_error),
                host_settings,
                auth=TokenHeaderAuth(settings.api_key),
                headers={"Accept": "application/json"},
                transport=transport,
                sleep=sleep,
            )

        session = session_for(settings)
        super().__init__(session)
        self.settings = settings
        fallback_settings = settings.fallback()
        fallback = session_for(fallback_settings) if fallback_settings is not None else None
        self.reads = ReadFailover(session, fallback)
        self.contacts = ClientifyParties(self.reads, settings, "/v1/contacts/")
        self.companies = ClientifyParties(self.reads, settings, "/v1/companies/")
        self.products = ClientifyProducts(self.reads, settings, "/v1/products/")
        self.budgets = ClientifyBudgets(self.reads, settings, settings.budgets_path)
        self.custom_fields = ClientifyCustomFields(self.reads)

    def ignored_filters(self) -> list[IgnoredFilter]:
        """The listings whose last ``modified[gte]`` read was ignored by the API (see ``IgnoredFilter``)."""
        resources = (self.contacts, self.companies, self.products, self.budgets)
        return [resource.ignored_filter for resource in resources if resource.ignored_filter is not None]

    def _probes(self) -> list[Probe]:
        """Budgets: path and shape unpublished. Custom-field definitions: where the link field lives."""
        budgets, fields = self.settings.budgets_path, ClientifyCustomFields.route
        return [
            Probe("budgets", budgets, "estimates",
                  "Clientify's budgets path is unpublished: set the Clientify connection extra 'budgets_path' to "
                  "your account's budgets resource, or disable estimates",
                  lambda: self._first_page(budgets)),
            Probe("custom_fields", fields, None,
                  "the link custom fields (in_facturama / in_facturadirecta) cannot be defined or read: check "
                  "that the API key may read custom fields, or define them in Clientify by hand",
                  lambda: self._first_page(fields)),
        ]  # fmt: skip

    def _first_page(self, route: str) -> Any:
        try:
            return self.reads.request("GET", route, params={"page_size": 1})
        except NotFoundError as error:
            if is_invalid_page(error):  # an empty collection on a strict paginator: the route exists
                return None
            raise

    def share_budget(self, budget: RequestBudget) -> None:
        """Draw every request from ``budget``, on both hosts (the fallback host serves the same account)."""
        self.reads.primary.share_budget(budget)
        if self.reads.fallback is not None:
            self.reads.fallback.share_budget(budget)

    def close(self) -> None:
        """Close both hosts' connection pools."""
        self.reads.close()

    def _probe(self) -> str:
        body = self._session.request("GET", "/v1/users/", params={"page_size": 1})
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise MalformedResponseError(API, "GET", "/v1/users/", 200, "expected a 'results' list")
        return f"{body.get('count', len(body['results']))} users"
