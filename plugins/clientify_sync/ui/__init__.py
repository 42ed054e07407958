"""The sync status view: an Airflow UI plugin that shows what the state ledger knows about every record.

``queries`` reads the ledger (plain SQLAlchemy, no Airflow, so it is tested and benchmarked alone);
``app`` is the FastAPI app Airflow's API server mounts (pages, auth, the two dead-letter actions);
``plugins/clientify_sync_status_plugin.py`` registers it. The engine never imports this package.
"""
