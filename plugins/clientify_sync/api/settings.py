"""Typed, validated settings for the three API clients.

A hook turns an Airflow connection (host, login, password, extra) into one of these objects with
``from_connection``; tests and the engine can build them directly. Unknown extra keys are rejected
instead of being passed through, so a typo in a connection fails loudly at start-up.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

from clientify_sync.errors import ConfigurationError

# Extra keys every API accepts, with their types.
COMMON_EXTRAS: dict[str, type] = {
    "page_size": int,
    "timeout": float,
    "connect_timeout": float,
    "requests_per_minute": float,
    "concurrency": int,
    "max_retries": int,
    "backoff_base": float,
    "backoff_max": float,
    "retry_after_max": float,
}


API_PREFIXES = ("", "/api")
AUTH_STYLES = ("basic", "query")
MODIFIED_FORMATS = ("iso", "minute", "date")
FACTURADIRECTA_APIS = ("classic", "rest")
FACTURADIRECTA_REST_HOST = "app.facturadirecta.com"
# Requests per minute per company by plan (facturadirecta-rest-api.md §3); "" = not said (the lowest).
FACTURADIRECTA_PLANS: dict[str, float] = {
    "gratis": 30,
    "bronce": 60,
    "plata": 120,
    "oro": 300,
    "diamante": 600,
}
ON_OFF = ("on", "off")
_COMPANY_ID = re.compile(r"com_[A-Za-z0-9_-]+")
# <6>.<32> (api-keys.md); the docs' own example has 29 after the dot, so the length is not enforced here.
_REST_API_KEY = re.compile(r"[A-Za-z0-9]{6}\.[A-Za-z0-9]{16,64}")


def _extra(default: Any, description: str, *, choices: tuple[str, ...] | None = None) -> Any:
    """A connection extra of one API: its default, and what the connection form says about it.

    The provider's form (``clientify_sync.provider.conn_fields``) is generated from these fields, so the
    form, the validation here and the docs never disagree.
    """
    metadata: dict[str, Any] = {"description": description}
    if choices is not None:
        metadata["choices"] = choices
    return field(default=default, metadata=metadata)


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    """Transport, paging and politeness settings shared by every client.

    Attributes:
        base_url: scheme, host and optional port (``https://api.facturama.mx``).
        page_size: records per list request; each API caps it (``max_page_size``).
        timeout: seconds allowed for each read/write on the socket.
        connect_timeout: seconds allowed to open a connection.
        requests_per_minute: token-bucket budget over all threads; 0 means unlimited.
        concurrency: maximum requests in flight at once from one client.
        max_retries: retries after the first attempt for retriable failures.
        backoff_base: first backoff wait in seconds (doubled per retry, plus jitter).
        backoff_max: cap of a single backoff wait in seconds.
        retry_after_max: cap applied to a server's ``Retry-After`` in seconds.
    """

    max_page_size: ClassVar[int] = 100
    api_extras: ClassVar[dict[str, type]] = {}

    base_url: str
    page_size: int = 100
    timeout: float = 30.0
    connect_timeout: float = 10.0
    requests_per_minute: float = 0.0
    concurrency: int = 4
    max_retries: int = 5
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    retry_after_max: float = 60.0

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigurationError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if "@" in self.base_url.split("://", 1)[1].split("/", 1)[0]:
            raise ConfigurationError("base_url must not embed credentials; use login/password")
        if not 1 <= self.page_size <= self.max_page_size:
            raise ConfigurationError(f"page_size must be 1..{self.max_page_size}, got {self.page_size}")
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be >= 1, got {self.concurrency}")
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries}")
        for name in ("timeout", "connect_timeout", "backoff_max", "retry_after_max"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("requests_per_minute", "backoff_base"):
            if getattr(self, name) < 0:
                raise ConfigurationError(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def extras_from(cls, extra: dict[str, Any]) -> dict[str, Any]:
        """Validate and coerce a connection's ``extra`` dict; reject unknown keys."""
        allowed = {**COMMON_EXTRAS, **cls.api_extras}
        unknown = sorted(set(extra) - set(allowed))
        if unknown:
            raise ConfigurationError(
                f"unknown extra key(s) {unknown} for {cls.__name__}; allowed: {sorted(allowed)}"
            )
        return {key: _coerce(key, value, allowed[key]) for key, value in extra.items() if value is not None}

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (tests shrink timeouts and backoffs this way)."""
        return dataclasses.replace(self, **changes)


def _coerce(key: str, value: Any, kind: type) -> Any:
    """Accept JSON numbers, and numeric strings as typed in the Airflow UI."""
    if isinstance(value, bool):
        raise ConfigurationError(f"extra {key!r} must be a {kind.__name__}, got a boolean")
    if kind is str:
        if not isinstance(value, str):
            raise ConfigurationError(f"extra {key!r} must be a string, got {type(value).__name__}")
        return value
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"extra {key!r} must be a {kind.__name__}, got {value!r}") from None
    if kind is int and isinstance(value, float) and number != value:
        raise ConfigurationError(f"extra {key!r} must be a whole number, got {value!r}")
    return number


def base_url_from(host: str | None, port: int | None, schema: str | None, default: str | None) -> str:
    """Build a base URL from Airflow connection fields (host may already carry scheme and port)."""
    host = (host or "").strip().rstrip("/")
    if not host:
        if default is None:
            raise ConfigurationError("the connection has no host")
        return default
    if "://" not in host:
        scheme = schema if schema in ("http", "https") else "https"
        host = f"{scheme}://{host}"
    if port and host.count(":") < 2:
        host = f"{host}:{port}"
    return host


@dataclass(frozen=True, kw_only=True)
class FacturamaSettings(HttpSettings):
    """Facturama API Web: HTTP Basic with the API user and password.

    ``estimates_path`` is the assumed estimates resource (list path = path + "s");
    ``api_prefix`` is "" or "/api" (every API Web route answers with or without it).
    """

    max_page_size: ClassVar[int] = 100
    api_extras: ClassVar[dict[str, type]] = {"estimates_path": str, "api_prefix": str}
    default_host: ClassVar[str] = "https://api.facturama.mx"

    username: str
    password: str = field(repr=False)
    estimates_path: str = _extra(
        "Estimate", "The estimates resource (list path = this + 's'); Facturama publishes none."
    )
    api_prefix: str = _extra(
        "", "'' or '/api': every Facturama API Web route answers with or without it.", choices=API_PREFIXES
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.username or not self.password:
            raise ConfigurationError("Facturama needs login (API user) and password")
        if self.api_prefix not in API_PREFIXES:
            raise ConfigurationError(f"api_prefix must be '' or '/api', got {self.api_prefix!r}")
        if not self.estimates_path.strip("/") or "/" in self.estimates_path.strip("/"):
            raise ConfigurationError(f"estimates_path must be one path segment, got {self.estimates_path!r}")
        object.__setattr__(self, "estimates_path", self.estimates_path.strip("/"))

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None = None,
        schema: str | None = None,
    ) -> FacturamaSettings:
        """Host + login/password (Basic) + typed extras."""
        return cls(
            base_url=base_url_from(host, port, schema, cls.default_host),
            username=login or "",
            password=password or "",
            **cls.extras_from(extra),
        )


def _without_v1(url: str) -> str:
    """Paths carry /v1/ themselves; accept a host given as ".../v1"."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def _without_v2(url: str) -> str:
    """The v2 paths carry /v2/ themselves; accept a base given as ".../v2"."""
    url = url.rstrip("/")
    return url[: -len("/v2")] if url.endswith("/v2") else url


# Clientify API v2 (webhook slots): https://api-plus.clientify.com/v2, same Token (realtime.md §1.1).
CLIENTIFY_V2_HOST = "https://api-plus.clientify.com"


@dataclass(frozen=True, kw_only=True)
class ClientifySettings(HttpSettings):
    """Clientify v1: ``Authorization: Token <api_key>``; the API key is the connection password.

    ``modified_format`` is how ``modified[gte]`` is written (the format the API honours is
    undocumented): ``iso`` (UTC date-time with microseconds, the default), ``minute``
    (``YYYY-MM-DDTHH:MM``) or ``date`` (``YYYY-MM-DD``). ``fallback_host`` (e.g.
    ``https://api.clientify.com``, which Clientify support pointed to when ``api.clientify.net``
    answered 504s) takes the reads once the main host has failed with transient errors; empty = none.
    """

    max_page_size: ClassVar[int] = 100
    api_extras: ClassVar[dict[str, type]] = {
        "budgets_path": str,
        "link_field_facturama": str,
        "link_field_facturadirecta": str,
        "modified_format": str,
        "fallback_host": str,
        "api_v2_url": str,
    }
    default_host: ClassVar[str] = "https://api.clientify.net"

    api_key: str = field(repr=False)
    budgets_path: str = _extra(
        "/v1/budgets/", "Path of Clientify's budgets (estimates) resource; starts and ends with '/'."
    )
    link_field_facturama: str = _extra(
        "in_facturama", "Clientify custom field that holds the Facturama id (the link)."
    )
    link_field_facturadirecta: str = _extra(
        "in_facturadirecta", "Clientify custom field that holds the FacturaDirecta id (the link)."
    )
    modified_format: str = _extra(
        "iso", "How modified[gte] is written: iso (default), minute or date.", choices=MODIFIED_FORMATS
    )
    fallback_host: str = _extra("", "Second Clientify host for reads after transient failures; empty = none.")
    api_v2_url: str = _extra(
        "",
        "Clientify API v2 (webhook slots) base URL; empty: https://api-plus.clientify.com/v2 for Clientify's "
        "own hosts, else this connection's host + /v2.",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _without_v1(self.base_url))
        super().__post_init__()
        if not self.api_key:
            raise ConfigurationError("Clientify needs the API key in the connection password")
        if not (self.budgets_path.startswith("/") and self.budgets_path.endswith("/")):
            raise ConfigurationError(f"budgets_path must start and end with '/', got {self.budgets_path!r}")
        if self.modified_format not in MODIFIED_FORMATS:
            raise ConfigurationError(
                f"modified_format must be one of {list(MODIFIED_FORMATS)}, got {self.modified_format!r}"
            )
        if self.fallback_host:
            fallback = _without_v1(base_url_from(self.fallback_host, None, None, None))
            if "@" in fallback.split("://", 1)[1].split("/", 1)[0]:
                raise ConfigurationError("fallback_host must not embed credentials")
            object.__setattr__(self, "fallback_host", fallback)
        if self.api_v2_url:
            v2 = _without_v2(base_url_from(self.api_v2_url, None, None, None))
            if "@" in v2.split("://", 1)[1].split("/", 1)[0]:
                raise ConfigurationError("api_v2_url must not embed credentials")
            object.__setattr__(self, "api_v2_url", v2)

    def v2_base_url(self) -> str:
        """Where ``/v2/…`` (the webhook slots) is served, without ``/v2``: ``api_v2_url`` when set; for
        Clientify's own hosts ``CLIENTIFY_V2_HOST`` (realtime.md §1.1); else this connection's host (the
        sandbox serves v2 on the v1 port)."""
        if self.api_v2_url:
            return self.api_v2_url
        host = (urlsplit(self.base_url).hostname or "").lower()
        if (
            host == "clientify.net"
            or host == "clientify.com"
            or host.endswith((".clientify.net", ".clientify.com"))
        ):
            return CLIENTIFY_V2_HOST
        return self.base_url

    def fallback(self) -> ClientifySettings | None:
        """The same settings pointed at ``fallback_host``, or None when there is none."""
        if not self.fallback_host or self.fallback_host == self.base_url:
            return None
        return dataclasses.replace(self, base_url=self.fallback_host, fallback_host="")

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None = None,
        schema: str | None = None,
    ) -> ClientifySettings:
        """Host + password (the API key) + typed extras; login is ignored."""
        return cls(
            base_url=base_url_from(host, port, schema, cls.default_host),
            api_key=password or "",
            **cls.extras_from(extra),
        )


