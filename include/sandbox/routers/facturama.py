"""Facturama API Web routes: clients, products and the assumed estimates resource (facturama-api.md).

Paths arrive canonical (``/client``, ``/clients/...``): ``FacturamaPaths`` has already dropped the
optional ``/api`` prefix, lower-cased the resource name and mapped the configured estimate names,
because ASP.NET routes are case-insensitive and answer with or without ``/api``. Ids stay as sent
(they are case-sensitive base64).
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import jsonio
from include.sandbox.auth import facturama_auth
from include.sandbox.config import FacturamaConfig
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import facturama_invalid, facturama_message, json_response
from include.sandbox.models import facturama as model
from include.sandbox.store import NewRow, Session, Where
from include.sandbox.taxids import GENERIC_RFCS

CONTROL_PREFIX = "/_sandbox/"
NOT_FOUND = "No se encontró el elemento."

router = APIRouter(tags=["facturama"], dependencies=[Depends(facturama_auth)])


def new_id(random_bytes: bytes | None = None) -> str:
    """A 23-char id: ASP.NET ``UrlTokenEncode`` of a GUID (URL-safe base64, padding count appended)."""
    raw = uuid.UUID(bytes=random_bytes, version=4).bytes_le if random_bytes else uuid.uuid4().bytes_le
    text = base64.urlsafe_b64encode(raw).decode()
    return text.rstrip("=") + str(text.count("="))


def canonical_path(path: str, cfg: FacturamaConfig) -> str:
    """``/api/Client/Ab_9`` -> ``/client/Ab_9``; the configured estimate names -> ``estimate(s)``."""
    parts = [p for p in path.split("/") if p]
    if parts and parts[0].lower() == "api":
        parts = parts[1:]
    if not parts:
        return "/"
    head = parts[0].lower()
    if not cfg.estimates_available and head in (cfg.estimate_singular.lower(), cfg.estimate_plural.lower()):
        head = "~" + head  # §9: an account without estimates: ASP.NET's "No HTTP resource" 404
    elif head == cfg.estimate_singular.lower():
        head = "estimate"
    elif head == cfg.estimate_plural.lower():
        head = "estimates"
    elif head in ("estimate", "estimates"):
        head = "~" + head  # renamed away: unroutable
    return "/" + "/".join([head, *parts[1:]])


class FacturamaPaths:
    """ASGI layer (outermost) that rewrites the path to its canonical form before anything routes it."""

    def __init__(self, app: Any, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            cfg = self.context.config
            assert isinstance(cfg, FacturamaConfig)
            scope = {**scope, "path": canonical_path(scope["path"], cfg)}
        await self.app(scope, receive, send)


# -- resources -------------------------------------------------------------------------------------

# (payload, config, errors, session, replacing): replacing is True on a PUT (§4.5 rejects "" there).
Cleaner = Callable[[Any, FacturamaConfig, dict[str, list[str]], Session, bool], dict[str, Any]]


@dataclass(frozen=True)
class Resource:
    singular: str
    plural: str
    table: str
    clean: Cleaner
    search: Callable[[dict[str, Any]], str]
    key: Callable[[dict[str, Any]], str | None]


def _clean_estimate(
    payload: Any, cfg: FacturamaConfig, errors: dict, s: Session, replacing: bool
) -> dict[str, Any]:
    def find_client(client_id: str) -> dict[str, Any] | None:
        row = s.get("facturama_clients", rid=client_id)
        return row.body if row else None

    def find_product(sku: str) -> dict[str, Any] | None:
        rows = s.select("facturama_products", Where("facturama_products").eq("k1", sku), limit=1)
        return rows[0].body if rows else None

    return model.clean_estimate(payload, cfg, errors, find_client, find_product)


RESOURCES = {
    "client": Resource(
        "client",
        "clients",
        "facturama_clients",
        lambda p, cfg, e, s, put: model.clean_client(p, cfg, e, replacing=put),
        model.client_search,
        lambda r: r.get("Rfc"),
    ),
    "product": Resource(
        "product",
        "products",
        "facturama_products",
        lambda p, cfg, e, s, put: model.clean_product(p, cfg, e, replacing=put),
        model.product_search,
        lambda r: r.get("IdentificationNumber"),
    ),
    "estimate": Resource(
        "estimate",
        "estimates",
        "facturama_estimates",
        _clean_estimate,
        model.estimate_search,
        lambda r: (r.get("Receiver") or {}).get("Id"),
    ),
}


def new_row(resource: Resource, record: dict[str, Any]) -> NewRow:
    return NewRow(body=record, rid=record["Id"], search=resource.search(record), k1=resource.key(record))


def _config(request: Request) -> FacturamaConfig:
    cfg = ctx(request).config
    assert isinstance(cfg, FacturamaConfig)
    return cfg


def _prefix(cfg: FacturamaConfig, resource: Resource | None) -> str:
    """§4.5: ModelState keys carry the action parameter's name (``clientModel.``); query errors do not."""
    return cfg.modelstate_prefix.replace("{resource}", resource.singular) if resource is not None else ""


def _state(
    cfg: FacturamaConfig, errors: dict[str, list[str]], resource: Resource | None = None
) -> dict[str, list[str]]:
    prefix = _prefix(cfg, resource)
    return {f"{prefix}{key}": messages for key, messages in errors.items()}


def _payload(body: bytes, resource: Resource, cfg: FacturamaConfig) -> dict[str, Any]:
    # A body that does not bind is reported under the parameter's own name (``clientModel``).
    key = _prefix(cfg, resource).rstrip(".") or resource.singular
    try:
        payload = jsonio.loads(body) if body.strip() else None
    except ValueError as exc:
        raise facturama_invalid({key: [f"Unexpected character encountered: {exc}"]}) from None
    if not isinstance(payload, dict):
        raise facturama_invalid({key: ["El cuerpo de la solicitud es obligatorio."]})
    return payload


