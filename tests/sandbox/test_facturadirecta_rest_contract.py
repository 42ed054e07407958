"""FacturaDirecta REST/JSON emulator contract: every fact of facturadirecta-rest-api.md §14 the emulator
serves (auth, scopes, versions, rate limits, errors, plan caps, paging, envelopes, full-replace PUT,
409s, estimates, custom fields, idempotency, activity), the §15 switches, and the control surface.

Over HTTP on loopback against the session sandbox; time-dependent rules run on the sandbox clock
(``PUT /_sandbox/rest/clock``), never on sleeps.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.fixtures.sandbox import SandboxHandle

KEY_HEADER = "facturadirecta-api-key"
UUID_TAIL = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


class Rest:
    """One company's REST client plus the sandbox's control calls."""

    def __init__(self, sandbox: SandboxHandle, company: str, key: str) -> None:
        self.sandbox = sandbox
        self.company = company
        self.key = key
        self.root = sandbox.facturadirecta_url
        self.http = httpx.Client(base_url=f"{self.root}/api/{company}", headers={KEY_HEADER: key}, timeout=30)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, json=json, **kwargs)

    def put(self, path: str, json: Any = None, **kwargs: Any) -> httpx.Response:
        return self.http.put(path, json=json, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    def control(self, method: str, path: str, json: Any = None) -> Any:
        response = self.sandbox.http.request(
            method, f"{self.root}/_sandbox/rest{path}", json=json, timeout=60
        )
        response.raise_for_status()
        return response.json()

    def config(self, **changes: Any) -> dict[str, Any]:
        return self.sandbox.config("facturadirecta", **changes)

    def freeze_at_minute_start(self) -> int:
        """Freeze the sandbox clock 1 s into the next calendar minute; returns that instant (epoch ms)."""
        now = self.control("GET", "/clock")["now_ms"]
        target = (now // 60_000 + 1) * 60_000 + 1000
        self.control("PUT", "/clock", {"now": iso_ms(target), "frozen": True})
        return target

    def contact(self, name: str = "Acme Diseño S.L.", **main: Any) -> dict[str, Any]:
        return created(self.post("/contacts", envelope("contact", name=name, **main)))

    def product(self, name: str = "Consultoría", **main: Any) -> dict[str, Any]:
        body = {
            "currency": "EUR",
            "sales": {"tax": ["S_IVA_21"], "account": "7050000", "price": 1800},
            **main,
        }
        return created(self.post("/products", envelope("product", name=name, **body)))

    def estimate(
        self, contact_id: str, lines: list[dict[str, Any]] | None = None, **main: Any
    ) -> dict[str, Any]:
        lines = lines if lines is not None else [LINE]
        return created(self.post("/estimates", envelope("estimate", contact=contact_id, lines=lines, **main)))


LINE = {"text": "Consultoría", "quantity": 1, "unitPrice": 1800, "tax": ["S_IVA_21"]}


def iso_ms(ms: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def envelope(kind: str, tags: list[str] | None = None, **main: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"content": {"type": kind, "main": main}}
    if tags is not None:
        body["tags"] = tags
    return body


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


def uid(record: dict[str, Any]) -> str:
    return record["content"]["uuid"]


def main_of(record: dict[str, Any]) -> dict[str, Any]:
    return record["content"]["main"]


def error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["statusCode"] == status and isinstance(body["message"], str)
    return body


def paths(response: httpx.Response) -> set[str]:
    body = error(response, 400)
    assert body["message"] == "Validation failed" and body["type"] == "ValidationError"
    return {item["path"] for item in body["errors"]}


@pytest.fixture
def rest(clean_sandbox: SandboxHandle) -> Iterator[Rest]:
    cfg = clean_sandbox.config("facturadirecta")
    client = Rest(clean_sandbox, cfg["rest_company_id"], cfg["rest_api_key"])
    yield client
    client.control("DELETE", "/hold")
    client.http.close()


@pytest.fixture
def other(rest: Rest) -> Iterator[Rest]:
    cfg = rest.config()
    client = Rest(rest.sandbox, cfg["rest_other_company_id"], cfg["rest_other_api_key"])
    yield client
    client.http.close()


# -- base path, authentication, scopes, version (§2) -----------------------------------------------


def test_base_path_has_the_company_and_profile_has_none(rest: Rest) -> None:
    """authentication.md@38abd0c, profile.md@35c7b58."""
    assert rest.company.startswith("com_")
    profile = httpx.get(f"{rest.root}/api/profile", headers={KEY_HEADER: rest.key})
    assert profile.status_code == 200
    assert [c["id"] for c in profile.json()["profile"]["companies"]] == [rest.company]
    listing = rest.get("/contacts").json()
    assert listing == {"pagination": {"offset": 0, "limit": 50, "total": 0}, "items": []}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 401, id="missing"),
        pytest.param({KEY_HEADER: "abc.def"}, 401, id="malformed"),
        pytest.param({KEY_HEADER: "sbxKey.Sandbox0Rest0Api0Key00000000000"}, 401, id="31-char-suffix"),
        pytest.param({KEY_HEADER: "aB3cD9.xY7zN2qK4mP8rT5sJ1hF6gL0vW3uE"}, 401, id="well-formed-unknown"),
        pytest.param({"Authorization": "Bearer sbxKey.Sandbox0Rest0Api0Key000000000000"}, 401, id="bearer"),
        pytest.param(
            {"Facturadirecta-Api-Key": "sbxKey.Sandbox0Rest0Api0Key000000000000"}, 200, id="any-case"
        ),
    ],
)
def test_api_key_header_and_format(rest: Rest, headers: dict[str, str], status: int) -> None:
    """``facturadirecta-api-key: <6>.<32>``; a bad or missing credential is 401 (authentication.md@38abd0c)."""
    response = httpx.get(f"{rest.root}/api/{rest.company}/contacts", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert error(response, 401)


def test_missing_scope_is_403_token_scope_missing(rest: Rest) -> None:
    """errors.md@03f4cd9: ``code`` and ``requiredScope``; GET needs ``:read``, writes ``:write``."""
    rest.config(rest_scopes="contacts:read")
    assert rest.get("/contacts").status_code == 200
    body = error(rest.post("/contacts", envelope("contact", name="X")), 403)
    assert body["code"] == "token_scope_missing" and body["requiredScope"] == "contacts:write"
    assert error(rest.get("/activity"), 403)["requiredScope"] == "activity:read"
    assert error(rest.get("/customFields"), 403)["requiredScope"] == "customFields:read"
    assert rest.get("/apiKeyInfo").json() == {"scopes": ["contacts:read"]}


def test_a_key_cannot_act_on_another_company(rest: Rest, other: Rest) -> None:
    """authentication.md@38abd0c: a key belongs to its company (403)."""
    assert error(httpx.get(f"{rest.root}/api/{other.company}/contacts", headers={KEY_HEADER: rest.key}), 403)
    assert error(httpx.get(f"{rest.root}/api/{rest.company}/contacts", headers={KEY_HEADER: other.key}), 403)
    unknown = f"com_{uuid.uuid4()}"
    assert error(httpx.get(f"{rest.root}/api/{unknown}/contacts", headers={KEY_HEADER: rest.key}), 403)


def test_another_companys_id_is_404_like_an_unknown_one(rest: Rest, other: Rest) -> None:
    """errors.md@03f4cd9: an id of another company is never revealed."""
    theirs = uid(other.contact("Ajena S.L."))
    unknown = f"con_{uuid.uuid4()}"
    for rid in (theirs, unknown):
        assert error(rest.get(f"/contacts/{rid}"), 404) == {"statusCode": 404, "message": "Not Found"}
        assert rest.put(f"/contacts/{rid}", envelope("contact", name="Mía")).status_code == 404
        assert rest.delete(f"/contacts/{rid}").status_code == 404
    assert other.get(f"/contacts/{theirs}").status_code == 200


@pytest.mark.parametrize(
    ("sent", "applied"),
    [(None, "1.0.10"), ("1.0.9", "1.0.9"), ("1.0.8", "1.0.8"), ("banana", "1.0.10"), ("9.9.9", "1.0.10")],
)
def test_accept_version_and_x_api_version(rest: Rest, sent: str | None, applied: str) -> None:
    """authentication.md@38abd0c: unknown or malformed → the current version, named in X-Api-Version."""
    headers = {"accept-version": sent} if sent else {}
    assert rest.get("/contacts", headers=headers).headers["x-api-version"] == applied


# -- rate limits (§3) ------------------------------------------------------------------------------


def test_rate_limit_headers_on_every_response(rest: Rest) -> None:
    """X-RateLimit-Limit/-Remaining/-Reset (Unix seconds of the next calendar minute), errors included."""
    start = rest.freeze_at_minute_start()
    reset = str((start // 60_000 + 1) * 60)
    answers = [
        rest.get("/contacts"),
        rest.get(f"/contacts/con_{uuid.uuid4()}"),
        httpx.get(f"{rest.root}/api/{rest.company}/contacts"),
        rest.post("/contacts", {}),
    ]
    assert [r.status_code for r in answers] == [200, 404, 401, 400]
    assert [r.headers["x-ratelimit-remaining"] for r in answers] == ["599", "598", "597", "596"]
    assert all(
        r.headers["x-ratelimit-limit"] == "600" and r.headers["x-ratelimit-reset"] == reset for r in answers
    )
    assert all(r.headers["x-request-id"] for r in answers)


@pytest.mark.parametrize(
    ("plan", "limit"), [("gratis", 30), ("bronce", 60), ("plata", 120), ("oro", 300), ("diamante", 600)]
)
def test_rate_limit_by_plan(rest: Rest, plan: str, limit: int) -> None:
    rest.config(rest_plan=plan)
    assert rest.get("/contacts").headers["x-ratelimit-limit"] == str(limit)


def test_over_the_limit_is_still_served_with_retry_after(rest: Rest, other: Rest) -> None:
    """authentication.md@38abd0c: over the limit → Retry-After, served; counted per company."""
    rest.config(rest_plan="gratis")
    rest.freeze_at_minute_start()
    answers = [rest.get("/contacts") for _ in range(31)]
    assert all(r.status_code == 200 for r in answers)
    assert answers[29].headers["x-ratelimit-remaining"] == "0" and "retry-after" not in answers[29].headers
    assert answers[30].headers["x-ratelimit-remaining"] == "0" and answers[30].headers["retry-after"] == "59"
    assert other.get("/contacts").headers["x-ratelimit-remaining"] == "29"  # another company, another budget


def test_enforced_limit_answers_429_until_the_next_minute(rest: Rest) -> None:
    """The switch (inferred in §14): 429 with Retry-After; the next calendar minute starts afresh."""
    rest.config(rest_plan="gratis", rest_rate_limit_enforced=True)
    rest.freeze_at_minute_start()
    assert all(rest.get("/contacts").status_code == 200 for _ in range(30))
    refused = rest.get("/contacts")
    assert error(refused, 429) and refused.headers["retry-after"] == "59"
    rest.control("PUT", "/clock", {"advance_s": 59})
    answer = rest.get("/contacts")
    assert answer.status_code == 200 and answer.headers["x-ratelimit-remaining"] == "29"


# -- errors and plan caps (§5) ---------------------------------------------------------------------


def test_validation_error_names_every_path(rest: Rest) -> None:
    """errors.md@03f4cd9: 400 ``Validation failed`` / ``ValidationError`` with dotted, indexed paths."""
    body = envelope("estimate", lines=[{"text": "x", "quantity": 1}, {"quantity": "2", "unitPrice": 3}])
    response = rest.post("/estimates", body)
    assert paths(response) == {
        "content.main.contact",
        "content.main.lines.0.unitPrice",
        "content.main.lines.1.text",
        "content.main.lines.1.quantity",
    }
    assert all(item["code"] and item["message"] for item in response.json()["errors"])
    assert paths(rest.post("/contacts", envelope("contact"))) == {"content.main.name"}
    assert paths(rest.post("/contacts", {"main": {}})) == {"content"}
    bad_json = rest.http.post("/contacts", content=b"{nope", headers={"content-type": "application/json"})
    assert error(bad_json, 400)["type"] == "ValidationError"


@pytest.mark.parametrize(("plan", "cap"), [("gratis", 10), ("bronce", 100)])
def test_plan_cap_on_clients(rest: Rest, plan: str, cap: int) -> None:
    """errors.md@03f4cd9, contacts.md@03f4cd9: 403 ``errors[0].code: plan_limit_exceeded`` naming the cap;
    only creation of that facet is blocked."""
    rest.config(rest_plan=plan)
    rest.sandbox.seed("facturadirecta", clients=cap - 1, target="rest")
    rest.contact("Última S.L.")
    body = error(rest.post("/contacts", envelope("contact", name="Una más S.L.")), 403)
    assert body["errors"][0]["code"] == "plan_limit_exceeded" and f"({cap})" in body["message"]
    rest.contact("Proveedor S.L.", accounts={"provider": "4000001"})  # not a client
    rest.config(rest_plan="plata")
    rest.contact("Sin límite S.L.")


# -- listing (§4) ----------------------------------------------------------------------------------


def test_offset_paging(rest: Rest) -> None:
    """pagination.md@03f4cd9: offset/limit echoed, total, stop at offset + len(items) >= total."""
    rest.sandbox.seed("facturadirecta", clients=7, target="rest", seed=2)
    seen, offset = [], 0
    while True:
        page = rest.get("/contacts", params={"offset": offset, "limit": 3}).json()
        assert page["pagination"] == {"offset": offset, "limit": 3, "total": 7}
        seen += [uid(item) for item in page["items"]]
        offset += len(page["items"])
        if offset >= page["pagination"]["total"]:
            break
    assert len(seen) == len(set(seen)) == 7
    for params in ({"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "x"}):
        assert error(rest.get("/contacts", params=params), 400)["type"] == "ValidationError"
    assert rest.get("/contacts", params={"limit": 500}).json()["pagination"]["limit"] == 500


def test_cursor_paging_on_activity(rest: Rest) -> None:
    """pagination.md@03f4cd9: limit 1-100 (50), ``{items, hasMore, nextCursor}``, null on the last page."""
    rest.sandbox.seed("facturadirecta", clients=55, target="rest")
    first = rest.get("/activity").json()
    assert len(first["items"]) == 50 and first["hasMore"] is True and first["nextCursor"]
    ids, cursor = [], None
    while True:
        params = {"limit": 20, "sortBy": "timestamp", **({"cursor": cursor} if cursor else {})}
        page = rest.get("/activity", params=params).json()
        ids += [item["id"] for item in page["items"]]
        cursor = page["nextCursor"]
        if not page["hasMore"]:
            assert cursor is None
            break
        assert cursor
    assert ids == sorted(ids) and len(ids) == len(set(ids)) == 55
    assert error(rest.get("/activity", params={"limit": 101}), 400)
    assert error(rest.get("/activity", params={"limit": 0}), 400)
    assert error(rest.get("/activity", params={"cursor": "NDgyODc3"}), 400)["errors"][0]["path"] == "cursor"


def test_a_cursor_is_a_position_not_a_query(rest: Rest) -> None:
    """pagination.md@03f4cd9: with other filters the next page continues from the cursor's position."""
    c1, p1, c2 = uid(rest.contact("Uno S.L.")), uid(rest.product("P1")), uid(rest.contact("Dos S.L."))
    page = rest.get("/activity", params={"sortBy": "timestamp", "documentType": "contact", "limit": 1}).json()
    assert [i["document"]["id"] for i in page["items"]] == [c1]
    rest_page = rest.get("/activity", params={"sortBy": "timestamp", "cursor": page["nextCursor"]}).json()
    assert [i["document"]["id"] for i in rest_page["items"]] == [p1, c2]
    foreign = rest.get("/activity", params={"limit": 1}).json()["nextCursor"]
    other_company = rest.config()["rest_other_company_id"]
    answer = httpx.get(
        f"{rest.root}/api/{other_company}/activity",
        params={"cursor": foreign},
        headers={KEY_HEADER: rest.config()["rest_other_api_key"]},
    )
    assert error(answer, 400)  # a cursor is bound to the company that issued it


