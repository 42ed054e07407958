"""The benchmark on FacturaDirecta's REST API (issue 24): its options, its lower bound's terms (the activity
feed counted against the sandbox's emulator, the link write-backs its products do without) and its
targets and stated figures on literal numbers (no wall-clock assertions)."""

from __future__ import annotations

from typing import Any

import pytest

from bench.bounds import Bound, RestAccount, feed_count, writes_from_report
from bench.config import parse_args
from bench.sandbox import Calls
from bench.scale import ScaleRun
from bench.scenarios import ScenarioResult, read_records
from bench.targets import projected_full_wall_s, run_targets
from clientify_sync.api.facturadirecta_rest_activity import FeedPosition
from clientify_sync.engine.plan import Direction
from clientify_sync.engine.vocabulary import Entity, Platform

FD = Platform.FACTURADIRECTA
ROUTE = "/api/{company_id}"


def _calls(routes: dict[tuple[str, str, str], int]) -> Calls:
    calls = Calls()
    for (api, method, route), n in routes.items():
        calls.by_method[(api, method)] += n
        calls.routes[(api, method, route, 200)] += n
    return calls


def _scenario(name: str, by_entity: dict[str, Calls], *, wall: float = 10.0) -> ScenarioResult:
    total = Calls()
    for calls in by_entity.values():
        total.add(calls)
    rss: dict[str, Any] = {"wall_s": wall, "peak_rss_mb": 150.0, "baseline_rss_mb": 100.0, "delta_rss_mb": 50.0,
                           "cpu_s": {"bench": 1.0}}  # fmt: skip
    return ScenarioResult(name, "modified", total, rss, by_entity, bound=Bound(), concurrency=4)


def _idle(customfields: int) -> dict[str, Calls]:
    """An idle run's calls per entity: the feed's page, Clientify's listings, and ``customfields``
    lookups of the link field on each linked entity."""
    feed = ("facturadirecta", "GET", f"{ROUTE}/activity")
    lookups = {("facturadirecta", "GET", f"{ROUTE}/customFields"): customfields} if customfields else {}
    return {
        "facturadirecta/contacts": _calls(
            {
                feed: 1,
                ("clientify", "GET", "/v1/contacts/"): 1,
                ("clientify", "GET", "/v1/companies/"): 1,
                **lookups,
            }
        ),  # fmt: skip
        "facturadirecta/products": _calls({feed: 1, ("clientify", "GET", "/v1/products/"): 1}),
        "facturadirecta/estimates": _calls({feed: 1, ("clientify", "GET", "/v1/budgets/"): 1, **lookups}),
    }


def _targets(*scenarios: ScenarioResult, args: tuple[str, ...] = ()) -> dict[tuple[str, str], Any]:
    cfg = parse_args(["--platform", "facturadirecta", "--fd-api", "rest", *args])
    run = ScaleRun(FD, 10_000, {}, list(scenarios), api="rest")
    return {(t.scenario, t.name.split(" (")[0]): t for t in run_targets(cfg, run, {})}


def test_rest_options_and_run_label() -> None:
    cfg = parse_args(["--platform", "both", "--fd-api", "rest"])
    assert (cfg.api_of(Platform.FACTURAMA), cfg.api_of(FD)) == ("classic", "rest")
    assert parse_args([]).api_of(FD) == "classic"
    assert ScaleRun(FD, 10_000, {}, [], api="rest").label == "facturadirecta-rest 10k"
    assert ScaleRun(FD, 10_000, {}, []).label == "facturadirecta 10k"
    with pytest.raises(SystemExit):
        parse_args(["--fd-rate", "30"])  # a rate needs the REST API


def test_an_idle_rest_run_passes_at_three_calls_per_entity_and_misses_with_link_field_lookups() -> None:
    name = "idle run ≤ 3 calls per entity"
    passing = _targets(_scenario("2b", _idle(0)))[("2b", name)]
    assert (passing.verdict, passing.measured, passing.limit) == ("PASS", 3, 3)
    missing = _targets(_scenario("2b", _idle(1)))[("2b", name)]
    assert (missing.verdict, missing.measured) == ("MISS", 4)
    assert "2 of them GET customFields" in missing.detail


def test_the_idle_target_reads_the_second_idle_run_when_the_first_read_the_full_syncs_echoes() -> None:
    echoes = _idle(0)
    echoes["facturadirecta/contacts"].add(
        _calls({("facturadirecta", "GET", f"{ROUTE}/contacts/{{rid}}"): 40})
    )
    first, second = _scenario("2", echoes), _scenario("2b", _idle(0))
    assert read_records(first) and not read_records(second)
    found = _targets(first, second)
    assert ("2b", "idle run ≤ 3 calls per entity") in found and (
        "2",
        "idle run ≤ 3 calls per entity",
    ) not in found


