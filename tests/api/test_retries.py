"""Retry policy and the POST safety rule, with scripted responses (no sleeping: waits are recorded)."""

from __future__ import annotations

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.errors import (
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    TransientApiError,
    UnconfirmedWriteError,
    ValidationError,
)

from .scripted import (
    Script,
    Sleeps,
    clientify_settings,
    facturadirecta_settings,
    facturama_settings,
    json_response,
    xml_response,
)

OK_CLIENT = {"Id": "abc", "Rfc": "URE180429TM6"}


def facturama(script: Script, sleeps: Sleeps | None = None, **settings: object) -> FacturamaClient:
    return FacturamaClient(
        facturama_settings(**settings),
        transport=script.transport,
        sleep=Sleeps() if sleeps is None else sleeps,
    )


def connect_error() -> httpx.ConnectError:
    return httpx.ConnectError("[Errno 111] Connection refused")


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(json_response(502, {"Message": "bad gateway"}), id="502"),
        pytest.param(json_response(503, {"Message": "unavailable"}), id="503"),
        pytest.param(json_response(504, {"Message": "gateway timeout"}), id="504"),
        pytest.param(connect_error(), id="connect-error"),
        pytest.param(httpx.ReadTimeout("timed out"), id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("Server disconnected"), id="dropped"),
        pytest.param(httpx.Response(200, content=b'{"Id": "abc", "Rf'), id="truncated-json"),
    ],
)
def test_a_get_is_retried_after_a_retriable_failure(failure: httpx.Response | Exception) -> None:
    script = Script([failure, failure, json_response(200, OK_CLIENT)])
    client = facturama(script)
    assert client.clients.get("abc") == OK_CLIENT
    assert script.left == 0
    summary = client.stats.summary()
    assert (summary["calls"], summary["retries"], summary["errors"]) == (3, 2, 2)


def test_a_500_is_not_retried_even_for_a_get() -> None:
    script = Script([json_response(500, {"Message": "An error has occurred."})])
    with pytest.raises(TransientApiError) as caught:
        facturama(script).clients.get("abc")
    assert caught.value.status == 500


@pytest.mark.parametrize(
    "status", [pytest.param(400, id="400"), pytest.param(404, id="404"), pytest.param(409, id="409")]
)
def test_client_errors_are_never_retried(status: int) -> None:
    script = Script([json_response(status, {"Message": "no"}), json_response(200, OK_CLIENT)])
    with pytest.raises((ValidationError, NotFoundError)):
        facturama(script).clients.get("abc")
    assert script.left == 1


def test_retries_are_bounded_and_the_typed_error_is_reraised() -> None:
    script = Script([json_response(503, {"Message": "down"})] * 4)
    sleeps = Sleeps()
    with pytest.raises(TransientApiError) as caught:
        facturama(script, sleeps, max_retries=3).clients.get("abc")
    assert caught.value.status == 503
    assert script.left == 0 and len(sleeps) == 3


def test_backoff_grows_exponentially_and_is_capped() -> None:
    script = Script([json_response(502, {})] * 5 + [json_response(200, OK_CLIENT)])
    sleeps = Sleeps()
    facturama(script, sleeps, max_retries=5, backoff_base=1.0, backoff_max=5.0).clients.get("abc")
    # base * 2**n plus up to one base of jitter, never above backoff_max
    assert 1.0 <= sleeps[0] <= 2.0
    assert 2.0 <= sleeps[1] <= 3.0
    assert 4.0 <= sleeps[2] <= 5.0
    assert sleeps[3] == sleeps[4] == 5.0


def test_429_waits_for_retry_after_capped() -> None:
    script = Script(
        [
            json_response(429, {"Message": "slow down"}, {"Retry-After": "2"}),
            json_response(429, {"Message": "slow down"}, {"Retry-After": "3600"}),
            json_response(200, OK_CLIENT),
        ]
    )
    sleeps = Sleeps()
    facturama(script, sleeps, retry_after_max=30.0).clients.get("abc")
    assert sleeps == [2.0, 30.0]