def test_date_filters_take_the_documented_format_only(rest: Rest) -> None:
    """pagination.md@03f4cd9: ``YYYY-MM-DDTHH:mm:ss.sssZ``."""
    assert (
        rest.get("/products", params={"minModificationDate": "2026-01-01T00:00:00.000Z"}).status_code == 200
    )
    for value in ("2026-01-01", "2026-01-01T00:00:00Z", "2026-02-30T00:00:00.000Z", "yesterday"):
        assert paths(rest.get("/products", params={"minModificationDate": value})) == {"minModificationDate"}


def test_unknown_query_parameters_are_rejected(rest: Rest) -> None:
    """§15.1 (schemas unknown): a parameter the docs do not list is a 400 (``rest_unknown_query: ignore``)."""
    assert paths(rest.get("/contacts", params={"nope": "1"})) == {"nope"}
    rest.config(rest_unknown_query="ignore")
    assert rest.get("/contacts", params={"nope": "1"}).status_code == 200


# -- ids and envelopes -----------------------------------------------------------------------------


def test_id_prefixes(rest: Rest) -> None:
    """con_/pro_/est_/cfi_ + UUID; company com_; activity ids are integers (§14)."""
    import re

    contact, product = rest.contact(), rest.product()
    estimate = rest.estimate(uid(contact))
    field = rest.post("/customFields", {"title": "Ref", "docTypes": ["contact"]}).json()["content"]
    for value, prefix in (
        (uid(contact), "con_"),
        (uid(product), "pro_"),
        (uid(estimate), "est_"),
        (field["id"], "cfi_"),
        (rest.company, "com_"),
    ):
        assert re.fullmatch(prefix + UUID_TAIL, value), value
    assert all(isinstance(item["id"], int) for item in rest.get("/activity").json()["items"])