def test_full_sync_walls_at_the_plans_rates_are_stated_from_the_calls() -> None:
    full = _scenario("1", {"facturadirecta/contacts": _calls({("facturadirecta", "PUT", f"{ROUTE}/contacts/{{rid}}"): 9_000,
                                                               ("facturadirecta", "GET", f"{ROUTE}/contacts"): 1_000,
                                                               ("clientify", "POST", "/v1/contacts/"): 7_000})},
                     wall=600.0)  # fmt: skip
    assert projected_full_wall_s(full, 30) == 10_000 * 2 + 600.0  # Clientify's calls do not wait
    found = _targets(full)
    free, top = (
        found[("1", "full sync wall at 30 req/min, free plan")],
        found[("1", "full sync wall at 600 req/min, top plan")],
    )
    assert (free.verdict, free.measured, top.measured) == ("stated", 20_600.0, 1_600.0)
    assert free.ok is None and free.kind == "time"


def test_the_projection_waits_only_where_the_calls_outpace_the_apply_steps() -> None:
    """The write-backs run inside the apply steps beside Clientify's writes: at a rate whose pace the
    apply steps already take, nothing is added; at a slower one, only the difference."""
    full = _scenario("1", {"facturadirecta/contacts": _calls({("facturadirecta", "PUT", f"{ROUTE}/contacts/{{rid}}"): 1_000})},
                     wall=900.0)  # fmt: skip
    full.reports = {"facturadirecta/contacts": {"step_seconds": {"extract_invoicing": 20.0, "apply_clientify": 380.0,
                                                                 "apply_invoicing": 20.0, "commit": 30.0}}}  # fmt: skip
    assert projected_full_wall_s(full, 600) == 900.0  # 100 s of pace inside 400 s of apply steps
    assert projected_full_wall_s(full, 30) == 900.0 + 2_000 - 400


def test_the_real_run_at_a_rate_is_stated_beside_its_projection() -> None:
    fd = ("facturadirecta", "PUT", f"{ROUTE}/contacts/{{rid}}")
    full, limited = (
        _scenario("1", {"facturadirecta/contacts": _calls({fd: 60})}, wall=5.0),
        _scenario("1t", {"facturadirecta/contacts": _calls({fd: 60})}, wall=130.0),
    )
    check = _targets(full, limited, args=("--fd-rate", "30"))[
        ("1t", "full sync wall at 30 req/min, measured vs projected")
    ]
    assert (check.verdict, check.measured, check.limit) == ("stated", 130.0, 125.0)  # 60 × 60 ÷ 30 + 5
    assert "1.04×" in check.detail


def test_rest_products_need_no_link_write_back_but_contacts_and_estimates_do() -> None:
    report = {"counts": {Direction.TO_CLIENTIFY: {"created": 5}, Direction.TO_INVOICING: {}}}
    for entity, expected in ((Entity.PRODUCTS, 0), (Entity.CONTACTS, 5), (Entity.ESTIMATES, 5)):
        bound = Bound()
        writes_from_report(bound, FD, entity, report, "rest")
        assert bound.get("facturadirecta", "PUT") == expected, entity
    classic = Bound()
    writes_from_report(classic, FD, Entity.PRODUCTS, report)
    assert classic.get("facturadirecta", "PUT") == 5  # the classic API's ID_CRM attribute


def test_the_feed_count_reads_only_what_came_after_the_stored_position(clean_sandbox) -> None:
    sandbox = clean_sandbox
    sandbox.seed("facturadirecta", target="rest", clients=6, products=0, estimates=0, seed=5)
    account = RestAccount.of(sandbox)
    newest = account.get(sandbox, "activity", {"limit": 1, "documentType": "contact"})["items"][0]
    position = FeedPosition(None, newest["timestamp"], newest["id"]).encode()
    assert feed_count(sandbox, account, Entity.CONTACTS, position).events == 0
    ids = [c["content"]["uuid"] for c in account.get(sandbox, "contacts", {"limit": 10})["items"]]
    headers = {"facturadirecta-api-key": account.api_key}
    for rid in (ids[0], ids[0], ids[1]):  # two edits of one contact, one of another
        record = account.get(sandbox, f"contacts/{rid}", {})
        main = {**record["content"]["main"], "email": f"edit.{rid[-6:]}@example.com"}
        sandbox.http.put(f"{account.url}/contacts/{rid}", json={"content": {**record["content"], "main": main}},
                         headers=headers).raise_for_status()  # fmt: skip
    sandbox.http.delete(f"{account.url}/contacts/{ids[2]}", headers=headers).raise_for_status()
    found = feed_count(sandbox, account, Entity.CONTACTS, position)
    assert (found.events, found.changed) == (4, 2)  # the archived one is not read
    assert found.served == 4 + 6  # and the stored instant's: the seed wrote its 6 inserts at one instant
    assert feed_count(sandbox, account, Entity.PRODUCTS, position).events == 0  # per document type