def _int_param(request: Request, names: tuple[str, ...], default: int, cfg: FacturamaConfig) -> int:
    for name in names:
        raw = request.query_params.get(name)
        if raw is None or raw.strip() == "":
            continue
        try:
            return int(raw)
        except ValueError:
            raise facturama_invalid(
                _state(cfg, {name: [f"The value '{raw}' is not valid for {name}."]})
            ) from None
    return default


def _check_duplicates(s: Session, resource: Resource, record: dict[str, Any], cfg: FacturamaConfig) -> None:
    key = resource.key(record)
    if not key:
        return
    if resource.singular == "client" and cfg.reject_duplicate_rfc and key not in GENERIC_RFCS:
        message = f"Ya existe un cliente con el RFC {key}."
    elif resource.singular == "product" and cfg.reject_duplicate_sku:
        message = f"Ya existe un producto con el IdentificationNumber {key}."
    else:
        return
    for row in s.select(resource.table, Where(resource.table).eq("k1", key), limit=2):
        if row.rid != record["Id"]:
            raise facturama_message(400, message)


def _make_routes(resource: Resource) -> None:
    one, many, table = f"/{resource.singular}", f"/{resource.plural}", resource.table

    def list_first(request: Request) -> Response:
        """``GET /Client``: a plain array, silently truncated (``?keyword=`` filters)."""
        cfg = _config(request)
        keyword = (request.query_params.get("keyword") or "").strip()
        where = Where(table)
        if keyword:
            where.contains(keyword)
        with ctx(request).store.session() as s:
            rows = s.select(table, where, limit=cfg.list_truncate)
        return json_response([row.body for row in rows])

    def list_paged(request: Request) -> Response:
        """``GET /Clients?start&length&search``: DataTables-style envelope."""
        cfg = _config(request)
        start = max(0, _int_param(request, ("start",), 0, cfg))
        length = _int_param(request, ("length", "lenght"), cfg.page_length_default, cfg)
        if length > cfg.page_length_max and cfg.page_length_over_max == "error":
            raise facturama_invalid(
                _state(cfg, {"length": [f"El campo length debe estar entre 1 y {cfg.page_length_max}."]})
            )
        length = min(max(length, 1), cfg.page_length_max)
        search = (request.query_params.get("search") or "").strip()
        where = Where(table)
        if search:
            where.contains(search)
        with ctx(request).store.session() as s:
            total = s.count(table)
            filtered = s.count(table, where) if search else total
            rows = s.select(table, where, limit=length, offset=start)
        return json_response(
            {"recordsTotal": total, "recordsFiltered": filtered, "data": [r.body for r in rows]}
        )

    def get_one(item_id: str, request: Request) -> Response:
        with ctx(request).store.session() as s:
            row = s.get(table, rid=item_id)
        if row is None:
            raise facturama_message(404, NOT_FOUND)
        return json_response(row.body)

    def create(request: Request, body: bytes = Depends(raw_body)) -> Response:
        cfg = _config(request)
        payload = _payload(body, resource, cfg)
        errors: dict[str, list[str]] = {}
        with ctx(request).store.session(write=True) as s:
            record = resource.clean(payload, cfg, errors, s, False)
            if errors:
                raise facturama_invalid(_state(cfg, errors, resource))
            record["Id"] = new_id()
            _check_duplicates(s, resource, record, cfg)
            s.insert(table, [new_row(resource, record)])
        return json_response(record, cfg.post_status)

    def update(item_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
        cfg = _config(request)
        payload = _payload(body, resource, cfg)
        errors: dict[str, list[str]] = {}
        with ctx(request).store.session(write=True) as s:
            row = s.get(table, rid=item_id)
            if row is None:
                raise facturama_message(404, NOT_FOUND)
            record = resource.clean(payload, cfg, errors, s, True)
            if errors:
                raise facturama_invalid(_state(cfg, errors, resource))
            record["Id"] = row.rid
            _check_duplicates(s, resource, record, cfg)
            s.replace(table, row.seq, new_row(resource, record))
        if cfg.put_status == 204:
            return Response(status_code=204)
        return json_response(record, cfg.put_status)

    def delete(item_id: str, request: Request) -> Response:
        cfg = _config(request)
        with ctx(request).store.session(write=True) as s:
            row = s.get(table, rid=item_id)
            if row is None:
                raise facturama_message(404, NOT_FOUND)
            s.delete(table, row.seq)
        if cfg.delete_status == 204:
            return Response(status_code=204)
        return json_response(row.body, cfg.delete_status)

    def delete_by_query(request: Request) -> Response:
        """The old .NET SDK deletes with ``DELETE /client/?id={id}``."""
        item_id = request.query_params.get("id")
        if not item_id:
            raise facturama_message(405, "The requested resource does not support http method 'DELETE'.")
        return delete(item_id, request)

    router.add_api_route(one, list_first, methods=["GET"], name=f"{resource.singular}_list_first")
    router.add_api_route(one, create, methods=["POST"], name=f"{resource.singular}_create")
    router.add_api_route(one, delete_by_query, methods=["DELETE"], name=f"{resource.singular}_delete_q")
    router.add_api_route(many, list_paged, methods=["GET"], name=f"{resource.plural}_page")
    router.add_api_route(one + "/{item_id}", get_one, methods=["GET"], name=f"{resource.singular}_get")
    router.add_api_route(one + "/{item_id}", update, methods=["PUT"], name=f"{resource.singular}_update")
    router.add_api_route(one + "/{item_id}", delete, methods=["DELETE"], name=f"{resource.singular}_delete")


for _resource in RESOURCES.values():
    _make_routes(_resource)