def test_record_envelope(rest: Rest) -> None:
    """contacts.md@03f4cd9, estimates.md@afc30cc: ``{content:{type, uuid, main}, tags, creationDate,
    modificationDate, related?, webUrl}``; list items without ``related`` unless asked."""
    contact = rest.contact(tags=None)
    assert set(contact) == {"content", "tags", "creationDate", "modificationDate", "related", "webUrl"}
    assert contact["content"]["type"] == "contact" and contact["related"] == {}
    assert contact["creationDate"] == contact["modificationDate"]
    assert (
        contact["webUrl"].startswith("https://app.facturadirecta.com/") and uid(contact) in contact["webUrl"]
    )
    got = rest.get(f"/contacts/{uid(contact)}").json()
    assert got == contact
    item = rest.get("/contacts").json()["items"][0]
    assert "related" not in item and item["content"] == contact["content"]
    assert rest.get("/contacts", params={"related": "invoices"}).json()["items"][0]["related"] == {}


def test_content_type_names_the_resource(rest: Rest) -> None:
    product = rest.product()
    estimate = rest.estimate(uid(rest.contact()))
    assert product["content"]["type"] == "product" and estimate["content"]["type"] == "estimate"
    assert paths(rest.post("/contacts", envelope("product", name="X"))) == {"content.type"}


# -- writes (§7-§9) --------------------------------------------------------------------------------


def test_put_replaces_the_whole_contact(rest: Rest) -> None:
    """contacts.md@03f4cd9: anything omitted is erased (not a PATCH); fields the docs do not name are kept
    as sent (``rest_unknown_fields: keep``), so a client that PUTs back what it read keeps them too."""
    contact = rest.contact(email="a@acme.es", phone="600000000", city="Madrid", notes="no tocar")
    rid = uid(contact)
    read_back = rest.get(f"/contacts/{rid}").json()
    again = rest.put(f"/contacts/{rid}", {"content": read_back["content"], "tags": read_back["tags"]}).json()
    assert main_of(again) == main_of(contact)
    replaced = rest.put(f"/contacts/{rid}", envelope("contact", name="Acme Diseño S.L.")).json()
    assert main_of(replaced) == {"name": "Acme Diseño S.L.", "title": "Acme Diseño"}
    assert main_of(rest.get(f"/contacts/{rid}").json()) == main_of(replaced)
    assert replaced["creationDate"] == contact["creationDate"]


def test_put_keeps_product_stock_when_omitted(rest: Rest) -> None:
    """products.md@71a967a: the one exception to full replace; a facet left out is dropped."""
    product = rest.product(stock={"enabled": True, "minimum": 5}, sku="SKU-1")
    replaced = rest.put(f"/products/{uid(product)}", envelope("product", name="Otro", currency="EUR")).json()
    assert main_of(replaced) == {
        "name": "Otro",
        "title": "Otro",
        "currency": "EUR",
        "stock": {"enabled": True, "minimum": 5},
    }


