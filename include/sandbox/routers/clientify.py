"""Clientify API v1 routes: contacts, companies, products, budgets, custom fields, users (clientify-api.md).

Every path ends with a slash; a GET without it is redirected (301) and anything else gets Django's
HTML 404 (handled in ``app.py``). The budgets path is configurable: ``ClientifyPaths`` maps the
configured path onto the canonical ``/v1/budgets/`` routes before routing.
"""

from __future__ import annotations

import copy
import sqlite3
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import clientify_webhooks, jsonio
from include.sandbox.auth import clientify_auth
from include.sandbox.clock import format_timestamp, parse_filter_datetime
from include.sandbox.config import ClientifyConfig
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import drf_detail, json_error, json_response
from include.sandbox.models import clientify as model
from include.sandbox.models import clientify_fields as fields
from include.sandbox.models.clientify import BUDGETS, COMPANIES, CONTACTS, PRODUCTS, Kind
from include.sandbox.models.clientify_render import Renderer
from include.sandbox.store import Where

CONTROL_PREFIX = "/_sandbox/"
CANONICAL_BUDGETS = "/v1/budgets/"
ORDERINGS = {
    "created": "created",
    "-created": "-created",
    "modified": "modified",
    "-modified": "-modified",
    "id": "seq",
    "-id": "-seq",
}
UNIQUE_DEFINITION = "The fields content_type, name must make a unique set."
RANGE_OPS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}

router = APIRouter(prefix="/v1", tags=["clientify"], dependencies=[Depends(clientify_auth)])


class ClientifyPaths:
    """ASGI layer (outermost): the configured budgets path -> ``/v1/budgets/``; the original is kept."""

    def __init__(self, app: Any, context: ApiContext) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(CONTROL_PREFIX):
            cfg = self.context.config
            assert isinstance(cfg, ClientifyConfig)
            path = scope["path"]
            routed = budgets_path(path, cfg.budgets_path)
            if not cfg.budgets_available and _under(routed, CANONICAL_BUDGETS):
                routed = "/~unrouted" + routed  # §11: an account without budgets: Django's HTML 404
            scope = {**scope, "path": routed, "sandbox.original_path": path}
        await self.app(scope, receive, send)


def _under(path: str, prefix: str) -> bool:
    return path == prefix.rstrip("/") or path.startswith(prefix)


def budgets_path(path: str, configured: str) -> str:
    configured = "/" + configured.strip("/") + "/"
    if configured == CANONICAL_BUDGETS:
        return path
    if _under(path, configured):
        return CANONICAL_BUDGETS.rstrip("/") + path[len(configured) - 1 :]
    if _under(path, CANONICAL_BUDGETS):
        return "/~unrouted" + path  # the canonical name was configured away
    return path


# -- helpers ---------------------------------------------------------------------------------------


def _config(request: Request) -> ClientifyConfig:
    cfg = ctx(request).config
    assert isinstance(cfg, ClientifyConfig)
    return cfg


def base_url(request: Request, cfg: ClientifyConfig) -> str:
    return cfg.public_base_url.rstrip("/") or f"{request.url.scheme}://{request.url.netloc}"


def renderer(request: Request, cfg: ClientifyConfig) -> Renderer:
    tz = cfg.timezone
    return Renderer(cfg, base_url(request, cfg), lambda micros: format_timestamp(micros, tz))


def _payload(body: bytes) -> Any:
    try:
        return jsonio.loads(body) if body.strip() else {}
    except ValueError as exc:
        raise drf_detail(400, f"JSON parse error - {exc}") from None


def _page_url(request: Request, cfg: ClientifyConfig, page: int) -> str:
    """The current list URL with ``page`` replaced (filters kept), absolute, like DRF's links."""
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "page"]
    position = next((i for i, (k, _) in enumerate(request.query_params.multi_items()) if k == "page"), 0)
    items.insert(min(position, len(items)), ("page", str(page)))
    path = request.scope.get("sandbox.original_path", request.url.path)
    return f"{base_url(request, cfg)}{path}?{urlencode(items)}"


