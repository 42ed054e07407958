"""The API server's access log never shows the Clientify path token (``webhooks/access_log.py``).

Airflow's own ``HttpAccessLogMiddleware`` wraps the app the status app is mounted in, as in the API
server; without ``MaskPathToken`` its ``request finished`` line carried the token (end-to-end run).
"""

from __future__ import annotations

import pytest
import structlog
from airflow.api_fastapi.common.http_access_log import HttpAccessLogMiddleware
from sqlalchemy.engine import Engine

from clientify_sync.webhooks.access_log import masked
from tests.webhooks.test_receiver import CF_TOKEN, cf_body, cf_post, cf_url, make_client, rows


def test_masked_hides_only_the_last_segment_of_a_clientify_target() -> None:
    assert masked(f"/clientify-sync/webhooks/clientify/contacts/{CF_TOKEN}") == (
        "/clientify-sync/webhooks/clientify/contacts/***"
    )
    assert masked(f"/clientify-sync/webhooks/clientify/budgets/{CF_TOKEN}/") == (
        "/clientify-sync/webhooks/clientify/budgets/***/"
    )
    assert (
        masked("/clientify-sync/webhooks/facturadirecta/main")
        == "/clientify-sync/webhooks/facturadirecta/main"
    )
    assert masked("/api/v2/dags") == "/api/v2/dags"


@pytest.mark.parametrize("token", [CF_TOKEN, "tok-" + "00" * 16])
def test_the_access_log_shows_no_path_token(engine: Engine, token: str) -> None:
    client = make_client(engine)
    client.app.add_middleware(HttpAccessLogMiddleware)  # type: ignore[union-attr]
    with structlog.testing.capture_logs() as logs:
        response = cf_post(client, cf_body(), url=cf_url(token=token))
    assert response.status_code == (200 if token == CF_TOKEN else 401)
    assert len(rows(engine)) == (2 if token == CF_TOKEN else 0)  # one row per consuming platform
    [line] = [e for e in logs if e.get("event") == "request finished"]
    assert line["path"] == "/clientify-sync/webhooks/clientify/contacts/***"
    assert token not in repr(logs)
