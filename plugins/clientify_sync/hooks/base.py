"""What the three API hooks share: lazy connection lookup, client caching, ``test_connection``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import httpx
from airflow.sdk import BaseHook

from clientify_sync.api.client import ApiClient
from clientify_sync.api.settings import FacturaDirectaRestSettings, HttpSettings
from clientify_sync.errors import ClientifySyncError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

ClientT = TypeVar("ClientT", bound=ApiClient)


class ApiHook(BaseHook, Generic[ClientT]):
    """Builds one API client from an Airflow connection, on first use.

    Nothing happens in ``__init__`` beyond storing arguments: hooks are created inside tasks and the
    connection (a network call under the task SDK) is read only when ``get_conn()`` needs it.
    ``transport`` lets tests hand the client an ``httpx.MockTransport``. Subclasses name their
    connection argument after ``conn_name_attr`` (``FacturamaHook(facturama_conn_id=...)``), as
    Airflow hooks do.
    """

    conn_name_attr: ClassVar[str]
    default_conn_name: ClassVar[str]
    # Each API hook declares its own type (facturama, clientify, facturadirecta), registered through the
    # provider entry point so the UI shows its form and "Test" runs test_connection(). The type of the
    # connection itself is never checked: connections created as "http" keep working.
    conn_type: ClassVar[str] = "http"
    hook_name: ClassVar[str]
    settings_class: ClassVar[type[Any]]
    client_class: ClassVar[type[Any]]

    def __init__(self, conn_id: str, *, transport: httpx.BaseTransport | None = None) -> None:
        super().__init__()
        self.conn_id = conn_id
        setattr(self, self.conn_name_attr, conn_id)
        self._transport = transport
        self._client: ClientT | None = None

    def get_settings(self) -> HttpSettings:
        """The connection's host/login/password/extra as the API's typed settings.

        Raises:
            ConfigurationError: missing credentials, bad values or unknown extra keys.
        """
        conn = self.get_connection(self.conn_id)
        settings: HttpSettings = self.settings_class.from_connection(
            host=conn.host,
            login=conn.login,
            password=conn.password,
            extra=conn.extra_dejson,
            port=conn.port,
            schema=conn.schema,
        )
        return settings

    def get_conn(self) -> ClientT:
        """The API client for this connection (built once per hook)."""
        if self._client is None:
            self._client = self.client_class(self.get_settings(), transport=self._transport)
        return self._client

    def share_budget(self, ledger_engine: Engine) -> None:
        """Make this connection's ``requests_per_minute`` one budget for every task and worker using it.

        The budget lives in the ledger database (``clientify_sync.engine.budget``) under a hash of the
        host and credentials, so two connections to the same account share it too. FacturaDirecta's REST
        API counts requests per company whatever the key (facturadirecta-rest-api.md §3): its budget is
        keyed by the company id, so two keys of one company share one. Without a limit (0), nothing is
        shared and no database call is made per request.
        """
        from clientify_sync.engine.budget import SharedRequestBudget, account_key

        client = self.get_conn()
        settings = client.settings
        rpm = settings.requests_per_minute
        if rpm <= 0:
            return
        if isinstance(settings, FacturaDirectaRestSettings):
            account = account_key(client.api_name, "rest", settings.company_id)
        else:
            conn = self.get_connection(self.conn_id)
            account = account_key(client.api_name, conn.host, conn.login, conn.password)
        client.share_budget(SharedRequestBudget(ledger_engine, account, rpm))

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated call; never raises (a missing connection is reported too)."""
        try:
            return self.get_conn().test_connection()
        except ClientifySyncError as exc:
            return False, str(exc)
        except Exception as exc:  # Airflow's convention: report, don't raise
            return False, f"{type(exc).__name__}: {exc}"

    def close(self) -> None:
        """Close the client's connection pool, if one was built."""
        if self._client is not None:
            self._client.close()
            self._client = None
