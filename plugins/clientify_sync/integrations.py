"""The integration config: which invoicing platforms are synced, when, with which knobs.

Read when the DAG files are parsed, from layers, each on top of the previous one (a layer sets only
the keys it changes):

1. the package's defaults, ``clientify_sync/config/integrations.yaml`` (installed with the package);
2. a YAML file named by the environment variable ``CLIENTIFY_SYNC_INTEGRATIONS``;
3. the Airflow Variable ``clientify_sync_integrations`` (YAML or JSON). ``AIRFLOW_VAR_CLIENTIFY_SYNC_
   INTEGRATIONS`` works without a database; a lookup that fails (``dag.test()`` without a task
   context, a secrets backend that is down) is logged and skipped, so parsing never breaks on it.

Every layer is validated on its own first, so a bad value fails the DAG import with an error naming
the key and the source. It holds no secrets: credentials are Airflow connections, named by ``conn_id``.
No network, no metadata database: only files, environment variables and the secrets backends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from clientify_sync.errors import ConfigurationError
from clientify_sync.vocabulary import Entity, Platform, Side

log = logging.getLogger(__name__)

ENV_VAR = "CLIENTIFY_SYNC_INTEGRATIONS"
VARIABLE = "clientify_sync_integrations"
# The packaged defaults (package data of the distribution).
DEFAULT_PATH = Path(__file__).resolve().parent / "config" / "integrations.yaml"

# Each platform syncs in its country's business time unless a source says otherwise.
PLATFORM_TIMEZONES = {Platform.FACTURAMA: "America/Mexico_City", Platform.FACTURADIRECTA: "Europe/Madrid"}
DEFAULT_SCHEDULE = "0 * * * *"

_TOP_KEYS = {
    "schedule",
    "timezone",
    "lookback_minutes",
    "retries",
    "retry_delay_minutes",
    "max_active_tasks",
    "prerequisite_poke_seconds",
    "prerequisite_timeout_minutes",
    "conflicts",
    "rounding_adjustment",
    "webhooks",
    "clientify",
    "integrations",
}
_CLIENTIFY_KEYS = {"conn_id", "pool"}
_PLATFORM_KEYS = {"enabled", "conn_id", "pool", "schedule", "timezone"}
_CONFLICT_KEYS = {"winner", "fields"}
# Top-level keys that are per-platform defaults: a layer setting one replaces earlier per-platform values.
_PER_PLATFORM_DEFAULTS = ("schedule", "timezone")


@dataclass(frozen=True)
class PlatformConfig:
    """One invoicing platform: whether it is synced, its connection, pool, clock and timezone."""

    name: Platform
    enabled: bool
    conn_id: str
    pool: str
    schedule: str = DEFAULT_SCHEDULE
    timezone: str = "UTC"


@dataclass(frozen=True)
class IntegrationsConfig:
    """The whole config, validated."""

    schedule: str = DEFAULT_SCHEDULE
    # None: each platform's own timezone (PLATFORM_TIMEZONES) unless set per platform.
    timezone: str | None = None
    lookback: timedelta = timedelta(minutes=10)
    retries: int = 3
    retry_delay: timedelta = timedelta(minutes=5)
    max_active_tasks: int = 2
    # The estimates DAGs' first task waits while a contacts/products run of the platform is going.
    prerequisite_poke: timedelta = timedelta(seconds=60)
    prerequisite_timeout: timedelta = timedelta(minutes=120)
    clientify_conn_id: str = "clientify_default"
    clientify_pool: str = "clientify_api"
    platforms: tuple[PlatformConfig, ...] = ()
    # The conflict policy of the entities the config sets (``conflicts``): the fields whose same-field
    # conflicts the invoicing side wins, as ``SyncOptions.invoicing_wins`` takes them; an entity not
    # here keeps its schema's default (``engine/model.py``).
    invoicing_wins: dict[Entity, frozenset[str]] = field(default_factory=dict)
    # Estimates keep their total to the cent through a rounding line of ours where the two sides round
    # VAT differently (``documents.RoundingPolicy``); false: they are refused (totals_not_representable).
    rounding_adjustment: bool = True
    # Near-real-time: each DAG also runs when its webhook inbox has new events (an inbox asset watched
    # on the triggerer), syncing only the Clientify records they name; the clock stays the backstop.
    webhooks: bool = False
    # Where the values came from, in layering order (for logs and error messages).
    sources: tuple[str, ...] = field(default=(), compare=False)

    @property
    def enabled_platforms(self) -> tuple[PlatformConfig, ...]:
        """The platforms that get DAGs, in config order."""
        return tuple(p for p in self.platforms if p.enabled)

    def platform(self, name: Platform | str) -> PlatformConfig:
        """Return one platform's config by name.

        Raises:
            ConfigurationError: the platform is not in the config.
        """
        for platform in self.platforms:
            if platform.name == name:
                return platform
        raise ConfigurationError(f"integration {str(name)!r} is not configured")


def config_path() -> Path | None:
    """Return the override file named by ``$CLIENTIFY_SYNC_INTEGRATIONS``, if any."""
    override = os.environ.get(ENV_VAR, "").strip()
    return Path(override) if override else None


def load_integrations(path: str | os.PathLike[str] | None = None) -> IntegrationsConfig:
    """Read, layer and validate the integration config.

    Args:
        path: one override file on top of the packaged defaults (then neither the environment
            variable nor the Variable is read); by default every layer described in the module doc.

    Raises:
        ConfigurationError: a missing override file, bad YAML, an unknown key or an invalid value,
            with the source it came from.
    """
    layers = list(_layers(Path(path) if path is not None else None))
    merged: dict[str, Any] = {}
    for source, raw in layers:
        try:
            parse_integrations(raw)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{source}: {exc}") from exc
        merged = merge_layer(merged, raw)
    names = tuple(source for source, _ in layers)
    try:
        config = parse_integrations(merged)
    except ConfigurationError as exc:
        raise ConfigurationError(f"the layered config ({' + '.join(names)}): {exc}") from exc
    return IntegrationsConfig(**{**config.__dict__, "sources": names})


def merge_layer(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``layer`` on top: mappings merge key by key, anything else is replaced.

    A top-level ``schedule``/``timezone`` in ``layer`` also drops the per-platform values of ``base``,
    so "every platform at this time" from a later source is not shadowed by an earlier default; and an
    entity's ``conflicts`` policy in ``layer`` replaces the earlier one whole (a later ``winner`` never
    inherits an earlier ``fields``).
    """
    merged = _deep_merge(base, {})
    for key in _PER_PLATFORM_DEFAULTS:
        if key in layer:
            for entry in (merged.get("integrations") or {}).values():
                if isinstance(entry, dict):
                    entry.pop(key, None)
    policies, earlier = layer.get("conflicts"), merged.get("conflicts")
    if isinstance(policies, dict) and isinstance(earlier, dict):
        for entity in policies:
            earlier.pop(entity, None)
    return _deep_merge(merged, layer)


