from clientify_sync.dags import build_dags  # Airflow DAGs: Facturama/FacturaDirecta <-> Clientify

globals().update(build_dags())
