"""FacturaDirecta REST reads and writes inside one store session, shared by the routes and the seeder.

Every write goes through ``save`` or ``archive``, which also append the activity record (activity.md@03f4cd9:
``inserted``, ``updated`` with a subtype, ``archived`` = deleted, ``unarchived``), so the feed sees every
change in the order it was made: the timestamp is read from the sandbox clock while the session holds the
store lock, so activity ids and timestamps grow together.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from include.sandbox import jsonio
from include.sandbox.models import facturadirecta_rest as model
from include.sandbox.models.facturadirecta_rest import ACTIVITY_TABLE, CUSTOM_FIELDS_TABLE, Kind
from include.sandbox.store import NewRow, Row, Session, Where

DESCRIPTIONS = {
    "inserted": "Ha creado",
    "updated": "Ha modificado",
    "archived": "Ha borrado",
    "unarchived": "Ha recuperado",
}
_ARTICLES = {
    "contact": "el contacto",
    "product": "el producto",
    "estimate": "el presupuesto",
    "customField": "el campo personalizado",
}


def definitions(s: Session, company: str) -> dict[str, dict[str, Any]]:
    """The company's custom-field definitions by id, archived ones included."""
    rows = s.select(CUSTOM_FIELDS_TABLE, Where(CUSTOM_FIELDS_TABLE).eq("k1", company))
    return {row.body["id"]: row.body for row in rows}


def live(s: Session, kind: Kind, company: str, rid: str) -> Row | None:
    """A record of the company that is not deleted (another company's id is as unknown as a missing one)."""
    row = s.get(kind.table, rid=rid)
    return (
        row
        if row is not None and row.body.get("_company") == company and not row.body.get("archived")
        else None
    )


def any_state(s: Session, kind: Kind, company: str, rid: str) -> Row | None:
    row = s.get(kind.table, rid=rid)
    return row if row is not None and row.body.get("_company") == company else None


def next_account(s: Session, company: str, facet: str, count: int = 1) -> str:
    """The company's next default account: ``4300001``, ``4300002``… (contacts.md example ``4300001``);
    with ``count`` reserves that many and returns the first."""
    group = {"client": "430", "provider": "400", "employee": "465"}[facet]
    key = f"facturadirecta:rest:account:{company}:{facet}"
    first = int(s.meta(key, "0") or 0) + 1
    s.set_meta(key, str(first + count - 1))
    return f"{group}{first:04d}"


def next_number(s: Session, company: str, series: str, year: str, taken: Callable[[str], bool]) -> str:
    """Automatic numbering per series and year (estimates.md@afc30cc), skipping numbers taken by hand."""
    key = f"facturadirecta:rest:number:{company}:{series}:{year}"
    while True:
        candidate = model.format_number(year, s.next_counter(key))
        if not taken(candidate):
            return candidate


def bump_number(s: Session, company: str, series: str, doc_number: str) -> None:
    """A hand-chosen ``YYYY/NNNN`` moves the counter past it."""
    parsed = model.number_of(doc_number)
    if parsed is None:
        return
    key = f"facturadirecta:rest:number:{company}:{series}:{parsed[0]}"
    if int(s.meta(key, "0") or 0) < parsed[1]:
        s.set_meta(key, str(parsed[1]))


def doc_number_taken(
    s: Session, kind: Kind, company: str, series: str, doc_number: str, except_rid: str | None = None
) -> bool:
    where = (
        Where(kind.table)
        .eq("k1", company)
        .json_eq("$.main.series", series)
        .json_eq("$.main.docNumber", doc_number)
    )
    return any(row.rid != except_rid for row in s.select(kind.table, where, limit=2))


