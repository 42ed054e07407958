"""The FastAPI app Airflow's API server mounts at ``/clientify-sync``: the sync status pages.

Server-rendered HTML (Jinja2, autoescaped: a customer named ``<script>`` is text), shown by Airflow's UI
in an iframe: a navigation entry (overview, records, conflicts, dead letters) and a tab on every DAG run
(the run page). Every route needs an authenticated Airflow user (the API server's JWT cookie or a
bearer token, checked by Airflow's own ``get_user``) who may read the DAG (``requires_access_dag``);
dismissing or retrying a dead letter needs edit access to it. Those two POSTs are the only writes.
The webhook receiver is mounted at ``/webhooks`` as a separate app (``clientify_sync.webhooks``):
its routes prove their sender themselves and share nothing with these pages but the ledger engine.

Three dependencies connect it to Airflow and are replaced in tests: ``get_viewer`` (who is asking and
which of our DAGs they may read / edit), ``get_view`` (the ledger, from the ``clientify_sync_state``
connection) and ``get_run_states`` (Airflow's state of each DAG run).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, cast
from urllib.parse import parse_qs, quote, urlencode, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException

from clientify_sync.ui import queries as Q
from clientify_sync.ui.reasons import BADGES
from clientify_sync.webhooks.receiver import create_receiver_app

log = logging.getLogger(__name__)

URL_PREFIX = "/clientify-sync"
WEBHOOKS_PATH = "/webhooks"  # under URL_PREFIX: the only paths to expose publicly
TEMPLATES = Path(__file__).parent / "templates"
ENGINE_TTL_S = 60.0  # how long a resolved ledger URL is trusted before the connection is read again
RunStates = Callable[[Iterable[tuple[str, str]]], dict[tuple[str, str], str]]


# -- who is asking ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Viewer:
    """The user behind a request and which of our DAGs they may read and edit.

    ``user`` is Airflow's user object when the request came through Airflow's auth (then every
    DAG-scoped check also runs Airflow's own ``requires_access_dag``); tests pass None.
    """

    name: str
    readable: frozenset[str]
    editable: frozenset[str] = frozenset()
    user: Any = field(default=None, compare=False, repr=False)

    def authorize(self, request: Request, dag_id: str, method: str = "GET") -> None:
        """Raise 403 unless the user may read (GET) or edit (PUT) this DAG."""
        allowed = self.readable if method == "GET" else self.editable
        if dag_id not in allowed:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"not allowed to {'read' if method == 'GET' else 'edit'} DAG {dag_id}",
            )
        if self.user is not None:
            from airflow.api_fastapi.core_api.security import requires_access_dag

            requires_access_dag(cast("Literal['GET', 'POST', 'PUT', 'DELETE']", method), param_dag_id=dag_id)(
                request, self.user
            )

    def scopes(self, dag_filter: str | None = None) -> list[tuple[str, str]]:
        """The (integration, entity) pairs this user may read, narrowed to one DAG when asked."""
        pairs = [s for s in enabled_scopes() if Q.dag_id_for(*s) in self.readable]
        if dag_filter:
            pairs = [s for s in pairs if Q.dag_id_for(*s) == dag_filter]
        return pairs


async def get_viewer(request: Request) -> Viewer:
    """Authenticate with Airflow (401 without a valid token), then list the readable / editable DAGs.

    Imported lazily: this module is loaded by every Airflow process that scans plugins, and only the
    API server needs its auth machinery.
    """
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    ours = {Q.dag_id_for(*s) for s in Q.all_scopes()}
    manager = get_auth_manager()
    readable = frozenset(manager.get_authorized_dag_ids(user=user, method="GET") & ours)
    if not readable:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "not allowed to read any clientify-sync DAG")
    editable = frozenset(manager.get_authorized_dag_ids(user=user, method="PUT") & readable)
    return Viewer(name=user.get_name(), readable=readable, editable=editable, user=user)


# -- the ledger --------------------------------------------------------------------------------------


class _ViewCache:
    """One ``LedgerView`` per process, rebuilt when the connection's URL changes (checked every minute)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.url: str | None = None
        self.view: Q.LedgerView | None = None
        self.checked = 0.0

    def get(self) -> Q.LedgerView:
        with self.lock:
            if self.view is None or time.monotonic() - self.checked > ENGINE_TTL_S:
                url = ledger_url()
                if url != self.url or self.view is None:
                    if self.view is not None:
                        self.view.engine.dispose()
                    self.view = open_view(url)
                    self.url = url
                self.checked = time.monotonic()
            return self.view


_views = _ViewCache()


def ledger_url() -> str:
    """The ledger URL exactly as the tasks resolve it (``StateLedgerHook``), from the API server's side.

    The task SDK's connection lookup works outside a task too: the API server's secrets backends are
    the ``AIRFLOW_CONN_*`` variables, then the metadata database.
    """
    from clientify_sync.hooks.state import StateLedgerHook

    return StateLedgerHook().get_url()


def open_view(url: str) -> Q.LedgerView:
    """A ``LedgerView`` on ``url``: the schema created or upgraded as the engine would, UI indexes added."""
    from clientify_sync.engine.ledger import create_ledger_engine, upgrade_schema
    from clientify_sync.engine.vocabulary import SyncOptions

    engine = create_ledger_engine(url)
    upgrade_schema(engine)
    Q.ensure_indexes(engine)
    return Q.LedgerView(engine, dead_letter_limit=SyncOptions().dead_letter_limit)


def get_view() -> Q.LedgerView:
    """The process's ``LedgerView`` (a dependency, so tests hand in their own ledger)."""
    return _views.get()


def airflow_run_states(keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Airflow's state of each (dag_id, run_id): the ledger knows when a run started, not that it failed."""
    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    keys = list(dict.fromkeys(keys))
    if not keys:
        return {}
    where = sa.or_(*[sa.and_(DagRun.dag_id == d, DagRun.run_id == r) for d, r in keys])
    with create_session() as session:
        rows = session.execute(sa.select(DagRun.dag_id, DagRun.run_id, DagRun.state).where(where)).all()
    return {(d, r): str(s.value if hasattr(s, "value") else s) for d, r, s in rows}


def get_run_states() -> RunStates:
    return airflow_run_states


def enabled_scopes() -> list[tuple[str, str]]:
    """Pairs of the integrations enabled in ``include/integrations.yaml`` (all when it cannot be read)."""
    try:
        from clientify_sync.integrations import load_integrations

        return Q.all_scopes(p.name for p in load_integrations().enabled_platforms)
    except Exception:  # noqa: BLE001 - a broken config must not take the status pages down
        return Q.all_scopes()


ViewerDep = Annotated[Viewer, Depends(get_viewer)]
ViewDep = Annotated[Q.LedgerView, Depends(get_view)]
RunStatesDep = Annotated[RunStates, Depends(get_run_states)]


# -- rendering ----------------------------------------------------------------------------------------


def _fmt_time(value: Any) -> str:
    if not value:  # None, "", or a missing report key (Jinja's Undefined)
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return str(value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"))


def _fmt_duration(seconds: Any) -> str:
    """``0.4`` -> ``400 ms``, ``75`` -> ``1 min 15 s``, ``7300`` -> ``2 h 1 min``."""
    if seconds is None:
        return "–"
    value = float(seconds)
    if value < 1:
        return f"{round(value * 1000)} ms"
    if value < 60:
        return f"{value:.1f} s" if value < 10 else f"{round(value)} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def _label(value: Any) -> str:
    return str(value or "").replace("_", " ")


_env = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True,
)  # fmt: skip
_env.filters.update(time=_fmt_time, label=_label, duration=_fmt_duration)
_env.globals.update(
    outcomes=Q.OUTCOMES, dag_id_for=Q.dag_id_for, inv_rtype=lambda entity: Q.RTYPES[(entity, Q.INVOICING)][0]
)
_env.globals.update(state_badge=lambda state: BADGES.get(state, _label(state)))


def _render(
    request: Request, template: str, viewer: Viewer, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    root = request.scope.get("root_path", "")

    def path(name: str, query: dict[str, Any] | None = None, **params: Any) -> str:
        # Ids and run ids come from the APIs and Airflow: percent-encoded, never taken as URL syntax.
        url = root + str(
            request.app.url_path_for(name, **{k: quote(str(v), safe="") for k, v in params.items()})
        )
        query = {k: v for k, v in (query or {}).items() if v not in (None, "")}
        return f"{url}?{urlencode(query)}" if query else url

    def record_path(dag_id: str, side: str, rtype: str, rid: str) -> str:
        return path("record", dag_id=dag_id, side=side, rtype=rtype, rid=rid)

    html = _env.get_template(template).render(
        request=request, viewer=viewer, path=path, record_path=record_path, here=_here(request), **context
    )
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})


def _here(request: Request) -> str:
    """This page's path and query, for the dead-letter forms to come back to."""
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(request: Request, target: str | None) -> str:
    """Only a path inside this app is a redirect target (no open redirect)."""
    root = request.scope.get("root_path", "") or URL_PREFIX
    parts = urlsplit(target or "")
    if target and not parts.scheme and not parts.netloc and parts.path.startswith(root + "/"):
        return target
    return root + "/dead-letters"


# -- the app ------------------------------------------------------------------------------------------


def create_app() -> FastAPI:
    """The status app; Airflow mounts it at ``URL_PREFIX`` (see ``clientify_sync.ui.plugin``)."""
    app = FastAPI(title="clientify-sync status", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, name="overview")
    def overview(
        request: Request, viewer: ViewerDep, view: ViewDep, run_states: RunStatesDep
    ) -> HTMLResponse:
        """Per integration × entity: last run, counts, watermark, dead letters, conflicts, health."""
        scopes = viewer.scopes()
        summaries = view.overview(scopes)
        keys = [(s.dag_id, s.last_run["run_id"]) for s in summaries if s.last_run]
        states = run_states(keys) if keys else {}
        if states:
            for s in summaries:
                if s.last_run:
                    s.run_state = states.get((s.dag_id, s.last_run["run_id"]))
                    s.health = Q.verdict(s, view.dead_letter_limit)
        integrations = list(dict.fromkeys(s.integration for s in summaries))
        return _render(request, "overview.html", viewer, summaries=summaries, integrations=integrations,
                       live=any(s.live for s in summaries), inboxes=view.inboxes(scopes))  # fmt: skip

    @app.get("/runs/{dag_id}/{run_id:path}", response_class=HTMLResponse, name="run")
    def run_page(
        request: Request, dag_id: str, run_id: str, viewer: ViewerDep, view: ViewDep, run_states: RunStatesDep,
        outcome: str | None = None, cursor: str | None = None,
    ) -> HTMLResponse:  # fmt: skip
        """The run report as tables and every record that did not end unchanged (live while running)."""
        scope = Q.scope_of(dag_id)
        if scope is None:
            # The tab shows on every DAG's runs; another DAG only learns this is not ours.
            return _render(request, "not_ours.html", viewer, dag_id=dag_id)
        viewer.authorize(request, dag_id)
        run = view.run(*scope, run_id)
        state = run_states([(dag_id, run_id)]).get((dag_id, run_id))
        items = view.run_items(*scope, run_id, outcome=outcome, cursor=cursor) if run else Q.Page([])
        report = (run or {}).get("report") or {}
        return _render(
            request, "run.html", viewer, dag_id=dag_id, run_id=run_id, run=run, state=state, report=report,
            counts=_directions(report), items=items, outcome=outcome, integration=scope[0], entity=scope[1],
            refresh=run is None or not run.get("finished_at"),
        )  # fmt: skip

    @app.get("/records", response_class=HTMLResponse, name="records")
    def records(
        request: Request, viewer: ViewerDep, view: ViewDep, q: str = "", dag: str | None = None,
        cursor: str | None = None, contains: bool = False,
    ) -> HTMLResponse:  # fmt: skip
        """Search by tax ID, SKU, name, e-mail or either side's id (names and e-mails: by start, or inside)."""
        page = (
            view.search(q[:200], viewer.scopes(dag), cursor=cursor, contains=contains) if q.strip() else None
        )
        return _render(request, "records.html", viewer, q=q, dag=dag, page=page, contains=contains)

    @app.get("/records/{dag_id}/{side}/{rtype}/{rid:path}", response_class=HTMLResponse, name="record")
    def record(request: Request, dag_id: str, side: str, rtype: str, rid: str, viewer: ViewerDep,
               view: ViewDep) -> HTMLResponse:  # fmt: skip
        """Both sides' ids and the link, the last synced snapshot, history, conflicts, dead-letter state."""
        scope = Q.scope_of(dag_id)
        if scope is None or side not in Q.SIDES:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such record")
        viewer.authorize(request, dag_id)
        found = view.record(*scope, side, rtype, rid)
        if found is None:
            return _render(request, "record.html", viewer, status_code=404, rec=None, dag_id=dag_id, side=side,
                           rtype=rtype, rid=rid, actions=False)  # fmt: skip
        return _render(request, "record.html", viewer, rec=found, dag_id=dag_id, side=side, rtype=rtype, rid=rid,
                       actions=view.actions_supported, can_edit=dag_id in viewer.editable)  # fmt: skip

    @app.get("/conflicts", response_class=HTMLResponse, name="conflicts")
    def conflicts(
        request: Request, viewer: ViewerDep, view: ViewDep, dag: str | None = None, field: str | None = None,
        winner: str | None = None, run: str | None = None, cursor: str | None = None,
    ) -> HTMLResponse:  # fmt: skip
        """Every conflict (a field edited on both sides), newest first, with both values and the winner."""
        page = view.conflicts(viewer.scopes(dag), field_name=field, winner=winner, run_id=run, cursor=cursor)
        return _render(
            request, "conflicts.html", viewer, page=page, dag=dag, field=field, winner=winner, run=run
        )

    @app.get("/dead-letters", response_class=HTMLResponse, name="dead_letters")
    def dead_letters(
        request: Request, viewer: ViewerDep, view: ViewDep, dag: str | None = None, state: str | None = "open",
        reason: str | None = None, cursor: str | None = None,
    ) -> HTMLResponse:  # fmt: skip
        """Failed records the sync retries (or reports), filterable; retry or dismiss with edit access."""
        page = view.dead_letters(viewer.scopes(dag), state=state or None, reason=reason, cursor=cursor)
        return _render(request, "dead_letters.html", viewer, page=page, dag=dag, state=state, reason=reason,
                       actions=view.actions_supported)  # fmt: skip

    @app.post("/dead-letters/{dag_id}/{action}", name="dead_letter_action")
    async def dead_letter_action(request: Request, dag_id: str, action: str, viewer: ViewerDep,
                                 view: ViewDep) -> RedirectResponse:  # fmt: skip
        """Dismiss a dead letter or ask for a retry on the next run, recorded with the user's name."""
        if action not in ("dismiss", "retry"):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such action")
        _same_origin(request)
        scope = Q.scope_of(dag_id)
        if scope is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "not a clientify-sync DAG")
        viewer.authorize(request, dag_id, "PUT")
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        side, rtype, rid = form.get("side", ""), form.get("rtype", ""), form.get("rid", "")
        if side not in Q.SIDES or not rtype or not rid:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "side, rtype and rid are required")
        try:
            found = view.act_on_dead_letter(action, *scope, side, rtype, rid, viewer.name)
        except Q.SchemaTooOld as error:
            raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
        if not found:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such dead letter")
        log.info("dead letter %s %s %s/%s/%s %s by %s", dag_id, side, rtype, rid, action, "done", viewer.name)
        return RedirectResponse(_safe_next(request, form.get("next")), status_code=status.HTTP_303_SEE_OTHER)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> HTMLResponse:
        """Errors as a small page in the same look (the iframe would otherwise show raw JSON)."""
        viewer = Viewer(name="", readable=frozenset())
        response = _render(request, "error.html", viewer, status_code=error.status_code, error=error)
        for name, value in (error.headers or {}).items():
            response.headers[name] = value
        return response

    # The webhook receiver: an app of its own (no Airflow auth: each route proves its sender itself).
    app.mount(WEBHOOKS_PATH, create_receiver_app(ledger=lambda: get_view().engine), name="webhooks")
    return app


def _same_origin(request: Request) -> None:
    """Refuse a cross-site form POST (the JWT cookie is SameSite=Lax already; this is belt and braces)."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin and origin != "null" and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")


def _directions(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's outcomes per direction as table rows (columns in ``Q.OUTCOMES`` order)."""
    rows = []
    for direction, outcomes in (report.get("counts") or {}).items():
        rows.append(
            {"direction": direction, "counts": outcomes, "total": sum(int(v) for v in outcomes.values())}
        )
    return rows


app = create_app()
