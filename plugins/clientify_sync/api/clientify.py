"""Clientify v1 client (JSON, ``Authorization: Token``): contacts, companies, products, budgets,
custom-field definitions.

Listing follows the ``next`` links (``page_size=100``); incremental listing filters server-side with
``modified[gte]``. Every path keeps its trailing slash (the API redirects or 404s without it).
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from clientify_sync.api.auth import TokenHeaderAuth
from clientify_sync.api.client import ApiClient
from clientify_sync.api.http import ApiSession
from clientify_sync.api.paging import NextLinkPaginator, Page, PageResult, iter_pages, iter_records
from clientify_sync.api.responses import JsonReader, json_or_none, parse_retry_after, text_detail
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.api.statusmap import error_class_for
from clientify_sync.errors import (
    ApiError,
    AuthenticationError,
    MalformedResponseError,
    NotFoundError,
    RetriableApiError,
    UnconfirmedWriteError,
    ValidationError,
)

API = "clientify"
MISSING_KEY_DETAIL = "Api key not provided."
Filter = str | int | float


def normalise_tax_id(tax_id: str) -> str:
    """Upper-case, without spaces, dashes, dots or slashes."""
    return re.sub(r"[\s\-./]", "", tax_id).upper()


def format_modified(value: datetime.datetime | datetime.date | str) -> str:
    """A ``modified[gte]`` value: aware datetimes in UTC ISO-8601 (naive ones are taken as UTC)."""
    if isinstance(value, str):
        return value
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return aware.astimezone(datetime.UTC).isoformat()
    return value.isoformat()


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

    def __init__(self, session: ApiSession, settings: ClientifySettings, path: str) -> None:
        self._session = session
        self.page_size = settings.page_size
        self.list_route = path
        self.item_route = f"{path}{{id}}/"

    def iter_pages(
        self, modified_gte: datetime.datetime | datetime.date | str | None = None, **filters: Filter
    ) -> Iterator[Page]:
        """Pages following ``next``; ``modified_gte`` filters server-side (``modified[gte]``).

        Other filters go to the query as given (``query=``, ``cf_<name>=``, ``sku=``,
        ``**{"modified[lt]": ...}``).
        """
        params: dict[str, Filter] = {**filters, "page_size": self.page_size}
        if modified_gte is not None:
            params["modified[gte]"] = format_modified(modified_gte)
        paginator = NextLinkPaginator(api=API, route=self.list_route, page_size=self.page_size)
        return iter_pages(paginator, lambda current: self._fetch_page(current, params))

    def iter_records(
        self, modified_gte: datetime.datetime | datetime.date | str | None = None, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """Every matching record, streamed one page at a time."""
        return iter_records(self.iter_pages(modified_gte, **filters))

    def _fetch_page(self, paginator: NextLinkPaginator, params: dict[str, Filter]) -> PageResult:
        if paginator.next_url is None:
            body = self._session.request("GET", self.list_route, params=params)
        else:
            body = self._session.request("GET", self.list_route, url=paginator.next_url)
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
        return self._session.request("PUT", self.item_route, path_params={"id": record_id}, json=body)

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


def custom_field_value(record: dict[str, Any], name: str) -> str | None:
    """The value of custom field ``name`` on a record (``[{"field": name, "value": v}]``)."""
    for item in record.get("custom_fields") or []:
        if isinstance(item, dict) and (item.get("field") or item.get("name")) == name:
            value = item.get("value")
            return None if value is None else str(value)
    return None


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

    def __init__(self, session: ApiSession) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._known: list[dict[str, Any]] | None = None

    def list(self) -> list[dict[str, Any]]:
        """Every definition (follows ``next`` if the endpoint pages at all)."""
        paginator = NextLinkPaginator(api=API, route=self.route, page_size=100)
        pages = iter_pages(paginator, self._fetch_page)
        return [record for page in pages for record in page.records]

    def _fetch_page(self, paginator: NextLinkPaginator) -> PageResult:
        if paginator.next_url is None:
            body = self._session.request("GET", self.route, params={"page_size": 100})
        else:
            body = self._session.request("GET", self.route, url=paginator.next_url)
        if isinstance(body, list):
            return PageResult(body, len(body))
        if isinstance(body, dict) and isinstance(body.get("results"), list):
            return PageResult(body["results"], body.get("count"), body.get("next"))
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
            if definition.get("name") == name and content_type_key(str(definition.get("content_type", ""))) == wanted:
                return definition
        return None


class ClientifyClient(ApiClient):
    """``ClientifyClient(settings, transport=None)`` with ``.contacts``, ``.companies``, ``.products``,
    ``.budgets`` and ``.custom_fields``."""

    display_name = "Clientify"

    def __init__(
        self,
        settings: ClientifySettings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        session = ApiSession(
            JsonReader(API, clientify_error),
            settings,
            auth=TokenHeaderAuth(settings.api_key),
            headers={"Accept": "application/json"},
            transport=transport,
            sleep=sleep,
        )
        super().__init__(session)
        self.settings = settings
        self.contacts = ClientifyParties(session, settings, "/v1/contacts/")
        self.companies = ClientifyParties(session, settings, "/v1/companies/")
        self.products = ClientifyProducts(session, settings, "/v1/products/")
        self.budgets = ClientifyBudgets(session, settings, settings.budgets_path)
        self.custom_fields = ClientifyCustomFields(session)

    def _probe(self) -> str:
        body = self._session.request("GET", "/v1/users/", params={"page_size": 1})
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            raise MalformedResponseError(API, "GET", "/v1/users/", 200, "expected a 'results' list")
        return f"{body.get('count', len(body['results']))} users"
