"""The sync status view: an Airflow UI plugin that shows what the state ledger knows about every record.

``queries`` reads the ledger (plain SQLAlchemy, no Airflow, so it is tested and benchmarked alone);
``app`` is the FastAPI app Airflow's API server mounts (pages, auth, the two dead-letter actions);
``plugin`` defines the AirflowPlugin (registered by the distribution's entry point, or by
``plugins/clientify_sync_status_plugin.py`` in the repository layout). The engine never imports this package.
"""
