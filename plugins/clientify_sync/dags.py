"""The sync DAGs for a deployment's DAG file, which is two lines::

    from clientify_sync.dags import build_dags  # Airflow DAGs

    globals().update(build_dags())

``build_dags()`` returns the DAGs of every enabled integration by ``dag_id`` (module-level names are
how Airflow finds DAG objects in a file). Which integrations, schedules and timezones come from the
packaged defaults, ``$CLIENTIFY_SYNC_INTEGRATIONS`` and the Airflow Variable
``clientify_sync_integrations`` (:mod:`clientify_sync.integrations`); a bad value fails the import
of that file with an error naming the key and its source. Airflow's DAG discovery skips files
without the word "airflow" (``[core] dag_discovery_safe_mode``): keep the comment on the first line.
"""

from __future__ import annotations

from clientify_sync.dag_factory import build_dags

__all__ = ["build_dags"]
