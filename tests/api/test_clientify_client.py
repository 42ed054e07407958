"""Clientify resources over a mock transport: next links, filters, finders, custom fields."""

from __future__ import annotations

import datetime
import json

import httpx
import pytest

from clientify_sync.api.clientify import ClientifyClient
from clientify_sync.errors import AuthenticationError, MalformedResponseError

from .scripted import CLIENTIFY_KEY, Script, Sleeps, clientify_settings, handler_transport, json_response


def drf_list(
    records: list[dict], seen: list[httpx.Request], host: str = "https://clientify.test"
) -> httpx.MockTransport:
    """DRF page-number paging with absolute ``next`` links that keep the filters."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        page = int(request.url.params.get("page", "1"))
        size = int(request.url.params.get("page_size", "20"))
        chunk = records[(page - 1) * size : page * size]
        more = page * size < len(records)
        next_url = (
            str(request.url.copy_set_param("page", page + 1).copy_with(host=httpx.URL(host).host))
            if more
            else None
        )
        return json_response(
            200, {"count": len(records), "next": next_url, "previous": None, "results": chunk}
        )

    return handler_transport(handle)


def client_with(transport: httpx.BaseTransport, **settings: object) -> ClientifyClient:
    return ClientifyClient(clientify_settings(**settings), transport=transport, sleep=Sleeps())


def test_listing_reads_pages_by_number_with_page_size_100_and_modified_filter() -> None:
    records = [{"id": i} for i in range(230)]
    seen: list[httpx.Request] = []
    client = client_with(drf_list(records, seen))
    since = datetime.datetime(2026, 5, 3, 10, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=2)))
    pages = list(client.contacts.iter_pages(modified_gte=since))
    assert {page.position: len(page.records) for page in pages} == {1: 100, 2: 100, 3: 30}
    assert pages[-1].progress() == "page 3/3, 230/230 records"
    first = seen[0].url.params
    assert (seen[0].url.path, first["page_size"], first["modified[gte]"]) == (
        "/v1/contacts/",
        "100",
        "2026-05-03T08:00:00+00:00",
    )
    assert all(r.url.params["modified[gte]"] == "2026-05-03T08:00:00+00:00" for r in seen)
    assert seen[0].url.params.get("page") is None  # the first page alone (it tells the count), then the rest
    assert sorted(r.url.params["page"] for r in seen[1:]) == ["2", "3"]


def test_next_links_to_another_host_are_rebased_so_the_key_stays_home() -> None:
    seen: list[httpx.Request] = []
    client = client_with(drf_list([{"id": i} for i in range(150)], seen, host="https://evil.example"))
    assert len(list(client.companies.iter_records())) == 150
    assert {r.url.host for r in seen} == {"clientify.test"}


def test_token_header_is_sent() -> None:
    script = Script([json_response(200, {"id": 1})])
    client_with(script.transport).contacts.get(1)
    assert script.requests[0].headers["Authorization"] == f"Token {CLIENTIFY_KEY}"
    assert script.requests[0].url.path == "/v1/contacts/1/"


def test_find_by_custom_field_filters_server_side_and_rechecks() -> None:
    records = [
        {"id": 1, "custom_fields": [{"field": "in_facturama", "value": "abc"}]},
        {"id": 2, "custom_fields": [{"field": "in_facturama", "value": "abcd"}]},
        {"id": 3, "custom_fields": []},
    ]
    seen: list[httpx.Request] = []
    found = client_with(drf_list(records, seen)).contacts.find_by_custom_field("in_facturama", "abc")
    assert [r["id"] for r in found] == [1]
    assert seen[0].url.params["cf_in_facturama"] == "abc"


def test_find_by_tax_id_queries_then_compares_normalised() -> None:
    records = [
        {"id": 1, "taxpayer_identification_number": "b-1234567.4"},
        {"id": 2, "taxpayer_identification_number": "B123456745"},
        {"id": 3, "taxpayer_identification_number": ""},
    ]
    seen: list[httpx.Request] = []
    found = client_with(drf_list(records, seen)).companies.find_by_tax_id(" B12345674 ")
    assert [r["id"] for r in found] == [1]
    assert (seen[0].url.path, seen[0].url.params["query"]) == ("/v1/companies/", "B12345674")


def test_products_by_sku_and_budgets_by_code() -> None:
    seen: list[httpx.Request] = []
    transport = drf_list(
        [{"id": 7, "sku": "WEB003", "code": "FAC-1"}, {"id": 8, "sku": "WEB0031", "code": "FAC-10"}], seen
    )
    client = client_with(transport, budgets_path="/v1/quotes/")
    assert [p["id"] for p in client.products.find_by_sku("WEB003")] == [7]
    assert [b["id"] for b in client.budgets.find_by_code("FAC-1")] == [7]
    assert (seen[0].url.path, seen[0].url.params["sku"]) == ("/v1/products/", "WEB003")
    assert (seen[1].url.path, seen[1].url.params["query"]) == ("/v1/quotes/", "FAC-1")


def test_create_update_delete_shapes() -> None:
    script = Script(
        [json_response(201, {"id": 5}), json_response(200, {"id": 5, "first_name": "B"}), httpx.Response(204)]
    )
    client = client_with(script.transport)
    assert client.contacts.create({"first_name": "A"}) == {"id": 5}
    assert client.contacts.update(5, {"first_name": "B"}) == {"id": 5, "first_name": "B"}
    assert client.contacts.delete(5) is None
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("POST", "/v1/contacts/"),
        ("PUT", "/v1/contacts/5/"),
        ("DELETE", "/v1/contacts/5/"),
    ]
    assert json.loads(script.requests[1].content) == {"first_name": "B"}


def test_custom_fields_ensure_lists_once_and_creates_missing() -> None:
    definitions = [
        {"id": 1, "name": "in_facturama", "content_type": "contacts | contact"},
        {"id": 2, "name": "in_facturama", "content_type": "deals | oportunidad"},
    ]
    script = Script(
        [
            json_response(200, {"count": 2, "next": None, "results": definitions}),
            json_response(
                201, {"id": 3, "name": "in_facturama", "content_type": "companies | company", "field_type": 3}
            ),
        ]
    )
    fields = client_with(script.transport).custom_fields
    assert fields.ensure("in_facturama", "contacts | contacto")["id"] == 1
    assert fields.ensure("in_facturama", "companies | company")["id"] == 3
    assert fields.ensure("in_facturama", "companies | company")["id"] == 3
    assert [(r.method, r.url.path) for r in script.requests] == [
        ("GET", "/v1/custom-fields/"),
        ("POST", "/v1/custom-fields/"),
    ]
    assert json.loads(script.requests[1].content) == {
        "name": "in_facturama",
        "content_type": "companies | company",
        "field_type": 3,
    }


def test_missing_key_answer_is_an_authentication_error() -> None:
    script = Script([json_response(404, {"detail": "Api key not provided."})])
    with pytest.raises(AuthenticationError):
        client_with(script.transport).contacts.get(1)


def test_a_list_without_results_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        list(client_with(Script([json_response(200, {"detail": "?"})]).transport).products.iter_records())


def test_test_connection_uses_users_endpoint() -> None:
    page = {"count": 3, "next": None, "results": [{"id": 1}]}
    ok = Script([json_response(200, page), json_response(200, page), json_response(200, page)])
    success, message = client_with(ok.transport).test_connection()
    assert success and "(3 users)" in message and ok.requests[0].url.path == "/v1/users/"
    assert message == "Connected to Clientify at https://clientify.test (3 users)"  # every probe answered
    assert [r.url.path for r in ok.requests[1:]] == ["/v1/budgets/", "/v1/custom-fields/"]
    bad = Script([json_response(401, {"detail": "Invalid token."})])
    assert client_with(bad.transport).test_connection() == (
        False,
        "Clientify rejected the credentials (HTTP 401): Invalid token.",
    )
