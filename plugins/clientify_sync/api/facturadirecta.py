"""FacturaDirecta classic XML API client: clients, products and estimates.

Bodies are XML, converted to and from plain dicts by ``api.xmlcodec`` (hardened parsing). Listing uses
``start``/``limit`` (250). Updates are partial PUTs: only the elements sent change, and a custom
attribute sent without a value is cleared.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import httpx
from lxml import etree

from clientify_sync.api import xmlcodec
from clientify_sync.api.auth import QueryTokenAuth
from clientify_sync.api.client import ApiClient, Probe
from clientify_sync.api.http import ApiSession
from clientify_sync.api.paging import OffsetPaginator, Page, PageRequest, PageResult, iter_records, read_pages
from clientify_sync.api.responses import looks_like_html, parse_retry_after, text_detail
from clientify_sync.api.settings import FacturaDirectaSettings
from clientify_sync.api.statusmap import error_class_for
from clientify_sync.errors import (
    ApiError,
    MalformedResponseError,
    RetriableApiError,
    TransientApiError,
    UnconfirmedWriteError,
    ValidationError,
)

API = "facturadirecta"
MAX_CUSTOM_ATTRIBUTE_FILTERS = 3
Filter = str | int
# An error envelope is a root <xml> element; sniffed so success bodies are parsed only once.
_ENVELOPE_HEAD = re.compile(rb"^\s*(<\?xml[^>]*\?>)?\s*<xml[\s>/]")


def facturadirecta_error(response: httpx.Response, method: str, route: str) -> ApiError | None:
    """The one status-to-exception function for FacturaDirecta.

    An ``<xml><httpStatus>N</httpStatus>…</xml>`` envelope is honoured on any HTTP status: a 200
    carrying ``<httpStatus>404</httpStatus>`` is a 404.
    """
    envelope = _envelope(response)
    status = response.status_code
    declared = envelope.get("httpStatus", "").strip()
    if status < 300 and declared.isdigit():
        status = int(declared)
    error_class = error_class_for(status)
    if error_class is None:
        return None
    code, message = envelope.get("errorCode", "").strip(), envelope.get("errorMessage", "").strip()
    field_errors = {code: [message]} if code else {}
    detail = ": ".join(part for part in (code, message) if part) or _fallback_detail(response, envelope)
    kwargs: dict[str, Any] = {}
    if issubclass(error_class, RetriableApiError):
        kwargs["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
    return error_class(API, method, route, status, detail, field_errors, **kwargs)


def _envelope(response: httpx.Response) -> dict[str, str]:
    """The fields of an error envelope, or {} (also for bodies that are not safe XML)."""
    if not _ENVELOPE_HEAD.match(response.content[:256]):
        return {}
    try:
        value = xmlcodec.to_value(xmlcodec.parse(response.content))
    except xmlcodec.XmlCodecError:
        return {}
    return (
        {key: item for key, item in value.items() if isinstance(item, str)} if isinstance(value, dict) else {}
    )


def _fallback_detail(response: httpx.Response, envelope: dict[str, str]) -> str:
    if envelope or not response.content.strip():
        return ""
    if looks_like_html(response):
        return text_detail(response)
    return "error body without an XML envelope"


class FacturaDirectaReader:
    """Status mapping and hardened XML decoding for the session."""

    api = API

    def error_for(self, response: httpx.Response, method: str, route: str) -> ApiError | None:
        return facturadirecta_error(response, method, route)

    def decode(self, response: httpx.Response, method: str, route: str) -> etree._Element | None:
        """The parsed root element; None for an empty body.

        HTML, non-XML and hostile XML raise ``MalformedResponseError``; XML that starts well but does
        not parse was most likely truncated and raises ``TransientApiError`` (retried on GET).
        """
        if not response.content.strip():
            return None
        status = response.status_code
        if looks_like_html(response):
            raise MalformedResponseError(API, method, route, status, "HTML page instead of XML")
        try:
            return xmlcodec.parse(response.content)
        except xmlcodec.BrokenXmlError as exc:
            raise TransientApiError(API, method, route, status, str(exc)) from None
        except xmlcodec.XmlCodecError as exc:
            raise MalformedResponseError(API, method, route, status, str(exc)) from None


def custom_attribute_params(custom_attributes: Mapping[str, str] | None) -> dict[str, str]:
    """``{"ID_CRM": "735"}`` -> ``{"customAttributeName:ID_CRM": "735"}`` (at most three fields)."""
    if not custom_attributes:
        return {}
    if len(custom_attributes) > MAX_CUSTOM_ATTRIBUTE_FILTERS:
        raise ValueError(
            f"FacturaDirecta filters on at most {MAX_CUSTOM_ATTRIBUTE_FILTERS} custom attributes"
        )
    return {f"customAttributeName:{label}": str(value) for label, value in custom_attributes.items()}


class FacturaDirectaResource:
    """``/api/{plural}.xml`` list/create/template and ``/api/{plural}/{id}.xml`` get/update/delete."""

    natural_key_field = ""

    def __init__(
        self, session: ApiSession, settings: FacturaDirectaSettings, *, plural: str, singular: str
    ) -> None:
        self._session = session
        self.page_size = settings.page_size
        self.concurrency = settings.concurrency
        self.plural = plural
        self.singular = singular
        self.list_route = f"/api/{plural}.xml"
        self.item_route = f"/api/{plural}/{{id}}.xml"

    def iter_pages(
        self, *, custom_attributes: Mapping[str, str] | None = None, **filters: Filter
    ) -> Iterator[Page]:
        """Pages of ``start``/``limit`` (concurrently once ``total`` is known).

        Args:
            custom_attributes: ``{label: value}`` filters on custom attributes (at most three).
            **filters: ``taxCode``, ``code``, ``term``, ``email``, ``emailMatch``, ``ownerEmail`` (clients),
                ``client``, ``status``, ``dateFrom``, ``dateTo`` (estimates).
        """
        params = {
            **{key: str(value) for key, value in filters.items()},
            **custom_attribute_params(custom_attributes),
        }
        paginator = OffsetPaginator(
            api=API,
            route=self.list_route,
            size_param="limit",
            page_size=self.page_size,
            id_key="id",
            params=params,
        )
        return read_pages(paginator, self.request_page, concurrency=self.concurrency)

    def iter_records(
        self, *, custom_attributes: Mapping[str, str] | None = None, **filters: Filter
    ) -> Iterator[dict[str, Any]]:
        """Every matching record, streamed a few pages at a time."""
        return iter_records(self.iter_pages(custom_attributes=custom_attributes, **filters))

    def find(
        self, *, custom_attributes: Mapping[str, str] | None = None, **filters: Filter
    ) -> list[dict[str, Any]]:
        """Every record matching the filters (at least one is required, so this never lists everything)."""
        if not filters and not custom_attributes:
            raise ValueError("find() needs at least one filter")
        return list(self.iter_records(custom_attributes=custom_attributes, **filters))

    def request_page(self, request: PageRequest) -> PageResult:
        """One ``<{plural} total="n">`` page of the listing.

        Raises:
            MalformedResponseError: the answer is not a list of this resource.
        """
        root = self._session.request("GET", self.list_route, params=request.params)
        if root is not None and root.tag == self.plural:
            records, total = xmlcodec.to_list(root)
            return PageResult(records, total)
        raise MalformedResponseError(API, "GET", self.list_route, 200, f"expected a <{self.plural}> list")

    def get(self, record_id: int | str) -> dict[str, Any]:
        """One record."""
        root = self._session.request("GET", self.item_route, path_params={"id": record_id})
        return self._record(root, "GET", self.item_route)

    def create(
        self, body: Mapping[str, Any], *, natural_key: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST the record as XML; returns the created record with its ``id``.

        ``idempotency_key`` is ignored: this API keeps no keys (the pending-create journal's lookup
        settles a create whose answer was lost).

        Raises:
            UnconfirmedWriteError: the POST may or may not have been applied (see ``api.http``).
        """
        key = natural_key or body.get(self.natural_key_field) or None
        content = self._encode(body, "POST", self.list_route)
        root = self._session.request("POST", self.list_route, content=content, natural_key=key)
        if root is None or root.tag != self.singular:
            raise UnconfirmedWriteError(
                API, "POST", self.list_route, key, None, "created, but no record returned"
            )
        return xmlcodec.to_record(root)

    def update(self, record_id: int | str, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """Partial PUT: only the elements present change; returns the updated record when sent."""
        content = self._encode(body, "PUT", self.item_route)
        root = self._session.request("PUT", self.item_route, path_params={"id": record_id}, content=content)
        return xmlcodec.to_record(root) if root is not None and root.tag == self.singular else None

    def delete(self, record_id: int | str) -> None:
        """DELETE (answered with ``<xml><httpStatus>200</httpStatus></xml>``)."""
        self._session.request("DELETE", self.item_route, path_params={"id": record_id})

    def template(self) -> dict[str, Any]:
        """The empty structure (``PUT /api/{plural}.xml``), with one customAttribute per account field."""
        root = self._session.request("PUT", self.list_route, content=b"")
        return self._record(root, "PUT", self.list_route)

    def _record(self, root: etree._Element | None, method: str, route: str) -> dict[str, Any]:
        if root is None or root.tag != self.singular:
            raise MalformedResponseError(API, method, route, 200, f"expected a <{self.singular}> element")
        return xmlcodec.to_record(root)

    def _encode(self, body: Mapping[str, Any], method: str, route: str) -> bytes:
        try:
            return xmlcodec.encode(self.singular, body)
        except xmlcodec.XmlEncodeError as exc:
            raise ValidationError(API, method, route, None, str(exc), {exc.element: [str(exc)]}) from None


class FacturaDirectaClients(FacturaDirectaResource):
    natural_key_field = "taxCode"


class FacturaDirectaProducts(FacturaDirectaResource):
    natural_key_field = "productCode"


class FacturaDirectaClient(ApiClient):
    """``FacturaDirectaClient(settings, transport=None)`` with ``.clients``, ``.products``, ``.estimates``."""

    display_name = "FacturaDirecta"
    api_name = API
    settings: FacturaDirectaSettings

    def __init__(
        self,
        settings: FacturaDirectaSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        # Basic puts the token in a header; the query style puts it in the URL (masked in logs).
        auth: httpx.Auth = (
            httpx.BasicAuth(settings.token, "x")
            if settings.auth_style == "basic"
            else QueryTokenAuth(settings.token)
        )
        session = ApiSession(
            FacturaDirectaReader(),
            settings,
            auth=auth,
            headers={"Accept": "application/xml", "Content-Type": "application/xml; charset=UTF-8"},
            transport=transport,
            sleep=sleep,
        )
        super().__init__(session)
        self.settings = settings
        self.clients = FacturaDirectaClients(session, settings, plural="clients", singular="client")
        self.products = FacturaDirectaProducts(session, settings, plural="products", singular="product")
        self.estimates = FacturaDirectaResource(session, settings, plural="estimates", singular="estimate")

    def _probes(self) -> list[Probe]:
        """The estimates routes are documented, their element names are not."""
        route = self.estimates.list_route
        hint = "your FacturaDirecta account has no estimates resource: disable estimates for facturadirecta"
        read = lambda: self._session.request("GET", route, params={"limit": 1})  # noqa: E731
        return [Probe("estimates", route, "estimates", hint, read)]

    def _probe(self) -> str:
        root = self._session.request("GET", self.clients.list_route, params={"limit": 1})
        if root is None or root.tag != "clients":
            raise MalformedResponseError(
                API, "GET", self.clients.list_route, 200, "expected a <clients> list"
            )
        return f"{root.get('total', 'unknown number of')} clients"
