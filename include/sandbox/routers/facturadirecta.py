"""FacturaDirecta classic XML API routes: clients, products, estimates (facturadirecta-api.md, seed 003).

``/api/{resource}.xml`` lists (GET), creates (POST) and returns the empty template (PUT);
``/api/{resource}/{id}.xml`` reads, partially updates and deletes. Bodies are parsed hardened;
responses are ``application/xml; charset=UTF-8`` with the XML declaration.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from include.sandbox.auth import facturadirecta_auth
from include.sandbox.config import FacturaDirectaConfig
from include.sandbox.context import ApiContext, ctx, raw_body
from include.sandbox.errors import XML, fd_invalid, fd_status
from include.sandbox.models import facturadirecta as model
from include.sandbox.models.facturadirecta import CLIENTS, ESTIMATES, PRODUCTS, InputError, Resource
from include.sandbox.store import Session, Where
from include.sandbox.taxids import normalise_tax_code
from include.sandbox.xmlio import XmlInputError, document, list_document, parse, read, status_document


def estimates_available(request: Request) -> None:
    """§9: with ``estimates_available`` off every estimates route answers the unknown-route 404."""
    cfg = ctx(request).config
    assert isinstance(cfg, FacturaDirectaConfig)
    path = request.url.path
    if not cfg.estimates_available and (
        path.startswith("/api/estimates/") or path.startswith("/api/estimates.")
    ):
        raise fd_status(404)


router = APIRouter(
    prefix="/api",
    tags=["facturadirecta"],
    dependencies=[Depends(estimates_available), Depends(facturadirecta_auth)],
)


def xml_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status_code=status, media_type=XML)


def _config(request: Request) -> FacturaDirectaConfig:
    cfg = ctx(request).config
    assert isinstance(cfg, FacturaDirectaConfig)
    return cfg


def defined_labels(s: Session, resource: Resource) -> list[str]:
    return [name for _, _, name, _ in s.definitions("facturadirecta", resource.plural)]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise fd_invalid(f"El parámetro {name} debe ser un número entero no negativo") from None
    if value < 0:
        raise fd_invalid(f"El parámetro {name} debe ser un número entero no negativo")
    return value


def _filters(resource: Resource, request: Request, cfg: FacturaDirectaConfig) -> Where:
    q = request.query_params
    where = Where(resource.table)
    if q.get("term", "").strip():
        where.contains(q["term"].strip())
    if resource is CLIENTS:
        if "taxCode" in q:
            where.eq("k1", normalise_tax_code(q["taxCode"]))
        if "code" in q:
            where.eq("k3", q["code"])
        if q.get("email", "").strip():
            email = q["email"].strip().lower()
            if q.get("emailMatch") == "contains":
                where.raw("instr(coalesce(k2, ''), ?) > 0", [email])
            else:
                where.eq("k2", email)
        if "ownerEmail" in q and q["ownerEmail"].strip().lower() != cfg.owner_email.lower():
            where.never()
    if resource is PRODUCTS and "code" in q:
        where.eq("k1", q["code"])
    if resource is ESTIMATES:
        if q.get("client"):
            where.eq("k1", q["client"])
        if q.get("status"):
            where.eq("k2", q["status"].lower())
        for key, op in (("dateFrom", ">="), ("dateTo", "<=")):
            if q.get(key):
                where.compare("k3", op, q[key].replace("-", ""))
    try:
        pairs = model.custom_filters(q.multi_items(), cfg.custom_attribute_filter_max)
    except InputError as exc:
        raise fd_invalid(str(exc)) from None
    for name, value in pairs:
        where.indexed(f"ca:{name}", value)
    return where


def _lookups(s: Session) -> model.Lookups:
    def client(client_id: int) -> dict[str, Any] | None:
        row = s.get(CLIENTS.table, seq=client_id)
        return row.body if row else None

    def product_by_code(code: str) -> tuple[int, dict[str, Any]] | None:
        rows = s.select(PRODUCTS.table, Where(PRODUCTS.table).eq("k1", code), limit=1)
        return (rows[0].seq, rows[0].body) if rows else None

    def next_estimate_number(serial: str, explicit: int | None) -> int:
        key = f"facturadirecta:estimate-number:{serial}"
        last = int(s.meta(key, "0") or 0)
        number = explicit if explicit is not None else last + 1
        s.set_meta(key, str(max(last, number)))
        return number

    def company_codes() -> list[str]:
        return [r.body.get("companyCode") or "" for r in s.select(CLIENTS.table)]

    return model.Lookups(client, product_by_code, next_estimate_number, company_codes)


def _changes(resource: Resource, body: bytes) -> dict[str, Any]:
    try:
        element = parse(body, resource.singular)
        return model.coerce(resource.schema, read(element, resource.schema))
    except (XmlInputError, InputError) as exc:
        raise fd_invalid(str(exc)) from None


def save(
    context: ApiContext,
    resource: Resource,
    changes: dict[str, Any],
    seq: int | None = None,
    auto_code: bool = False,
) -> bytes:
    """Create (``seq`` None) or partially update one record in one transaction; returns its XML."""
    cfg = context.config
    assert isinstance(cfg, FacturaDirectaConfig)
    with context.store.session(write=True) as s:
        current = None
        if seq is not None:
            row = s.get(resource.table, seq=seq)
            if row is None:
                raise fd_status(404)
            current = row.body
        defined = defined_labels(s, resource)
        try:
            record = model.prepare(resource, current, changes, defined, cfg, _lookups(s), auto_code=auto_code)
        except InputError as exc:
            raise fd_invalid(str(exc)) from None
        code = record.get("productCode") if resource is PRODUCTS else None
        if code and cfg.unique_product_code:
            clash = s.select(PRODUCTS.table, Where(PRODUCTS.table).eq("k1", code), limit=2)
            if any(r.seq != seq for r in clash):
                raise fd_invalid(f"Ya existe un producto con el código '{code}'")
        if seq is None:
            seq = s.insert(resource.table, [model.new_row(resource, record)])[0]
        else:
            s.replace(resource.table, seq, model.new_row(resource, record))
    return document(
        resource.singular, model.schema_for(resource, defined), model.for_output(seq, record, defined)
    )


def _product_in_use(s: Session, product: dict[str, Any]) -> bool:
    code = product.get("productCode")
    if not code:
        return False
    return any(
        line.get("productCode") == code
        for row in s.select(ESTIMATES.table)
        for line in row.body.get("estimateLines") or []
    )


def _make_routes(resource: Resource) -> None:
    many = f"/{resource.plural}.xml"
    one = f"/{resource.plural}/{{item_id}}.xml"
    table = resource.table

    def list_records(request: Request) -> Response:
        cfg = _config(request)
        start = _int_param(request, "start", 0)
        limit = _int_param(request, "limit", cfg.limit_default)
        if limit > cfg.limit_max and cfg.limit_over_max == "error":
            raise fd_invalid(f"El parámetro limit no puede ser mayor que {cfg.limit_max}")
        limit = min(limit, cfg.limit_max)
        where = _filters(resource, request, cfg)
        with ctx(request).store.session() as s:
            total = s.count(table, where)
            rows = s.select(table, where, limit=limit, offset=start) if limit else []
            defined = defined_labels(s, resource)
        records = [model.for_output(r.seq, r.body, defined) for r in rows]
        schema = model.schema_for(resource, defined)
        return xml_response(list_document(resource.plural, resource.singular, schema, records, total))

    def get_record(item_id: str, request: Request) -> Response:
        with ctx(request).store.session() as s:
            row = s.get(table, seq=int(item_id)) if item_id.isdigit() else None
            if row is None:
                raise fd_status(404)
            defined = defined_labels(s, resource)
        schema = model.schema_for(resource, defined)
        return xml_response(document(resource.singular, schema, model.for_output(row.seq, row.body, defined)))

    def create(request: Request, body: bytes = Depends(raw_body)) -> Response:
        cfg = _config(request)
        auto = request.query_params.get("autoCreateCompanyCode", "").lower() == "true"
        xml = save(ctx(request), resource, _changes(resource, body), auto_code=auto)
        return xml_response(xml, cfg.create_status)

    def template(request: Request) -> Response:
        """``PUT /api/clients.xml``: every element, empty; one customAttribute per defined label."""
        with ctx(request).store.session() as s:
            defined = defined_labels(s, resource)
        schema = model.schema_for(resource, defined)
        return xml_response(
            document(resource.singular, schema, model.template_record(defined), template=True)
        )

    def update(item_id: str, request: Request, body: bytes = Depends(raw_body)) -> Response:
        if not item_id.isdigit():
            raise fd_status(404)
        auto = request.query_params.get("autoCreateCompanyCode", "").lower() == "true"
        with ctx(request).store.session() as s:
            if s.get(table, seq=int(item_id)) is None:
                raise fd_status(404)
        return xml_response(
            save(ctx(request), resource, _changes(resource, body), int(item_id), auto_code=auto)
        )

    def delete(item_id: str, request: Request) -> Response:
        cfg = _config(request)
        with ctx(request).store.session(write=True) as s:
            row = s.get(table, seq=int(item_id)) if item_id.isdigit() else None
            if row is None:
                raise fd_status(404)
            if (
                resource is PRODUCTS
                and cfg.product_delete_in_use == "conflict"
                and _product_in_use(s, row.body)
            ):
                raise fd_invalid("El producto está en uso en algún presupuesto", status=409, code="CONFLICT")
            s.delete(table, row.seq)
        return xml_response(status_document(200))

    router.add_api_route(many, list_records, methods=["GET"], name=f"{resource.plural}_list")
    router.add_api_route(many, create, methods=["POST"], name=f"{resource.plural}_create")
    router.add_api_route(many, template, methods=["PUT"], name=f"{resource.plural}_template")
    router.add_api_route(one, get_record, methods=["GET"], name=f"{resource.plural}_get")
    router.add_api_route(one, update, methods=["PUT"], name=f"{resource.plural}_update")
    router.add_api_route(one, delete, methods=["DELETE"], name=f"{resource.plural}_delete")


# A one-page PDF: enough for a client to check the content type and save the bytes.
MINIMAL_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def _estimate_exists(request: Request, item_id: str) -> None:
    with ctx(request).store.session() as s:
        if not item_id.isdigit() or s.get(ESTIMATES.table, seq=int(item_id)) is None:
            raise fd_status(404)


@router.get("/estimates/send/{item_id}.xml")
def send_estimate(item_id: str, request: Request) -> Response:
    """§9: e-mails the estimate to its client (a GET, unlike invoices); here it only answers 200."""
    _estimate_exists(request, item_id)
    return xml_response(status_document(200))


@router.get("/estimates/{item_id}.pdf")
def estimate_pdf(item_id: str, request: Request) -> Response:
    _estimate_exists(request, item_id)
    return Response(MINIMAL_PDF, media_type="application/pdf")


for _resource in (CLIENTS, PRODUCTS, ESTIMATES):
    _make_routes(_resource)
