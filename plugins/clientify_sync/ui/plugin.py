"""The clientify-sync status view as an Airflow plugin.

Registered by the installed distribution's ``airflow.plugins`` entry point, or, in the repository's
Astro layout (package not installed), by ``plugins/clientify_sync_status_plugin.py``: never both.

A FastAPI app mounted by the API server at ``/clientify-sync`` and two external views: an entry in
the navigation (the overview, records, conflicts and dead letters) and a tab on every DAG run (the
run's sync report; other DAGs' runs get a one-line "not ours" page). The app's code is in
``clientify_sync.ui``.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from clientify_sync.ui.app import URL_PREFIX, app

# A two-arrow "sync" glyph in Airflow's muted gray, readable on light and dark navigation bars.
_ICON = (
    "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 24 24' fill='none' "
    "stroke='%23718096' stroke-width='2' stroke-linecap='round' stroke-linejoin='round'>"
    "<path d='M21 12a9 9 0 0 1-15.5 6.2L3 16'/><path d='M3 21v-5h5'/>"
    "<path d='M3 12a9 9 0 0 1 15.5-6.2L21 8'/><path d='M21 3v5h-5'/></svg>"
)


class ClientifySyncStatusPlugin(AirflowPlugin):
    """The sync status pages inside Airflow's UI."""

    name = "clientify_sync_status"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Clientify sync status"}]
    external_views = [
        {
            "name": "Clientify sync",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "clientify-sync",
            "icon": _ICON,
        },
        {
            "name": "Sync report",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "clientify-sync-run",
            "icon": _ICON,
        },
    ]