def _deep_merge(base: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    merged = {
        key: _deep_merge(value, {}) if isinstance(value, dict) else value for key, value in base.items()
    }
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = _deep_merge(value, {}) if isinstance(value, dict) else value
    return merged


def _layers(path: Path | None) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(source name, mapping)`` per layer, lowest first."""
    yield f"the packaged defaults ({DEFAULT_PATH})", _read_file(DEFAULT_PATH, "the packaged defaults")
    override = path if path is not None else config_path()
    if override is not None:
        where = f"{override}" if path is not None else f"{ENV_VAR}={override}"
        yield where, _read_file(override, where)
    if path is None:
        text = _variable_text()
        if text is not None and text.strip():
            source = f"Airflow Variable {VARIABLE}"
            yield source, _parse_text(text, source)


def _read_file(path: Path, where: str) -> dict[str, Any]:
    """Read and parse one YAML layer.

    Raises:
        ConfigurationError: the file does not exist, or is not a YAML mapping.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"integration config not found: {where} (set {ENV_VAR} to an existing file, or unset it)"
        ) from exc
    return _parse_text(text, str(path))


def _parse_text(text: str, source: str) -> dict[str, Any]:
    """Parse YAML (JSON is YAML too) into a mapping, naming the source on failure."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"integration config {source} is not valid YAML or JSON: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigurationError(f"integration config {source} must be a mapping, got {type(raw).__name__}")
    return raw


def _variable_text() -> str | None:
    """Return the Variable's text, or None when absent or unreadable (parsing must not break on it)."""
    try:
        from airflow.sdk import Variable

        value = Variable.get(VARIABLE, default=None)
    except Exception as exc:  # noqa: BLE001 - e.g. no task context under dag.test(); other layers still apply
        log.warning("Airflow Variable %s could not be read (%s: %s); it is ignored for this parse.",
                    VARIABLE, type(exc).__name__, exc)  # fmt: skip
        return None
    return value if value is None or isinstance(value, str) else yaml.safe_dump(value)


