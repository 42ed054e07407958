"""Every sandbox fault mode against the real clients, over loopback HTTP."""

from __future__ import annotations

import pytest

from clientify_sync.errors import MalformedResponseError, TransientApiError, UnconfirmedWriteError

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for, sent, wait_for_timeouts_to_end

FM_CLIENT = {"Rfc": "URE180429TM6", "Name": "UNIVERSIDAD ROBOTICA ESPAÑOLA", "FiscalRegime": "601"}


def one_fault(
    sandbox, api: str, kind: str, *, method: str = "*", path: str = ".*", count: int | None = 1, **rule
) -> None:
    sandbox.faults(api, [{"method": method, "path": path, "rates": {kind: 1.0}, "count": count, **rule}])


def test_429_retry_after_is_honoured_then_the_get_succeeds(clean_sandbox) -> None:
    clean_sandbox.seed("clientify", products=3)
    one_fault(clean_sandbox, "clientify", "429", count=2, retry_after=0.3)
    waits: list[float] = []
    with clientify_for(clean_sandbox, backoff_max=0.01, sleep=waits.append) as client:
        assert len(list(client.products.iter_records())) == 3
        summary = client.stats.summary()
    assert waits == [0.3, 0.3]  # two waits of Retry-After, not the 0.01 s backoff cap
    assert (summary["calls"], summary["retries"]) == (3, 2)
    assert sent(clean_sandbox, "clientify", "GET") == 3


@pytest.mark.parametrize("kind", ["502", "503", "504", "drop", "truncate"])
def test_a_get_survives_one_transient_fault(clean_sandbox, kind: str) -> None:
    clean_sandbox.seed("facturadirecta", clients=3)
    one_fault(clean_sandbox, "facturadirecta", kind, retry_after=0.01)
    with facturadirecta_for(clean_sandbox) as client:
        assert len(list(client.clients.iter_records())) == 3
        assert client.stats.summary()["retries"] == 1


def test_a_read_timeout_is_retried_with_a_short_client_timeout(clean_sandbox) -> None:
    clean_sandbox.seed("facturama", products=2)
    one_fault(clean_sandbox, "facturama", "timeout", timeout_s=2)
    with facturama_for(clean_sandbox, timeout=0.2) as client:
        assert len(list(client.products.iter_records())) == 2
        routes = client.stats.summary()["routes"]
    # The first attempt gave up at the client's 0.2 s (no response), the retry got the page.
    assert routes["GET /Products"]["statuses"] == {"200": 1, "none": 1}


def test_timeouts_that_persist_end_in_a_transient_error(clean_sandbox) -> None:
    one_fault(clean_sandbox, "clientify", "timeout", count=None, timeout_s=2)
    with (
        clientify_for(clean_sandbox, timeout=0.1, max_retries=1) as client,
        pytest.raises(TransientApiError) as caught,
    ):
        client.contacts.get(1)
    assert caught.value.status is None and "ReadTimeout" in caught.value.detail


@pytest.mark.parametrize("kind", ["html", "xml_bomb", "xxe"])
def test_hostile_or_foreign_bodies_on_a_json_api_are_malformed(clean_sandbox, kind: str) -> None:
    one_fault(clean_sandbox, "clientify", kind)
    with clientify_for(clean_sandbox) as client, pytest.raises(MalformedResponseError):
        client.contacts.get(1)
    assert sent(clean_sandbox, "clientify", "GET") == 1


@pytest.mark.parametrize("kind", ["html", "xml_bomb", "xxe"])
def test_hostile_or_html_xml_is_refused_fast_and_leaks_nothing(clean_sandbox, kind: str) -> None:
    one_fault(clean_sandbox, "facturadirecta", kind, xxe_target="file:///etc/passwd")
    with facturadirecta_for(clean_sandbox) as client, pytest.raises(MalformedResponseError) as caught:
        list(client.clients.iter_records())
    shown = str(caught.value) + repr(caught.value) + caught.value.detail
    assert "root:" not in shown and "lollol" not in shown
    assert sent(clean_sandbox, "facturadirecta", "GET") == 1


@pytest.mark.parametrize(
    ("kind", "rule"),
    [
        pytest.param("timeout", {"timeout_s": 2}, id="timeout"),
        pytest.param("drop", {}, id="drop"),
        pytest.param("500", {}, id="500"),
        pytest.param("502", {}, id="502"),
        pytest.param("504", {}, id="504"),
    ],
)
def test_a_post_that_may_have_landed_is_unconfirmed_and_sent_once(
    clean_sandbox, kind: str, rule: dict
) -> None:
    one_fault(clean_sandbox, "facturama", kind, method="POST", **rule)
    with facturama_for(clean_sandbox, timeout=0.2) as client, pytest.raises(UnconfirmedWriteError) as caught:
        client.clients.create(FM_CLIENT)
    assert (caught.value.api, caught.value.route, caught.value.natural_key) == (
        "facturama",
        "/Client",
        "URE180429TM6",
    )
    if kind == "timeout":
        wait_for_timeouts_to_end(clean_sandbox, "facturama")
    assert sent(clean_sandbox, "facturama", "POST") == 1


def test_a_truncated_post_answer_is_unconfirmed_and_the_lookup_finds_the_record(clean_sandbox) -> None:
    one_fault(clean_sandbox, "facturadirecta", "truncate", method="POST")
    body = {"legalType": "J", "name": "ACME SL", "taxCode": "B12345674"}
    with facturadirecta_for(clean_sandbox) as client:
        with pytest.raises(UnconfirmedWriteError) as caught:
            client.clients.create(body)
        assert caught.value.natural_key == "B12345674"
        assert (
            len(client.clients.find(taxCode=caught.value.natural_key)) == 1
        )  # it did land: don't create again
    assert sent(clean_sandbox, "facturadirecta", "POST") == 1


@pytest.mark.parametrize("kind", ["429", "503"])
def test_a_post_refused_unprocessed_is_retried_and_creates_once(clean_sandbox, kind: str) -> None:
    one_fault(clean_sandbox, "clientify", kind, method="POST", retry_after=0.01)
    with clientify_for(clean_sandbox) as client:
        client.contacts.create({"first_name": "Ana", "taxpayer_identification_number": "URE180429TM6"})
        assert len(client.contacts.find_by_tax_id("URE180429TM6")) == 1
    assert sent(clean_sandbox, "clientify", "POST") == 2


def test_a_put_after_a_timeout_is_retried(clean_sandbox) -> None:
    ids = clean_sandbox.seed("facturadirecta", clients=1)["ids"]["clients"]
    one_fault(clean_sandbox, "facturadirecta", "timeout", method="PUT", timeout_s=2)
    with facturadirecta_for(clean_sandbox, timeout=0.2) as client:
        assert client.clients.update(ids[0], {"notes": "again"})["notes"] == "again"
    assert sent(clean_sandbox, "facturadirecta", "PUT") == 2
