"""The clients against the strict sandbox (issue 12): probes of assumed resources, DRF's page past the
end, the ``modified[gte]`` format option, an ignored filter, the fallback host, prefixed ModelState."""

from __future__ import annotations

import datetime

import pytest

from clientify_sync.api.client import ProbeStatus, unsupported
from clientify_sync.api.clientify import ISO_SLACK, IgnoredFilter, format_modified
from clientify_sync.api.settings import ClientifySettings
from clientify_sync.errors import ConfigurationError, TransientApiError, ValidationError
from tests.fixtures.sandbox import free_ports

from .sandbox_clients import clientify_for, facturadirecta_for, facturama_for, sent

UTC = datetime.UTC


def test_every_assumed_resource_answers_on_the_default_sandbox(clean_sandbox) -> None:
    with (
        facturama_for(clean_sandbox) as fm,
        clientify_for(clean_sandbox) as crm,
        facturadirecta_for(clean_sandbox) as fd,
    ):
        results = [*fm.probe(), *crm.probe(), *fd.probe()]
    assert [(r.api, r.resource, r.route, r.status) for r in results] == [
        ("facturama", "estimates", "/Estimates", ProbeStatus.SUPPORTED),
        ("clientify", "budgets", "/v1/budgets/", ProbeStatus.SUPPORTED),
        ("clientify", "custom_fields", "/v1/custom-fields/", ProbeStatus.SUPPORTED),
        ("facturadirecta", "estimates", "/api/estimates.xml", ProbeStatus.SUPPORTED),
    ]
    assert all(r.supported for r in results)


def test_a_404_on_an_assumed_resource_is_reported_unsupported_with_a_hint(clean_sandbox) -> None:
    clean_sandbox.config("facturama", estimates_available=False)
    clean_sandbox.config("clientify", budgets_available=False)
    clean_sandbox.config("facturadirecta", estimates_available=False)
    with (
        facturama_for(clean_sandbox) as fm,
        clientify_for(clean_sandbox) as crm,
        facturadirecta_for(clean_sandbox) as fd,
    ):
        [fm_estimates] = fm.probe()
        budgets, custom_fields = crm.probe()
        [fd_estimates] = fd.probe()
        connected, message = fm.test_connection()
    assert fm_estimates.status is ProbeStatus.UNSUPPORTED and fm_estimates.entity == "estimates"
    assert fm_estimates.message.startswith("unsupported: facturama answered 404 on /Estimates (")
    assert "estimates_path" in fm_estimates.hint
    assert budgets.status is ProbeStatus.UNSUPPORTED and "budgets_path" in budgets.hint
    assert budgets.message.startswith("unsupported: clientify answered 404 on /v1/budgets/")
    assert custom_fields.status is ProbeStatus.SUPPORTED
    assert fd_estimates.message.startswith("unsupported: facturadirecta answered 404 on /api/estimates.xml")
    assert (
        fd_estimates.as_dict()["status"] == "unsupported" and fd_estimates.as_dict()["entity"] == "estimates"
    )
    # The credentials work, so the connection test passes and names what a run would report unsupported.
    assert connected and "unsupported: facturama answered 404 on /Estimates" in message
    with facturama_for(clean_sandbox) as fm, clientify_for(clean_sandbox) as crm:
        ruled_out = unsupported("estimates", fm, crm)
        assert unsupported("contacts", fm, crm) == []
    assert [(r.api, r.resource) for r in ruled_out] == [("facturama", "estimates"), ("clientify", "budgets")]


def test_a_page_past_the_end_ends_the_listing(clean_sandbox) -> None:
    with clientify_for(clean_sandbox, page_size=2) as client:
        ids = [
            client.contacts.create({"first_name": f"N{i}", "email": f"n{i}@example.com"})["id"]
            for i in range(3)
        ]
        pages = client.contacts.iter_pages()
        first = next(pages)
        for record_id in ids[:2]:  # records deleted while paging: page 2 is now past the end
            client.contacts.delete(record_id)
        assert list(pages) == [] and len(first.records) == 2
    statuses = {(r["route"], r["status"]) for r in clean_sandbox.stats("clientify")["by_route"]}
    assert any(status == 404 for _, status in statuses)  # the sandbox did answer the strict 404


def test_modified_formats_write_a_value_no_account_zone_can_start_late() -> None:
    moment = datetime.datetime(2026, 5, 3, 10, 30, 15, 500, tzinfo=UTC)
    assert format_modified(moment) == "2026-05-03T10:30:15.000500+00:00"
    assert format_modified(moment, "minute") == "2026-05-02T22:30"  # 12 h earlier: safe in UTC-12
    assert format_modified(moment, "date") == "2026-05-02"
    assert format_modified("2026-05-03T10:30:15Z", "minute") == "2026-05-02T22:30"  # the watermark's form
    assert format_modified("2026-05-03T10:30:15Z") == "2026-05-03T10:30:15Z"  # iso: sent as given


