"""Registers the status view from the plugins folder when clientify-sync is not pip-installed.

The plugin scan skips ``clientify_sync/`` (see .airflowignore), so this file brings the class in. An
installed distribution registers it through its ``airflow.plugins`` entry point instead; registering
it here too would make Airflow report "already registered" as a plugin import error.
"""

from __future__ import annotations

from importlib.metadata import entry_points

if not any(ep.name == "clientify_sync_status" for ep in entry_points(group="airflow.plugins")):
    from clientify_sync.ui.plugin import ClientifySyncStatusPlugin

    __all__ = ["ClientifySyncStatusPlugin"]
