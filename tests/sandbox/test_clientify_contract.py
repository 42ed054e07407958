"""Clientify emulator contract (clientify-api.md): auth quirks, slashes, DRF paging, filters, writes."""

from __future__ import annotations

import re
import threading
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.fixtures.sandbox import SandboxHandle

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+0[12]:00$")
# Key order of the recorded POST /v1/contacts/ response (clientify-api.md §5).
RECORDED_CONTACT_KEYS = [
    "url",
    "id",
    "owner",
    "owner_id",
    "owner_name",
    "first_name",
    "last_name",
    "status",
    "title",
    "company",
    "company_details",
    "contact_type",
    "contact_source",
    "emails",
    "phones",
    "addresses",
    "picture_url",
    "custom_fields",
    "other_companies",
    "tags",
    "description",
    "remarks",
    "summary",
    "created",
    "modified",
    "last_contact",
    "related_tasks",
    "deals",
    "page_views",
    "total_visits",
    "first_visit",
    "last_visit",
    "gdpr_accept",
    "visitor_key",
    "attachments",
    "websites",
    "medium",
    "channel",
    "linkedin_url",
    "linkedin_id",
    "linkedin_picture_url",
    "skype_username",
    "birthday",
    "twitter_id",
    "lead_scoring",
    "facebook_url",
    "twitter_url",
    "googleplus_url",
    "pinterest_url",
    "foursquare_url",
    "aboutme_url",
    "klout_url",
    "instagram_url",
    "manychat_url",
    "facebook_picture_url",
    "twitter_picture_url",
    "facebook_id",
    "google_id",
    "taxpayer_identification_number",
    "unsubscribed",
    "automations",
    "gdpr_acceptance_date",
    "country",
    "integrations",
    "disclaimer",
    "contact_sector",
]
JOHN = {
    "first_name": "John",
    "last_name": "Doe",
    "email": "john.doe@example.com",
    "phone": "+1234567890",
    "tags": ["stands modulares propios"],
    "remarks": "Interested in your product",
}


@pytest.fixture
def api(clean_sandbox: SandboxHandle):
    with clean_sandbox.clientify_client() as client:
        yield client


