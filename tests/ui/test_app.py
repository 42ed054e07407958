"""The status app over HTTP: pages, escaping, permissions, the dead-letter actions, Airflow's real auth."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient

from clientify_sync.ui import app as ui
from clientify_sync.ui import queries as Q
from tests.ui.conftest import OURS, make_client
from tests.ui.ledger_data import DUP_RFC, LIVE_RUN, RUN2, SCRIPT_NAME

P = ui.URL_PREFIX
RUN_PAGE = f"{P}/runs/facturama_contacts/{quote(RUN2, safe='')}"
ROUTES = [
    ("GET", f"{P}/"), ("GET", RUN_PAGE), ("GET", f"{P}/records?q={DUP_RFC}"),
    ("GET", f"{P}/records/facturama_contacts/invoicing/client/101"), ("GET", f"{P}/conflicts"),
    ("GET", f"{P}/dead-letters"), ("POST", f"{P}/dead-letters/facturama_contacts/dismiss"),
]  # fmt: skip


def _text(html: str) -> str:
    """The page's visible text, roughly (tags dropped, white space folded)."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_overview_shows_both_integrations_with_their_counts(client: TestClient) -> None:
    response = client.get(f"{P}/")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    html = response.text
    assert 'id="facturama"' in html and 'id="facturadirecta"' in html
    row = re.search(r'<tr data-dag="facturama_contacts">(.*?)</tr>', html, re.S).group(1)
    assert "created <b>1</b>" in row and "unchanged <b>40</b>" in row and "failed <b>1</b>" in row
    assert "2 records failing for 5 runs" in _text(row) and "2026-11-29T10:00:00Z" in row
    live = re.search(r'<tr data-dag="facturama_estimates">(.*?)</tr>', html, re.S).group(1)
    assert "run in progress: 1 of 4 records settled" in _text(live)
    assert '<meta http-equiv="refresh"' not in html  # only run pages of running runs refresh


def test_overview_takes_the_run_state_from_airflow(view: Q.LedgerView, admin: ui.Viewer) -> None:
    client = make_client(view, admin, {("facturama_estimates", LIVE_RUN): "failed"})
    row = re.search(r'<tr data-dag="facturama_estimates">(.*?)</tr>', client.get(f"{P}/").text, re.S).group(1)
    assert '<span class="badge fail">failing</span>' in row and "last run failed" in row


def test_run_page_lists_the_failed_record_with_the_api_message(client: TestClient) -> None:
    html = client.get(RUN_PAGE).text
    assert "<h1>Sync report</h1>" in html
    items = re.search(r'<table id="items">(.*?)</table>', html, re.S).group(1)
    failed = next(row for row in items.split("<tr>") if "badge failed" in row)
    assert "client 105" in failed and "validation error" in failed
    assert (
        "Email: El campo Email no es válido. &lt;b&gt;bold&lt;/b&gt;" in failed
    )  # the API's message, as text
    assert "unchanged" not in _text(items)
    assert re.search(r'<table id="calls">.*facturama</td><td class="num">4</td>', html, re.S)
    assert "duplicate tax id" in _text(re.search(r'<table id="reasons">(.*?)</table>', html, re.S).group(1))
    only_failed = client.get(RUN_PAGE, params={"outcome": "failed"}).text
    assert "client 105" in only_failed and "client 103" not in only_failed


def test_run_page_of_a_running_run_refreshes_with_live_counts(client: TestClient) -> None:
    html = client.get(f"{P}/runs/facturama_estimates/{quote(LIVE_RUN, safe='')}").text
    assert '<meta http-equiv="refresh" content="10">' in html and 'id="live"' in html
    assert 'not written yet</span></td><td class="num">3</td>' in html


def test_run_tab_of_another_dag_says_it_is_not_ours(client: TestClient) -> None:
    response = client.get(f"{P}/runs/example_bash_operator/manual__1")
    assert response.status_code == 200 and "is not a clientify-sync DAG" in response.text


