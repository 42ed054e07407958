"""FacturaDirecta REST/JSON "API pública" routes (facturadirecta-rest-api.md §2-§11).

``/api/profile``, ``/api/{companyId}/apiKeyInfo``, ``settings/taxes/{sales,purchases}``, ``contacts``,
``products``, ``estimates`` (list, get, create, full-replace PUT, ``PUT …/tags``, DELETE = archive),
``customFields`` (list, get, create, PUT, DELETE = archive, ``POST …/restore``) and ``activity``.
Authentication, scopes, rate limits and idempotency happen before, in ``fd_rest_gate``; every write logs
activity through ``fd_rest_store``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import date
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox import fd_rest_store as db
from include.sandbox import fd_rest_webhooks, jsonio
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ctx, raw_body
from include.sandbox.fd_rest_errors import JSON, Problems, conflict, not_found, plan_limit, validation
from include.sandbox.fd_rest_gate import companies
from include.sandbox.fd_rest_runtime import RestRuntime
from include.sandbox.models import facturadirecta_rest as model
from include.sandbox.models import facturadirecta_rest_totals as totals
from include.sandbox.models.facturadirecta_rest import (
    ACTIVITY_TABLE,
    CONTACT,
    CUSTOM_FIELDS_TABLE,
    ESTIMATE,
    PLANS,
    PRODUCT,
    Kind,
)
from include.sandbox.store import NewRow, Row, Session, Where

router = APIRouter(prefix="/api", tags=["facturadirecta-rest"])

PAGING = {"offset", "limit"}
DATE_FILTERS = {"minCreationDate", "maxCreationDate", "minModificationDate", "maxModificationDate"}
TAG_FILTERS = {"allTheseTags", "anyOfTheseTags", "hasTags"}
CURSOR_SECRET = b"facturadirecta-rest-sandbox-cursor"


# -- request helpers -------------------------------------------------------------------------------


def _cfg(request: Request) -> FacturaDirectaConfig:
    cfg = ctx(request).config
    assert isinstance(cfg, FacturaDirectaConfig)
    return cfg


def _runtime(request: Request) -> RestRuntime:
    runtime: RestRuntime = request.app.state.rest
    return runtime


def _who(request: Request) -> dict[str, Any]:
    """Activity ``username`` and ``request`` of this call (an API key writes as the account owner)."""
    client = request.client.host if request.client else None
    return {
        "username": _cfg(request).owner_email,
        "request": {"ip": client, "userAgent": request.headers.get("user-agent")},
    }


def rest_json(payload: Any, status: int = 200) -> Response:
    return Response(jsonio.dumps(model.js(payload)).encode(), status_code=status, media_type=JSON)


def _payload(body: bytes) -> Any:
    try:
        return jsonio.loads(body) if body.strip() else None
    except ValueError as exc:
        raise validation(
            [{"path": "", "message": f"Unexpected token in JSON body: {exc}", "code": "invalid_json"}]
        ) from None


class Query:
    """Query parameters of one call: unknown names are a 400 (``rest_unknown_query``), values checked."""

    def __init__(self, request: Request, allowed: set[str]) -> None:
        self.params = request.query_params
        self.p = Problems()
        if _cfg(request).rest_unknown_query == "error":
            for name in sorted(set(self.params) - allowed):
                self.p.add(name, f"unknown query parameter '{name}'", "additional_property")
            self.p.check()

    def text(self, name: str) -> str | None:
        value = self.params.get(name)
        return value if value not in (None, "") else None

    def many(self, name: str) -> list[str]:
        """Repeated parameters and comma-separated values alike."""
        return [
            part.strip() for value in self.params.getlist(name) for part in value.split(",") if part.strip()
        ]

    def integer(self, name: str, default: int, low: int, high: int | None = None) -> int:
        raw = self.params.get(name)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            self.p.add(name, "must be integer", "invalid_type")
            return default
        if value < low or (high is not None and value > high):
            self.p.add(
                name, f"must be >= {low}" + (f" and <= {high}" if high is not None else ""), "out_of_range"
            )
            return default
        return value

    def flag(self, name: str) -> bool | None:
        raw = self.params.get(name)
        if raw in (None, ""):
            return None
        if raw not in ("true", "false"):
            self.p.add(name, "must be boolean", "invalid_type")
            return None
        return raw == "true"

    def instant(self, name: str) -> int | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return model.parse_iso_ms(raw)
        except ValueError:
            self.p.add(name, "must be a date-time YYYY-MM-DDTHH:mm:ss.sssZ", "invalid_date")
            return None

    def day(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            model.parse_day(raw)
        except ValueError:
            self.p.add(name, "must be an existing date (YYYY-MM-DD)", "invalid_date")
            return None
        return raw

    def number(self, name: str) -> Decimal | None:
        raw = self.text(name)
        if raw is None:
            return None
        try:
            return Decimal(raw)
        except ArithmeticError:
            self.p.add(name, "must be number", "invalid_type")
            return None


def _dates(q: Query, where: Where) -> None:
    for name, column, op in (
        ("minCreationDate", "created", ">="),
        ("maxCreationDate", "created", "<="),
        ("minModificationDate", "modified", ">="),
        ("maxModificationDate", "modified", "<="),
    ):
        value = q.instant(name)
        if value is not None:
            where.compare(column, op, value)


def _tags(q: Query, where: Where, table: str) -> None:
    for tag in q.many("allTheseTags"):
        where.indexed("tag", tag)
    anyof = q.many("anyOfTheseTags")
    if anyof:
        marks = ",".join("?" * len(anyof))
        where.raw(
            f"seq IN (SELECT seq FROM idx WHERE tbl = ? AND name = 'tag' AND value IN ({marks}))",
            [table, *anyof],
        )
    has = q.flag("hasTags")
    if has is not None:
        where.raw(
            f"seq {'' if has else 'NOT '}IN (SELECT seq FROM idx WHERE tbl = ? AND name = 'tag')", [table]
        )


def _order(q: Query, columns: dict[str, str], default: str) -> str:
    """``sortBy`` (repeatable, ``-`` for descending) from a whitelist of SQL expressions."""
    parts = []
    for value in q.many("sortBy"):
        descending = value.startswith("-")
        column = columns.get(value.lstrip("-"))
        if column is None:
            q.p.add(
                "sortBy",
                f"must be one of {', '.join(sorted(columns))} (optionally prefixed by -)",
                "invalid_enum",
            )
            continue
        parts.append(f"{column}{' DESC' if descending else ''}")
    return ", ".join(parts) + ", seq" if parts else default


def _page(
    s: Session, table: str, where: Where, order: str, q: Query, cfg: FacturaDirectaConfig
) -> tuple[dict[str, int], list[Row]]:
    offset = q.integer("offset", 0, 0)
    limit = q.integer("limit", cfg.rest_limit_default, 1, 500)
    q.p.check()
    total = s.count(table, where)
    return {"offset": offset, "limit": limit, "total": total}, db.select_ordered(
        s, table, where, order, limit, offset
    )


# -- profile, key info, settings -------------------------------------------------------------------


@router.get("/profile")
def profile(request: Request) -> Response:
    """``profile.companies[].id`` (profile.md@35c7b58); an API key belongs to one company."""
    cfg = _cfg(request)
    company = companies(cfg)[request.state.fd_rest["company"]]
    return rest_json(
        {"profile": {"email": cfg.owner_email, "companies": [{"id": company.id, "name": company.name}]}}
    )


@router.get("/{company_id}/apiKeyInfo")
def api_key_info(company_id: str, request: Request) -> Response:
    company = companies(_cfg(request))[company_id]
    return rest_json({"scopes": sorted(company.scopes)})


@router.get("/{company_id}/settings/taxes/{side}")
def taxes(company_id: str, side: str, request: Request) -> Response:
    """Unpaged ``{items}``: the catalogue ids documents use, ``value`` base 1 (taxes.md@6f7d643)."""
    catalogue = {"sales": totals.SALES_TAXES, "purchases": totals.PURCHASE_TAXES}.get(side)
    if catalogue is None:
        raise not_found()
    return rest_json({"items": totals.catalogue_items(catalogue)})


# -- records: shared -------------------------------------------------------------------------------


def _render(
    s: Session,
    kind: Kind,
    row: Row,
    company: str,
    cfg: FacturaDirectaConfig,
    related: bool = True,
    defs: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    defs = defs if defs is not None else db.definitions(s, company)
    return model.envelope(
        kind,
        row.rid,
        row.body,
        row.created,
        row.modified,
        company,
        cfg,
        defs,
        related={} if related else None,
    )


def _list(
    request: Request,
    kind: Kind,
    company: str,
    allowed: set[str],
    filters: Any,
    columns: dict[str, str],
    default_order: str,
) -> Response:
    cfg = _cfg(request)
    q = Query(request, allowed | PAGING | {"sortBy"})
    where = Where(kind.table).eq("k1", company)
    filters(q, where)
    order = _order(q, columns, default_order)
    with ctx(request).store.session() as s:
        pagination, rows = _page(s, kind.table, where, order, q, cfg)
        defs = db.definitions(s, company)
        related = "related" in q.params
        items = [_render(s, kind, row, company, cfg, related, defs) for row in rows]
    return rest_json({"pagination": pagination, "items": items})


def _get(request: Request, kind: Kind, company: str, rid: str) -> Response:
    cfg = _cfg(request)
    Query(request, {"related"})
    with ctx(request).store.session() as s:
        row = db.any_state(s, kind, company, rid)
        if row is None or (row.body.get("archived") and cfg.rest_deleted_fetch == "404"):
            raise not_found()
        return rest_json(_render(s, kind, row, company, cfg))


def _put_tags(request: Request, kind: Kind, company: str, rid: str, body: bytes) -> Response:
    """``PUT …/{id}/tags {"tags": [...]}`` replaces the set only; activity ``updated``/``updateTags``."""
    payload = _payload(body)
    p = Problems()
    if not isinstance(payload, dict) or "tags" not in payload:
        p.add("tags", "must have required property 'tags'", "required")
    tags = model.read_tags((payload or {}).get("tags") if isinstance(payload, dict) else None, p)
    p.check()
    runtime = _runtime(request)
    with ctx(request).store.session(write=True) as s:
        row = db.live(s, kind, company, rid)
        if row is None:
            raise not_found()
        db.save(
            s,
            kind,
            company,
            rid,
            {**row.body, "tags": tags},
            runtime.now_us(),
            previous=row,
            subtype="updateTags",
            **_who(request),
        )
        fd_rest_webhooks.changed(ctx(request), s, kind, company, rid, "updated", row, tags_only=True)
        return rest_json(_render(s, kind, s.get(kind.table, rid=rid), company, _cfg(request)))  # type: ignore[arg-type]


def _archive(request: Request, kind: Kind, company: str, rid: str, blocker: Any = None) -> Response:
    with ctx(request).store.session(write=True) as s:
        row = db.live(s, kind, company, rid)
        if row is None:
            raise not_found()
        if blocker is not None:
            blocker(s, row)
        db.set_archived(s, kind, company, row, True, _runtime(request).now_us(), **_who(request))
        fd_rest_webhooks.changed(ctx(request), s, kind, company, rid, "archived", row)
    return rest_json({"result": True})


def _write(request: Request, kind: Kind, company: str, body: bytes, rid: str | None, build: Any) -> Response:
    """Create (``rid`` None) or replace one record: ``build(s, sent, previous, problems)`` returns the main."""
    cfg = _cfg(request)
    p = Problems()
    sent = model.read_envelope(_payload(body), kind, p, creating=rid is None)
    if rid is not None and sent.uuid is not None and sent.uuid != rid:
        p.add("content.uuid", "must be the id of the path", "invalid")
    runtime = _runtime(request)
    with ctx(request).store.session(write=True) as s:
        previous = None
        if rid is not None:
            previous = db.live(s, kind, company, rid)
            if previous is None:
                raise not_found()
        main = build(s, sent, previous, p)
        p.check()
        if rid is None:
            rid = sent.uuid or model.new_id(kind.prefix)
            if sent.uuid is not None and s.get(kind.table, rid=sent.uuid) is not None:
                raise conflict(f"A {kind.name} with uuid {sent.uuid} already exists", "content.uuid")
        payload = _payload(body)
        tags = sent.tags if "tags" in payload or previous is None else previous.body.get("tags", [])
        stored = {"main": main, "tags": tags, "archived": False}
        db.save(s, kind, company, rid, stored, runtime.now_us(), previous=previous, **_who(request))
        action = "created" if previous is None else "updated"
        fd_rest_webhooks.changed(ctx(request), s, kind, company, rid, action, previous)
        response = _render(s, kind, s.get(kind.table, rid=rid), company, cfg)  # type: ignore[arg-type]
    return rest_json(response, cfg.rest_create_status if previous is None else 200)


def _plan(request: Request) -> dict[str, int | None]:
    return PLANS[request.state.fd_rest["plan"]]


# -- contacts --------------------------------------------------------------------------------------

CONTACT_FILTERS = {
    "search",
    "fiscalId",
    "vatEU",
    "externalId",
    "phone",
    "country",
    "isClient",
    "isProvider",
    "isEmployee",
    "related",
    *TAG_FILTERS,
}
FACET_NAMES = {"client": "clientes", "employee": "empleados"}


def _contact_filters(modification_filters: bool) -> Any:
    def apply(q: Query, where: Where) -> None:
        if q.text("search"):
            where.contains(q.params["search"])
        if q.text("fiscalId"):
            where.eq("k2", model.normalise_fiscal_id(q.params["fiscalId"]))
        if q.text("externalId"):
            where.eq("k3", q.params["externalId"])
        for name in ("vatEU", "phone", "country"):
            if q.text(name):
                where.json_eq(f"$.main.{name}", q.params[name])
        for name, facet in (("isClient", "client"), ("isProvider", "provider"), ("isEmployee", "employee")):
            value = q.flag(name)
            if value is not None:
                where.raw(f"(json_extract(body, '$.main.accounts.{facet}') IS NOT NULL) = ?", [int(value)])
        _tags(q, where, CONTACT.table)
        if modification_filters:
            _dates(q, where)

    return apply


def _contact_columns(cfg: FacturaDirectaConfig) -> dict[str, str]:
    columns = {"name": "search", "creationDate": "created"}
    if cfg.rest_contacts_modification_filters:
        columns["modificationDate"] = "modified"
    return columns


@router.get("/{company_id}/contacts")
def list_contacts(company_id: str, request: Request) -> Response:
    """§15.3: the date filters and ``sortBy=modificationDate`` are not documented for contacts; they are
    unknown parameters (400) unless ``rest_contacts_modification_filters``."""
    cfg = _cfg(request)
    extra = DATE_FILTERS if cfg.rest_contacts_modification_filters else set()
    return _list(
        request,
        CONTACT,
        company_id,
        CONTACT_FILTERS | extra,
        _contact_filters(cfg.rest_contacts_modification_filters),
        _contact_columns(cfg),
        "search, seq",
    )


@router.get("/{company_id}/contacts/{rid}")
def get_contact(company_id: str, rid: str, request: Request) -> Response:
    return _get(request, CONTACT, company_id, rid)


def _build_contact(request: Request, company: str) -> Any:
    cfg = _cfg(request)

    def build(s: Session, sent: model.Sent, previous: Row | None, p: Problems) -> dict[str, Any]:
        main = model.read_contact(
            sent.main,
            p,
            cfg,
            db.definitions(s, company),
            creating=previous is None,
            stored=previous.body["main"] if previous else None,
            next_account=lambda facet: db.next_account(s, company, facet),
        )
        if p.items:
            return main
        fiscal_id = main.get("fiscalId")
        if fiscal_id:
            clash = s.select(
                CONTACT.table, Where(CONTACT.table).eq("k1", company).eq("k2", fiscal_id), limit=2
            )
            if any(previous is None or row.rid != previous.rid for row in clash):
                raise conflict(f"Ya existe un contacto con el NIF {fiscal_id}", "content.main.fiscalId")
        if previous is None:
            _check_contact_caps(s, company, main, _plan(request))
        return main

    return build


def _check_contact_caps(s: Session, company: str, main: dict[str, Any], plan: dict[str, int | None]) -> None:
    """Creating a client (or employee) beyond the plan's cap: 403 ``plan_limit_exceeded`` (errors.md)."""
    for facet in sorted(model.facets(main) & {"client", "employee"}):
        cap = plan["clients" if facet == "client" else "employees"]
        if cap is None:
            continue
        where = (
            Where(CONTACT.table)
            .eq("k1", company)
            .raw(f"json_extract(body, '$.main.accounts.{facet}') IS NOT NULL", [])
        )
        if s.count(CONTACT.table, where) >= cap:
            raise plan_limit(
                f"Has alcanzado el límite de {FACET_NAMES[facet]} contratados ({cap}) de tu plan"
            )