@pytest.mark.parametrize("style", ["iso", "minute", "date"])
def test_the_modified_format_option_is_what_the_api_is_sent(clean_sandbox, style: str) -> None:
    clean_sandbox.config("clientify", date_filter_formats=style)  # the API reads only this format
    with clientify_for(clean_sandbox, modified_format=style) as client:
        created = client.contacts.create({"first_name": "Reciente", "email": "r@example.com"})
        since = datetime.datetime.now(UTC) - datetime.timedelta(minutes=5)
        assert [r["id"] for r in client.contacts.iter_records(modified_gte=since)] == [created["id"]]
        assert client.contacts.ignored_filter is None
    wrong = "date" if style != "date" else "iso"
    with clientify_for(clean_sandbox, modified_format=wrong) as client, pytest.raises(ValidationError):
        list(client.contacts.iter_records(modified_gte=since))  # why the format is an option


def test_an_ignored_modified_filter_is_detected_and_the_read_stays_complete(clean_sandbox) -> None:
    with clientify_for(clean_sandbox) as client:
        older = client.contacts.create({"first_name": "Antes", "email": "a@example.com"})
        newer = client.contacts.create({"first_name": "Después", "email": "d@example.com"})
        since = newer["modified"]
        assert [r["id"] for r in client.contacts.iter_records(modified_gte=since)] == [newer["id"]]
        assert client.contacts.ignored_filter is None and client.ignored_filters() == []
        clean_sandbox.config("clientify", modified_filter="ignored")
        # A filter later than both records by more than the second of slack an ISO value gets: what a
        # watermark is to records an hour old, without waiting for the sandbox's clock to move on.
        ahead = (datetime.datetime.fromisoformat(since) + 2 * ISO_SLACK).isoformat()
        seen = {r["id"] for r in client.contacts.iter_records(modified_gte=ahead)}
        [ignored] = client.ignored_filters()
    assert seen == {older["id"], newer["id"]}  # nothing dropped: the read was a full read
    assert isinstance(ignored, IgnoredFilter) and ignored.route == "/v1/contacts/" and ignored.sent == ahead
    assert "full read" in ignored.message and "modified_format" in ignored.message


def test_reads_move_to_the_fallback_host_after_transient_failures(clean_sandbox) -> None:
    (dead_port,) = free_ports(1)  # nothing listens there: every attempt is a refused connection
    settings = ClientifySettings(base_url=f"http://127.0.0.1:{dead_port}", api_key=clean_sandbox.clientify_token,
                                 fallback_host=clean_sandbox.clientify_url, max_retries=1, backoff_base=0.0,
                                 connect_timeout=1.0)  # fmt: skip
    from clientify_sync.api.clientify import ClientifyClient

    clean_sandbox.seed("clientify", contacts=3, seed=1)
    with ClientifyClient(settings) as client:
        assert len(list(client.contacts.iter_records())) == 3
        assert client.reads.on_fallback
        assert client.products.find_by_sku("NOPE") == []  # later reads go straight to the fallback
        with pytest.raises(TransientApiError):  # writes never move: their outcome must stay knowable
            client.contacts.update(1, {"first_name": "X"})
        assert client.stats.summary()["calls"] >= 4  # both hosts counted in one place
    assert sent(clean_sandbox, "clientify", "PUT") == 0


def test_clientify_options_are_validated() -> None:
    base = {"base_url": "https://api.clientify.net", "api_key": "k"}
    with pytest.raises(ConfigurationError, match="modified_format"):
        ClientifySettings(**base, modified_format="epoch")
    with pytest.raises(ConfigurationError, match="credentials"):
        ClientifySettings(**base, fallback_host="https://user:pw@api.clientify.com")
    settings = ClientifySettings.from_connection(host="api.clientify.net", login=None, password="k",
                                                 extra={"fallback_host": "api.clientify.com/v1"})  # fmt: skip
    assert settings.fallback_host == "https://api.clientify.com"
    assert settings.fallback().base_url == "https://api.clientify.com"
    assert ClientifySettings(**base).fallback() is None


def test_facturama_model_prefixed_errors_name_the_field(clean_sandbox) -> None:
    body = {"Rfc": "URE180429TM6", "Name": "SIN CORREO", "CfdiUse": "G03", "FiscalRegime": "601",
            "TaxZipCode": "86991", "Address": {"ZipCode": "86991"}}  # fmt: skip
    with facturama_for(clean_sandbox) as client, pytest.raises(ValidationError) as caught:
        client.clients.create(body)
    assert "Email" in caught.value.field_errors  # "clientModel.Email" on the wire
