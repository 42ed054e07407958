"""Facturama API Web client (JSON, HTTP Basic): clients, products and the assumed estimates.

Listing always uses the paged routes (``/Clients``, ``/Products``, ``/Estimates``) with
``start``/``length``: the bare ``/Client`` list silently stops at 100 records.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from clientify_sync.api.client import ApiClient, Probe
from clientify_sync.api.http import ApiSession
from clientify_sync.api.paging import OffsetPaginator, Page, PageRequest, PageResult, iter_records, read_pages
from clientify_sync.api.responses import JsonReader, json_or_none, parse_retry_after, text_detail
from clientify_sync.api.settings import FacturamaSettings
from clientify_sync.api.statusmap import error_class_for
from clientify_sync.errors import (
    ApiError,
    MalformedResponseError,
    NotFoundError,
    RetriableApiError,
    UnconfirmedWriteError,
)
from clientify_sync.facts import GENERIC_RFCS as GENERIC_RFCS  # re-exported: include/sandbox reads it here

API = "facturama"


def normalise_rfc(rfc: str) -> str:
    """Upper-case, without spaces, dashes or dots."""
    return re.sub(r"[\s\-.]", "", rfc).upper()


def facturama_error(response: httpx.Response, method: str, route: str) -> ApiError | None:
    """The one status-to-exception function for Facturama (ASP.NET ``{Message, ModelState}`` bodies)."""
    error_class = error_class_for(response.status_code)
    if error_class is None:
        return None
    body = json_or_none(response)
    if isinstance(body, dict):
        fields = {key.lower(): value for key, value in body.items()}
        detail = str(fields.get("message") or "")
        field_errors = _flatten_model_state(fields.get("modelstate"))
    else:
        detail, field_errors = text_detail(response), {}
    kwargs: dict[str, Any] = {}
    if issubclass(error_class, RetriableApiError):
        kwargs["retry_after"] = parse_retry_after(response.headers.get("retry-after"))
    return error_class(API, method, route, response.status_code, detail, field_errors, **kwargs)


def _flatten_model_state(model_state: Any) -> dict[str, list[str]]:
    """ModelState keys -> field names: ``clientModel.Email`` / ``client.Rfc`` -> ``Email`` / ``Rfc``.

    Facturama prefixes each key with the action parameter's name (``clientModel``, camelCase), while
    its properties are PascalCase; so a first segment starting in lower case is that prefix and is
    dropped. Bare names (``Rfc``) and paths (``Items[0].Quantity``) are kept as they come.
    """
    if not isinstance(model_state, dict):
        return {}
    flat: dict[str, list[str]] = {}
    for key, messages in model_state.items():
        name = model_state_field(str(key))
        values = messages if isinstance(messages, list) else [messages]
        flat.setdefault(name or "_", []).extend(str(message) for message in values)
    return flat


def model_state_field(key: str) -> str:
    """The field a ModelState key names, without the model prefix (see ``_flatten_model_state``)."""
    head, _, rest = key.partition(".")
    if rest and head.isidentifier() and head[0].islower():
        return rest
    return key


class FacturamaResource:
    """One catalogue: ``/{Plural}`` paged list, ``/{Singular}/{id}`` item routes."""

    natural_key_field = ""

    def __init__(
        self, session: ApiSession, settings: FacturamaSettings, *, singular: str, plural: str
    ) -> None:
        self._session = session
        self.page_size = settings.page_size
        self.concurrency = settings.concurrency
        self.list_route = f"{settings.api_prefix}/{plural}"
        self.create_route = f"{settings.api_prefix}/{singular}"
        self.item_route = f"{settings.api_prefix}/{singular}/{{id}}"

    def iter_pages(self, search: str | None = None) -> Iterator[Page]:
        """Pages of ``start``/``length`` (concurrently once ``recordsFiltered`` is known).

        Args:
            search: Facturama's server-side ``search`` (a substring match on several fields).
        """
        paginator = OffsetPaginator(
            api=API, route=self.list_route, size_param="length", page_size=self.page_size, id_key="Id",
            params={"search": search} if search else None,
        )  # fmt: skip
        return read_pages(paginator, self.request_page, concurrency=self.concurrency)

    def iter_records(self, search: str | None = None) -> Iterator[dict[str, Any]]:
        """Every record (optionally matching ``search``), streamed a few pages at a time."""
        return iter_records(self.iter_pages(search))

    def request_page(self, request: PageRequest) -> PageResult:
        """One ``{data, recordsFiltered}`` page of the listing.

        Raises:
            MalformedResponseError: the answer has no ``data`` array.
        """
        body = self._session.request("GET", self.list_route, params=request.params)
        if isinstance(body, dict) and isinstance(body.get("data"), list):
            total = body.get("recordsFiltered", body.get("recordsTotal"))
            return PageResult(body["data"], total if isinstance(total, int) else None)
        raise MalformedResponseError(API, "GET", self.list_route, 200, "paged list without a 'data' array")

    def get(self, record_id: str) -> dict[str, Any]:
        """One record; a 200 with an empty/null body is treated as not found."""
        body = self._session.request("GET", self.item_route, path_params={"id": record_id})
        if not isinstance(body, dict):
            raise NotFoundError(API, "GET", self.item_route, 200, "empty body for this id")
        return body

    def create(
        self, body: dict[str, Any], *, natural_key: str | None = None, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """POST; returns the created record with its server-assigned ``Id``.

        ``idempotency_key`` is ignored: this API keeps no keys (the pending-create journal's lookup
        settles a create whose answer was lost).

        Raises:
            UnconfirmedWriteError: the POST may or may not have been applied (see ``api.http``).
        """
        key = natural_key or body.get(self.natural_key_field) or None
        created = self._session.request("POST", self.create_route, json=body, natural_key=key)
        if not isinstance(created, dict) or not created.get("Id"):
            raise UnconfirmedWriteError(
                API, "POST", self.create_route, key, None, "created, but no record returned"
            )
        return created

    def update(self, record_id: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT the full object (``Id`` included); None when the API answers 204/empty."""
        full = {**body, "Id": record_id}
        answer: dict[str, Any] | None = self._session.request(
            "PUT", self.item_route, path_params={"id": record_id}, json=full
        )
        return answer

    def delete(self, record_id: str) -> dict[str, Any] | None:
        """DELETE; returns the deleted object when the API sends one."""
        deleted: dict[str, Any] | None = self._session.request(
            "DELETE", self.item_route, path_params={"id": record_id}
        )
        return deleted

    def _find_exact(
        self, search: str, field: str, wanted: str, normalise: Callable[[str], str]
    ) -> list[dict[str, Any]]:
        """Server-side ``search`` (a substring match), then an exact client-side comparison."""
        return [
            record
            for record in self.iter_records(search=search)
            if normalise(str(record.get(field) or "")) == wanted
        ]