def test_search_finds_the_quarantined_duplicate_and_links_to_it(client: TestClient) -> None:
    html = client.get(f"{P}/records", params={"q": DUP_RFC}).text
    results = re.search(r'<table id="results">(.*?)</table>', html, re.S).group(1)
    assert results.count('<tr class="match-exact">') == 3
    assert f"{P}/records/facturama_contacts/invoicing/client/103" in results
    record = client.get(f"{P}/records/facturama_contacts/invoicing/client/103").text
    assert "duplicate tax id" in _text(record) and "quarantined" in record


def _result_rows(html: str) -> list[str]:
    results = re.search(r'<table id="results">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    return [_text(row) for row in results.split("</tr>") if "<td" in row]


def test_search_results_say_why_on_every_row_after_plans_are_pruned(
    view: Q.LedgerView, client: TestClient
) -> None:
    """Issue 26: not "not linked" with an empty column, and not only on the run that first said so."""
    from clientify_sync.engine.ledger import Ledger

    Ledger(view.engine, "facturama", "contacts").plan.prune(0)
    rows = _result_rows(client.get(f"{P}/records", params={"q": DUP_RFC}).text)
    assert len(rows) == 3
    for row in rows:
        assert (
            "State and why" not in row
            and "quarantined duplicate tax ID: another record holds the same tax ID" in row
        )
        assert f"since {RUN2}" in row
    html = client.get(f"{P}/records", params={"q": DUP_RFC}).text
    assert html.count('<span class="badge quarantined">quarantined</span>') == 3


def test_search_results_show_the_api_message_and_the_conflict_winner(client: TestClient) -> None:
    [failed] = _result_rows(client.get(f"{P}/records", params={"q": "105"}).text)
    assert (
        "failed validation error: Email: El campo Email no es válido. &lt;b&gt;bold&lt;/b&gt;" in failed
    )  # as text
    [conflict] = _result_rows(client.get(f"{P}/records", params={"q": "9001"}).text)
    assert "conflict a field edited on both sides since the last sync (email: clientify won)" in conflict
    rows = _result_rows(client.get(f"{P}/records", params={"q": "SCRP800101AAA"}).text)
    [created] = [row for row in rows if row.startswith("facturama contacts invoicing client 104")]
    assert "created created in Clientify" in created


def test_dead_letter_and_conflict_rows_name_the_record(client: TestClient) -> None:
    dead = _text(
        re.search(
            r'<table id="dead-letters">(.*?)</table>', client.get(f"{P}/dead-letters").text, re.S
        ).group(1)
    )
    assert "invoicing client 105 Luisa Fernanda Ruiz RUIL850505AB1 retrying" in dead
    conflicts = _text(
        re.search(r'<table id="conflicts">(.*?)</table>', client.get(f"{P}/conflicts").text, re.S).group(1)
    )
    assert "101 ↔ contact 9001 Ana Godínez GODE561231GR8 email" in conflicts


def test_a_script_name_renders_as_text_everywhere(client: TestClient) -> None:
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Pérez"
    pages = [
        client.get(f"{P}/records", params={"q": "<script>"}).text,
        client.get(f"{P}/records/facturama_contacts/invoicing/client/104").text,
        client.get(f"{P}/records", params={"q": SCRIPT_NAME}).text,
    ]
    for html in pages:
        assert escaped in html
        assert (
            "<script>alert" not in html and len(re.findall(r"<script>", html)) == 1
        )  # the theme script only
    assert 'value="&lt;script&gt;"' in pages[0]  # the search box echoes the query escaped


def test_record_page_shows_ids_snapshot_conflict_and_history(client: TestClient) -> None:
    html = client.get(f"{P}/records/facturama_contacts/invoicing/client/101").text
    assert f"{P}/records/facturama_contacts/clientify/contact/9001" in html
    snapshot = re.search(r'<table id="snapshot">(.*?)</table>', html, re.S).group(1)
    assert re.search(
        r'<tr class="differs"><td><b>email</b></td><td class="detail">ana@example.mx</td>'
        r'<td class="detail">ana@empresa.mx</td><td class="detail">ana.g@empresa.mx</td>',
        snapshot,
    )
    conflicts = _text(re.search(r'<table id="record-conflicts">(.*?)</table>', html, re.S).group(1))
    assert "email ana@empresa.mx ana.g@empresa.mx ana@example.mx clientify" in conflicts
    assert RUN2 in re.search(r'<table id="history">(.*?)</table>', html, re.S).group(1)
    missing = client.get(f"{P}/records/facturama_contacts/invoicing/client/999")
    assert missing.status_code == 404 and "Record not found" in missing.text


def test_conflicts_page_shows_both_values_and_the_winner(client: TestClient) -> None:
    rows = _text(
        re.search(r'<table id="conflicts">(.*?)</table>', client.get(f"{P}/conflicts").text, re.S).group(1)
    )
    assert "email ana@empresa.mx ana.g@empresa.mx ana@example.mx clientify" in rows
    assert "No conflicts" in client.get(f"{P}/conflicts", params={"winner": "invoicing"}).text


def test_dead_letter_actions_need_edit_access_and_record_the_user(
    view: Q.LedgerView, client: TestClient
) -> None:
    form = {"side": "invoicing", "rtype": "client", "rid": "105", "next": f"{P}/dead-letters?state=open"}
    reader = make_client(view, ui.Viewer(name="rita.reader", readable=OURS))
    page = reader.get(f"{P}/dead-letters").text
    assert "Dismiss</button>" not in page and "validation error" in page
    assert reader.post(f"{P}/dead-letters/facturama_contacts/dismiss", data=form).status_code == 403
    assert [d["state"] for d in view.dead_letters([("facturama", "contacts")], state="dismissed").rows] == []

    assert "Dismiss</button>" in client.get(f"{P}/dead-letters").text
    response = client.post(f"{P}/dead-letters/facturama_contacts/dismiss", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"{P}/dead-letters?state=open"
    [row] = view.dead_letters([("facturama", "contacts")], state="dismissed").rows
    assert (row["rid"], row["dismissed_by"]) == ("105", "ada.admin")
    listed = client.get(f"{P}/dead-letters", params={"state": "dismissed"}).text
    assert "dismissed by ada.admin" in listed

    retry = client.post(f"{P}/dead-letters/facturama_contacts/retry", data={**form, "next": "https://evil.example/"},
                        follow_redirects=False)  # fmt: skip
    assert retry.status_code == 303 and retry.headers["location"] == f"{P}/dead-letters"  # no open redirect
    assert (
        view.dead_letters([("facturama", "contacts")], state="retry_requested").rows[0]["retry_requested_by"]
        == "ada.admin"
    )

    cross = client.post(f"{P}/dead-letters/facturama_contacts/dismiss", data=form,
                        headers={"Origin": "https://evil.example"}, follow_redirects=False)  # fmt: skip
    assert cross.status_code == 403
    assert (
        client.post(f"{P}/dead-letters/facturama_contacts/dismiss", data={**form, "rid": "nope"}).status_code
        == 404
    )
    assert client.post(f"{P}/dead-letters/facturama_contacts/purge", data=form).status_code == 404


def test_a_user_sees_only_the_dags_they_may_read(view: Q.LedgerView) -> None:
    client = make_client(view, ui.Viewer(name="fd.only", readable=frozenset({"facturadirecta_contacts"})))
    overview = client.get(f"{P}/").text
    assert 'id="facturadirecta"' in overview and 'id="facturama"' not in overview
    assert client.get(RUN_PAGE).status_code == 403
    assert client.get(f"{P}/records/facturama_contacts/invoicing/client/101").status_code == 403
    assert "No record matches" in client.get(f"{P}/records", params={"q": DUP_RFC}).text
    assert "No conflicts" in client.get(f"{P}/conflicts").text


@pytest.mark.parametrize(("method", "url"), ROUTES)
def test_airflow_auth_rejects_an_unauthenticated_request(view: Q.LedgerView, method: str, url: str) -> None:
    client = make_client(view, viewer=None)  # Airflow's own get_user: no cookie, no bearer token
    response = client.request(method, url, data={"side": "invoicing", "rtype": "client", "rid": "105"})
    assert response.status_code in (401, 403)
    assert SCRIPT_NAME not in response.text and "ana@" not in response.text
    assert view.dead_letters([("facturama", "contacts")], state="dismissed").rows == []


def test_the_plugin_registers_the_app_and_both_views() -> None:
    from airflow.api_fastapi.app import RESERVED_URL_PREFIXES
    from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse

    from clientify_sync.ui.plugin import ClientifySyncStatusPlugin as Plugin

    [fastapi_app] = Plugin.fastapi_apps
    assert fastapi_app["app"] is ui.app and not fastapi_app["url_prefix"].startswith(
        tuple(RESERVED_URL_PREFIXES)
    )
    views = {v["destination"]: ExternalViewResponse(**v) for v in Plugin.external_views}
    assert views["nav"].href == f"{P}/" and views["nav"].url_route == "clientify-sync"
    assert views["dag_run"].href == f"{P}/runs/{{DAG_ID}}/{{RUN_ID}}"
    paths = {route.path for route in ui.app.routes}
    assert {"/", "/runs/{dag_id}/{run_id:path}", "/records", "/conflicts", "/dead-letters"} <= paths


def test_airflow_auth_rejects_a_forged_token(view: Q.LedgerView, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi import app as airflow_app

    monkeypatch.setattr(airflow_app._AuthManagerState, "instance", None)  # restored after the test
    airflow_app.init_auth_manager()  # the simple auth manager, as in the API server
    client = make_client(view, viewer=None)
    for headers in ({"Authorization": "Bearer not.a.jwt"}, {"Cookie": "_token=forged"}):
        response = client.get(f"{P}/", headers=headers)
        assert response.status_code == 403 and "Invalid JWT token" in response.text


def test_ids_with_url_syntax_are_encoded_in_links(view: Q.LedgerView, client: TestClient) -> None:
    from clientify_sync.engine.ledger import Ledger, write_transaction
    from clientify_sync.engine.ledger.dead_letters import Letter

    odd = "A/B?C#D%E&F"
    with write_transaction(view.engine) as conn:
        Ledger(view.engine, "facturama", "contacts").dead_letters.record(
            conn, [Letter("clientify", "contact", odd, "validation_error", "odd id")], RUN2
        )
    html = client.get(f"{P}/dead-letters").text
    [href] = re.findall(r'href="([^"]*/records/facturama_contacts/clientify/contact/[^"]*)"', html)
    assert href.endswith(quote(odd, safe="")) and "?" not in href
    page = client.get(href.replace("&amp;", "&"))
    assert page.status_code == 200 and "A/B?C#D%E&amp;F" in page.text and "odd id" in page.text


def test_run_page_counts_rounding_lines_with_their_sum(
    view: Q.LedgerView, admin: ui.Viewer, ledger_url: str
) -> None:
    """Issue 21: estimates written to the cent by a rounding line are counted apart, with the amount."""
    from clientify_sync.engine.ledger import Ledger

    ledger = Ledger.open(ledger_url, "facturadirecta", "estimates")
    run_id = "manual__2026-12-07T10:00:00+00:00"
    ledger.runs.start(run_id, "modified", False)
    ledger.runs.finish(run_id, {
        "run_id": run_id, "platform": "facturadirecta", "entity": "estimates", "mode": "modified", "dry_run": False,
        "watermark_in": None, "watermark_out": None, "counts": {"invoicing→clientify": {"created": 3}},
        "unchanged": 0, "matched": 0, "reasons": {"adjusted:rounding": 2}, "conflicts": 0,
        "adjusted": {"rounding": 2, "rounding_amount": "-0.03"}, "calls": {}, "failures": [], "failures_total": 0,
    })  # fmt: skip
    ledger.close()
    html = make_client(view, admin).get(f"{P}/runs/facturadirecta_estimates/{quote(run_id, safe='')}").text
    reasons = _text(re.search(r'<table id="reasons">(.*?)</table>', html, re.S).group(1))
    assert "adjusted rounding lines, summing -0.03 2" in reasons