def test_tags_update_replaces_the_set_only(rest: Rest) -> None:
    """contacts.md@03f4cd9: ``PUT …/tags {tags}``; activity ``updated`` / ``updateTags``."""
    contact = rest.contact(tags=["vip", "madrid"], email="a@acme.es")
    tagged = rest.put(f"/contacts/{uid(contact)}/tags", {"tags": ["moroso"]}).json()
    assert tagged["tags"] == ["moroso"] and main_of(tagged) == main_of(contact)
    latest = rest.get("/activity", params={"limit": 1}).json()["items"][0]
    assert (latest["type"], latest["subtype"]) == ("updated", "updateTags")
    assert [uid(i) for i in rest.get("/contacts", params={"allTheseTags": "moroso"}).json()["items"]] == [
        uid(contact)
    ]
    assert rest.get("/contacts", params={"hasTags": "false"}).json()["items"] == []
    estimate = rest.estimate(uid(contact))
    assert rest.put(f"/estimates/{uid(estimate)}/tags", {"tags": ["x"]}).json()["tags"] == ["x"]


def test_a_contact_without_accounts_is_a_client(rest: Rest) -> None:
    """contacts.md@03f4cd9: default accounts ``4300001`` / ``4380001``; a main account alone gets its credit."""
    client = rest.contact("Cliente S.L.")
    assert main_of(client)["accounts"] == {"client": "4300001", "clientCredit": "4380001"}
    second = rest.contact("Otro S.L.")
    assert main_of(second)["accounts"]["client"] == "4300002"
    provider = rest.contact("Proveedor S.L.", accounts={"provider": "4000007"})
    assert main_of(provider)["accounts"] == {"provider": "4000007", "providerCredit": "4070007"}
    clients = rest.get("/contacts", params={"isClient": "true"}).json()["items"]
    assert {uid(i) for i in clients} == {uid(client), uid(second)}
    assert [uid(i) for i in rest.get("/contacts", params={"isProvider": "true"}).json()["items"]] == [
        uid(provider)
    ]


def test_duplicate_fiscal_id_is_409(rest: Rest) -> None:
    """contacts.md@03f4cd9; stored without separators; contacts without one are not checked (inferred)."""
    first = rest.contact(fiscalId="B-12345674", country="ES")
    assert main_of(first)["fiscalId"] == "B12345674"
    clash = error(rest.post("/contacts", envelope("contact", name="Copia", fiscalId="b 12345674")), 409)
    assert clash["errors"][0]["path"] == "content.main.fiscalId"
    rest.contact("Sin NIF 1")
    rest.contact("Sin NIF 2")
    assert paths(
        rest.post("/contacts", envelope("contact", name="Mal", fiscalId="B12345675", country="ES"))
    ) == {"content.main.fiscalId"}
    assert [uid(i) for i in rest.get("/contacts", params={"fiscalId": "B-12345674"}).json()["items"]] == [
        uid(first)
    ]


def test_delete_contact_with_documents_is_409_and_success_is_result_true(rest: Rest) -> None:
    """contacts.md@03f4cd9: 409 while it has documents; ``{"result": true}``; deleted = activity archived."""
    contact = uid(rest.contact())
    estimate = uid(rest.estimate(contact))
    assert "No se puede borrar el contacto" in error(rest.delete(f"/contacts/{contact}"), 409)["message"]
    assert rest.delete(f"/estimates/{estimate}").json() == {"result": True}
    assert rest.delete(f"/contacts/{contact}").json() == {"result": True}
    assert rest.get(f"/contacts/{contact}").status_code == 404
    assert rest.get("/contacts").json()["pagination"]["total"] == 0
    latest = rest.get("/activity", params={"limit": 1}).json()["items"][0]
    assert (latest["type"], latest["document"]) == (
        "archived",
        {"id": contact, "type": "contact", "title": "Acme Diseño", "archived": True},
    )


def test_duplicate_product_external_id_is_409(rest: Rest) -> None:
    """products.md@71a967a: ``externalId`` unique among the company's products."""
    rest.product("A", externalId="ext-1")
    assert error(
        rest.post("/products", envelope("product", name="B", currency="EUR", externalId="ext-1")), 409
    )
    rest.product("C", externalId="ext-2")


def test_delete_product_used_in_a_line_is_409(rest: Rest) -> None:
    """products.md@71a967a: a line referencing it through ``document``."""
    product = uid(rest.product())
    unused = uid(rest.product("Libre"))
    rest.estimate(uid(rest.contact()), [{**LINE, "document": product}])
    assert error(rest.delete(f"/products/{product}"), 409)
    assert rest.delete(f"/products/{unused}").json() == {"result": True}


def test_product_discount_rate_is_base_1(rest: Rest) -> None:
    """products.md@71a967a: ``0.10`` = 10 %."""
    sales = {"tax": ["S_IVA_21"], "account": "7000000", "price": 10, "discountRate": 0.1}
    assert main_of(rest.product(sales=sales))["sales"]["discountRate"] == 0.1
    too_big = envelope("product", name="X", currency="EUR", sales={**sales, "discountRate": 10})
    assert paths(rest.post("/products", too_big)) == {"content.main.sales.discountRate"}


def test_product_required_fields_and_tax_catalogues(rest: Rest) -> None:
    """products.md@71a967a: name and currency required; facet ``tax`` and ``account`` required; sales taxes from
    the sales catalogue; products take no custom fields (inferred)."""
    assert paths(rest.post("/products", envelope("product", name="X"))) == {"content.main.currency"}
    bad = envelope("product", name="X", currency="EUR", sales={"tax": ["P_IVA_21"]}, customFields={})
    assert paths(rest.post("/products", bad)) == {
        "content.main.sales.tax.0",
        "content.main.sales.account",
        "content.main.customFields",
    }


@pytest.mark.parametrize("state", ["pending", "accepted", "rejected", "closed"])
def test_estimate_states(rest: Rest, state: str) -> None:
    """estimates.md@afc30cc: ``baseState`` ∈ pending/accepted/rejected/closed; another value → 400."""
    contact = uid(rest.contact())
    assert main_of(rest.estimate(contact, baseState=state))["baseState"] == state
    bad = envelope("estimate", contact=contact, lines=[LINE], baseState="sent")
    assert paths(rest.post("/estimates", bad)) == {"content.main.baseState"}


def test_estimate_totals_are_computed_by_the_server(rest: Rest) -> None:
    """estimates.md@afc30cc: 1 × 1800 @ S_IVA_21 → tax 378, total 2178; withholdings are negative."""
    contact = uid(rest.contact())
    main = main_of(rest.estimate(contact))
    assert (main["linesTotal"], main["totalBeforeTaxes"], main["total"]) == (1800, 1800, 2178)
    assert main["taxes"] == [
        {
            "id": "S_IVA_21",
            "base": 1800,
            "amount": 378,
            "companyCurrencyBase": 1800,
            "companyCurrencyAmount": 378,
        }
    ]
    assert main["lines"][0]["lineTotal"] == 1800
    irpf = main_of(rest.estimate(contact, [{**LINE, "tax": ["S_IVA_21", "S_IRPF_15"]}]))
    assert (
        irpf["total"] == 1800 + 378 - 270
        and {t["id"]: t["amount"] for t in irpf["taxes"]}["S_IRPF_15"] == -270
    )
    discounted = main_of(
        rest.estimate(contact, [{**LINE, "quantity": 3, "unitPrice": 10.5, "discountRate": 10}])
    )
    assert discounted["linesTotal"] == 28.35 and discounted["total"] == 34.3