def parse_integrations(raw: dict[str, Any]) -> IntegrationsConfig:
    """Validate an already-loaded mapping into an :class:`IntegrationsConfig`.

    Raises:
        ConfigurationError: an unknown key or an invalid value, named by its path in the config.
    """
    _mapping(raw, "the config")
    _no_unknown_keys(raw, _TOP_KEYS, "the config")
    defaults = IntegrationsConfig()

    clientify = _section(raw, "clientify", "clientify")
    _no_unknown_keys(clientify, _CLIENTIFY_KEYS, "clientify")

    schedule = _cron(raw.get("schedule", defaults.schedule), "schedule")
    timezone = _timezone(raw["timezone"], "timezone") if raw.get("timezone") is not None else None
    integrations = _section(raw, "integrations", "integrations")
    _no_unknown_keys(integrations, {platform.value for platform in Platform}, "integrations")
    platforms = []
    for name in Platform:
        entry = _section(integrations, name, f"integrations.{name}")
        _no_unknown_keys(entry, _PLATFORM_KEYS, f"integrations.{name}")
        enabled = entry.get("enabled", name in integrations)
        if not isinstance(enabled, bool):
            raise ConfigurationError(f"integrations.{name}.enabled must be true or false, got {enabled!r}")
        platforms.append(
            PlatformConfig(
                name=name,
                enabled=enabled,
                conn_id=_text(entry.get("conn_id", f"{name}_default"), f"integrations.{name}.conn_id"),
                pool=_text(entry.get("pool", f"{name}_api"), f"integrations.{name}.pool"),
                schedule=_cron(entry.get("schedule", schedule), f"integrations.{name}.schedule"),
                timezone=_timezone(
                    entry.get("timezone", timezone or PLATFORM_TIMEZONES[name]),
                    f"integrations.{name}.timezone",
                ),
            )
        )

    return IntegrationsConfig(
        schedule=schedule,
        timezone=timezone,
        lookback=timedelta(minutes=_number(raw.get("lookback_minutes", 10), "lookback_minutes", minimum=0)),
        retries=int(_number(raw.get("retries", defaults.retries), "retries", minimum=2, integer=True)),
        retry_delay=timedelta(
            minutes=_number(raw.get("retry_delay_minutes", 5), "retry_delay_minutes", minimum=0)
        ),
        max_active_tasks=int(
            _number(raw.get("max_active_tasks", 2), "max_active_tasks", minimum=1, integer=True)
        ),
        prerequisite_poke=timedelta(
            seconds=_number(raw.get("prerequisite_poke_seconds", 60), "prerequisite_poke_seconds", minimum=1)
        ),
        prerequisite_timeout=timedelta(
            minutes=_number(
                raw.get("prerequisite_timeout_minutes", 120), "prerequisite_timeout_minutes", minimum=1
            )
        ),
        clientify_conn_id=_text(clientify.get("conn_id", defaults.clientify_conn_id), "clientify.conn_id"),
        clientify_pool=_text(clientify.get("pool", defaults.clientify_pool), "clientify.pool"),
        platforms=tuple(platforms),
        invoicing_wins=_conflicts(_section(raw, "conflicts", "conflicts")),
        rounding_adjustment=_flag(raw.get("rounding_adjustment", True), "rounding_adjustment"),
        webhooks=_flag(raw.get("webhooks", False), "webhooks"),
    )