def record_activity(
    s: Session,
    company: str,
    now_us: int,
    type_: str,
    *,
    subtype: str | None = None,
    kind_name: str,
    doc_id: str,
    title: str,
    archived: bool,
    username: str,
    request: dict[str, Any] | None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one activity record; ``k2`` documentType, ``k3`` type, ``created`` the timestamp."""
    article = _ARTICLES.get(kind_name, kind_name)
    verb = "Ha modificado las etiquetas de" if subtype == "updateTags" else DESCRIPTIONS.get(type_, type_)
    body = {
        "type": type_,
        "subtype": subtype,
        "username": username,
        "description": f"{verb} {article} {title}".strip(),
        "document": {"id": doc_id, "type": kind_name, "title": title, "archived": archived},
        "request": request,
        "details": details or {},
    }
    row = NewRow(
        body=body, rid=f"act:{s.next_seq(ACTIVITY_TABLE)}", k1=company, k2=kind_name, k3=type_, created=now_us
    )
    return s.insert(ACTIVITY_TABLE, [row])[0]


def title_of(kind: Kind, main: dict[str, Any]) -> str:
    return model.estimate_title(main) if kind is model.ESTIMATE else str(main.get("title") or "")


def save(
    s: Session,
    kind: Kind,
    company: str,
    rid: str,
    body: dict[str, Any],
    now_us: int,
    *,
    previous: Row | None,
    username: str,
    request: dict[str, Any] | None,
    subtype: str | None = None,
    details: dict[str, Any] | None = None,
) -> tuple[int, int]:
    """Insert (``previous`` None) or replace a record and log it; returns ``(created, modified)``."""
    body = {**body, "_company": company}
    created = previous.created if previous is not None and previous.created is not None else now_us
    row = model.new_row(kind, rid, company, body, created, now_us)
    if previous is None:
        s.insert(kind.table, [row])
    else:
        s.replace(kind.table, previous.seq, row)
    record_activity(
        s,
        company,
        now_us,
        "inserted" if previous is None else "updated",
        subtype=subtype,
        kind_name=kind.name,
        doc_id=rid,
        title=title_of(kind, body["main"]),
        archived=bool(body.get("archived")),
        username=username,
        request=request,
        details=details,
    )
    return created, now_us


def save_many(
    s: Session,
    kind: Kind,
    company: str,
    records: list[tuple[str, dict[str, Any]]],
    now_us: int,
    *,
    username: str,
    request: dict[str, Any] | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Bulk ``save`` of new records (seeding): two ``executemany`` inserts, records then their activity."""
    rows, events = [], []
    start = s.next_seq(ACTIVITY_TABLE)
    for i, (rid, body) in enumerate(records):
        body = {**body, "_company": company}
        rows.append(model.new_row(kind, rid, company, body, now_us, now_us))
        title = title_of(kind, body["main"])
        events.append(
            NewRow(
                body={
                    "type": "inserted",
                    "subtype": None,
                    "username": username,
                    "description": f"{DESCRIPTIONS['inserted']} {_ARTICLES[kind.name]} {title}".strip(),
                    "document": {"id": rid, "type": kind.name, "title": title, "archived": False},
                    "request": request,
                    "details": details or {},
                },
                rid=f"act:{start + i}",
                k1=company,
                k2=kind.name,
                k3="inserted",
                created=now_us,
            )
        )
    s.insert(kind.table, rows)
    s.insert(ACTIVITY_TABLE, events)


def set_archived(
    s: Session,
    kind: Kind,
    company: str,
    row: Row,
    archived: bool,
    now_us: int,
    *,
    username: str,
    request: dict[str, Any] | None,
) -> None:
    """Delete (``archived``) or recover a record: it keeps its id and history; lists no longer show it."""
    body = {**row.body, "archived": archived}
    s.replace(kind.table, row.seq, model.new_row(kind, row.rid, company, body, row.created or now_us, now_us))
    record_activity(
        s,
        company,
        now_us,
        "archived" if archived else "unarchived",
        kind_name=kind.name,
        doc_id=row.rid,
        title=title_of(kind, body["main"]),
        archived=archived,
        username=username,
        request=request,
    )


def select_ordered(s: Session, table: str, where: Where, order: str, limit: int, offset: int) -> list[Row]:
    """Like ``Session.select`` with an ORDER BY built by the caller from a whitelist (never request text)."""
    cursor = s.conn.execute(
        f"SELECT seq, rid, body, created, modified FROM {table}{where.sql()} ORDER BY {order} LIMIT ? OFFSET ?",
        (*where.params, limit, offset),
    )
    return [Row(seq=r[0], rid=r[1], body=jsonio.loads(r[2]), created=r[3], modified=r[4]) for r in cursor]