@dataclass(frozen=True, kw_only=True)
class FacturaDirectaSettings(HttpSettings):
    """FacturaDirecta classic XML API: the API token as Basic user (default) or ``?api_token=``."""

    max_page_size: ClassVar[int] = 250
    api_extras: ClassVar[dict[str, type]] = {"link_attribute": str, "auth_style": str}

    token: str = field(repr=False)
    page_size: int = 250
    link_attribute: str = _extra(
        "ID_CRM", "FacturaDirecta custom attribute that holds the Clientify id (the link)."
    )
    auth_style: str = _extra(
        "basic", "basic: the key as Basic user (default); query: ?api_token=.", choices=AUTH_STYLES
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.token:
            raise ConfigurationError("FacturaDirecta needs the API token in the password (or login)")
        if self.auth_style not in AUTH_STYLES:
            raise ConfigurationError(f"auth_style must be 'basic' or 'query', got {self.auth_style!r}")
        if not self.link_attribute:
            raise ConfigurationError("link_attribute must not be empty")

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None = None,
        schema: str | None = None,
    ) -> FacturaDirectaSettings:
        """Host (the account's subdomain) + the token in password, or in login.

        The docs' curl form is ``-u TOKEN:x``: when login is set and the password is empty or a short
        placeholder (fewer than 8 characters), the login is the token.
        """
        token = login if login and len(password or "") < 8 else password
        return cls(
            base_url=base_url_from(host, port, schema, None),
            token=token or "",
            **cls.extras_from(extra),
        )