def test_sent_totals_must_match_in_calc_total_mode(rest: Rest) -> None:
    """taxes.md@6f7d643: a mismatch is a 400 in ``calcTotal`` (default); ``totalProvided`` takes them."""
    contact = uid(rest.contact())
    estimate = rest.estimate(contact)
    read_back = rest.get(f"/estimates/{uid(estimate)}").json()
    assert rest.put(f"/estimates/{uid(estimate)}", {"content": read_back["content"]}).status_code == 200
    wrong = envelope("estimate", contact=contact, lines=[{**LINE, "lineTotal": 1}], total=1, linesTotal=1800)
    assert paths(rest.post("/estimates", wrong)) == {"content.main.lines.0.lineTotal", "content.main.total"}
    provided = main_of(
        rest.estimate(contact, [{**LINE, "lineTotal": 1800}], total=2000, mode="totalProvided")
    )
    assert provided["total"] == 2000


def test_vat_is_rounded_once_per_tax_as_in_the_classic_api(rest: Rest) -> None:
    """§15.6: rounding is not documented; like the classic emulator, one rounding per tax of the document
    (two lines of 0.07 at 21 %: 0.03, where per-line rounding gives 0.02). ``rest_tax_rounding: line``."""
    contact = uid(rest.contact())
    lines = [{**LINE, "unitPrice": 0.07}, {**LINE, "unitPrice": 0.07}]
    assert main_of(rest.estimate(contact, lines))["taxes"][0]["amount"] == 0.03
    with rest.sandbox.facturadirecta_client() as classic:
        client = classic.post(
            "/api/clients.xml", content=b"<client><legalType>J</legalType><name>A</name></client>"
        )
        client_id = client.text.split("<id>")[1].split("</id>")[0]
        line = "<estimateLine><description>x</description><quantity>1</quantity><unitPrice>0.07</unitPrice></estimateLine>"
        body = (
            f"<estimate><client><id>{client_id}</id></client><estimateDate>20260105</estimateDate>"
            f"<estimateLines>{line}{line}</estimateLines></estimate>"
        ).encode()
        assert "<totalTax1>0.03</totalTax1>" in classic.post("/api/estimates.xml", content=body).text
    rest.config(rest_tax_rounding="line")
    assert main_of(rest.estimate(contact, lines))["taxes"][0]["amount"] == 0.02


def test_tax_catalogue_ids(rest: Rest) -> None:
    """taxes.md@6f7d643: catalogue ids, ``value`` base 1; unknown ids and auto-applied taxes → 400."""
    sales = {t["id"]: t for t in rest.get("/settings/taxes/sales").json()["items"]}
    assert sales["S_IVA_21"]["value"] == 0.21 and sales["S_IRPF_15"]["value"] == -0.15
    assert all(t["id"].startswith("P_") for t in rest.get("/settings/taxes/purchases").json()["items"])
    contact = uid(rest.contact())
    for tax in ("S_IVA_99", "P_IVA_21", "S_RE_5_2"):
        bad = envelope("estimate", contact=contact, lines=[{**LINE, "tax": [tax]}])
        assert paths(rest.post("/estimates", bad)) == {"content.main.lines.0.tax.0"}, tax
    rest.config(rest_scopes="estimates:read")
    assert error(rest.get("/settings/taxes/sales"), 403)["requiredScope"] == "settings:read"


def test_estimate_numbering(rest: Rest) -> None:
    """estimates.md@afc30cc: automatic when omitted (``2026/0041``-style per series); duplicate → 409."""
    contact = uid(rest.contact())
    first = main_of(rest.estimate(contact, date="2026-03-01"))
    second = main_of(rest.estimate(contact, date="2026-03-02"))
    assert (first["series"], first["docNumber"], second["docNumber"]) == ("default", "2026/0001", "2026/0002")
    assert first["title"] == "Presupuesto 2026/0001 — Acme Diseño"
    duplicate = envelope("estimate", contact=contact, lines=[LINE], series="default", docNumber="2026/0002")
    assert error(rest.post("/estimates", duplicate), 409)["errors"][0]["path"] == "content.main.docNumber"
    rest.estimate(contact, date="2026-03-03", series="default", docNumber="2026/0010")
    assert main_of(rest.estimate(contact, date="2026-03-04"))["docNumber"] == "2026/0011"


def test_impossible_list_dates_are_400(rest: Rest) -> None:
    """estimates.md@afc30cc: ``minDate=2026-02-30`` → 400."""
    assert paths(rest.get("/estimates", params={"minDate": "2026-02-30"})) == {"minDate"}
    contact = uid(rest.contact())
    rest.estimate(contact, date="2026-02-27")
    rest.estimate(contact, date="2026-03-02")
    found = rest.get("/estimates", params={"minDate": "2026-02-28", "maxDate": "2026-03-02"}).json()["items"]
    assert [main_of(i)["date"] for i in found] == ["2026-03-02"]


def test_estimate_needs_an_existing_contact_and_products(rest: Rest, other: Rest) -> None:
    theirs = uid(other.contact("Ajena S.L."))
    ours = uid(rest.contact())
    bad = envelope("estimate", contact=theirs, lines=[{**LINE, "document": f"pro_{uuid.uuid4()}"}])
    assert paths(rest.post("/estimates", bad)) == {"content.main.contact", "content.main.lines.0.document"}
    product = rest.product(sales={"tax": ["S_IVA_21"], "account": "7050001"})
    line = main_of(rest.estimate(ours, [{**LINE, "document": uid(product)}]))["lines"][0]
    assert line["account"] == "7050001"


# -- custom fields (§10) ---------------------------------------------------------------------------


def test_custom_field_keys_on_documents(rest: Rest) -> None:
    """custom-fields.md@72b2f19: ``main.customFields`` keyed by ``cfi_<uuid v4>``; unknown or malformed key
    → 400; archived keys stay valid; a definition without the document type hides the value."""
    field = rest.post("/customFields", {"title": "ID CRM", "docTypes": ["contact", "estimate"]}).json()[
        "content"
    ]
    key = field["id"]
    contact = rest.contact(customFields={key: "crm-42"})
    assert main_of(contact)["customFields"] == {key: "crm-42"}
    unknown = f"cfi_{uuid.uuid4()}"
    for bad_key in (unknown, "cfi_NOT-A-UUID", "ID_CRM"):
        body = envelope("contact", name="X", customFields={bad_key: "1"})
        assert paths(rest.post("/contacts", body)) == {f"content.main.customFields.{bad_key}"}
    assert rest.delete(f"/customFields/{key}").json() == {"result": True}
    assert main_of(rest.contact("Y", customFields={key: "crm-43"}))["customFields"] == {key: "crm-43"}
    rest.post(f"/customFields/{key}/restore")
    rest.put(f"/customFields/{key}", {"title": "ID CRM", "docTypes": ["estimate"]})
    assert main_of(rest.get(f"/contacts/{uid(contact)}").json())["customFields"] == {}
    rest.put(f"/contacts/{uid(contact)}", envelope("contact", name="Acme", customFields={}))
    rest.put(f"/customFields/{key}", {"title": "ID CRM", "docTypes": ["estimate", "contact"]})
    assert main_of(rest.get(f"/contacts/{uid(contact)}").json())["customFields"] == {key: "crm-42"}


