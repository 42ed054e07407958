"""``[core] hostname_callable`` for the e2e Celery workers.

Why: both workers run on this one machine, so the default (the FQDN) would give every task instance
the same ``hostname``. Each worker's environment names it (``E2E_WORKER_NAME``); the task runner
then reports that name, and the suite can tell which worker ran each task from the REST API.
"""

from __future__ import annotations

import os
import socket


def worker_hostname() -> str:
    """The worker's name from ``E2E_WORKER_NAME``, else the machine's FQDN."""
    return os.environ.get("E2E_WORKER_NAME") or socket.getfqdn()