def _flag(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where} must be true or false, got {value!r}")
    return value


def _conflicts(raw: dict[str, Any]) -> dict[Entity, frozenset[str]]:
    """The ``conflicts`` section: per entity, which side wins a field both sides changed.

    ``<entity>: invoicing`` (or ``clientify``) gives that side every field; ``<entity>: {winner: <side>,
    fields: [...]}`` gives it the fields listed and the other side the rest. Returned as the fields the
    invoicing side wins, per entity set.
    """
    _no_unknown_keys(raw, {entity.value for entity in Entity}, "conflicts")
    if not raw:
        return {}
    # The schemas name the fields (standard library only); imported only when a policy is set, so
    # parsing the default config loads nothing of the engine.
    from clientify_sync.engine.model import SCHEMAS

    sides = f"{Side.INVOICING.value} or {Side.CLIENTIFY.value}"
    policy: dict[Entity, frozenset[str]] = {}
    for entity in Entity:
        if entity.value not in raw:
            continue
        where, entry = f"conflicts.{entity.value}", raw[entity.value]
        if isinstance(entry, str):
            entry = {"winner": entry}
        if not isinstance(entry, dict):
            raise ConfigurationError(
                f"{where} must be {sides}, or a mapping with winner and fields, got {entry!r}"
            )
        _no_unknown_keys(entry, _CONFLICT_KEYS, where)
        winner = entry.get("winner")
        if winner not in {side.value for side in Side}:
            raise ConfigurationError(f"{where}.winner must be {sides}, got {winner!r}")
        known = SCHEMAS[entity].fields
        fields = _field_names(entry.get("fields", list(known)), known, f"{where}.fields", entity)
        policy[entity] = fields if winner == Side.INVOICING.value else frozenset(known) - fields
    return policy


def _field_names(value: Any, known: tuple[str, ...], where: str, entity: Entity) -> frozenset[str]:
    if not isinstance(value, list) or not value or not all(isinstance(name, str) for name in value):
        raise ConfigurationError(
            f"{where} must be a non-empty list of field names (omit it for every field), got {value!r}"
        )
    unknown = [name for name in value if name not in known]
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown field(s) {', '.join(unknown)}; {entity.value} have {', '.join(known)}"
        )
    return frozenset(value)


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{where} must be a mapping, got {type(value).__name__}")
    return value


def _section(parent: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = parent.get(key)
    return {} if value is None else _mapping(value, where)


def _no_unknown_keys(value: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigurationError(f"unknown key(s) in {where}: {', '.join(map(str, unknown))}")


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigurationError(f"{where} must be a non-empty string, got {value!r}")
    return value.strip()


def _cron(value: Any, where: str) -> str:
    """A five-field cron expression (presets such as @hourly are refused: they hide the time of day)."""
    expression = _text(value, where)
    if len(expression.split()) != 5:
        raise ConfigurationError(f"{where} must be a five-field cron expression, got {expression!r}")
    from croniter import croniter  # Airflow's own cron library

    if not croniter.is_valid(expression):
        raise ConfigurationError(f"{where} is not a valid cron expression: {expression!r}")
    return expression


def _timezone(value: Any, where: str) -> str:
    """An IANA timezone name pendulum knows (``America/Mexico_City``, ``Europe/Madrid``, ``UTC``)."""
    name = _text(value, where)
    import pendulum

    try:
        pendulum.timezone(name)
    except Exception:  # noqa: BLE001 - pendulum raises several types for unknown names
        raise ConfigurationError(f"{where} must be an IANA timezone name, got {name!r}") from None
    return name


def _number(value: Any, where: str, *, minimum: float, integer: bool = False) -> float:
    valid = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{where} must be {kind} >= {minimum}, got {value!r}")
    return float(value)
