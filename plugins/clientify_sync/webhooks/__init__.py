"""Near-real-time: webhook deliveries into the ledger's inbox, and the inbox into Airflow asset events.

``verify`` proves a sender (FacturaDirecta's signature, Clientify's shared secret), ``config`` reads the
secrets from their Airflow connections, ``receiver`` is the public FastAPI app (mounted by the status
app at ``/clientify-sync/webhooks``) that stores one inbox row per event, and ``trigger`` is the
``AssetWatcher`` trigger that turns new inbox rows into a debounced wake-up of the entity's DAG. The
engine never imports this package.
"""