def _paging(request: Request, cfg: ClientifyConfig) -> tuple[int, int]:
    raw_page = request.query_params.get("page", "1")
    try:
        page = int(raw_page)
    except ValueError:
        page = 1 if raw_page == "last" else 0
    if page < 1:
        raise drf_detail(404, "Invalid page.")
    try:
        size = int(request.query_params.get("page_size", ""))
    except ValueError:
        size = cfg.page_size_default
    size = cfg.page_size_default if size <= 0 else min(size, cfg.page_size_max)
    return page, size


def _filters(kind: Kind, request: Request, cfg: ClientifyConfig) -> Where:
    q = request.query_params
    where = Where(kind.table)
    for term in (q.get("query") or "").split():
        if kind is COMPANIES and cfg.company_query_matches_tax_id:
            where.raw(
                "(instr(search, ?) > 0 OR instr(coalesce(k1, ''), ?) > 0)",
                [term.lower(), model.normalise_tax_id(term) or ""],
            )
        else:
            where.contains(term)
    if kind in (CONTACTS, COMPANIES):
        if q.get("email"):
            where.indexed("@email", q["email"].strip().lower())
        if q.get("phone"):
            where.indexed("@phone", q["phone"].strip())
    if kind in (CONTACTS, BUDGETS) and q.get("status"):
        where.eq("k3", q["status"])
    if kind is PRODUCTS and "sku" in q:
        where.eq("k1", q["sku"])
    if kind is BUDGETS:
        for key, column, segment in (("contact", "k1", "contacts"), ("company", "k2", "companies")):
            if q.get(key):
                ident = model.ref_id(q[key], segment)
                where.eq(column, str(ident)) if ident is not None else where.never()
    errors: dict[str, list[str]] = {}
    formats = cfg.accepted_date_formats()
    for column in ("created", "modified"):
        if column == "modified" and cfg.modified_filter == "ignored":
            continue  # §3.1: an API that ignores the filter lists everything
        for op, sql_op in RANGE_OPS.items():
            key = f"{column}[{op}]"
            if key not in q:
                continue
            try:
                where.compare(column, sql_op, parse_filter_datetime(q[key], cfg.timezone, formats))
            except ValueError:
                if cfg.date_filter_invalid == "error":
                    errors[key] = ["Enter a valid date/time."]
    if errors:
        raise json_error(400, errors)
    for key, value in q.multi_items():
        if key.startswith("cf_") and len(key) > 3:
            where.indexed(f"cf:{key[3:]}", value)
    return where


# -- records ---------------------------------------------------------------------------------------


