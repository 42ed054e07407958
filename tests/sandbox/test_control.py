"""The ``/_sandbox/`` control surface on every port, persistence and command-line options."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from include.sandbox import generator
from tests.fixtures.sandbox import SandboxHandle, start_sandbox, stop_sandbox

APIS = ("facturama", "clientify", "facturadirecta")


@pytest.mark.parametrize("api", APIS)
def test_health_config_and_control_need_no_auth(clean_sandbox: SandboxHandle, api: str) -> None:
    assert clean_sandbox.control(api, "GET", "health") == {"api": api, "ok": True}
    config = clean_sandbox.config(api)
    assert isinstance(config, dict) and config


@pytest.mark.parametrize(
    ("api", "changes"),
    [
        pytest.param("facturama", {"nope": 1}, id="unknown-key"),
        pytest.param("facturama", {"strict_cfdi40": "yes"}, id="bool-type"),
        pytest.param("facturama", {"post_status": 202}, id="choice"),
        pytest.param("clientify", {"page_size_max": "100"}, id="int-type"),
        pytest.param("facturadirecta", {"limit_over_max": "explode"}, id="choice-fd"),
    ],
)
def test_config_rejects_bad_changes(clean_sandbox: SandboxHandle, api: str, changes: dict) -> None:
    before = clean_sandbox.config(api)
    response = clean_sandbox.http.put(f"{clean_sandbox.url(api)}/_sandbox/config", json=changes)
    assert response.status_code == 400 and "error" in response.json()
    assert clean_sandbox.config(api) == before


def test_reset_empties_data_and_restores_config_faults_and_stats(clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.seed("facturama", clients=5, products=5, seed=1)
    clean_sandbox.config("facturama", strict_cfdi40=True)
    clean_sandbox.faults("facturama", [{"path": "^/nothing", "rates": {"503": 1.0}}])
    with clean_sandbox.facturama_client() as api:
        assert api.get("/Clients").json()["recordsTotal"] == 5
    assert clean_sandbox.stats("facturama")["total"] == 1
    clean_sandbox.reset("facturama")
    assert clean_sandbox.config("facturama")["strict_cfdi40"] is False
    assert clean_sandbox.control("facturama", "GET", "faults") == {"rules": []}
    assert clean_sandbox.stats("facturama")["total"] == 0
    with clean_sandbox.facturama_client() as api:
        assert api.get("/Clients").json()["recordsTotal"] == 0
        assert api.get("/Products").json()["recordsTotal"] == 0


def test_reset_restores_default_custom_attributes(clean_sandbox: SandboxHandle) -> None:
    defaults = {"clients": ["ID_CRM"], "products": ["ID_CRM"], "estimates": ["ID_CRM"]}
    assert clean_sandbox.control("facturadirecta", "GET", "custom-attributes") == defaults
    listed = clean_sandbox.define_custom_attribute("clients", "Campo 1")
    assert listed["clients"] == ["ID_CRM", "Campo 1"]
    clean_sandbox.control(
        "facturadirecta", "DELETE", "custom-attributes", {"resource": "products", "label": "ID_CRM"}
    )
    assert clean_sandbox.control("facturadirecta", "GET", "custom-attributes")["products"] == []
    clean_sandbox.reset("facturadirecta")
    assert clean_sandbox.control("facturadirecta", "GET", "custom-attributes") == defaults


def test_custom_fields_control(clean_sandbox: SandboxHandle) -> None:
    field = clean_sandbox.define_custom_field("in_facturama", "contacts")
    assert field["name"] == "in_facturama" and field["content_type"] == "contacts | contact"
    assert clean_sandbox.define_custom_field("in_facturama", "contacts")["id"] == field["id"]  # idempotent
    clean_sandbox.define_custom_field("in_facturama", "companies")
    assert len(clean_sandbox.control("clientify", "GET", "custom-fields")) == 2
    clean_sandbox.control(
        "clientify", "DELETE", "custom-fields", {"name": "in_facturama", "content_type": "contacts"}
    )
    assert [f["content_type"] for f in clean_sandbox.control("clientify", "GET", "custom-fields")] == [
        "companies | company"
    ]


# -- seeding ---------------------------------------------------------------------------------------


def test_seed_is_deterministic(clean_sandbox: SandboxHandle) -> None:
    def rfcs() -> list[str]:
        clean_sandbox.seed("facturama", clients=30, seed=11)
        with clean_sandbox.facturama_client() as api:
            return [c["Rfc"] for c in api.get("/Clients").json()["data"]]

    first = rfcs()
    clean_sandbox.reset("facturama")
    assert rfcs() == first == [c["Rfc"] for c in generator.facturama_clients(30, 11)]


def test_seeding_twice_with_the_same_seed_adds_records_with_new_ids(clean_sandbox: SandboxHandle) -> None:
    first = clean_sandbox.seed("facturama", clients=5, products=3, seed=1)["ids"]
    second = clean_sandbox.seed("facturama", clients=5, products=3, estimates=2, seed=1)["ids"]
    assert not set(first["clients"]) & set(second["clients"])
    assert not set(first["products"]) & set(second["products"])
    with clean_sandbox.facturama_client() as api:
        assert api.get("/Clients").json()["recordsTotal"] == 10


def test_seed_keeps_bad_platform_data_and_links_estimates(clean_sandbox: SandboxHandle) -> None:
    result = clean_sandbox.seed(
        "facturama",
        clients=20,
        products=10,
        estimates=5,
        seed=3,
        client_options={"invalid_rfc": 0.2, "no_rfc": 0.1},
    )
    assert result["created"] == {"clients": 20, "products": 10, "estimates": 5}
    with clean_sandbox.facturama_client() as api:
        clients = {c["Id"]: c for c in api.get("/Clients").json()["data"]}
        assert sum(1 for c in clients.values() if not c["Rfc"]) == 2
        for est in api.get("/Estimates").json()["data"]:
            assert est["Receiver"]["Id"] in clients and est["Total"] > 0


def test_seed_facturadirecta_and_clientify_native(clean_sandbox: SandboxHandle) -> None:
    result = clean_sandbox.seed("facturadirecta", clients=12, products=6, estimates=4, seed=2)
    assert result["created"] == {"clients": 12, "products": 6, "estimates": 4}
    with clean_sandbox.facturadirecta_client() as api:
        assert 'total="4"' in api.get("/api/estimates.xml").text
    result = clean_sandbox.seed("clientify", contacts=7, companies=3, products=2, seed=2, country="ES")
    assert result["created"] == {"contacts": 7, "companies": 3, "products": 2}


@pytest.mark.parametrize("platform", ["facturama", "facturadirecta"])
def test_clientify_overlap_preloads_the_same_customers_unlinked(
    clean_sandbox: SandboxHandle, platform: str
) -> None:
    if platform == "facturama":
        clean_sandbox.seed("facturama", clients=200, seed=7)
        with clean_sandbox.facturama_client() as api:
            platform_ids = {
                c["Rfc"]
                for s in (0, 100)
                for c in api.get("/Clients", params={"start": s, "length": 100}).json()["data"]
            }
    else:
        clean_sandbox.seed("facturadirecta", clients=200, seed=7)
        with clean_sandbox.facturadirecta_client() as api:
            from lxml import etree

            root = etree.fromstring(api.get("/api/clients.xml", params={"limit": 250}).content)
            platform_ids = {c.findtext("taxCode") for c in root.iter("client")}
    result = clean_sandbox.seed(
        "clientify", overlap={"platform": platform, "customers": 200, "fraction": 0.3, "seed": 7}
    )
    created = result["created"]
    assert 50 <= created.get("contacts", 0) + created.get("companies", 0) <= 70
    with clean_sandbox.clientify_client() as api:
        records = []
        for resource in ("contacts", "companies"):
            url = f"/v1/{resource}/?page_size=100"
            while url:
                page = api.get(url).json()
                records += page["results"]
                url = page["next"]
    assert {r["taxpayer_identification_number"] for r in records} <= platform_ids
    assert all(r["custom_fields"] == [] for r in records)


@pytest.mark.slow  # seconds (make test runs it; make unit does not, issue 23)
def test_seeding_10k_in_one_call(clean_sandbox: SandboxHandle) -> None:
    """Counts only; how fast seeding is is a ``make bench`` target (bench/sandbox_checks.py)."""
    result = clean_sandbox.seed(
        "clientify", overlap={"platform": "facturama", "customers": 10_000, "fraction": 1.0, "seed": 1}
    )
    assert sum(result["created"].values()) > 9000 and "ids" not in result
    with clean_sandbox.clientify_client() as api:
        total = sum(
            api.get(f"/v1/{r}/", params={"page_size": 1}).json()["count"] for r in ("contacts", "companies")
        )
    assert total == sum(result["created"].values())


def test_seed_rejects_bad_bodies(clean_sandbox: SandboxHandle) -> None:
    for body in ({"clients": -1}, {"clients": "many"}, {"client_options": {"bogus": 1}, "clients": 1}):
        response = clean_sandbox.http.post(f"{clean_sandbox.facturama_url}/_sandbox/seed", json=body)
        assert response.status_code == 400, body
    response = clean_sandbox.http.post(
        f"{clean_sandbox.clientify_url}/_sandbox/seed", json={"overlap": {"platform": "sap", "customers": 1}}
    )
    assert response.status_code == 400


# -- faults and stats ------------------------------------------------------------------------------


def test_fault_rules_shape_each_api_errors(clean_sandbox: SandboxHandle) -> None:
    rule = {"method": "GET", "rates": {"503": 1.0}, "retry_after": 3, "count": 1}
    for api in APIS:
        rules = clean_sandbox.faults(api, [rule])
        assert rules[0]["rates"] == {"503": 1.0} and rules[0]["count"] == 1
    with clean_sandbox.clientify_client() as api:
        response = api.get("/v1/contacts/")
        assert response.status_code == 503 and response.headers["retry-after"] == "3"
        assert "detail" in response.json()
        assert api.get("/v1/contacts/").status_code == 200  # count exhausted
    with clean_sandbox.facturadirecta_client() as api:
        response = api.get("/api/clients.xml")
        assert response.status_code == 503 and b"<httpStatus>503</httpStatus>" in response.content
    clean_sandbox.faults("facturama", [{"rates": {"500": 1.0}}])
    with clean_sandbox.facturama_client() as api:
        response = api.get("/api/Clients")
        assert response.status_code == 500 and response.json() == {"Message": "An error has occurred."}
    assert clean_sandbox.control("facturama", "GET", "health")["ok"]  # the control surface is never faulted
    clean_sandbox.clear_faults()
    assert all(clean_sandbox.control(api, "GET", "faults") == {"rules": []} for api in APIS)


def test_fault_paths_see_the_canonical_facturama_path(clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.faults("facturama", [{"path": "^/clients$", "rates": {"429": 1.0}}])
    with clean_sandbox.facturama_client() as api:
        assert api.get("/api/Clients").status_code == 429
        assert api.get("/api/Client").status_code == 200


def test_bad_fault_rules_are_rejected(clean_sandbox: SandboxHandle) -> None:
    response = clean_sandbox.http.put(
        f"{clean_sandbox.clientify_url}/_sandbox/faults", json=[{"rates": {"418": 1.0}}]
    )
    assert response.status_code == 400


def test_stats_count_by_route_template_and_status(clean_sandbox: SandboxHandle) -> None:
    with clean_sandbox.clientify_client() as api:
        contact = api.post("/v1/contacts/", json={"first_name": "A"}).json()
        api.get(f"/v1/contacts/{contact['id']}/")
        api.get("/v1/contacts/999/")
        api.get("/v1/contacts/")
    with clean_sandbox.facturama_client() as api:
        api.get("/api/Client/abc")
        api.get("/client/def")
    clientify = clean_sandbox.stats("clientify")
    counted = {(r["method"], r["route"], r["status"]): r["count"] for r in clientify["by_route"]}
    assert counted == {
        ("POST", "/v1/contacts/", 201): 1,
        ("GET", "/v1/contacts/{item_id}/", 200): 1,
        ("GET", "/v1/contacts/{item_id}/", 404): 1,
        ("GET", "/v1/contacts/", 200): 1,
    }
    facturama = clean_sandbox.stats("facturama")["by_route"]
    assert facturama == [{"method": "GET", "route": "/client/{item_id}", "status": 404, "count": 2}]
    clean_sandbox.reset_stats()
    assert clean_sandbox.stats("clientify")["total"] == 0


def test_concurrent_requests_are_served(clean_sandbox: SandboxHandle) -> None:
    clean_sandbox.seed("facturama", clients=300, seed=4)

    def work(i: int) -> int:
        with clean_sandbox.facturama_client() as api:
            if i % 3 == 0:
                body = {"Rfc": "URE180429TM6", "Name": f"CLIENTE {i}", "Email": f"c{i}@ejemplo.mx"}
                return api.post("/Client", json=body).status_code
            return api.get("/Clients", params={"start": i * 10, "length": 100}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(work, range(48)))
    assert statuses.count(201) == 16 and statuses.count(200) == 32


def test_injected_latency_does_not_serialise_parallel_requests(clean_sandbox: SandboxHandle) -> None:
    """All eight delays are in flight at once (counted by the sandbox; the wall time is a bench target).

    The eight requests leave together (a barrier, once every connection is open), so only the server
    can keep them from overlapping: each is held 1.5 s, far longer than the eight take to arrive.
    """
    clean_sandbox.latency(
        "clientify", "none"
    )  # only this rule's delays (whatever SANDBOX_LATENCY_PROFILE says)
    clean_sandbox.faults("clientify", [{"path": "^/v1/contacts/$", "latency_ms": 1500}])
    clients = [clean_sandbox.clientify_client() for _ in range(8)]
    together = threading.Barrier(len(clients), timeout=30)

    def send(client: httpx.Client) -> int:
        together.wait()
        return client.get("/v1/contacts/").status_code

    try:
        for client in clients:
            client.get("/v1/users/")  # open the connections first
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(send, clients))
    finally:
        for client in clients:
            client.close()
    assert statuses == [200] * 8
    counters = clean_sandbox.latency("clientify")["counters"]
    assert counters["delayed"] == 8 and counters["delay_ms"] == 8 * 1500
    assert counters["max_concurrent"] == 8


# -- latency profiles ------------------------------------------------------------------------------


def test_latency_profile_through_the_control_surface(clean_sandbox: SandboxHandle) -> None:
    startup = clean_sandbox.latency("facturama")["profile"]  # "none" unless SANDBOX_LATENCY_PROFILE is set
    state = clean_sandbox.latency("clientify", "realistic", scale=0.001)
    assert state["profile"] == "realistic" and state["scale"] == 0.001 and state["counters"]["delayed"] == 0
    clean_sandbox.faults("clientify", [{"path": "^/nothing$", "rates": {"503": 1.0}}])  # fault rules apart
    with clean_sandbox.clientify_client() as api:
        api.get("/v1/contacts/", params={"page_size": 100})
        api.get("/v1/contacts/")  # default page_size 20
        api.get("/v1/contacts/", params={"page_size": 500})  # clamped to 100
    counters = clean_sandbox.latency("clientify")["counters"]
    # 2.4 s per 100-record page, scaled by 0.001: 2.4 + 0.48 + 2.4 ms.
    assert counters["delayed"] == 3 and counters["delay_ms"] == pytest.approx(2.4 + 0.48 + 2.4)
    clean_sandbox.control("clientify", "GET", "health")
    assert (
        clean_sandbox.latency("clientify")["counters"]["delayed"] == 3
    )  # the control surface is never delayed
    clean_sandbox.latency("facturama", "none")
    assert clean_sandbox.latency("clientify")["profile"] == "realistic"  # per API
    clean_sandbox.reset("clientify")
    assert clean_sandbox.latency("clientify")["profile"] == startup  # reset restores the start-up profile


def test_latency_profile_rejects_bad_bodies(clean_sandbox: SandboxHandle) -> None:
    before = clean_sandbox.latency("clientify")
    for body in (
        {"profile": "glacial"},
        {"profile": "realistic", "scale": -1},
        {"profile": "none", "x": 1},
        {"profile": "realistic", "scale": "fast"},
    ):
        response = clean_sandbox.http.put(f"{clean_sandbox.clientify_url}/_sandbox/latency", json=body)
        assert response.status_code == 400, body
    after = clean_sandbox.latency("clientify")
    assert (after["profile"], after["scale"]) == (before["profile"], before["scale"])


@pytest.mark.slow  # seconds (make test runs it; make unit does not, issue 23)
def test_realistic_latency_profile_from_the_command_line() -> None:
    handle = start_sandbox(latency_profile="realistic", latency_scale=0.01)
    try:
        assert {handle.latency(api)["profile"] for api in APIS} == {"realistic"}
        with handle.clientify_client() as api:
            contact = api.post("/v1/contacts/", json={"first_name": "Lento"}).json()
            api.get(f"/v1/contacts/{contact['id']}/")
            api.get("/v1/contacts/", params={"page_size": 100})
        with handle.facturama_client() as api:
            api.get("/api/Clients", params={"start": 0, "length": 100})
        with handle.facturadirecta_client() as api:
            api.get("/api/clients.xml", params={"limit": 250})
        rules = handle.latency("clientify")["rules"]
        assert [r["delayed"] for r in rules] == [1, 0, 1, 1]  # list page, custom fields, detail GET, write
        assert handle.latency("clientify")["counters"]["delay_ms"] == pytest.approx(24 + 3 + 5)
        assert handle.latency("facturama")["counters"]["delay_ms"] == pytest.approx(6)
        assert handle.latency("facturadirecta")["counters"]["delay_ms"] == pytest.approx(7)
        handle.reset("clientify")
        assert (
            handle.latency("clientify")["profile"] == "realistic"
            and handle.latency("clientify")["scale"] == 0.01
        )
    finally:
        stop_sandbox(handle)


def test_latency_profile_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from include.sandbox.__main__ import parse_args

    monkeypatch.delenv("SANDBOX_LATENCY_PROFILE", raising=False)
    monkeypatch.delenv("SANDBOX_LATENCY_SCALE", raising=False)
    assert (parse_args([]).latency_profile, parse_args([]).latency_scale) == ("none", 1.0)
    monkeypatch.setenv("SANDBOX_LATENCY_PROFILE", "realistic")
    monkeypatch.setenv("SANDBOX_LATENCY_SCALE", "0.5")
    settings = parse_args([])
    assert (settings.latency_profile, settings.latency_scale) == ("realistic", 0.5)
    assert parse_args(["--latency-profile", "none"]).latency_profile == "none"


# -- process options -------------------------------------------------------------------------------


def test_file_database_survives_a_restart_and_cli_options_apply(tmp_path: Path) -> None:
    db = tmp_path / "sandbox.db"
    first = start_sandbox(
        ["--latency-ms", "150", "--clientify-token", "cli-token"], db=db, latency_profile="none"
    )
    try:
        headers = {"Authorization": "Token cli-token"}
        with httpx.Client(base_url=first.clientify_url, headers=headers, verify=False) as api:
            contact = api.post("/v1/contacts/", json={"first_name": "Persistente"}).json()
            counters = first.latency("clientify")["counters"]
            assert (counters["delayed"], counters["delay_ms"]) == (1, 150)  # baseline latency applied
            first.control("clientify", "GET", "health")
            assert first.latency("clientify")["counters"]["delayed"] == 1  # never on the control surface
            first.reset("facturama")
            assert first.control("facturama", "GET", "faults")["rules"][0]["latency_ms"] == 150
    finally:
        stop_sandbox(first)
    second = start_sandbox(db=db)
    try:
        with second.clientify_client() as api:
            stored = api.get(f"/v1/contacts/{contact['id']}/").json()
            assert stored == {**contact, "url": stored["url"], "company": None}
            updated = api.patch(f"/v1/contacts/{contact['id']}/", json={"title": "x"}).json()
            assert updated["modified"] > contact["modified"]
            assert api.post("/v1/contacts/", json={"first_name": "Nuevo"}).json()["id"] == contact["id"] + 1
    finally:
        stop_sandbox(second)
    assert db.exists()
