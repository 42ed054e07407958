"""What Airflow learns about this distribution: ``get_provider_info()`` (entry point ``apache_airflow_provider``).

Three connection types — ``facturama``, ``clientify``, ``facturadirecta`` — each with its hook, a form
field for every extra its settings class accepts and the form's labels and placeholders; and the
``clientify-sync`` asset URI scheme. The form fields are generated from the typed settings
(``clientify_sync.api.settings``: ``COMMON_EXTRAS`` plus each class's ``api_extras``, the dataclass
defaults, ``max_page_size`` and the ``Attributes:`` docstrings), so the form, the validation the hooks
run and the docs cannot disagree. ``facturadirecta`` serves two APIs (the classic XML API and the REST
API, chosen by the extra ``api``): its form offers the extras of both, each saying which API takes it.

Airflow imports this module in every component that loads providers: it imports only the shared
vocabulary (plain enums) and the settings dataclasses, those only inside ``get_provider_info()`` (no
hooks, no Airflow: it runs while Airflow loads its configuration; ``clientify_sync.assets`` imports ``URI_SCHEME`` from here at DAG parse time).
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
from importlib import metadata
from typing import TYPE_CHECKING, Any

from clientify_sync.engine.vocabulary import Platform

if TYPE_CHECKING:
    from clientify_sync.api.settings import HttpSettings

DISTRIBUTION = "clientify-sync"
# The scheme of the sync's asset URIs (clientify_sync.assets). Defined here, not imported from there:
# Airflow reads provider info while it loads its own configuration, before airflow.sdk is importable.
URI_SCHEME = "clientify-sync"

# Extras whose valid values settings.py checks in __post_init__ but does not declare as data.
# A ``choices`` entry in a field's ``metadata`` (when settings.py gains one) takes precedence.
_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean"}


@dataclasses.dataclass(frozen=True)
class ConnectionType:
    """One connection type: its hook, settings class and how the standard form fields read."""

    conn_type: str
    hook_class: str
    hook_name: str
    settings_name: str  # a class of clientify_sync.api.settings, imported only when the fields are built
    hidden: tuple[str, ...]
    labels: dict[str, str]
    placeholders: dict[str, str]
    # A type serving several APIs: the extra that chooses (``selector``), each of its values with the
    # name of that API's settings class (the first is the default, ``settings_name``'s) and what the
    # form says about the choice. Empty: one API.
    variants: tuple[tuple[str, str], ...] = ()
    selector: str = ""
    selector_help: str = ""

    @property
    def settings_class(self) -> type[HttpSettings]:
        """The typed settings the hook builds from a connection of this type (the default API's)."""
        from clientify_sync.api import settings

        settings_class: type[HttpSettings] = getattr(settings, self.settings_name)
        return settings_class

    @property
    def settings_classes(self) -> dict[str, type[HttpSettings]]:
        """Each API's settings by the selector's value (``{"": settings_class}`` for a one-API type)."""
        from clientify_sync.api import settings

        if not self.variants:
            return {"": self.settings_class}
        return {value: getattr(settings, name) for value, name in self.variants}


CONNECTION_TYPES: tuple[ConnectionType, ...] = (
    ConnectionType(
        conn_type=Platform.FACTURAMA.value,
        hook_class="clientify_sync.hooks.facturama.FacturamaHook",
        hook_name="Facturama",
        settings_name="FacturamaSettings",
        hidden=("schema", "port"),
        labels={"host": "API host", "login": "API user", "password": "API password"},
        placeholders={
            "host": "https://api.facturama.mx (sandbox: https://apisandbox.facturama.mx)",
            "login": "the Facturama API user",
            "password": "the Facturama API password",
        },
    ),
    ConnectionType(
        conn_type="clientify",
        hook_class="clientify_sync.hooks.clientify.ClientifyHook",
        hook_name="Clientify",
        settings_name="ClientifySettings",
        hidden=("schema", "port", "login"),  # the API key alone authenticates (login is ignored)
        labels={"host": "API host", "password": "API key"},
        placeholders={
            "host": "https://api.clientify.net",
            "password": "Clientify → Settings → API key",
            "fallback_host": "https://api.clientify.com",
        },
    ),
    ConnectionType(
        conn_type=Platform.FACTURADIRECTA.value,
        hook_class="clientify_sync.hooks.facturadirecta.FacturaDirectaHook",
        hook_name="FacturaDirecta",
        settings_name="FacturaDirectaSettings",
        hidden=("schema", "port"),
        labels={
            "host": "Account URL (classic API; empty for the REST API)",
            "login": "API user (optional: the key, as in curl -u KEY:x)",
            "password": "API key",
        },
        placeholders={
            "host": "https://ACCOUNT.facturadirecta.com (REST API: empty, https://app.facturadirecta.com)",
            "password": "classic: Configuración → API token; REST: Ajustes → API keys (aB3cD9.…)",
        },
        variants=(("classic", "FacturaDirectaSettings"), ("rest", "FacturaDirectaRestSettings")),
        selector="api",
        selector_help=(
            "Which FacturaDirecta API this connection uses. rest: the REST API, the one a business that "
            "creates its key today in Ajustes → API keys has; it needs company_id (com_…), the API key "
            "(aB3cD9.…) as password and an empty host (https://app.facturadirecta.com); plan is optional. "
            "classic (the default, older accounts): the XML API; it needs the account URL "
            "https://ACCOUNT.facturadirecta.com as host and the API token as password. The Test button "
            "checks the credentials and, on rest, that the key has every scope the sync needs."
        ),
    ),
)


def get_provider_info() -> dict[str, Any]:
    """Return the provider metadata Airflow's ProvidersManager reads (``provider_info.schema.json``)."""
    return {
        "package-name": DISTRIBUTION,
        "name": "Clientify sync",
        "description": (
            "Two-way sync of the invoicing platforms Facturama (Mexico) and FacturaDirecta (Spain) with "
            "the Clientify CRM: hooks, connection types and the sync DAGs (from clientify_sync.dags import build_dags)."
        ),
        "versions": [_version()],
        "integrations": [
            {"integration-name": kind.hook_name, "tags": ["service"]} for kind in CONNECTION_TYPES
        ],
        "hooks": [
            {"integration-name": kind.hook_name, "python-modules": [kind.hook_class.rsplit(".", 1)[0]]}
            for kind in CONNECTION_TYPES
        ],
        "connection-types": [connection_type_info(kind) for kind in CONNECTION_TYPES],
        # The URIs of the sync's assets (clientify-sync://<platform>/<entity>) are checked on creation.
        "asset-uris": [{"schemes": [URI_SCHEME], "handler": "clientify_sync.assets.normalize_uri"}],
    }


def connection_type_info(kind: ConnectionType) -> dict[str, Any]:
    """Return one ``connection-types`` entry: hook, generated ``conn-fields`` and ``ui-field-behaviour``."""
    return {
        "connection-type": kind.conn_type,
        "hook-class-name": kind.hook_class,
        "hook-name": kind.hook_name,
        "conn-fields": form_fields(kind),
        "ui-field-behaviour": {
            "hidden-fields": list(kind.hidden),
            "relabeling": dict(kind.labels),
            "placeholders": dict(kind.placeholders),
        },
    }


def conn_fields(settings_class: type[HttpSettings]) -> dict[str, dict[str, Any]]:
    """Return a form field per extra the settings class accepts, typed and defaulted from the dataclass."""
    from clientify_sync.api.settings import COMMON_EXTRAS

    allowed = {**COMMON_EXTRAS, **settings_class.api_extras}
    fields = {f.name: f for f in dataclasses.fields(settings_class)}
    docs = attribute_docs(settings_class)
    result = {}
    for name, kind in allowed.items():
        field = fields.get(name)
        schema: dict[str, Any] = {"type": [_JSON_TYPES[kind], "null"]}
        if field is not None and field.default is not dataclasses.MISSING:
            schema["default"] = field.default
        metadata_ = dict(field.metadata) if field is not None else {}
        choices = metadata_.get("choices")
        if choices is not None:
            schema["enum"] = [*choices, None]
        if name == "page_size":
            schema.update(minimum=1, maximum=settings_class.max_page_size)
        elif kind in (int, float):
            schema["minimum"] = 1 if name == "concurrency" else 0
        description = metadata_.get("description") or docs.get(name) or _label(name) + "."
        result[name] = {"label": _label(name), "schema": schema, "description": description}
    return result


def form_fields(kind: ConnectionType) -> dict[str, dict[str, Any]]:
    """The form fields of a connection type: its settings' extras, or, for a type serving several APIs,
    the selector first, then every API's extras (see ``merged_conn_fields``)."""
    if not kind.variants:
        return conn_fields(kind.settings_class)
    return merged_conn_fields(kind.selector, kind.selector_help, kind.settings_classes)


def merged_conn_fields(
    selector: str, selector_help: str, settings_classes: dict[str, type[HttpSettings]]
) -> dict[str, dict[str, Any]]:
    """One form for several APIs: the ``selector`` extra (its values, the first the default), then the
    API-specific extras (those every API takes first), then the common ones.

    An extra only some APIs take says so (``Only with api=rest.``); where the APIs describe an extra
    differently each description is given; where their defaults or caps differ (``page_size``) the field
    has no default and its description gives each API's, so the form never proposes a value one of them
    would reject.
    """
    from clientify_sync.api.settings import COMMON_EXTRAS

    per_api = {api: conn_fields(settings_class) for api, settings_class in settings_classes.items()}
    apis = list(per_api)
    names = [name for fields in per_api.values() for name in fields if name != selector]
    shared = [name for name in names if all(name in fields for fields in per_api.values())]
    specific = [name for name in names if name not in COMMON_EXTRAS]
    ordered = dict.fromkeys(
        [n for n in shared if n in specific] + specific + [n for n in names if n in COMMON_EXTRAS]
    )
    result: dict[str, dict[str, Any]] = {
        selector: {
            "label": "API",
            "schema": {"type": ["string", "null"], "default": apis[0], "enum": [*apis, None]},
            "description": selector_help,
        }
    }
    for name in ordered:
        having = {api: per_api[api][name] for api in apis if name in per_api[api]}
        first = next(iter(having.values()))
        schema = dict(first["schema"])
        descriptions = {api: field["description"] for api, field in having.items()}
        if len(set(descriptions.values())) == 1:
            description = first["description"]
        else:
            description = " ".join(f"{selector}={api}: {text}" for api, text in descriptions.items())
        caps = {
            api: (field["schema"].get("default"), field["schema"].get("maximum"))
            for api, field in having.items()
        }
        if len(set(caps.values())) > 1:
            schema.pop("default", None)
            if "maximum" in schema:
                schema["maximum"] = max(maximum for _, maximum in caps.values() if maximum is not None)
            description += " " + " ".join(
                f"{selector}={api}: default {default}"
                + (f", at most {maximum}." if maximum is not None else ".")
                for api, (default, maximum) in caps.items()
            )
        if len(having) < len(apis):
            description += f" Only with {selector}={' or '.join(having)}."
        result[name] = {"label": first["label"], "schema": schema, "description": description}
    return result


def attribute_docs(settings_class: type) -> dict[str, str]:
    """Collect ``name: text`` entries of the ``Attributes:`` sections along the class's MRO."""
    docs: dict[str, str] = {}
    for klass in reversed(settings_class.__mro__):
        section = re.split(r"^\s*Attributes:\s*$", inspect.getdoc(klass) or "", maxsplit=1, flags=re.M)
        if len(section) < 2:
            continue
        body = textwrap.dedent(section[1].strip("\n"))
        for match in re.finditer(r"^(\w+): (.+?)(?=^\w+: |\Z)", body, flags=re.M | re.S):
            text = " ".join(match.group(2).replace("``", "").split())
            docs[match.group(1)] = text[:1].upper() + text[1:]
    return docs


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # imported from a source tree (plugins/), not installed
        return "0+source"