def _make_routes(kind: Kind) -> None:
    many = f"/{kind.name}/"
    one = f"/{kind.name}/{{item_id}}/"
    table = kind.table

    def list_records(request: Request) -> Response:
        cfg = _config(request)
        where = _filters(kind, request, cfg)
        order = ORDERINGS.get(request.query_params.get("ordering", ""), ORDERINGS[cfg.default_ordering])
        page, size = _paging(request, cfg)
        with ctx(request).store.session() as s:
            count = s.count(table, where)
            past_end = page > 1 and (page - 1) * size >= count
            if past_end and cfg.invalid_page == "404":
                raise drf_detail(404, "Invalid page.")  # DRF PageNumberPagination (§3.1)
            rows = (
                [] if past_end else s.select(table, where, order=order, limit=size, offset=(page - 1) * size)
            )
        render = renderer(request, cfg)
        return json_response(
            {
                "count": count,
                "next": _page_url(request, cfg, page + 1) if page * size < count else None,
                "previous": _page_url(request, cfg, page - 1) if page > 1 else None,
                "results": [render.render(kind, row) for row in rows],
            }
        )

    def get_record(item_id: str, request: Request) -> Response:
        cfg = _config(request)
        with ctx(request).store.session() as s:
            row = s.get(table, seq=int(item_id)) if item_id.isdigit() else None
        if row is None:
            raise drf_detail(404, "Not found.")
        return json_response(renderer(request, cfg).render(kind, row))

    def create(request: Request, body: bytes = Depends(raw_body)) -> Response:
        cfg, context = _config(request), ctx(request)
        payload = _payload(body)
        with context.store.session(write=True) as s:
            w = model.WriteContext.open(cfg, s, context.clock.tick)
            record = model.defaults(kind, cfg)
            errors = model.apply(kind, record, payload, w, creating=True)
            if errors:
                raise json_error(400, errors)
            tax_id = model.normalise_tax_id(record.get("taxpayer_identification_number"))
            if cfg.duplicate_tax_id_409 and tax_id and kind in (CONTACTS, COMPANIES):
                if s.count(table, Where(table).eq("k1", tax_id)):
                    noun = "Contact" if kind is CONTACTS else "Company"
                    raise drf_detail(409, f"{noun} with this taxpayer_identification_number already exists.")
            row = model.insert(kind, record, w)
            w.ids.flush()
        rendered = renderer(request, cfg).render(kind, row)
        clientify_webhooks.emit(context, kind, rendered, "saved", source="api")  # not echoed by default
        return json_response(rendered, 201)

    def update(item_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
        """PUT and PATCH alike: only the fields sent change (§8)."""
        cfg, context = _config(request), ctx(request)
        payload = _payload(body)
        with context.store.session(write=True) as s:
            row = s.get(table, seq=int(item_id)) if item_id.isdigit() else None
            if row is None:
                raise drf_detail(404, "Not found.")
            w = model.WriteContext.open(cfg, s, context.clock.tick)
            record = copy.deepcopy(row.body)
            errors = model.apply(kind, record, payload, w, creating=False)
            if errors:
                raise json_error(400, errors)
            row.body, row.modified = record, context.clock.tick()
            s.replace(table, row.seq, model.new_row(kind, record, row.created or row.modified, row.modified))
            w.ids.flush()
        rendered = renderer(request, cfg).render(kind, row)
        clientify_webhooks.emit(context, kind, rendered, "saved", source="api")  # not echoed by default
        return json_response(rendered)

    def delete(item_id: str, request: Request) -> Response:
        context = ctx(request)
        with context.store.session(write=True) as s:
            row = s.get(table, seq=int(item_id)) if item_id.isdigit() else None
            if row is None:
                raise drf_detail(404, "Not found.")
            s.delete(table, row.seq)
        if clientify_webhooks.notifies(context, "api"):
            before = renderer(request, _config(request)).render(kind, row)
            clientify_webhooks.emit(context, kind, before, "deleted", source="api")
        return Response(status_code=204)

    router.add_api_route(many, list_records, methods=["GET"], name=f"{kind.name}_list")
    router.add_api_route(many, create, methods=["POST"], name=f"{kind.name}_create")
    router.add_api_route(one, get_record, methods=["GET"], name=f"{kind.name}_get")
    router.add_api_route(one, update, methods=["PUT", "PATCH"], name=f"{kind.name}_update")
    router.add_api_route(one, delete, methods=["DELETE"], name=f"{kind.name}_delete")


for _kind in (CONTACTS, COMPANIES, PRODUCTS, BUDGETS):
    _make_routes(_kind)


# -- custom field definitions ----------------------------------------------------------------------


@router.get("/custom-fields/")
def list_custom_fields(request: Request) -> Response:
    """All definitions (``next`` null, as recorded), optionally ``?content_type=``; paged if configured."""
    cfg = _config(request)
    with ctx(request).store.session() as s:
        definitions = s.definitions("clientify")
    wanted = (
        fields.content_label(request.query_params.get("content_type", ""))
        if request.query_params.get("content_type")
        else None
    )
    results = [
        fields.render_definition(i, body, base_url(request, cfg))
        for i, label, _, body in definitions
        if wanted is None or label == wanted
    ]
    if not cfg.custom_fields_paged:
        return json_response({"count": len(results), "next": None, "previous": None, "results": results})
    page, size = _paging(request, cfg)
    if page > 1 and (page - 1) * size >= len(results) and cfg.invalid_page == "404":
        raise drf_detail(404, "Invalid page.")
    return json_response(
        {
            "count": len(results),
            "next": _page_url(request, cfg, page + 1) if page * size < len(results) else None,
            "previous": _page_url(request, cfg, page - 1) if page > 1 else None,
            "results": results[(page - 1) * size : page * size],
        }
    )


def save_definition(
    context: ApiContext, payload: Any, def_id: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Create (``def_id`` None) or partially update a definition; raises the DRF 400 on bad input."""
    if not isinstance(payload, dict):
        raise json_error(400, {"non_field_errors": ["Invalid data. Expected a dictionary."]})
    with context.store.session(write=True) as s:
        current = None
        if def_id is not None:
            found = [d for d in s.definitions("clientify") if d[0] == def_id]
            if not found:
                raise drf_detail(404, "Not found.")
            current = found[0][3]
        body, errors = fields.definition_body(payload, current)
        if errors:
            raise json_error(400, errors)
        taken = any(
            d[0] != def_id and (d[1], d[2]) == (body["label"], body["name"])
            for d in s.definitions("clientify")
        )
        if taken:
            raise json_error(400, {"non_field_errors": [UNIQUE_DEFINITION]})
        try:
            if def_id is None:
                def_id = s.define("clientify", body["label"], body["name"], body)
            else:
                s.redefine("clientify", def_id, body["label"], body["name"], body)
        except sqlite3.IntegrityError:
            raise json_error(400, {"non_field_errors": [UNIQUE_DEFINITION]}) from None
    return def_id, body


@router.post("/custom-fields/")
def create_custom_field(request: Request, body: bytes = Depends(raw_body)) -> Response:
    cfg = _config(request)
    def_id, saved = save_definition(ctx(request), _payload(body))
    return json_response(fields.render_definition(def_id, saved, base_url(request, cfg)), 201)


@router.get("/custom-fields/{item_id}/")
def get_custom_field(item_id: str, request: Request) -> Response:
    cfg = _config(request)
    with ctx(request).store.session() as s:
        found = [d for d in s.definitions("clientify") if str(d[0]) == item_id]
    if not found:
        raise drf_detail(404, "Not found.")
    return json_response(fields.render_definition(found[0][0], found[0][3], base_url(request, cfg)))


@router.api_route("/custom-fields/{item_id}/", methods=["PUT", "PATCH"])
def update_custom_field(item_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    if not item_id.isdigit():
        raise drf_detail(404, "Not found.")
    def_id, saved = save_definition(ctx(request), _payload(body), int(item_id))
    return json_response(fields.render_definition(def_id, saved, base_url(request, _config(request))))


@router.delete("/custom-fields/{item_id}/")
def delete_custom_field(item_id: str, request: Request) -> Response:
    with ctx(request).store.session(write=True) as s:
        if not item_id.isdigit() or not s.undefine("clientify", int(item_id)):
            raise drf_detail(404, "Not found.")
    return Response(status_code=204)


# -- account ---------------------------------------------------------------------------------------


@router.get("/users/")
def list_users(request: Request) -> Response:
    """The one sandbox user: a cheap authenticated call for connection tests."""
    cfg = _config(request)
    user = {
        "url": f"{base_url(request, cfg)}/v1/users/{cfg.owner_id}/",
        "id": cfg.owner_id,
        "username": cfg.owner,
        "email": cfg.owner,
        "first_name": cfg.owner_name.split(" ")[0],
        "last_name": " ".join(cfg.owner_name.split(" ")[1:]),
        "is_active": True,
    }
    return json_response({"count": 1, "next": None, "previous": None, "results": [user]})


@router.get("/settings/my-account/")
def my_account(request: Request) -> Response:
    cfg = _config(request)
    account = {"id": 1, "company_name": "SANDBOX", "email": cfg.owner, "time_zone": cfg.timezone}
    return json_response({"count": 1, "next": None, "previous": None, "results": [account]})