@dataclass(frozen=True, kw_only=True)
class FacturaDirectaRestSettings(HttpSettings):
    """FacturaDirecta's REST/JSON API ("API pública"): ``{host}/api/{company_id}/…``, with the key in the
    ``facturadirecta-api-key`` header (facturadirecta-rest-api.md §2).

    Which API a ``facturadirecta`` connection uses is its extra ``api``: ``classic`` (the default, so
    existing connections keep working unchanged) or ``rest`` (``facturadirecta_settings_from_connection``).
    A REST connection: host ``https://app.facturadirecta.com`` (the default when empty), password = the
    API key from Ajustes → API keys (``aB3cD9.<32 characters>``; login accepted), extra ``company_id``
    (``com_…``), optional extra ``plan``.

    Attributes:
        requests_per_minute: 0 (the default): the budget starts from ``plan``'s limit (the lowest plan's,
            30, when no plan is given) and follows the API's ``X-RateLimit-Limit`` (per company) from its
            first answer. Set: a cap as well, kept when the API states more (the company's limit is
            shared with its other integrations: this leaves them room).
        rate_cap: the configured ``requests_per_minute`` (0: none), set by ``__post_init__``.
    """

    max_page_size: ClassVar[int] = 500
    api_extras: ClassVar[dict[str, type]] = {
        "api": str, "company_id": str, "plan": str, "link_attribute": str, "sort_by": str,
        "api_version": str, "idempotency": str,
    }  # fmt: skip
    default_host: ClassVar[str] = f"https://{FACTURADIRECTA_REST_HOST}"

    api_key: str = field(repr=False)
    company_id: str = _extra("", "The FacturaDirecta company id (com_…) the API key belongs to (REST API).")
    page_size: int = 500
    api: str = _extra(
        "rest",
        "Which FacturaDirecta API: classic, the XML API at ACCOUNT.facturadirecta.com (a connection's "
        "default), or rest, the REST API at app.facturadirecta.com with company_id (these settings).",
        choices=("rest",),
    )
    plan: str = _extra(
        "",
        "Your FacturaDirecta plan: the request budget until the API's rate-limit headers say it (REST API).",
        choices=("", *FACTURADIRECTA_PLANS),
    )
    link_attribute: str = _extra(
        "ID_CRM",
        "Title of the FacturaDirecta custom field (contacts, estimates) that holds the Clientify id.",
    )
    sort_by: str = _extra(
        "creationDate", "sortBy of every listing, so offset pages stay stable (REST API); empty sends none."
    )
    api_version: str = _extra("", "accept-version header (e.g. 1.0.10); empty: the API's current version.")
    idempotency: str = _extra(
        "on", "on: every create carries an Idempotency-Key, so a create whose answer was lost is re-sent "
        "safely (REST API); off: it is looked up instead.", choices=ON_OFF,
    )  # fmt: skip

    rate_cap: float = field(default=0.0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base_url", _without_api(self.base_url))
        object.__setattr__(self, "rate_cap", self.requests_per_minute)
        if self.requests_per_minute == 0:
            object.__setattr__(self, "requests_per_minute", FACTURADIRECTA_PLANS.get(self.plan, 30.0))
        super().__post_init__()
        if self.api != "rest":
            raise ConfigurationError(f"api must be 'rest' for the REST API's settings, got {self.api!r}")
        if not self.api_key:
            raise ConfigurationError(
                "the FacturaDirecta REST API needs the API key in the password (or login)"
            )
        if not _REST_API_KEY.fullmatch(self.api_key):
            raise ConfigurationError(
                "a FacturaDirecta REST API key looks like aB3cD9.<about 32 letters or digits> (Ajustes → API keys); "
                "a classic API token belongs to a connection with api=classic"
            )
        if not _COMPANY_ID.fullmatch(self.company_id):
            raise ConfigurationError(
                f"the REST API needs the extra company_id (com_…, the company the key belongs to), got {self.company_id!r}"
            )
        if self.plan and self.plan not in FACTURADIRECTA_PLANS:
            raise ConfigurationError(
                f"plan must be one of {list(FACTURADIRECTA_PLANS)} or empty, got {self.plan!r}"
            )
        if self.idempotency not in ON_OFF:
            raise ConfigurationError(f"idempotency must be 'on' or 'off', got {self.idempotency!r}")
        if not self.link_attribute:
            raise ConfigurationError("link_attribute must not be empty")
        if self.sort_by and not re.fullmatch(r"-?[A-Za-z]+", self.sort_by):
            raise ConfigurationError(
                f"sort_by must be one field name (optionally -field), got {self.sort_by!r}"
            )

    @property
    def company_root(self) -> str:
        """The path every resource hangs from: ``/api/com_…``."""
        return f"/api/{self.company_id}"

    @classmethod
    def from_connection(
        cls,
        *,
        host: str | None,
        login: str | None,
        password: str | None,
        extra: dict[str, Any],
        port: int | None = None,
        schema: str | None = None,
    ) -> FacturaDirectaRestSettings:
        """Host (default ``https://app.facturadirecta.com``) + the API key in password (or login) + extras."""
        return cls(
            base_url=base_url_from(host, port, schema, cls.default_host),
            api_key=(password or login or "").strip(),
            **cls.extras_from(extra),
        )


def _without_api(url: str) -> str:
    """Routes carry /api/ themselves; accept a host given as ".../api"."""
    url = url.rstrip("/")
    return url[: -len("/api")] if url.endswith("/api") else url


def facturadirecta_settings_from_connection(
    *,
    host: str | None,
    login: str | None,
    password: str | None,
    extra: dict[str, Any],
    port: int | None = None,
    schema: str | None = None,
) -> FacturaDirectaSettings | FacturaDirectaRestSettings:
    """A ``facturadirecta`` connection's settings: its extra ``api`` chooses the API.

    ``classic`` (or no ``api``: every existing connection) gives ``FacturaDirectaSettings`` (from the extras
    without ``api``, so the classic settings are unchanged); ``rest`` gives ``FacturaDirectaRestSettings``. A
    classic connection that names the REST host or a ``company_id`` is refused with what to set, instead of
    failing later with 404s.
    """
    api = extra.get("api") or "classic"
    fields: dict[str, Any] = {"host": host, "login": login, "password": password, "extra": extra,
                              "port": port, "schema": schema}  # fmt: skip
    if api == "rest":
        return FacturaDirectaRestSettings.from_connection(**fields)
    if api != "classic":
        raise ConfigurationError(f"extra api must be one of {list(FACTURADIRECTA_APIS)}, got {api!r}")
    named_host = urlsplit(base_url_from(host, port, schema, "https://unset")).hostname
    if named_host == FACTURADIRECTA_REST_HOST or "company_id" in extra:
        raise ConfigurationError(
            f"this connection names FacturaDirecta's REST API ({FACTURADIRECTA_REST_HOST} or a company_id): "
            "set the extra api to 'rest' (with company_id and the API key as password), or give the classic "
            "API's https://ACCOUNT.facturadirecta.com"
        )
    fields["extra"] = {key: value for key, value in extra.items() if key != "api"}
    return FacturaDirectaSettings.from_connection(**fields)