def test_429_exhausted_raises_rate_limited_with_retry_after() -> None:
    script = Script([json_response(429, {"Message": "slow"}, {"Retry-After": "1"})] * 2)
    with pytest.raises(RateLimitedError) as caught:
        facturama(script, max_retries=1).clients.get("abc")
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("timed out"), id="read-timeout"),
        pytest.param(
            httpx.RemoteProtocolError("Server disconnected without sending a response."), id="dropped"
        ),
        pytest.param(httpx.WriteTimeout("timed out"), id="write-timeout"),
        pytest.param(json_response(500, {"Message": "An error has occurred."}), id="500"),
        pytest.param(json_response(502, {"Message": "bad gateway"}), id="502"),
        pytest.param(json_response(504, {"Message": "gateway timeout"}), id="504"),
        pytest.param(httpx.Response(201, content=b'{"Id": "new", "Rf'), id="truncated-201"),
    ],
)
def test_a_post_that_may_have_been_applied_is_never_resent(failure: httpx.Response | Exception) -> None:
    script = Script([failure, json_response(201, OK_CLIENT)])
    with pytest.raises(UnconfirmedWriteError) as caught:
        facturama(script).clients.create({"Rfc": "URE180429TM6", "Name": "X"})
    assert script.left == 1, "the POST was sent again"
    error = caught.value
    assert (error.api, error.method, error.route, error.natural_key) == (
        "facturama",
        "POST",
        "/Client",
        "URE180429TM6",
    )


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(connect_error(), id="connect-error"),
        pytest.param(httpx.ConnectTimeout("timed out"), id="connect-timeout"),
        pytest.param(json_response(503, {"Message": "down"}, {"Retry-After": "1"}), id="503"),
        pytest.param(json_response(429, {"Message": "slow"}, {"Retry-After": "1"}), id="429"),
    ],
)
def test_a_post_that_was_not_processed_is_retried(failure: httpx.Response | Exception) -> None:
    script = Script([failure, json_response(201, OK_CLIENT)])
    assert facturama(script).clients.create({"Rfc": "URE180429TM6"}) == OK_CLIENT
    assert script.left == 0
    assert len([r for r in script.requests if r.method == "POST"]) == 2


def test_a_caller_supplied_natural_key_wins() -> None:
    script = Script([httpx.ReadTimeout("timed out")])
    with pytest.raises(UnconfirmedWriteError) as caught:
        facturama(script).products.create({"IdentificationNumber": "WEB003"}, natural_key="sku:WEB003")
    assert caught.value.natural_key == "sku:WEB003"


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(httpx.ReadTimeout("timed out"), id="timeout"),
        pytest.param(json_response(502, {}), id="502"),
    ],
)
def test_put_is_idempotent_and_retried(failure: httpx.Response | Exception) -> None:
    script = Script([failure, httpx.Response(204)])
    assert facturama(script).clients.update("abc", {"Rfc": "URE180429TM6"}) is None
    assert [r.method for r in script.requests] == ["PUT", "PUT"]


def test_a_delete_whose_first_answer_was_lost_counts_as_done_on_a_404_retry() -> None:
    script = Script(
        [httpx.ReadTimeout("timed out"), json_response(404, {"Message": "No se encontró el elemento."})]
    )
    assert facturama(script).clients.delete("abc") is None


def test_a_first_attempt_delete_404_is_still_not_found() -> None:
    with pytest.raises(NotFoundError):
        facturama(Script([json_response(404, {"Message": "No"})])).clients.delete("abc")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            httpx.Response(
                200, content=b"<!DOCTYPE html><html>proxy</html>", headers={"content-type": "text/html"}
            ),
            id="html",
        ),
        pytest.param(httpx.Response(200, content=b"OK, saved"), id="plain-text"),
        pytest.param(httpx.Response(200, content=b"<?xml version='1.0'?><a/>"), id="xml-on-json-api"),
    ],
)
def test_a_success_body_that_is_not_json_is_malformed_and_not_retried(body: httpx.Response) -> None:
    script = Script([body, json_response(200, OK_CLIENT)])
    with pytest.raises(MalformedResponseError):
        facturama(script).clients.get("abc")
    assert script.left == 1


def test_clientify_retries_and_honours_retry_after() -> None:
    sleeps = Sleeps()
    script = Script(
        [
            json_response(
                429,
                {"detail": "Request was throttled. Expected available in 1 seconds."},
                {"Retry-After": "1"},
            ),
            json_response(200, {"id": 1}),
        ]
    )
    client = ClientifyClient(clientify_settings(), transport=script.transport, sleep=sleeps)
    assert client.contacts.get(1) == {"id": 1}
    assert sleeps == [1.0]


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(
            xml_response(200, '<?xml version="1.0"?><clients total="2"><client><id>1</id></cli'),
            id="truncated",
        ),
        pytest.param(xml_response(503, "<xml><httpStatus>503</httpStatus></xml>"), id="503"),
    ],
)
def test_facturadirecta_get_is_retried(failure: httpx.Response) -> None:
    script = Script([failure, xml_response(200, "<client><id>1</id></client>")])
    client = FacturaDirectaClient(facturadirecta_settings(), transport=script.transport, sleep=Sleeps())
    assert client.clients.get(1) == {"id": "1"}


def test_facturadirecta_truncated_post_answer_is_unconfirmed() -> None:
    script = Script([xml_response(200, "<?xml version='1.0'?><client><id>9</id><taxCode>B1")])
    client = FacturaDirectaClient(facturadirecta_settings(), transport=script.transport, sleep=Sleeps())
    with pytest.raises(UnconfirmedWriteError) as caught:
        client.clients.create({"legalType": "J", "name": "ACME", "taxCode": "B12345674"})
    assert caught.value.natural_key == "B12345674" and caught.value.status == 200


def test_503_with_retry_after_waits_as_asked() -> None:
    script = Script(
        [json_response(503, {"Message": "down"}, {"Retry-After": "2"}), json_response(200, OK_CLIENT)]
    )
    sleeps = Sleeps()
    facturama(script, sleeps).clients.get("abc")
    assert sleeps == [2.0]
