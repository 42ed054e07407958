"""Credentials and personal data never reach logs, exception messages or reprs."""

from __future__ import annotations

import logging

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.api.redaction import redact_token, redact_url
from clientify_sync.errors import ClientifySyncError

from .scripted import (
    CLIENTIFY_KEY,
    FACTURAMA_PASSWORD,
    FD_TOKEN,
    Script,
    Sleeps,
    clientify_settings,
    facturadirecta_settings,
    facturama_settings,
    json_response,
    xml_response,
)

RFC = "URE180429TM6"
EMAIL = "ana.lopez@example.com"
SECRETS = (FACTURAMA_PASSWORD, CLIENTIFY_KEY, FD_TOKEN, RFC, EMAIL, "Basic ", "Token ")


def test_redact_url_masks_every_query_value() -> None:
    url = f"https://a.test/api/clients.xml?api_token={FD_TOKEN}&taxCode=B12345674&start=0"
    assert redact_url(url) == "https://a.test/api/clients.xml?api_token=***&taxCode=***&start=***"
    assert redact_token(f"GET /x?a=1&API_TOKEN={FD_TOKEN}") == "GET /x?a=1&API_TOKEN=***"


def run_and_collect(action, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Run ``action`` with every logger at DEBUG; return log text plus any error's str and repr."""
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for name in ("httpx", "httpcore", "clientify_sync"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            action()
        except ClientifySyncError as error:
            texts += [str(error), repr(error)]
    texts += [record.getMessage() for record in caplog.records]
    return texts


def assert_clean(texts: list[str]) -> None:
    assert texts, "nothing was logged: the test would pass for nothing"
    for secret in SECRETS:
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"{secret!r} leaked: {leaks[:2]}"


def test_facturadirecta_query_token_is_masked_in_a_failing_and_a_succeeding_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing = Script([httpx.ReadTimeout("timed out"), xml_response(503, "<xml><httpStatus>503</httpStatus></xml>"),
                      xml_response(401, "<xml><httpStatus>401</httpStatus></xml>")])  # fmt: skip
    client = FacturaDirectaClient(
        facturadirecta_settings(auth_style="query"), transport=failing.transport, sleep=Sleeps()
    )
    texts = run_and_collect(lambda: client.clients.find(taxCode="B12345674", email=EMAIL), caplog)
    assert any("api_token=***" in text for text in texts)
    assert_clean(texts)
    succeeding = Script([xml_response(200, '<clients total="1"><client><id>1</id></client></clients>')])
    client = FacturaDirectaClient(
        facturadirecta_settings(auth_style="query"), transport=succeeding.transport, sleep=Sleeps()
    )
    assert_clean(run_and_collect(lambda: client.clients.find(email=EMAIL), caplog))


def test_facturama_basic_password_and_rfc_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    failing = Script(
        [
            json_response(502, {}),
            json_response(401, {"Message": "Authorization has been denied for this request."}),
        ]
    )
    client = FacturamaClient(facturama_settings(), transport=failing.transport, sleep=Sleeps())
    assert_clean(run_and_collect(lambda: client.clients.find_by_rfc(RFC), caplog))
    page = {"recordsTotal": 1, "recordsFiltered": 1, "data": [{"Id": "1", "Rfc": RFC, "Email": EMAIL}]}
    client = FacturamaClient(
        facturama_settings(), transport=Script([json_response(200, page)]).transport, sleep=Sleeps()
    )
    assert_clean(run_and_collect(lambda: client.clients.find_by_rfc(RFC), caplog))


def test_clientify_key_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    failing = Script(
        [httpx.RemoteProtocolError("Server disconnected"), json_response(401, {"detail": "Invalid token."})]
    )
    client = ClientifyClient(clientify_settings(), transport=failing.transport, sleep=Sleeps())
    assert_clean(run_and_collect(lambda: client.contacts.find_by_tax_id(RFC), caplog))
    post = Script([httpx.ReadTimeout("timed out")])
    client = ClientifyClient(clientify_settings(), transport=post.transport, sleep=Sleeps())
    assert_clean(
        run_and_collect(
            lambda: client.contacts.create({"email": EMAIL, "taxpayer_identification_number": RFC}), caplog
        )
    )


def test_client_and_settings_reprs_carry_no_secret() -> None:
    clients = [
        FacturamaClient(facturama_settings()),
        ClientifyClient(clientify_settings()),
        FacturaDirectaClient(facturadirecta_settings(auth_style="query")),
    ]
    shown = " ".join(repr(client) + repr(client.settings) for client in clients)
    assert_clean([shown])