@router.post("/{company_id}/contacts")
def create_contact(company_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, CONTACT, company_id, body, None, _build_contact(request, company_id))


@router.put("/{company_id}/contacts/{rid}")
def update_contact(company_id: str, rid: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, CONTACT, company_id, body, rid, _build_contact(request, company_id))


@router.put("/{company_id}/contacts/{rid}/tags")
def tag_contact(company_id: str, rid: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _put_tags(request, CONTACT, company_id, rid, body)


@router.delete("/{company_id}/contacts/{rid}")
def delete_contact(company_id: str, rid: str, request: Request) -> Response:
    """409 while the contact has documents (here: estimates, ``rest_contact_delete_with_estimates``)."""
    cfg = _cfg(request)

    def blocker(s: Session, row: Row) -> None:
        if cfg.rest_contact_delete_with_estimates != "conflict":
            return
        count = s.count(ESTIMATE.table, Where(ESTIMATE.table).eq("k1", company_id).eq("k2", row.rid))
        if count:
            raise conflict(f"No se puede borrar el contacto: tiene {count} presupuestos asociados")

    return _archive(request, CONTACT, company_id, rid, blocker)


# -- products --------------------------------------------------------------------------------------

PRODUCT_FILTERS = {
    "title",
    "sku",
    "externalId",
    "isSales",
    "isPurchases",
    "isDepreciable",
    "salesDescription",
    "purchasesDescription",
    *DATE_FILTERS,
}
PRODUCT_COLUMNS = {
    "name": "search",
    "title": "search",
    "sku": "k3",
    "creationDate": "created",
    "modificationDate": "modified",
}


def _product_filters(q: Query, where: Where) -> None:
    if q.text("title"):
        where.raw("instr(lower(json_extract(body, '$.main.title')), ?) > 0", [q.params["title"].lower()])
    if q.text("sku"):
        where.eq("k3", q.params["sku"])
    if q.text("externalId"):
        where.eq("k2", q.params["externalId"])
    for name, facet in (("isSales", "sales"), ("isPurchases", "purchases")):
        value = q.flag(name)
        if value is not None:
            where.raw(f"(json_extract(body, '$.main.{facet}') IS NOT NULL) = ?", [int(value)])
    depreciable = q.flag("isDepreciable")
    if depreciable is not None:
        where.raw("coalesce(json_extract(body, '$.main.purchases.depreciable'), 0) = ?", [int(depreciable)])
    for name, facet in (("salesDescription", "sales"), ("purchasesDescription", "purchases")):
        if q.text(name):
            where.raw(
                f"instr(lower(coalesce(json_extract(body, '$.main.{facet}.description'), '')), ?) > 0",
                [q.params[name].lower()],
            )
    _dates(q, where)


@router.get("/{company_id}/products")
def list_products(company_id: str, request: Request) -> Response:
    return _list(
        request, PRODUCT, company_id, PRODUCT_FILTERS, _product_filters, PRODUCT_COLUMNS, "search, seq"
    )


@router.get("/{company_id}/products/{rid}")
def get_product(company_id: str, rid: str, request: Request) -> Response:
    return _get(request, PRODUCT, company_id, rid)


def _build_product(request: Request, company: str) -> Any:
    cfg = _cfg(request)

    def build(s: Session, sent: model.Sent, previous: Row | None, p: Problems) -> dict[str, Any]:
        main = model.read_product(
            sent.main,
            p,
            cfg,
            stored=previous.body["main"] if previous else None,
            contact_exists=lambda rid: db.live(s, CONTACT, company, rid) is not None,
        )
        external = main.get("externalId")
        if external and not p.items:
            clash = s.select(
                PRODUCT.table, Where(PRODUCT.table).eq("k1", company).eq("k2", external), limit=2
            )
            if any(previous is None or row.rid != previous.rid for row in clash):
                raise conflict(
                    f"Ya existe un producto con el externalId {external}", "content.main.externalId"
                )
        return main

    return build


@router.post("/{company_id}/products")
def create_product(company_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, PRODUCT, company_id, body, None, _build_product(request, company_id))


@router.put("/{company_id}/products/{rid}")
def update_product(company_id: str, rid: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, PRODUCT, company_id, body, rid, _build_product(request, company_id))


@router.delete("/{company_id}/products/{rid}")
def delete_product(company_id: str, rid: str, request: Request) -> Response:
    """409 while a document line references the product in ``document`` (products.md@71a967a)."""

    def blocker(s: Session, row: Row) -> None:
        where = (
            Where(ESTIMATE.table)
            .eq("k1", company_id)
            .raw(
                "EXISTS (SELECT 1 FROM json_each(json_extract(body, '$.main.lines'))"
                " WHERE json_extract(value, '$.document') = ?)",
                [row.rid],
            )
        )
        count = s.count(ESTIMATE.table, where)
        if count:
            raise conflict(f"No se puede borrar el producto: se usa en {count} presupuestos")

    return _archive(request, PRODUCT, company_id, rid, blocker)


# -- estimates -------------------------------------------------------------------------------------

ESTIMATE_FILTERS = {
    "minDate",
    "maxDate",
    "series",
    "formattedSeries",
    "minNumber",
    "maxNumber",
    "contact",
    "hasContact",
    "minTotal",
    "maxTotal",
    "currency",
    "country",
    "emails",
    "related",
    *TAG_FILTERS,
    *DATE_FILTERS,
}
ESTIMATE_COLUMNS = {
    "date": "k3",
    "docNumber": "json_extract(body, '$.main.docNumber')",
    "total": "CAST(json_extract(body, '$.main.total') AS REAL)",
    "creationDate": "created",
    "modificationDate": "modified",
}


def _estimate_filters(q: Query, where: Where) -> None:
    """``formattedSeries`` and ``emails`` are accepted and not applied (their meaning is not documented)."""
    for name, op in (("minDate", ">="), ("maxDate", "<=")):
        value = q.day(name)
        if value is not None:
            where.compare("k3", op, value)
    if q.text("series"):
        where.json_eq("$.main.series", q.params["series"])
    for name, op in (("minNumber", ">="), ("maxNumber", "<=")):
        number = q.number(name)
        if number is not None:
            where.raw(
                f"CAST(substr(json_extract(body, '$.main.docNumber'), 6) AS INTEGER) {op} ?", [int(number)]
            )
    if q.text("contact"):
        where.eq("k2", q.params["contact"])
    has_contact = q.flag("hasContact")
    if has_contact is False:
        where.never()
    for name, op in (("minTotal", ">="), ("maxTotal", "<=")):
        number = q.number(name)
        if number is not None:
            where.raw(f"CAST(json_extract(body, '$.main.total') AS REAL) {op} ?", [float(number)])
    if q.text("currency"):
        where.json_eq("$.main.currency", q.params["currency"])
    if q.text("country"):
        where.raw(
            f"k2 IN (SELECT rid FROM {CONTACT.table} WHERE json_extract(body, '$.main.country') = ?)",
            [q.params["country"]],
        )
    _tags(q, where, ESTIMATE.table)
    _dates(q, where)


@router.get("/{company_id}/estimates")
def list_estimates(company_id: str, request: Request) -> Response:
    """Default order: date descending ("usually date descending for documents", pagination.md)."""
    return _list(
        request,
        ESTIMATE,
        company_id,
        ESTIMATE_FILTERS,
        _estimate_filters,
        ESTIMATE_COLUMNS,
        "k3 DESC, seq DESC",
    )


@router.get("/{company_id}/estimates/{rid}")
def get_estimate(company_id: str, rid: str, request: Request) -> Response:
    return _get(request, ESTIMATE, company_id, rid)


def _build_estimate(request: Request, company: str) -> Any:
    cfg = _cfg(request)
    runtime = _runtime(request)

    def build(s: Session, sent: model.Sent, previous: Row | None, p: Problems) -> dict[str, Any]:
        def contact(rid: str) -> dict[str, Any] | None:
            row = db.live(s, CONTACT, company, rid)
            return row.body["main"] if row else None

        def product(rid: str) -> dict[str, Any] | None:
            row = db.live(s, PRODUCT, company, rid)
            return row.body["main"] if row else None

        def today() -> date:
            return date.fromisoformat((model.iso(runtime.now_us()) or "")[:10])

        look = model.EstimateLookups(contact, product, today)
        stored = previous.body["main"] if previous else None
        main = model.read_estimate(sent.main, p, cfg, db.definitions(s, company), look, stored=stored)
        series, doc_number = model.read_numbering(sent.main, p, cfg)
        if p.items:
            return main
        _number(s, company, main, series, doc_number, previous)
        return main

    return build


def _number(
    s: Session,
    company: str,
    main: dict[str, Any],
    series: str | None,
    doc_number: str | None,
    previous: Row | None,
) -> None:
    """Automatic when omitted on a create; kept when a PUT omits it (inferred); a duplicate → 409."""
    stored = previous.body["main"] if previous else {}
    if previous is not None and series is None and doc_number is None:
        main["series"], main["docNumber"] = stored.get("series"), stored.get("docNumber")
        return
    series = series or stored.get("series") or "default"
    main["series"] = series
    except_rid = previous.rid if previous else None
    if doc_number is None:
        doc_number = db.next_number(
            s,
            company,
            series,
            main["date"][:4],
            lambda n: db.doc_number_taken(s, ESTIMATE, company, series, n, except_rid),
        )
    elif db.doc_number_taken(s, ESTIMATE, company, series, doc_number, except_rid):
        raise conflict(
            f"Ya existe un presupuesto {doc_number} en la serie {series}", "content.main.docNumber"
        )
    else:
        db.bump_number(s, company, series, doc_number)
    main["docNumber"] = doc_number


@router.post("/{company_id}/estimates")
def create_estimate(company_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, ESTIMATE, company_id, body, None, _build_estimate(request, company_id))


@router.put("/{company_id}/estimates/{rid}")
def update_estimate(company_id: str, rid: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _write(request, ESTIMATE, company_id, body, rid, _build_estimate(request, company_id))


@router.put("/{company_id}/estimates/{rid}/tags")
def tag_estimate(company_id: str, rid: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    return _put_tags(request, ESTIMATE, company_id, rid, body)


@router.delete("/{company_id}/estimates/{rid}")
def delete_estimate(company_id: str, rid: str, request: Request) -> Response:
    return _archive(request, ESTIMATE, company_id, rid)


# -- custom fields ---------------------------------------------------------------------------------

FIELD_COLUMNS = {
    "title": "lower(json_extract(body, '$.title'))",
    "creationDate": "created",
    "modificationDate": "modified",
}


def _field_row(s: Session, company: str, field_id: str) -> Row | None:
    return s.get(CUSTOM_FIELDS_TABLE, rid=f"{company}/{field_id}")


def _active_fields(s: Session, company: str) -> int:
    where = Where(CUSTOM_FIELDS_TABLE).eq("k1", company).raw("json_extract(body, '$.archived') = 0", [])
    return s.count(CUSTOM_FIELDS_TABLE, where)


def _save_field(
    request: Request, s: Session, company: str, body: dict[str, Any], previous: Row | None, activity: str
) -> Row:
    now = _runtime(request).now_us()
    row = NewRow(body=body, rid=f"{company}/{body['id']}", k1=company, created=now, modified=now)
    if previous is None:
        s.insert(CUSTOM_FIELDS_TABLE, [row])
    else:
        row.created = previous.created
        s.replace(CUSTOM_FIELDS_TABLE, previous.seq, row)
    db.record_activity(
        s,
        company,
        now,
        activity,
        kind_name="customField",
        doc_id=body["id"],
        title=body["title"],
        archived=bool(body.get("archived")),
        **_who(request),
    )
    saved = _field_row(s, company, body["id"])
    assert saved is not None
    return saved


def _field_json(row: Row) -> dict[str, Any]:
    return model.render_definition(row.body["id"], row.body, row.created, row.modified)


@router.get("/{company_id}/customFields")
def list_fields(company_id: str, request: Request) -> Response:
    """Offset paging; ``archived=false|true|all`` (default active only), ``docTypes`` OR, ``title`` fuzzy."""
    cfg = _cfg(request)
    q = Query(request, {"title", "docTypes", "archived", "sortBy", *PAGING, *DATE_FILTERS})
    where = Where(CUSTOM_FIELDS_TABLE).eq("k1", company_id)
    archived = q.text("archived") or "false"
    if archived not in ("false", "true", "all"):
        q.p.add("archived", "must be equal to one of the allowed values: false, true, all", "invalid_enum")
    elif archived != "all":
        where.raw("json_extract(body, '$.archived') = ?", [int(archived == "true")])
    if q.text("title"):
        where.raw("instr(lower(json_extract(body, '$.title')), ?) > 0", [q.params["title"].lower()])
    doc_types = q.many("docTypes")
    if doc_types:
        marks = ",".join("?" * len(doc_types))
        where.raw(
            f"EXISTS (SELECT 1 FROM json_each(json_extract(body, '$.docTypes')) WHERE value IN ({marks}))",
            doc_types,
        )
    _dates(q, where)
    order = _order(q, FIELD_COLUMNS, "seq")
    with ctx(request).store.session() as s:
        pagination, rows = _page(s, CUSTOM_FIELDS_TABLE, where, order, q, cfg)
    return rest_json({"pagination": pagination, "items": [_field_json(r) for r in rows]})


@router.get("/{company_id}/customFields/{field_id}")
def get_field(company_id: str, field_id: str, request: Request) -> Response:
    with ctx(request).store.session() as s:
        row = _field_row(s, company_id, field_id)
    if row is None:
        raise not_found()
    return rest_json({"content": _field_json(row)})


@router.post("/{company_id}/customFields")
def create_field(company_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
    """An existing id, even archived → 409; a 21st active field → 403 ``plan_limit_exceeded``."""
    p = Problems()
    definition = model.read_definition(_payload(body), p, creating=True)
    p.check()
    definition.setdefault("id", model.new_id("cfi_"))
    definition["archived"] = False
    with ctx(request).store.session(write=True) as s:
        if _field_row(s, company_id, definition["id"]) is not None:
            raise conflict(f"Ya existe el campo personalizado {definition['id']}", "id")
        if _active_fields(s, company_id) >= model.MAX_CUSTOM_FIELDS:
            raise plan_limit(f"Has alcanzado el límite de campos personalizados ({model.MAX_CUSTOM_FIELDS})")
        row = _save_field(request, s, company_id, definition, None, "inserted")
    return rest_json({"content": _field_json(row)}, _cfg(request).rest_create_status)


@router.put("/{company_id}/customFields/{field_id}")
def update_field(
    company_id: str, field_id: str, request: Request, body: bytes = Depends(raw_body)
) -> Response:
    """Replaces ``title`` and ``docTypes``; not allowed on an archived field (409, inferred status)."""
    p = Problems()
    definition = model.read_definition(_payload(body), p, creating=False)
    p.check()
    with ctx(request).store.session(write=True) as s:
        previous = _field_row(s, company_id, field_id)
        if previous is None:
            raise not_found()
        if previous.body.get("archived"):
            raise conflict(
                f"El campo personalizado {field_id} está archivado: restáuralo antes de modificarlo"
            )
        updated = {**previous.body, "title": definition["title"], "docTypes": definition["docTypes"]}
        row = _save_field(request, s, company_id, updated, previous, "updated")
    return rest_json({"content": _field_json(row)})


@router.delete("/{company_id}/customFields/{field_id}")
def delete_field(company_id: str, field_id: str, request: Request) -> Response:
    """Soft delete: ``archived: true``; stored values stay and the key stays valid on documents."""
    with ctx(request).store.session(write=True) as s:
        previous = _field_row(s, company_id, field_id)
        if previous is None:
            raise not_found()
        if not previous.body.get("archived"):
            _save_field(request, s, company_id, {**previous.body, "archived": True}, previous, "archived")
    return rest_json({"result": True})


@router.post("/{company_id}/customFields/{field_id}/restore")
def restore_field(company_id: str, field_id: str, request: Request) -> Response:
    """No body, idempotent; counts against the 20 active fields."""
    with ctx(request).store.session(write=True) as s:
        row = _field_row(s, company_id, field_id)
        if row is None:
            raise not_found()
        if row.body.get("archived"):
            if _active_fields(s, company_id) >= model.MAX_CUSTOM_FIELDS:
                raise plan_limit(
                    f"Has alcanzado el límite de campos personalizados ({model.MAX_CUSTOM_FIELDS})"
                )
            row = _save_field(request, s, company_id, {**row.body, "archived": False}, row, "unarchived")
    return rest_json({"content": _field_json(row)})


# -- activity --------------------------------------------------------------------------------------


def encode_cursor(company: str, seq: int, created: int) -> str:
    """Opaque to clients; signed so a value the API did not issue is a 400."""
    text = f"{seq}.{created}"
    sig = hmac.new(CURSOR_SECRET, f"{company}:{text}".encode(), hashlib.sha256).hexdigest()[:16]
    return base64.urlsafe_b64encode(f"{text}.{sig}".encode()).decode().rstrip("=")


def decode_cursor(company: str, cursor: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        seq, created, sig = raw.split(".")
        expected = hmac.new(CURSOR_SECRET, f"{company}:{seq}.{created}".encode(), hashlib.sha256).hexdigest()[
            :16
        ]
        if not hmac.compare_digest(sig, expected):
            raise ValueError(cursor)
        return int(seq), int(created)
    except (ValueError, UnicodeDecodeError):
        raise validation(
            [{"path": "cursor", "message": "invalid cursor", "code": "invalid_cursor"}]
        ) from None


def _activity_item(row: Row) -> dict[str, Any]:
    body = row.body
    return {
        "id": row.seq,
        "timestamp": model.iso(row.created),
        "type": body["type"],
        "subtype": body["subtype"],
        "username": body["username"],
        "description": body["description"],
        "document": body["document"],
        "request": body["request"],
        "details": body["details"],
    }


@router.get("/{company_id}/activity")
def activity(company_id: str, request: Request) -> Response:
    """Cursor paging (pagination.md@03f4cd9, activity.md@03f4cd9): ``limit`` 1-100 (50), ``sortBy``
    ``-timestamp`` (default) or ``timestamp``, ties by id; ``minDate``/``maxDate`` inclusive. A cursor is a
    position: with other filters or order the next page continues from it. ``nextCursor`` is null on the
    last page (``rest_activity_cursor_on_last_page`` issues one there too)."""
    cfg = _cfg(request)
    q = Query(
        request,
        {"limit", "cursor", "sortBy", "type", "username", "documentId", "documentType", "minDate", "maxDate"},
    )
    limit = q.integer("limit", 50, 1, 100)
    order = q.text("sortBy") or "-timestamp"
    if order not in ("-timestamp", "timestamp"):
        q.p.add("sortBy", "must be equal to one of the allowed values: -timestamp, timestamp", "invalid_enum")
    where = Where(ACTIVITY_TABLE).eq("k1", company_id)
    for name, column in (("type", "k3"), ("documentType", "k2")):
        values = q.many(name)
        if values:
            where.raw(f"{column} IN ({','.join('?' * len(values))})", values)
    usernames = q.many("username")
    if usernames:
        where.raw(f"json_extract(body, '$.username') IN ({','.join('?' * len(usernames))})", usernames)
    if q.text("documentId"):
        where.json_eq("$.document.id", q.params["documentId"])
    for name, op in (("minDate", ">="), ("maxDate", "<=")):
        raw = q.text(name)
        if raw is not None:
            try:
                where.compare("created", op, model.parse_iso_any(raw))
            except ValueError:
                q.p.add(name, "must be an ISO 8601 date-time", "invalid_date")
    ascending = order == "timestamp"
    cursor = q.text("cursor")
    if cursor is not None:
        seq, created = decode_cursor(company_id, cursor)
        op = ">" if ascending else "<"
        where.raw(f"(created {op} ? OR (created = ? AND seq {op} ?))", [created, created, seq])
    q.p.check()
    with ctx(request).store.session() as s:
        rows = s.select(ACTIVITY_TABLE, where, order="created" if ascending else "-created", limit=limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if rows and (has_more or cfg.rest_activity_cursor_on_last_page):
        next_cursor = encode_cursor(company_id, rows[-1].seq, rows[-1].created or 0)
    return rest_json(
        {"items": [_activity_item(r) for r in rows], "hasMore": has_more, "nextCursor": next_cursor}
    )
