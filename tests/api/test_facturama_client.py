"""Facturama resources over a mock transport: routes, paging, finders, write shapes."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from clientify_sync.api.facturama import FacturamaClient
from clientify_sync.errors import MalformedResponseError, NotFoundError, UnconfirmedWriteError

from .scripted import FACTURAMA_PASSWORD, Script, Sleeps, facturama_settings, handler_transport, json_response


def paged_catalogue(records: list[dict], seen: list[httpx.Request]) -> httpx.MockTransport:
    """``/Clients``-style DataTables paging with a substring ``search``, like the real API."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        search = request.url.params.get("search", "").lower()
        matching = [r for r in records if not search or search in json.dumps(r).lower()]
        start, length = int(request.url.params["start"]), min(int(request.url.params["length"]), 100)
        body = {
            "recordsTotal": len(records),
            "recordsFiltered": len(matching),
            "data": matching[start : start + length],
        }
        return json_response(200, body)

    return handler_transport(handle)


def client_with(transport: httpx.BaseTransport, **settings: object) -> FacturamaClient:
    return FacturamaClient(facturama_settings(**settings), transport=transport, sleep=Sleeps())


def test_listing_pages_through_clients_with_start_and_length() -> None:
    records = [{"Id": f"id{i:03d}", "Rfc": f"AAA010101{i:03d}"} for i in range(250)]
    seen: list[httpx.Request] = []
    client = client_with(paged_catalogue(records, seen))
    pages = list(client.clients.iter_pages())
    assert {page.position: len(page.records) for page in pages} == {1: 100, 2: 100, 3: 50}
    assert pages[-1].progress() == "page 3/3, 250/250 records"
    assert (seen[0].url.path, dict(seen[0].url.params)) == ("/Clients", {"start": "0", "length": "100"})
    assert sorted(
        ((r.url.path, dict(r.url.params)) for r in seen[1:3]), key=lambda call: int(call[1]["start"])
    ) == [
        ("/Clients", {"start": "100", "length": "100"}),
        ("/Clients", {"start": "200", "length": "100"}),
    ]
    assert sorted(r["Id"] for r in client.clients.iter_records()) == [r["Id"] for r in records]


def test_basic_auth_and_json_headers_are_sent() -> None:
    script = Script([json_response(200, {"Id": "x"})])
    client_with(script.transport).clients.get("x")
    expected = base64.b64encode(f"api-user:{FACTURAMA_PASSWORD}".encode()).decode()
    assert script.requests[0].headers["Authorization"] == f"Basic {expected}"
    assert script.requests[0].headers["Accept"] == "application/json"


def test_api_prefix_and_estimates_path_shape_the_routes() -> None:
    seen: list[httpx.Request] = []
    client = client_with(
        paged_catalogue([{"Id": "e1", "Folio": "COT-1"}], seen), api_prefix="/api", estimates_path="Quote"
    )
    assert list(client.estimates.iter_records()) == [{"Id": "e1", "Folio": "COT-1"}]
    assert seen[0].url.path == "/api/Quotes"
    assert client.estimates.item_route == "/api/Quote/{id}"


def test_find_by_rfc_searches_then_compares_exactly() -> None:
    records = [
        {"Id": "1", "Rfc": "URE180429TM6"},
        {"Id": "2", "Rfc": "URE180429TM61"},  # contains the RFC: the server's search matches it too
        {"Id": "3", "Rfc": "ure180429tm6 "},
    ]
    seen: list[httpx.Request] = []
    found = client_with(paged_catalogue(records, seen)).clients.find_by_rfc("URE-180429-TM6")
    assert [r["Id"] for r in found] == ["1", "3"]
    assert seen[0].url.params["search"] == "URE180429TM6"


@pytest.mark.parametrize("rfc", ["XAXX010101000", "xexx010101000", ""])
def test_generic_rfcs_never_match(rfc: str) -> None:
    script = Script([])
    assert client_with(script.transport).clients.find_by_rfc(rfc) == []
    assert script.requests == []


def test_find_by_sku_and_folio_compare_exactly() -> None:
    seen: list[httpx.Request] = []
    transport = paged_catalogue(
        [
            {"Id": "p1", "IdentificationNumber": "WEB003", "Folio": "COT-1"},
            {"Id": "p2", "IdentificationNumber": "WEB0031", "Folio": "COT-10"},
        ],
        seen,
    )
    client = client_with(transport)
    assert [p["Id"] for p in client.products.find_by_sku("WEB003")] == ["p1"]
    assert [e["Id"] for e in client.estimates.find_by_folio("COT-1")] == ["p1"]
    assert seen[0].url.path == "/Products" and seen[1].url.path == "/Estimates"


def test_create_posts_json_and_returns_the_created_record() -> None:
    script = Script([json_response(201, {"Id": "new", "Rfc": "URE180429TM6"})])
    created = client_with(script.transport).clients.create({"Rfc": "URE180429TM6", "Name": "X"})
    assert created["Id"] == "new"
    request = script.requests[0]
    assert (request.method, request.url.path) == ("POST", "/Client")
    assert json.loads(request.content) == {"Rfc": "URE180429TM6", "Name": "X"}


def test_create_without_a_returned_record_is_unconfirmed() -> None:
    script = Script([httpx.Response(204)])
    with pytest.raises(UnconfirmedWriteError):
        client_with(script.transport).clients.create({"Rfc": "URE180429TM6"})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        pytest.param(
            json_response(200, {"Id": "abc", "Name": "New"}), {"Id": "abc", "Name": "New"}, id="200-body"
        ),
        pytest.param(httpx.Response(204), None, id="204-empty"),
        pytest.param(httpx.Response(200, content=b""), None, id="200-empty"),
    ],
)
def test_update_puts_the_full_object_with_its_id(answer: httpx.Response, expected: dict | None) -> None:
    script = Script([answer])
    assert client_with(script.transport).clients.update("abc", {"Name": "New", "Rfc": "R"}) == expected
    request = script.requests[0]
    assert (request.method, request.url.path) == ("PUT", "/Client/abc")
    assert json.loads(request.content) == {"Name": "New", "Rfc": "R", "Id": "abc"}


def test_ids_are_url_quoted_into_the_path() -> None:
    script = Script([json_response(200, {"Id": "a/b"})])
    client_with(script.transport).products.get("a/b")
    assert script.requests[0].url.raw_path == b"/Product/a%2Fb"


def test_get_with_a_null_body_is_not_found() -> None:
    with pytest.raises(NotFoundError):
        client_with(Script([json_response(200, None)]).transport).clients.get("abc")


def test_a_list_without_data_is_malformed() -> None:
    with pytest.raises(MalformedResponseError):
        list(client_with(Script([json_response(200, [{"Id": 1}])]).transport).clients.iter_pages())


def test_test_connection_reports_success_and_rejected_credentials() -> None:
    page = {"recordsTotal": 12, "recordsFiltered": 12, "data": []}
    ok = Script([json_response(200, page), json_response(200, page)])
    assert client_with(ok.transport).test_connection() == (
        True,
        "Connected to Facturama at https://facturama.test (12 clients)",
    )
    assert dict(ok.requests[0].url.params) == {"start": "0", "length": "1"}
    denied = Script([json_response(401, {"Message": "Authorization has been denied for this request."})])
    success, message = client_with(denied.transport).test_connection()
    assert not success and "rejected the credentials (HTTP 401)" in message