def test_custom_field_definitions(rest: Rest) -> None:
    """custom-fields.md@72b2f19: client-chosen id; existing (even archived) → 409; 20 active max → 403;
    list pages like the offset lists, active only by default."""
    chosen = f"cfi_{uuid.uuid4()}"
    content = created(rest.post("/customFields", {"id": chosen, "title": "Pedido", "docTypes": ["estimate"]}))
    assert content["content"] == {
        **content["content"],
        "id": chosen,
        "title": "Pedido",
        "docTypes": ["estimate"],
        "archived": False,
    }
    rest.delete(f"/customFields/{chosen}")
    assert error(rest.post("/customFields", {"id": chosen, "title": "Otra", "docTypes": ["contact"]}), 409)
    for bad in (chosen.upper(), "cfi_" + str(uuid.uuid1())):
        assert paths(rest.post("/customFields", {"id": bad, "title": "T", "docTypes": ["contact"]})) == {"id"}
    assert paths(rest.post("/customFields", {"title": "T", "docTypes": ["product"]})) == {"docTypes.0"}
    for i in range(20):
        created(rest.post("/customFields", {"title": f"Campo {i}", "docTypes": ["contact"]}))
    capped = error(rest.post("/customFields", {"title": "21", "docTypes": ["contact"]}), 403)
    assert capped["errors"][0]["code"] == "plan_limit_exceeded"
    listing = rest.get("/customFields", params={"limit": 5}).json()
    assert listing["pagination"] == {"offset": 0, "limit": 5, "total": 20}
    assert rest.get("/customFields", params={"archived": "true"}).json()["items"][0]["id"] == chosen
    assert rest.get("/customFields", params={"archived": "all"}).json()["pagination"]["total"] == 21
    assert rest.get(f"/customFields/{chosen}").json()["content"]["archived"] is True
    assert (
        error(rest.post(f"/customFields/{chosen}/restore"), 403)["errors"][0]["code"] == "plan_limit_exceeded"
    )
    assert error(rest.put(f"/customFields/{chosen}", {"title": "X", "docTypes": ["contact"]}), 409)


# -- idempotency (§6) ------------------------------------------------------------------------------

IDEM = "sync-create-0001-abcdef"


def test_idempotent_replay(rest: Rest) -> None:
    """idempotency.md@38abd0c: the same status and body, nothing re-executed, replay headers, key echoed;
    quotes stripped; the body is compared semantically."""
    body = envelope("contact", name="Acme", email="a@acme.es")
    first = rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
    assert first.status_code == 200 and first.headers["idempotency-key"] == IDEM
    assert "idempotent-replayed" not in first.headers
    same = '{ "content": {"main": {"email": "a@acme.es", "name": "Acme"}, "type": "contact"} }'
    replay = rest.http.post(
        "/contacts",
        content=same.encode(),
        headers={"Idempotency-Key": f'"{IDEM}"', "content-type": "application/json"},
    )
    assert replay.status_code == 200 and replay.content == first.content
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["idempotent-original-request-id"] == first.headers["x-request-id"]
    assert replay.headers["idempotent-original-date"].endswith("GMT")
    assert replay.headers["x-request-id"] != first.headers["x-request-id"]
    assert rest.get("/contacts").json()["pagination"]["total"] == 1
    assert [i["type"] for i in rest.get("/activity").json()["items"]] == ["inserted"]


def test_idempotency_key_reused_with_another_request_is_422(rest: Rest) -> None:
    """Bound to method, path, query and body: another one → 422 ``idempotency_key_reused``."""
    created(rest.post("/contacts", envelope("contact", name="Acme"), headers={"Idempotency-Key": IDEM}))
    for response in (
        rest.post("/contacts", envelope("contact", name="Otra"), headers={"Idempotency-Key": IDEM}),
        rest.post("/products", envelope("contact", name="Acme"), headers={"Idempotency-Key": IDEM}),
        rest.post(
            "/contacts",
            envelope("contact", name="Acme"),
            params={"x": "1"},
            headers={"Idempotency-Key": IDEM},
        ),
    ):
        assert error(response, 422)["errors"][0]["code"] == "idempotency_key_reused"
        assert response.headers["idempotency-key"] == IDEM


def test_same_key_while_the_first_request_runs_is_409(rest: Rest) -> None:
    """``idempotency_key_in_use`` + Retry-After; the first request then completes and is replayable."""
    rest.control("PUT", "/hold", {"method": "POST", "path": "/contacts$", "count": 1})
    body = envelope("contact", name="Lenta S.L.")
    results: list[httpx.Response] = []
    worker = threading.Thread(
        target=lambda: results.append(rest.post("/contacts", body, headers={"Idempotency-Key": IDEM}))
    )
    worker.start()
    try:
        assert rest.control("GET", "/hold?wait_s=10") == {"held": 1}
        busy = rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
        assert error(busy, 409)["errors"][0]["code"] == "idempotency_key_in_use"
        assert busy.headers["retry-after"]
    finally:
        rest.control("DELETE", "/hold")
        worker.join(timeout=30)
    assert results[0].status_code == 200
    replay = rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == results[0].content


@pytest.mark.parametrize("key", ["short", "has a space inside!", "x" * 256, "ñññññññññññññññññ".encode()])
def test_invalid_idempotency_key_is_400_and_nothing_runs(rest: Rest, key: str | bytes) -> None:
    response = rest.post("/contacts", envelope("contact", name="X"), headers={"Idempotency-Key": key})
    assert error(response, 400)["errors"][0]["code"] == "invalid_idempotency_key"
    assert rest.get("/contacts").json()["pagination"]["total"] == 0


def test_errors_are_not_stored_and_release_the_key(rest: Rest) -> None:
    assert error(rest.post("/contacts", envelope("contact"), headers={"Idempotency-Key": IDEM}), 400)
    assert (
        rest.post(
            "/contacts", envelope("contact", name="Bien"), headers={"Idempotency-Key": IDEM}
        ).status_code
        == 200
    )


def test_a_lost_answer_is_replayed_not_run_twice(rest: Rest) -> None:
    """The crash-safe create: the write happens, the client never gets the answer, the retry replays it."""
    rest.sandbox.faults(
        "facturadirecta", [{"method": "POST", "path": "^/api/com_", "rates": {"truncate": 1.0}, "count": 1}]
    )
    body = envelope("contact", name="Perdida S.L.")
    with pytest.raises(httpx.RemoteProtocolError):
        rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
    retry = rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
    assert retry.status_code == 200 and retry.headers["idempotent-replayed"] == "true"
    assert rest.get("/contacts").json()["pagination"]["total"] == 1


