"""What Airflow learns about this distribution: ``get_provider_info()`` (entry point ``apache_airflow_provider``).

Three connection types — ``facturama``, ``clientify``, ``facturadirecta`` — each with its hook, a form
field for every extra its settings class accepts and the form's labels and placeholders; and the
``clientify-sync`` asset URI scheme. The form fields are generated from the typed settings
(``clientify_sync.api.settings``: ``COMMON_EXTRAS`` plus each class's ``api_extras``, the dataclass
defaults, ``max_page_size`` and the ``Attributes:`` docstrings), so the form, the validation the hooks
run and the docs cannot disagree.

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

    @property
    def settings_class(self) -> type[HttpSettings]:
        """The typed settings the hook builds from a connection of this type."""
        from clientify_sync.api import settings

        settings_class: type[HttpSettings] = getattr(settings, self.settings_name)
        return settings_class


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
            "host": "Account URL",
            "login": "API user (optional: the key, as in curl -u KEY:x)",
            "password": "API key",
        },
        placeholders={
            "host": "https://ACCOUNT.facturadirecta.com",
            "password": "FacturaDirecta → Configuración → API token",
        },
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
        "conn-fields": conn_fields(kind.settings_class),
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
