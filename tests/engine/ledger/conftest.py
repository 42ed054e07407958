"""Ledger URLs for both dialects the product supports: SQLite (one machine) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import count

import pytest

from clientify_sync.engine.ledger import Ledger
from tests.fixtures.postgres import running_postgres

_databases = count()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[dict[str, str]]:
    with running_postgres(("postgres",)) as urls:
        yield urls


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty ledger database of each dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    import sqlalchemy as sa

    admin_url = request.getfixturevalue("postgres_server")["postgres"]
    name = f"ledger_{next(_databases)}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    """The Facturama contacts ledger on a fresh database of each dialect."""
    opened = Ledger.open(ledger_url, "facturama", "contacts")
    yield opened
    opened.close()
