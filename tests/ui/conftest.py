"""Fixtures of the status-view tests: the literal ledger, a ``LedgerView`` on it, the app with a fake user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from clientify_sync.engine.ledger import create_ledger_engine
from clientify_sync.ui import app as ui
from clientify_sync.ui import queries as Q
from tests.ui.ledger_data import build_ledger

OURS = frozenset(Q.dag_id_for(*s) for s in Q.all_scopes())


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    return build_ledger(tmp_path / "ledger.db")


@pytest.fixture
def view(ledger_url: str) -> Iterator[Q.LedgerView]:
    engine = create_ledger_engine(ledger_url)
    Q.ensure_indexes(engine)
    yield Q.LedgerView(engine)
    engine.dispose()


@contextmanager
def count_statements(engine: sa.Engine) -> Iterator[list[str]]:
    """The SQL statements run on ``engine`` inside the block (how many queries a page costs)."""
    seen: list[str] = []

    def listener(_conn, _cursor, statement, _params, _context, _many):  # noqa: ANN001
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA"):
            seen.append(statement)

    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)


def make_client(view: Q.LedgerView, viewer: ui.Viewer | None, states: dict | None = None) -> TestClient:
    """The status app mounted as Airflow mounts it, with ``viewer`` as the user (None: Airflow's real auth)."""
    sub = ui.create_app()
    if viewer is not None:
        sub.dependency_overrides[ui.get_viewer] = lambda: viewer
    sub.dependency_overrides[ui.get_view] = lambda: view
    sub.dependency_overrides[ui.get_run_states] = lambda: lambda keys: dict(states or {})
    root = FastAPI()
    root.mount(ui.URL_PREFIX, sub)
    return TestClient(root, base_url="http://airflow.test")


@pytest.fixture
def admin() -> ui.Viewer:
    return ui.Viewer(name="ada.admin", readable=OURS, editable=OURS)


@pytest.fixture
def client(view: Q.LedgerView, admin: ui.Viewer) -> TestClient:
    return make_client(view, admin)