def test_keys_last_24_hours_on_the_sandbox_clock(rest: Rest) -> None:
    body = envelope("contact", name="Diaria")
    created(rest.post("/contacts", body, headers={"Idempotency-Key": IDEM}))
    rest.control("PUT", "/clock", {"advance_s": 24 * 3600 - 1})
    assert (
        rest.post("/contacts", body, headers={"Idempotency-Key": IDEM}).headers["idempotent-replayed"]
        == "true"
    )
    rest.control("PUT", "/clock", {"advance_s": 1})
    fresh = rest.post("/contacts", body, headers={"Idempotency-Key": IDEM})
    assert fresh.status_code == 200 and "idempotent-replayed" not in fresh.headers
    assert rest.get("/contacts").json()["pagination"]["total"] == 2


def test_keys_are_per_company_and_429_does_not_consume_them(rest: Rest, other: Rest) -> None:
    body = envelope("contact", name="Compartida")
    mine = created(rest.post("/contacts", body, headers={"Idempotency-Key": IDEM}))
    theirs = created(other.post("/contacts", body, headers={"Idempotency-Key": IDEM}))
    assert uid(mine) != uid(theirs)
    rest.config(rest_plan="gratis", rest_rate_limit_enforced=True)
    rest.freeze_at_minute_start()
    for _ in range(30):
        rest.get("/contacts")
    key = "second-key-000000001"
    assert error(rest.post("/contacts", body, headers={"Idempotency-Key": key}), 429)
    rest.control("PUT", "/clock", {"advance_s": 60})
    answer = rest.post("/contacts", body, headers={"Idempotency-Key": key})
    assert answer.status_code == 200 and "idempotent-replayed" not in answer.headers


# -- activity (§11) --------------------------------------------------------------------------------


def test_activity_order_ties_and_date_bounds(rest: Rest) -> None:
    """activity.md@03f4cd9: default ``-timestamp``; ``timestamp`` ascending; ties by id; min/maxDate inclusive."""
    start = rest.freeze_at_minute_start()
    a, b = uid(rest.contact("A")), uid(rest.contact("B"))
    rest.control("PUT", "/clock", {"advance_s": 1})
    c = uid(rest.contact("C"))
    newest_first = rest.get("/activity").json()["items"]
    assert [i["document"]["id"] for i in newest_first] == [c, b, a]
    oldest_first = rest.get("/activity", params={"sortBy": "timestamp"}).json()["items"]
    assert [i["document"]["id"] for i in oldest_first] == [a, b, c]
    assert oldest_first[0]["timestamp"] == oldest_first[1]["timestamp"] == iso_ms(start)
    assert oldest_first[0]["id"] < oldest_first[1]["id"]
    exact = rest.get("/activity", params={"minDate": iso_ms(start), "maxDate": iso_ms(start)}).json()["items"]
    assert {i["document"]["id"] for i in exact} == {a, b}
    assert set(oldest_first[0]) == {
        "id",
        "timestamp",
        "type",
        "subtype",
        "username",
        "description",
        "document",
        "request",
        "details",
    }


def test_every_write_feeds_the_activity(rest: Rest) -> None:
    """inserted / updated (+subtype) / archived / unarchived, for each document type, filterable."""
    contact = uid(rest.contact())
    rest.put(f"/contacts/{contact}", envelope("contact", name="Acme 2"))
    rest.put(f"/contacts/{contact}/tags", {"tags": ["a"]})
    product = uid(rest.product())
    estimate = uid(rest.estimate(contact))
    rest.delete(f"/estimates/{estimate}")
    rest.control("POST", "/unarchive", {"id": estimate})
    field = rest.post("/customFields", {"title": "F", "docTypes": ["contact"]}).json()["content"]["id"]
    rest.delete(f"/customFields/{field}")
    rest.post(f"/customFields/{field}/restore")
    feed = rest.get("/activity", params={"sortBy": "timestamp"}).json()["items"]
    assert [(i["document"]["type"], i["type"], i["subtype"]) for i in feed] == [
        ("contact", "inserted", None),
        ("contact", "updated", None),
        ("contact", "updated", "updateTags"),
        ("product", "inserted", None),
        ("estimate", "inserted", None),
        ("estimate", "archived", None),
        ("estimate", "unarchived", None),
        ("customField", "inserted", None),
        ("customField", "archived", None),
        ("customField", "unarchived", None),
    ]
    only = rest.get(
        "/activity", params=[("documentType", "estimate"), ("type", "archived"), ("type", "unarchived")]
    ).json()["items"]
    assert [i["type"] for i in only] == ["unarchived", "archived"]
    assert [
        i["document"]["id"] for i in rest.get("/activity", params={"documentId": product}).json()["items"]
    ] == [product]
    assert rest.get(f"/estimates/{estimate}").status_code == 200  # recovered by the web app's unarchive


# -- modificationDate, minModificationDate ---------------------------------------------------------


@pytest.mark.parametrize("resource", ["products", "estimates"])
def test_min_modification_date_on_products_and_estimates(rest: Rest, resource: str) -> None:
    """pagination.md@03f4cd9 / products.md@71a967a: inclusive bounds on ``modificationDate``; a PUT moves it."""
    contact = uid(rest.contact())

    def make() -> dict[str, Any]:
        return rest.product() if resource == "products" else rest.estimate(contact)

    rest.freeze_at_minute_start()
    first = make()
    rest.control("PUT", "/clock", {"advance_s": 2})
    second = make()
    since = rest.get(f"/{resource}", params={"minModificationDate": second["modificationDate"]}).json()[
        "items"
    ]
    assert [uid(i) for i in since] == [uid(second)]
    until = rest.get(f"/{resource}", params={"maxModificationDate": first["modificationDate"]}).json()[
        "items"
    ]
    assert [uid(i) for i in until] == [uid(first)]
    rest.control("PUT", "/clock", {"advance_s": 2})
    updated = rest.put(f"/{resource}/{uid(first)}", {"content": first["content"]}).json()
    assert updated["modificationDate"] > second["modificationDate"]
    assert updated["creationDate"] == first["creationDate"]
    later = rest.get(
        f"/{resource}",
        params={"minModificationDate": updated["modificationDate"], "sortBy": "modificationDate"},
    ).json()["items"]
    assert [uid(i) for i in later] == [uid(first)]


def test_contacts_modification_filters_are_undocumented(rest: Rest) -> None:
    """§15.3: not listed for contacts → unknown parameters (400); ``rest_contacts_modification_filters``."""
    first = rest.contact()
    assert paths(rest.get("/contacts", params={"minModificationDate": first["modificationDate"]})) == {
        "minModificationDate"
    }
    assert paths(rest.get("/contacts", params={"sortBy": "modificationDate"})) == {"sortBy"}
    rest.config(rest_contacts_modification_filters=True)
    found = rest.get("/contacts", params={"minModificationDate": first["modificationDate"]}).json()["items"]
    assert [uid(i) for i in found] == [uid(first)]


# -- §15 switches ----------------------------------------------------------------------------------


