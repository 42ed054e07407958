"""The integration config: which invoicing platforms are synced, how often, with which knobs.

One small YAML file (``include/integrations.yaml``) that the DAG factory reads when the DAG files
are parsed. It holds no secrets: credentials are Airflow connections, named here by ``conn_id``.
``CLIENTIFY_SYNC_INTEGRATIONS`` points at another file (tests, per-environment overrides).

Reading a local file is the only I/O: no network, no metadata database. No Airflow imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from clientify_sync.errors import ConfigurationError

ENV_VAR = "CLIENTIFY_SYNC_INTEGRATIONS"
# plugins/clientify_sync/integrations.py -> <project>/include/integrations.yaml (Astro layout).
DEFAULT_PATH = Path(__file__).resolve().parents[2] / "include" / "integrations.yaml"

PLATFORMS = ("facturama", "facturadirecta")
ENTITIES = ("contacts", "products", "estimates")

_TOP_KEYS = {
    "schedule",
    "timezone",
    "lookback_minutes",
    "retries",
    "retry_delay_minutes",
    "max_active_tasks",
    "prerequisite_poke_seconds",
    "prerequisite_timeout_minutes",
    "clientify",
    "integrations",
}
_CLIENTIFY_KEYS = {"conn_id", "pool"}
_PLATFORM_KEYS = {"enabled", "conn_id", "pool"}


@dataclass(frozen=True)
class PlatformConfig:
    """One invoicing platform: whether it is synced, its Airflow connection and its pool."""

    name: str
    enabled: bool
    conn_id: str
    pool: str


@dataclass(frozen=True)
class IntegrationsConfig:
    """The whole config, validated."""

    schedule: str = "0 * * * *"
    timezone: str = "UTC"
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

    @property
    def enabled_platforms(self) -> tuple[PlatformConfig, ...]:
        """The platforms that get DAGs, in config order."""
        return tuple(p for p in self.platforms if p.enabled)

    def platform(self, name: str) -> PlatformConfig:
        """Return one platform's config by name."""
        for platform in self.platforms:
            if platform.name == name:
                return platform
        raise ConfigurationError(f"integration {name!r} is not configured")


def config_path() -> Path:
    """Return the config file in use: ``$CLIENTIFY_SYNC_INTEGRATIONS`` or ``include/integrations.yaml``."""
    override = os.environ.get(ENV_VAR, "").strip()
    return Path(override) if override else DEFAULT_PATH


def load_integrations(path: str | os.PathLike[str] | None = None) -> IntegrationsConfig:
    """
    Read and validate the integration config.

    :param path: the YAML file; defaults to :func:`config_path`.
    :raise ConfigurationError: missing file, bad YAML, unknown key or invalid value.
    """
    source = Path(path) if path is not None else config_path()
    try:
        raw = yaml.safe_load(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigurationError(
            f"integration config not found: {source} (set {ENV_VAR} to use another file)"
        ) from exc
    except yaml.YAMLError as exc:
        raise ConfigurationError(f"integration config {source} is not valid YAML: {exc}") from exc
    try:
        return parse_integrations(raw or {})
    except ConfigurationError as exc:
        raise ConfigurationError(f"{source}: {exc}") from exc


def parse_integrations(raw: dict[str, Any]) -> IntegrationsConfig:
    """Validate an already-loaded mapping into an :class:`IntegrationsConfig`."""
    _mapping(raw, "the config")
    _no_unknown_keys(raw, _TOP_KEYS, "the config")
    defaults = IntegrationsConfig()

    clientify = _section(raw, "clientify", "clientify")
    _no_unknown_keys(clientify, _CLIENTIFY_KEYS, "clientify")

    integrations = _section(raw, "integrations", "integrations")
    _no_unknown_keys(integrations, set(PLATFORMS), "integrations")
    platforms = []
    for name in PLATFORMS:
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
            )
        )

    schedule = _text(raw.get("schedule", defaults.schedule), "schedule")
    if len(schedule.split()) != 5:
        raise ConfigurationError(f"schedule must be a five-field cron expression, got {schedule!r}")
    return IntegrationsConfig(
        schedule=schedule,
        timezone=_text(raw.get("timezone", defaults.timezone), "timezone"),
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
    )


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


def _number(value: Any, where: str, *, minimum: float, integer: bool = False) -> float:
    valid = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{where} must be {kind} >= {minimum}, got {value!r}")
    return value