def create(api: httpx.Client, resource: str = "contacts", **body) -> dict:
    response = api.post(f"/v1/{resource}/", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


# -- authentication --------------------------------------------------------------------------------


def test_missing_key_is_a_404_api_key_not_provided(clean_sandbox: SandboxHandle) -> None:
    response = clean_sandbox.http.get(f"{clean_sandbox.clientify_url}/v1/users/")
    assert response.status_code == 404 and response.json() == {"detail": "Api key not provided."}
    other_scheme = {"Authorization": f"Bearer {clean_sandbox.clientify_token}"}
    assert (
        clean_sandbox.http.get(f"{clean_sandbox.clientify_url}/v1/users/", headers=other_scheme).status_code
        == 404
    )


def test_wrong_key_is_a_401_invalid_token(clean_sandbox: SandboxHandle) -> None:
    response = clean_sandbox.http.get(
        f"{clean_sandbox.clientify_url}/v1/users/", headers={"Authorization": "Token bogus123"}
    )
    assert response.status_code == 401 and response.json() == {"detail": "Invalid token."}
    assert response.headers["www-authenticate"] == "Token"


def test_users_answers_for_connection_tests_and_token_can_be_revoked(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    body = api.get("/v1/users/").json()
    assert body["count"] == 1 and body["results"][0]["username"]
    assert api.get("/v1/settings/my-account/").json()["count"] > 0
    clean_sandbox.config("clientify", token="rotated")
    assert api.get("/v1/users/").status_code == 401


# -- paths -----------------------------------------------------------------------------------------


def test_get_without_trailing_slash_redirects_keeping_the_query(api: httpx.Client) -> None:
    response = api.get("/v1/contacts", params={"page_size": 5})
    assert response.status_code == 301
    assert response.headers["location"] == "/v1/contacts/?page_size=5"
    assert api.get("/v1/contacts", follow_redirects=True).status_code == 200


def test_other_methods_without_slash_and_unknown_paths_get_an_html_404(api: httpx.Client) -> None:
    for response in (api.post("/v1/contacts", json=JOHN), api.get("/v1/nothing/"), api.get("/v2/contacts/")):
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "<h1>Not Found</h1>" in response.text


def test_wrong_method_is_a_drf_405(api: httpx.Client) -> None:
    response = api.delete("/v1/contacts/")
    assert response.status_code == 405 and response.json() == {"detail": 'Method "DELETE" not allowed.'}


# -- contacts --------------------------------------------------------------------------------------


def test_create_contact_has_the_recorded_shape(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    contact = create(api, **JOHN)
    assert list(contact) == RECORDED_CONTACT_KEYS
    assert isinstance(contact["id"], int)
    assert contact["url"] == f"{clean_sandbox.clientify_url}/v1/contacts/{contact['id']}/"
    assert [(e["type"], e["email"]) for e in contact["emails"]] == [(4, "john.doe@example.com")]
    assert [(p["type"], p["phone"], p["unsubscribed"]) for p in contact["phones"]] == [
        (1, "+1234567890", False)
    ]
    assert all(isinstance(item["id"], int) for item in contact["emails"] + contact["phones"])
    assert contact["tags"] == ["stands modulares propios"] and contact["custom_fields"] == []
    assert TIMESTAMP.match(contact["created"]) and contact["created"] == contact["modified"]
    assert contact["channel"] == "integrations-api" and contact["company"] is None
    assert api.get(f"/v1/contacts/{contact['id']}/").json() == contact


def test_contact_with_only_an_email(api: httpx.Client) -> None:
    assert create(api, email="solo@example.com")["emails"][0]["email"] == "solo@example.com"


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        pytest.param({"email": "nope"}, {"email": ["Enter a valid email address."]}, id="email"),
        pytest.param({"status": "boiling"}, {"status": ['"boiling" is not a valid choice.']}, id="status"),
        pytest.param(
            {"emails": [{"email": "x"}]},
            {"emails": [{"email": ["Enter a valid email address."]}]},
            id="emails",
        ),
        pytest.param(
            {"birthday": "31/12/1990"},
            {"birthday": ["Date has wrong format. Use one of these formats instead: YYYY-MM-DD."]},
            id="birthday",
        ),
    ],
)
def test_contact_validation_uses_drf_field_maps(api: httpx.Client, body: dict, errors: dict) -> None:
    response = api.post("/v1/contacts/", json=body)
    assert response.status_code == 400 and response.json() == errors


def test_put_is_partial_and_bumps_modified_only(api: httpx.Client) -> None:
    contact = create(api, **JOHN)
    response = api.put(f"/v1/contacts/{contact['id']}/", json={"first_name": "Johnny"})
    assert response.status_code == 200
    updated = response.json()
    assert updated["first_name"] == "Johnny" and updated["last_name"] == "Doe"
    assert updated["emails"] == contact["emails"]
    assert updated["created"] == contact["created"]
    assert parse_ts(updated["modified"]) > parse_ts(contact["modified"])
    patched = api.patch(f"/v1/contacts/{contact['id']}/", json={"title": "CEO"}).json()
    assert patched["title"] == "CEO" and parse_ts(patched["modified"]) > parse_ts(updated["modified"])


def test_lists_replace_but_custom_fields_merge_by_name(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.define_custom_field("in_facturama", "contacts")
    clean_sandbox.define_custom_field("origin", "contacts | contact")
    contact = create(
        api, **JOHN, custom_fields=[{"field": "in_facturama", "value": "3PzybenYOxj9bpbpBakv0w2"}]
    )
    updated = api.put(
        f"/v1/contacts/{contact['id']}/",
        json={
            "tags": ["nuevo"],
            "custom_fields": [{"field": "origin", "value": "facturama"}],
        },
    ).json()
    assert updated["tags"] == ["nuevo"]
    assert updated["custom_fields"] == [
        {"field": "in_facturama", "value": "3PzybenYOxj9bpbpBakv0w2"},
        {"field": "origin", "value": "facturama"},
    ]
    updated = api.patch(
        f"/v1/contacts/{contact['id']}/",
        json={
            "custom_fields": [{"field": "in_facturama", "value": "new"}, {"field": "origin", "value": None}],
        },
    ).json()
    assert updated["custom_fields"] == [{"field": "in_facturama", "value": "new"}]
    updated = api.patch(
        f"/v1/contacts/{contact['id']}/", json={"emails": [{"email": "b@x.com", "type": 2}]}
    ).json()
    assert [(e["type"], e["email"]) for e in updated["emails"]] == [(2, "b@x.com")]


def test_undefined_custom_field_is_rejected(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.define_custom_field("in_facturama", "companies")
    response = api.post(
        "/v1/contacts/", json={**JOHN, "custom_fields": [{"field": "in_facturama", "value": "1"}]}
    )
    assert response.status_code == 400
    assert response.json() == {"custom_fields": ["Custom field 'in_facturama' does not exist."]}
    assert api.get("/v1/contacts/").json()["count"] == 0
    clean_sandbox.config("clientify", unknown_custom_field="ignore")
    assert create(api, **JOHN, custom_fields=[{"field": "in_facturama", "value": "1"}])["custom_fields"] == []


def test_delete_is_204_then_404(api: httpx.Client) -> None:
    contact = create(api, **JOHN)
    response = api.delete(f"/v1/contacts/{contact['id']}/")
    assert response.status_code == 204 and response.content == b""
    response = api.get(f"/v1/contacts/{contact['id']}/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    assert api.patch(f"/v1/contacts/{contact['id']}/", json={}).status_code == 404
    assert create(api, **JOHN)["id"] != contact["id"]  # ids are never reused


def test_modified_is_strictly_increasing_across_concurrent_writes(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    contact = create(api, **JOHN)
    company = create(api, "companies", name="ACME")
    stamps: list[str] = []
    lock = threading.Lock()

    def write(i: int) -> None:
        with clean_sandbox.clientify_client() as client:
            for j in range(10):
                target = (
                    f"/v1/contacts/{contact['id']}/" if (i + j) % 2 else f"/v1/companies/{company['id']}/"
                )
                response = client.patch(target, json={"description": f"{i}-{j}"})
                assert response.status_code == 200
                with lock:
                    stamps.append(response.json()["modified"])

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stamps) == 80 and len(set(stamps)) == 80


def test_duplicate_tax_id_409_is_switchable(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    create(api, first_name="A", taxpayer_identification_number="GARR900630G98")
    create(api, first_name="B", taxpayer_identification_number="GARR900630G98")
    clean_sandbox.config("clientify", duplicate_tax_id_409=True)
    response = api.post(
        "/v1/contacts/", json={"first_name": "C", "taxpayer_identification_number": "garr900630g98"}
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "Contact with this taxpayer_identification_number already exists."}


def test_company_name_on_a_contact_links_a_company(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    contact = create(api, **JOHN, company="ACME SA DE CV")
    companies = api.get("/v1/companies/").json()["results"]
    assert [c["name"] for c in companies] == ["ACME SA DE CV"]
    assert contact["company"] == companies[0]["url"]
    again = create(api, first_name="Jane", company="acme sa de cv")
    assert again["company"] == companies[0]["url"]
    assert api.patch(f"/v1/contacts/{contact['id']}/", json={"company": None}).json()["company"] is None


# -- paging and ordering ---------------------------------------------------------------------------


def test_drf_paging_with_absolute_links_that_keep_filters(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.seed("clientify", contacts=45, seed=1)
    page = api.get("/v1/contacts/").json()
    assert list(page) == ["count", "next", "previous", "results"]
    assert page["count"] == 45 and len(page["results"]) == 20 and page["previous"] is None
    params = {"page_size": 10, "modified[gte]": "2020-01-01", "query": "@"}
    first = api.get("/v1/contacts/", params=params).json()
    next_url = urlsplit(first["next"])
    assert f"{next_url.scheme}://{next_url.netloc}" == clean_sandbox.clientify_url
    assert next_url.path == "/v1/contacts/"
    assert parse_qs(next_url.query) == {
        "page": ["2"],
        "page_size": ["10"],
        "modified[gte]": ["2020-01-01"],
        "query": ["@"],
    }
    seen, url = [], f"{clean_sandbox.clientify_url}/v1/contacts/?page_size=10&modified%5Bgte%5D=2020-01-01"
    while url:
        body = api.get(url).json()
        seen += [r["id"] for r in body["results"]]
        url = body["next"]
    assert len(seen) == len(set(seen)) == 45
    assert (
        api.get("/v1/contacts/", params={"page": 2, "page_size": 10})
        .json()["previous"]
        .endswith("page=1&page_size=10")
    )


def test_page_size_is_clamped_and_page_past_the_end_is_invalid(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    clean_sandbox.seed("clientify", contacts=120, seed=2)
    assert len(api.get("/v1/contacts/", params={"page_size": 500}).json()["results"]) == 100
    for page in (3, 0, "abc"):
        response = api.get("/v1/contacts/", params={"page": page, "page_size": 100})
        assert response.status_code == 404 and response.json() == {"detail": "Invalid page."}
    assert api.get("/v1/companies/").json() == {"count": 0, "next": None, "previous": None, "results": []}


def test_ordering(api: httpx.Client) -> None:
    ids = [create(api, first_name=f"C{i}")["id"] for i in range(3)]
    api.patch(f"/v1/contacts/{ids[0]}/", json={"title": "touched"})
    listed = lambda **p: [r["id"] for r in api.get("/v1/contacts/", params=p).json()["results"]]  # noqa: E731
    assert listed() == ids[::-1]  # newest first
    assert listed(ordering="id") == ids
    assert listed(ordering="modified") == [ids[1], ids[2], ids[0]]
    assert listed(ordering="-modified") == [ids[0], ids[2], ids[1]]


# -- filters ---------------------------------------------------------------------------------------


def test_query_email_and_tax_id_filters(api: httpx.Client) -> None:
    john = create(api, **JOHN, taxpayer_identification_number="GARR900630G98")
    create(api, first_name="Jane", last_name="Roe", email="jane@example.com")
    q = lambda **p: [r["id"] for r in api.get("/v1/contacts/", params=p).json()["results"]]  # noqa: E731
    assert q(query="john") == [john["id"]]
    assert q(query="JOHN DOE") == [john["id"]]
    assert q(query="GARR900630G98") == [john["id"]]
    assert q(query="doe@example") == [john["id"]]
    assert q(email="JOHN.DOE@example.com") == [john["id"]]
    assert q(email="john.doe@example.co") == []
    assert len(q(query="example.com")) == 2


def test_company_query_matches_name_business_name_and_tax_id(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    acme = create(
        api,
        "companies",
        name="Acme",
        business_name="Acme Industrial SA de CV",
        taxpayer_identification_number="URE180429TM6",
    )
    q = lambda term: [r["id"] for r in api.get("/v1/companies/", params={"query": term}).json()["results"]]  # noqa: E731
    assert q("industrial") == q("acme") == q("URE180429TM6") == [acme["id"]]
    clean_sandbox.config("clientify", company_query_matches_tax_id=False)
    assert q("URE180429TM6") == []


def test_date_filters_accept_dates_datetimes_and_offsets(api: httpx.Client) -> None:
    first = create(api, first_name="First")
    second = create(api, first_name="Second")
    t1, t2 = parse_ts(first["modified"]), parse_ts(second["modified"])
    ids = lambda **p: sorted(r["id"] for r in api.get("/v1/contacts/", params=p).json()["results"])  # noqa: E731
    assert ids(**{"modified[gte]": t2.isoformat()}) == [second["id"]]
    assert ids(**{"modified[gt]": t1.isoformat()}) == [second["id"]]
    assert ids(**{"modified[lte]": t1.isoformat()}) == [first["id"]]
    assert ids(**{"modified[lt]": t2.isoformat()}) == [first["id"]]
    utc = t2.astimezone(datetime.fromisoformat("2026-01-01T00:00:00+00:00").tzinfo)
    assert ids(**{"modified[gte]": utc.isoformat().replace("+00:00", "Z")}) == [second["id"]]
    naive_madrid = t2.replace(tzinfo=None).isoformat()
    assert ids(**{"modified[gte]": naive_madrid}) == [second["id"]]
    today = t1.date()
    assert len(ids(**{"created[gte]": today.isoformat()})) == 2
    assert len(ids(**{"created[gte]": today.strftime("%Y/%m/%d")})) == 2
    assert ids(**{"created[gte]": (today + timedelta(days=1)).isoformat()}) == []
    # An unencoded '+' in the offset arrives as a space.
    raw = f"/v1/contacts/?modified%5Bgte%5D={t2.isoformat().replace('+', '%20')}"
    assert [r["id"] for r in api.get(raw).json()["results"]] == [second["id"]]
    response = api.get("/v1/contacts/", params={"modified[gte]": "yesterday"})
    assert response.status_code == 400 and response.json() == {"modified[gte]": ["Enter a valid date/time."]}


def test_custom_field_filter_is_exact(api: httpx.Client, clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.define_custom_field("in_facturama", "contacts")
    linked = create(
        api, **JOHN, custom_fields=[{"field": "in_facturama", "value": "3PzybenYOxj9bpbpBakv0w2"}]
    )
    create(
        api, first_name="Other", custom_fields=[{"field": "in_facturama", "value": "3PzybenYOxj9bpbpBakv0w"}]
    )
    found = api.get("/v1/contacts/", params={"cf_in_facturama": "3PzybenYOxj9bpbpBakv0w2"}).json()
    assert [r["id"] for r in found["results"]] == [linked["id"]]


# -- products, custom fields, budgets --------------------------------------------------------------


def test_products_price_is_a_decimal_string_and_sku_filters(
    api: httpx.Client, clean_sandbox: SandboxHandle
) -> None:
    product = create(api, "products", name="Sitio Web CMS", sku="WEB003", price=6500)
    assert product["price"] == "6500.00"
    assert list(product) == [
        "url",
        "id",
        "name",
        "sku",
        "description",
        "price",
        "currency",
        "custom_fields",
        "created",
        "modified",
    ]
    create(api, "products", name="Otro", sku="WEB004", price="11.333")
    assert [p["id"] for p in api.get("/v1/products/", params={"sku": "WEB003"}).json()["results"]] == [
        product["id"]
    ]
    response = api.post("/v1/products/", json={"name": "X", "price": "abc"})
    assert response.status_code == 400 and response.json() == {"price": ["A valid number is required."]}
    assert api.post("/v1/products/", json={"sku": "NONAME"}).json() == {"name": ["This field is required."]}
    clean_sandbox.config("clientify", price_as_string=False)
    assert api.get(f"/v1/products/{product['id']}/").json()["price"] == 6500.0


def test_custom_field_definitions_api(api: httpx.Client) -> None:
    response = api.post(
        "/v1/custom-fields/", json={"name": "in_facturama", "content_type": "contacts | contact"}
    )
    assert response.status_code == 201
    field = response.json()
    assert list(field) == [
        "url",
        "id",
        "user_company",
        "content_type",
        "name",
        "help_text",
        "field_type",
        "field_type_display",
        "default_value",
        "dropdown_choices",
        "visible",
    ]
    assert field["content_type"] == "contacts | contact" and field["field_type"] == 3
    duplicate = api.post("/v1/custom-fields/", json={"name": "in_facturama", "content_type": "contacts"})
    assert duplicate.status_code == 400
    api.post("/v1/custom-fields/", json={"name": "in_facturama", "content_type": "companies"})
    listing = api.get("/v1/custom-fields/").json()
    assert listing["count"] == 2 and listing["next"] is None
    assert api.get(f"/v1/custom-fields/{field['id']}/").json() == field
    assert api.delete(f"/v1/custom-fields/{field['id']}/").status_code == 204
    assert api.get("/v1/custom-fields/").json()["count"] == 1


@pytest.fixture
def budget_parties(api: httpx.Client) -> tuple[dict, dict]:
    return create(api, **JOHN), create(api, "products", name="Sitio Web CMS", sku="WEB003", price="6500.00")


def test_budget_totals_are_computed(api: httpx.Client, budget_parties, clean_sandbox: SandboxHandle) -> None:
    contact, product = budget_parties
    response = api.post(
        "/v1/budgets/",
        json={
            "name": "Sitio web corporativo",
            "code": "FAC-COT-0041",
            "contact": contact["url"],
            "currency": "EUR",
            "date": "2026-05-03",
            "expiration_date": "2026-06-02",
            "items": [{"product": product["url"], "quantity": "2", "price": "6500", "tax": "21"}],
            "total": "1.00",
        },
    )
    assert response.status_code == 201, response.text
    budget = response.json()
    assert list(budget) == [
        "url",
        "id",
        "name",
        "code",
        "contact",
        "company",
        "deal",
        "owner",
        "status",
        "currency",
        "date",
        "expiration_date",
        "comments",
        "items",
        "subtotal",
        "tax_amount",
        "total",
        "custom_fields",
        "created",
        "modified",
    ]
    assert budget["url"] == f"{clean_sandbox.clientify_url}/v1/budgets/{budget['id']}/"
    item = budget["items"][0]
    assert (item["product"], item["product_id"], item["sku"], item["name"]) == (
        product["url"],
        product["id"],
        "WEB003",
        "Sitio Web CMS",
    )
    assert (item["quantity"], item["price"], item["discount"], item["tax"]) == (
        "2.00",
        "6500.00",
        "0.00",
        "21.00",
    )
    assert (item["subtotal"], item["total"]) == ("13000.00", "15730.00")
    assert (budget["subtotal"], budget["tax_amount"], budget["total"]) == ("13000.00", "2730.00", "15730.00")
    assert budget["status"] == "pending" and budget["contact"] == contact["url"]


def test_budget_discount_and_half_up(api: httpx.Client, budget_parties) -> None:
    contact, product = budget_parties
    budget = api.post(
        "/v1/budgets/",
        json={
            "contact": contact["id"],
            "items": [
                {
                    "product": product["id"],
                    "quantity": "1",
                    "price": "10.05",
                    "discount": "0.00",
                    "tax": "10",
                },
                {"product": product["id"], "quantity": "3", "price": "1.00", "discount": "0.50", "tax": "0"},
            ],
        },
    ).json()
    # 10.05 x 1.10 = 11.055 -> 11.06 half-up; 3 x 1 - 0.50 = 2.50.
    assert [i["total"] for i in budget["items"]] == ["11.06", "2.50"]
    assert (budget["subtotal"], budget["tax_amount"], budget["total"]) == ("12.55", "1.01", "13.56")


@pytest.mark.parametrize(
    ("body", "key"),
    [
        pytest.param({"items": []}, "non_field_errors", id="no-contact-or-company"),
        pytest.param(
            {"contact": "https://api.clientify.net/v1/contacts/1/"}, "contact", id="unknown-contact"
        ),
        pytest.param({"company": 12345}, "company", id="unknown-company"),
    ],
)
def test_budget_requires_existing_parties(api: httpx.Client, body: dict, key: str) -> None:
    response = api.post("/v1/budgets/", json=body)
    assert response.status_code == 400 and key in response.json()


def test_budget_items_need_existing_products_and_replace_on_update(api: httpx.Client, budget_parties) -> None:
    contact, product = budget_parties
    response = api.post(
        "/v1/budgets/", json={"contact": contact["url"], "items": [{"product": 99, "quantity": 1}]}
    )
    assert response.status_code == 400
    assert response.json() == {"items": [{"product": ["Invalid hyperlink - Object does not exist."]}]}
    budget = api.post(
        "/v1/budgets/",
        json={
            "contact": contact["url"],
            "items": [{"product": product["url"], "quantity": 1}, {"product": product["url"], "quantity": 2}],
        },
    ).json()
    assert budget["items"][0]["price"] == "6500.00"  # defaults to the product's price
    updated = api.put(
        f"/v1/budgets/{budget['id']}/", json={"items": [{"product": product["url"], "quantity": 3}]}
    )
    assert [i["quantity"] for i in updated.json()["items"]] == ["3.00"]
    assert updated.json()["total"] == "19500.00"
    only_status = api.patch(f"/v1/budgets/{budget['id']}/", json={"status": "accepted"}).json()
    assert only_status["status"] == "accepted" and only_status["items"] == updated.json()["items"]
    found = api.get("/v1/budgets/", params={"contact": contact["id"], "status": "accepted"}).json()
    assert [b["id"] for b in found["results"]] == [budget["id"]]


def test_budgets_path_is_configurable(
    api: httpx.Client, clean_sandbox: SandboxHandle, budget_parties
) -> None:
    contact, _ = budget_parties
    clean_sandbox.config("clientify", budgets_path="/v1/quotes/")
    response = api.post("/v1/quotes/", json={"contact": contact["url"]})
    assert response.status_code == 201
    assert response.json()["url"].endswith(f"/v1/quotes/{response.json()['id']}/")
    assert api.get("/v1/quotes/").json()["count"] == 1
    assert api.get("/v1/quotes").headers["location"] == "/v1/quotes/"
    assert api.get("/v1/budgets/").headers["content-type"].startswith("text/html")