class FacturamaClients(FacturamaResource):
    natural_key_field = "Rfc"

    def find_by_rfc(self, rfc: str) -> list[dict[str, Any]]:
        """Clients whose normalised ``Rfc`` equals ``rfc``; always empty for the generic RFCs."""
        wanted = normalise_rfc(rfc)
        if not wanted or wanted in GENERIC_RFCS:
            return []
        return self._find_exact(wanted, "Rfc", wanted, normalise_rfc)


class FacturamaProducts(FacturamaResource):
    natural_key_field = "IdentificationNumber"

    def find_by_sku(self, sku: str) -> list[dict[str, Any]]:
        """Products whose ``IdentificationNumber`` equals ``sku`` (surrounding spaces ignored)."""
        wanted = sku.strip()
        return self._find_exact(wanted, "IdentificationNumber", wanted, str.strip) if wanted else []


class FacturamaEstimates(FacturamaResource):
    natural_key_field = "Folio"

    def find_by_folio(self, folio: str) -> list[dict[str, Any]]:
        """Estimates whose ``Folio`` equals ``folio`` (surrounding spaces ignored)."""
        wanted = folio.strip()
        return self._find_exact(wanted, "Folio", wanted, str.strip) if wanted else []


class FacturamaClient(ApiClient):
    """``FacturamaClient(settings, transport=None)`` with ``.clients``, ``.products``, ``.estimates``."""

    display_name = "Facturama"
    api_name = API
    settings: FacturamaSettings

    def __init__(
        self,
        settings: FacturamaSettings,
        transport: httpx.BaseTransport | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        session = ApiSession(
            JsonReader(API, facturama_error),
            settings,
            auth=httpx.BasicAuth(settings.username, settings.password),
            headers={"Accept": "application/json"},
            transport=transport,
            sleep=sleep,
        )
        super().__init__(session)
        self.settings = settings
        self.clients = FacturamaClients(session, settings, singular="Client", plural="Clients")
        self.products = FacturamaProducts(session, settings, singular="Product", plural="Products")
        path = settings.estimates_path
        self.estimates = FacturamaEstimates(session, settings, singular=path, plural=f"{path}s")

    def _probes(self) -> list[Probe]:
        """Facturama publishes no estimates API (none in its SDKs, Postman collection or MCP server)."""
        route = self.estimates.list_route
        hint = (
            "Facturama publishes no estimates API: set the Facturama connection extra 'estimates_path' to "
            "your account's estimates resource, or disable estimates for facturama"
        )
        read = lambda: self._session.request("GET", route, params={"start": 0, "length": 1})  # noqa: E731
        return [Probe("estimates", route, "estimates", hint, read)]

    def _probe(self) -> str:
        body = self._session.request("GET", self.clients.list_route, params={"start": 0, "length": 1})
        total = body.get("recordsTotal") if isinstance(body, dict) else None
        return f"{total if total is not None else 'unknown number of'} clients"
