"""
Clientify sync DAGs: Facturama (Mexico) and FacturaDirecta (Spain) ⇄ the Clientify CRM.

One DAG per invoicing platform and entity, built from ``include/integrations.yaml``:
``facturama_contacts``, ``facturama_products``, ``facturama_estimates``, ``facturadirecta_contacts``,
``facturadirecta_products``, ``facturadirecta_estimates`` (a platform switched off in the config has
no DAGs). This file only wires; the tasks, schedules and watermark rules live in
``clientify_sync.dag_factory`` (plugins/), the sync logic in ``clientify_sync.engine``.

Parsing it reads the YAML config and nothing else: no network, no database, no Airflow Variable.
"""

from __future__ import annotations

from clientify_sync.dag_factory import build_dags

# Module-level names are how the DAG processor finds DAG objects in a file.
globals().update(build_dags())
