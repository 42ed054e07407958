"""No credential or personal datum in DEBUG logs (ours, httpx, httpcore) over real sockets."""

from __future__ import annotations

import base64
import logging

import pytest

from clientify_sync.errors import ClientifySyncError

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for

RFC = "URE180429TM6"
NIF = "B12345674"
EMAIL = "ana.lopez@example.com"


def capture(caplog: pytest.LogCaptureFixture, action) -> list[str]:
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG):
        for name in ("httpx", "httpcore", "clientify_sync"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        try:
            action()
        except ClientifySyncError as error:
            texts += [str(error), repr(error)]
    return texts + [record.getMessage() for record in caplog.records]


def assert_clean(texts: list[str], secrets: tuple[str, ...]) -> None:
    assert any("send_request_headers" in t for t in texts), (
        "httpcore was not logging: the test proves nothing"
    )
    for secret in secrets:
        assert not [t for t in texts if secret in t], f"{secret!r} leaked"


def test_facturadirecta_query_token_stays_out_of_logs(
    clean_sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    token = clean_sandbox.facturadirecta_token
    secrets = (token, NIF, EMAIL)
    clean_sandbox.faults("facturadirecta", [{"rates": {"503": 1.0}, "count": 1, "retry_after": 0.01},
                                            {"rates": {"drop": 1.0}, "count": 1}])  # fmt: skip

    def succeeding() -> None:
        with facturadirecta_for(clean_sandbox, auth_style="query") as client:
            client.clients.create({"legalType": "J", "name": "ACME", "taxCode": NIF, "email": EMAIL})
            client.clients.find(taxCode=NIF, email=EMAIL)

    texts = capture(caplog, succeeding)
    assert any("api_token=***" in t for t in texts)
    assert_clean(texts, secrets)
    caplog.clear()

    def failing() -> None:
        with facturadirecta_for(clean_sandbox, auth_style="query", token=token + "-wrong") as client:
            client.clients.find(taxCode=NIF)

    assert_clean(capture(caplog, failing), (*secrets, token + "-wrong"))


def test_facturama_password_and_rfc_stay_out_of_logs(clean_sandbox, caplog: pytest.LogCaptureFixture) -> None:
    password = clean_sandbox.facturama_password

    def run() -> None:
        with facturama_for(clean_sandbox) as client:
            client.clients.create({"Rfc": RFC, "Name": "X", "Email": EMAIL})
            client.clients.find_by_rfc(RFC)
        with facturama_for(clean_sandbox, password=password + "-wrong") as client:
            client.clients.find_by_rfc(RFC)

    basic = base64.b64encode(f"{clean_sandbox.facturama_user}:{password}".encode()).decode()
    assert_clean(capture(caplog, run), (password, basic, RFC, EMAIL))


def test_clientify_key_stays_out_of_logs(clean_sandbox, caplog: pytest.LogCaptureFixture) -> None:
    key = clean_sandbox.clientify_token
    clean_sandbox.faults(
        "clientify", [{"method": "POST", "rates": {"timeout": 1.0}, "timeout_s": 1, "count": 1}]
    )

    def run() -> None:
        with clientify_for(clean_sandbox, timeout=0.2) as client:
            client.contacts.find_by_tax_id(RFC)
            client.contacts.create({"email": EMAIL, "taxpayer_identification_number": RFC})

    assert_clean(capture(caplog, run), (key, RFC, EMAIL))