def test_deleted_records_switch(rest: Rest) -> None:
    """§15.14: a deleted contact is 404 by id (as invoices); ``rest_deleted_fetch: archived`` shows it."""
    contact = uid(rest.contact())
    rest.delete(f"/contacts/{contact}")
    assert rest.get(f"/contacts/{contact}").status_code == 404
    rest.config(rest_deleted_fetch="archived")
    assert rest.get(f"/contacts/{contact}").json()["archived"] is True
    assert rest.put(f"/contacts/{contact}", envelope("contact", name="X")).status_code == 404


def test_web_url_position_and_create_status_switches(rest: Rest) -> None:
    """§15.9 (webUrl root or content) and §15.7 (create 200 or 201)."""
    rest.config(rest_weburl="content", rest_create_status=201)
    response = rest.post("/contacts", envelope("contact", name="X"))
    assert response.status_code == 201
    assert "webUrl" not in response.json() and response.json()["content"]["webUrl"].startswith("https://")


def test_put_without_custom_fields_switch(rest: Rest) -> None:
    """§15.16: a PUT without ``customFields`` clears them (full replace); ``keep`` keeps them."""
    key = rest.post("/customFields", {"title": "F", "docTypes": ["contact"]}).json()["content"]["id"]
    contact = uid(rest.contact(customFields={key: "v"}))
    assert "customFields" not in main_of(
        rest.put(f"/contacts/{contact}", envelope("contact", name="A")).json()
    )
    rest.put(f"/contacts/{contact}", envelope("contact", name="A", customFields={key: "v"}))
    rest.config(rest_put_omits_custom_fields="keep")
    kept = rest.put(f"/contacts/{contact}", envelope("contact", name="B")).json()
    assert main_of(kept)["customFields"] == {key: "v"}


def test_contact_delete_with_estimates_switch(rest: Rest) -> None:
    contact = uid(rest.contact())
    rest.estimate(contact)
    rest.config(rest_contact_delete_with_estimates="allow")
    assert rest.delete(f"/contacts/{contact}").json() == {"result": True}


def test_estimate_discount_scale_and_doc_number_shape_switches(rest: Rest) -> None:
    """§15.4 (line ``discountRate`` 0-100 by default, as invoice lines) and §15.5 (``docNumber`` shape)."""
    contact = uid(rest.contact())
    line = {**LINE, "unitPrice": 100, "discountRate": 10}
    assert main_of(rest.estimate(contact, [line]))["linesTotal"] == 90
    rest.config(rest_estimate_discount_scale="fraction", rest_estimate_docnumber="object")
    assert paths(rest.post("/estimates", envelope("estimate", contact=contact, lines=[line]))) == {
        "content.main.lines.0.discountRate"
    }
    main = main_of(rest.estimate(contact, [{**line, "discountRate": 0.1}], date="2025-04-01"))
    assert main["linesTotal"] == 90 and main["docNumber"] == {"series": "default", "number": 1}
    assert "series" not in main


def test_activity_cursor_on_last_page_switch(rest: Rest) -> None:
    """§15.12: ``nextCursor`` is null on the last page; the switch issues one there, to resume from."""
    rest.contact()
    assert rest.get("/activity").json()["nextCursor"] is None
    rest.config(rest_activity_cursor_on_last_page=True)
    cursor = rest.get("/activity", params={"sortBy": "timestamp"}).json()["nextCursor"]
    assert cursor
    rest.contact("Nuevo S.L.")
    resumed = rest.get("/activity", params={"sortBy": "timestamp", "cursor": cursor}).json()["items"]
    assert [i["document"]["title"] for i in resumed] == ["Nuevo"]


def test_unknown_fields_switch(rest: Rest) -> None:
    """§15.1: fields the docs do not name are kept by default; ``rest_unknown_fields: reject`` → 400."""
    rest.config(rest_unknown_fields="reject")
    assert paths(rest.post("/contacts", envelope("contact", name="X", notes="n"))) == {"content.main.notes"}


# -- control surface -------------------------------------------------------------------------------


def test_reset_seed_faults_latency_and_stats_cover_the_rest_api(rest: Rest) -> None:
    sandbox = rest.sandbox
    seeded = sandbox.seed("facturadirecta", clients=4, products=3, estimates=2, seed=5, target="both")
    assert seeded["created"] == {
        "rest_contacts": 4,
        "rest_products": 3,
        "rest_estimates": 2,
        "clients": 4,
        "products": 3,
        "estimates": 2,
    }
    rest_totals = sorted(main_of(i)["total"] for i in rest.get("/estimates").json()["items"])
    with sandbox.facturadirecta_client() as classic:
        xml = classic.get("/api/estimates.xml").text
    classic_totals = sorted(float(t.split("</")[0]) for t in xml.split("<totalAmount>")[1:])
    assert rest_totals == classic_totals  # the same account through both APIs
    assert rest.get("/activity").json()["items"][0]["username"] == "ami@facturadirecta.com"
    bad = sandbox.http.post(f"{rest.root}/_sandbox/seed", json={"clients": 1, "target": "soap"})
    assert bad.status_code == 400

    sandbox.faults("facturadirecta", [{"path": "^/api/com_", "rates": {"503": 1.0}, "count": 1}])
    faulted = rest.get("/contacts")
    assert faulted.status_code == 503 and faulted.json() == {
        "statusCode": 503,
        "message": "Service Unavailable",
    }
    assert rest.get("/contacts").status_code == 200

    sandbox.reset_stats("facturadirecta")
    rest.get("/contacts")
    rest.get(f"/contacts/{uid(rest.get('/contacts').json()['items'][0])}")
    routes = {(r["method"], r["route"], r["status"]) for r in sandbox.stats("facturadirecta")["by_route"]}
    assert routes == {
        ("GET", "/api/{company_id}/contacts", 200),
        ("GET", "/api/{company_id}/contacts/{rid}", 200),
    }

    sandbox.latency("facturadirecta", "realistic", 0.001)
    rest.get("/contacts", params={"limit": 500})
    state = sandbox.latency("facturadirecta")
    list_rule = next(r for r in state["rules"] if "customFields" in r["path"])
    assert list_rule["delayed"] == 1 and list_rule["delay_ms"] == pytest.approx(1.2)

    rest.config(rest_plan="gratis")
    rest.control("PUT", "/clock", {"advance_s": 3600, "frozen": True})
    sandbox.reset("facturadirecta")
    assert rest.config()["rest_plan"] == "diamante"
    assert rest.control("GET", "/clock")["frozen"] is False
    assert rest.get("/contacts").json()["pagination"]["total"] == 0
    assert rest.get("/activity").json()["items"] == []
    info = rest.control("GET", "")
    assert [c["id"] for c in info["companies"]] == [rest.company, rest.config()["rest_other_company_id"]]


def test_the_classic_api_is_unchanged_on_the_same_port(rest: Rest) -> None:
    with rest.sandbox.facturadirecta_client() as classic:
        assert classic.get("/api/clients.xml").headers["content-type"].startswith("application/xml")
        missing = classic.get("/api/nothing.xml")
        assert missing.status_code == 404 and b"<httpStatus>404</httpStatus>" in missing.content
    assert "x-ratelimit-limit" not in httpx.get(f"{rest.root}/api/clients.xml").headers
