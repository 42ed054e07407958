"""The status view's query layer on a SQLite ledger with literal data (``ledger_data.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from clientify_sync.engine.ledger import Ledger, create_ledger_engine
from clientify_sync.ui import queries as Q
from tests.ui.conftest import count_statements
from tests.ui.ledger_data import DUP_RFC, FAILED_MESSAGE, LIVE_RUN, RUN2, SCRIPT_NAME

FM = ("facturama", "contacts")
FD = ("facturadirecta", "contacts")


def _summary(view: Q.LedgerView, scope: tuple[str, str], **states: str) -> Q.Summary:
    return next(
        s for s in view.overview(Q.all_scopes(), states or None) if (s.integration, s.entity) == scope
    )


def test_overview_counts_watermark_and_attention(view: Q.LedgerView) -> None:
    fm = _summary(view, FM)
    assert fm.last_run["run_id"] == RUN2
    assert fm.counts == {
        "conflict": 1,
        "created": 1,
        "failed": 1,
        "quarantined": 1,
        "skipped": 1,
        "unchanged": 40,
    }
    assert fm.watermark == "2026-11-29T10:00:00Z"
    assert (fm.dead_open, fm.dead_exhausted, fm.dead_max_attempts) == (2, 1, 5)
    assert (fm.quarantined, fm.conflicts, fm.deferred) == (1, 1, 0)
    assert fm.health.level == "fail"
    assert fm.health.reason.startswith("2 records failing for 5 runs (1 no longer retried after 5)")
    assert "1 quarantined (duplicate tax id)" in fm.health.reason

    fd = _summary(view, FD)
    assert fd.counts == {"created": 3, "updated": 2, "unchanged": 5}
    assert fd.health == Q.Health("ok", "in sync")
    never = _summary(view, ("facturadirecta", "products"))
    assert never.last_run is None and never.health == Q.Health("none", "never run")


def test_overview_live_run_counts_from_the_plan(view: Q.LedgerView) -> None:
    est = _summary(view, ("facturama", "estimates"))
    assert est.live and est.last_run["run_id"] == LIVE_RUN
    assert est.counts == {"created": 1, "planned": 3}
    assert est.health == Q.Health("running", "run in progress: 1 of 4 records settled")
    # Airflow says the unfinished run failed: the ledger alone could not tell.
    failed = Q.verdict(Q.Summary(**{**est.__dict__, "run_state": "failed"}), 5)
    assert failed.level == "fail" and failed.reason.startswith("last run failed")


def test_verdict_reason_names_records_and_runs() -> None:
    base = dict(integration="facturama", entity="contacts", dag_id="facturama_contacts", last_run={"run_id": "r"},
                run_state="success", counts={}, live=False, watermark=None, dead_open=3, dead_exhausted=0,
                dead_max_attempts=4, deferred=0, quarantined=0, conflicts=0, health=Q.Health("none", ""))  # fmt: skip
    assert Q.verdict(Q.Summary(**base), 5) == Q.Health("warn", "3 records failing for 4 runs")
    assert Q.verdict(Q.Summary(**{**base, "dead_open": 0}), 5) == Q.Health("ok", "in sync")
    deferred = Q.verdict(Q.Summary(**{**base, "dead_open": 0, "deferred": 2}), 5)
    assert deferred.level == "warn" and "2 deferred" in deferred.reason


def test_overview_costs_a_fixed_number_of_queries_per_scope(view: Q.LedgerView) -> None:
    view.dead_letters_table()  # reflected once per process
    with count_statements(view.engine) as statements:
        view.overview([FM])
    assert len(statements) == 2  # the latest run (finished, so also the latest finished one), dead letters
    with count_statements(view.engine) as statements:
        view.overview(Q.all_scopes())
    assert len(statements) <= 4 * 6  # at most: latest run, latest finished run, dead letters, live counts


def test_run_items_skip_unchanged_and_page_by_keyset(view: Q.LedgerView) -> None:
    page = view.run_items(*FM, RUN2)
    by_id = {r["inv_id"] or r["crm_id"]: r for r in page.rows}
    assert set(by_id) == {"101", "103", "104", "105", "106", "9002", "9003"} and page.next_cursor is None
    assert by_id["105"]["outcome"] == "failed" and by_id["105"]["detail"] == FAILED_MESSAGE
    assert by_id["103"]["reason"] == "duplicate_tax_id"
    assert by_id["104"]["result"]["rid"] == "9004"
    assert [r["inv_id"] for r in view.run_items(*FM, RUN2, outcome="failed").rows] == ["105"]
    seen, cursor = [], None
    while True:
        chunk = view.run_items(*FM, RUN2, cursor=cursor, limit=2)
        seen += [r["id"] for r in chunk.rows]
        if not chunk.next_cursor:
            break
        cursor = chunk.next_cursor
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 7


def test_run_while_going_has_live_counts(view: Q.LedgerView) -> None:
    run = view.run("facturama", "estimates", LIVE_RUN)
    assert run["finished_at"] is None and run["live"] == {"created": 1, "planned": 3}
    assert [
        r["outcome"] for r in view.run_items("facturama", "estimates", LIVE_RUN, outcome="planned").rows
    ] == [None] * 3
    assert view.run(*FM, "no-such-run") is None


def test_search_by_tax_id_finds_the_quarantined_duplicate(view: Q.LedgerView) -> None:
    rows = view.search(f"  {DUP_RFC.lower()} ", Q.all_scopes()).rows
    found = {(r["side"], r["rid"]) for r in rows}
    assert found == {("invoicing", "103"), ("clientify", "9002"), ("clientify", "9003")}
    assert all(r["match"] == "exact" and r["linked"] is None for r in rows)


def _state(view: Q.LedgerView, text: str, side: str, rid: str) -> dict:
    return next(
        r["state"] for r in view.search(text, Q.all_scopes()).rows if (r["side"], r["rid"]) == (side, rid)
    )


def test_search_says_why_on_every_row_and_still_does_after_plans_are_pruned(view: Q.LedgerView) -> None:
    def shown() -> set[tuple]:
        return {(r["rid"], r["state"]["state"], r["state"]["reason"], r["state"]["run_id"])
                for r in view.search(DUP_RFC, Q.all_scopes()).rows}  # fmt: skip

    expected = {(rid, "quarantined", "duplicate_tax_id", RUN2) for rid in ("103", "9002", "9003")}
    assert shown() == expected
    assert all(
        r["state"]["words"].startswith("duplicate tax ID: ")
        for r in view.search(DUP_RFC, Q.all_scopes()).rows
    )
    fm = Ledger(view.engine, *FM)
    run3 = "scheduled__2026-11-30T10:00:00+00:00"  # a modified run: the duplicates unchanged, only counted
    fm.runs.start(run3, "modified", False)
    fm.record_states.update_from_plan(run3)
    fm.plan.prune(0)
    assert view.record(*FM, "invoicing", "client", "103")["history"] == []  # the plan that said why is gone
    assert shown() == expected


def test_search_states_say_what_failed_conflicted_was_created_or_skipped(view: Q.LedgerView) -> None:
    failed = _state(view, "105", "invoicing", "105")
    assert (failed["state"], failed["detail"]) == ("failed", FAILED_MESSAGE)
    assert failed["words"] == f"validation error: {FAILED_MESSAGE}"
    conflict = _state(view, "9001", "clientify", "9001")
    assert conflict["state"] == "conflict" and "(email: clientify won)" in conflict["words"]
    assert _state(view, "SCRP800101AAA", "invoicing", "104")["words"] == "created in Clientify"
    assert _state(view, "106", "invoicing", "106")["words"].startswith("no tax ID")


def test_search_derives_the_state_of_records_no_run_itemised(view: Q.LedgerView) -> None:
    """Unchanged linked pairs are only counted: in sync while the record's hash is the one its link kept."""
    fresh = _state(view, "B12345674", "invoicing", "1")  # staged, not settled by any committed run
    assert (fresh["state"], fresh["words"]) == ("unsettled", "no run has settled it yet")
    fm = Ledger(view.engine, *FM)
    with view.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM cs_record_states WHERE rid IN ('101', '9001', '106')"))
    inv = fm.records.fetch("invoicing", [("client", "101")])[("client", "101")]
    crm = fm.records.fetch("clientify", [("contact", "9001")])[("contact", "9001")]
    fm.links.save(
        ("client", "101"),
        ("contact", "9001"),
        base={},
        inv_hash=inv["hash"],
        crm_hash=crm["hash"],
        run_id=RUN2,
    )
    assert _state(view, "9001", "clientify", "9001")["state"] == "in_sync"
    fm.links.save(
        ("client", "101"), ("contact", "9001"), base={}, inv_hash=inv["hash"], crm_hash="older", run_id=RUN2
    )
    changed = _state(view, "9001", "clientify", "9001")
    assert changed["state"] == "changed" and "the next run syncs it" in changed["words"]
    assert _state(view, "101", "invoicing", "101")["state"] == "in_sync"  # its own side did not change
    skipped = _state(view, "106", "invoicing", "106")  # its mapping problem says why
    assert (skipped["state"], skipped["reason"], skipped["run_id"]) == ("skipped", "no_tax_id", None)


def test_dead_letters_and_conflicts_name_their_record(view: Q.LedgerView) -> None:
    named = {d["rid"]: (d["name"], d["key"]) for d in view.dead_letters([FM], state="open").rows}
    assert named == {"105": ("Luisa Fernanda Ruiz", "RUIL850505AB1"), "107": ("", "")}  # 107 was never staged
    [conflict] = view.conflicts(Q.all_scopes()).rows
    assert (conflict["name"], conflict["key"]) == ("Ana Godínez", "GODE561231GR8")
    view.dead_letters_table()
    for page in (lambda: view.dead_letters([FM]), lambda: view.conflicts([FM])):
        with count_statements(view.engine) as statements:
            page()
        assert len(statements) == 2  # the list, then its records' names on their key


def test_search_by_id_name_and_email(view: Q.LedgerView) -> None:
    by_id = view.search("9001", Q.all_scopes()).rows
    assert [(r["side"], r["rid"], r["linked"]) for r in by_id] == [
        ("clientify", "9001", ("invoicing", "client", "101"))
    ]
    assert {r["rid"] for r in view.search("JORGE", Q.all_scopes()).rows} == {
        "103",
        "9002",
    }  # names starting so
    assert {r["rid"] for r in view.search("ana", Q.all_scopes()).rows} == {"101", "9001"}  # and e-mails
    assert view.search("pérez pineda", Q.all_scopes()).rows == []  # not at the start: only when asked
    inside = {r["rid"] for r in view.search("pérez pineda", Q.all_scopes(), contains=True).rows}
    assert inside == {"103", "9003"}
    assert {r["rid"] for r in view.search("@empresa.MX", Q.all_scopes(), contains=True).rows} == {
        "101",
        "9001",
    }
    for contains in (False, True):
        assert (
            view.search("100%_", Q.all_scopes(), contains=contains).rows == []
        )  # LIKE wildcards are literal
    assert {r["rid"] for r in view.search("<script>", Q.all_scopes()).rows} == {"104", "9004"}


def test_name_and_email_search_use_their_expression_indexes(view: Q.LedgerView) -> None:
    """The planner must not walk the primary key (every record) to save sorting a few prefix matches."""
    executed: list[tuple[str, tuple]] = []

    def listener(_conn, _cursor, statement, params, _context, _many):  # noqa: ANN001
        if "json_extract" in statement:
            executed.append((statement, params))

    sa.event.listen(view.engine, "before_cursor_execute", listener)
    try:
        view.search("jorge", Q.all_scopes())
        view.search("jorge", Q.all_scopes(), cursor=Q.encode_cursor(["facturama", "contacts", "a", "b", "c"]))
    finally:
        sa.event.remove(view.engine, "before_cursor_execute", listener)
    assert len(executed) == 4
    with view.engine.connect() as conn:
        plans = [" ".join(str(r) for r in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params))
                 for sql, params in executed]  # fmt: skip
    assert ["ix_cs_ui_remote_name" in plan for plan in plans] == [True, False, True, False]
    assert ["ix_cs_ui_remote_email" in plan for plan in plans] == [False, True, False, True]


def test_search_is_limited_to_the_readable_scopes_and_pages(view: Q.LedgerView) -> None:
    assert view.search(DUP_RFC, [FD]).rows == []
    assert view.search(DUP_RFC, []).rows == []
    seen, cursor = [], None
    while True:
        page = view.search("example.mx", [FM], cursor=cursor, limit=2, contains=True)
        seen += [(r["side"], r["rid"]) for r in page.rows]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert len(seen) == len(set(seen)) == 6  # 103, 104, 106, 9002, 9003, 9004


def test_record_has_both_sides_snapshot_history_and_conflict(view: Q.LedgerView) -> None:
    rec = view.record(*FM, "invoicing", "client", "101")
    assert rec["inv_ref"] == ("client", "101") and rec["crm_ref"] == ("contact", "9001")
    assert rec["clientify"]["data"]["email"] == "ana.g@empresa.mx"
    email = next(f for f in rec["snapshot"] if f["field"] == "email")
    assert email == {"field": "email", "base": "ana@example.mx", "invoicing": "ana@empresa.mx",
                     "clientify": "ana.g@empresa.mx", "differs": True}  # fmt: skip
    assert not next(f for f in rec["snapshot"] if f["field"] == "name")["differs"]
    [conflict] = rec["conflicts"]
    assert (conflict["invoicing_value"], conflict["clientify_value"], conflict["winner"]) == (
        "ana@empresa.mx",
        "ana.g@empresa.mx",
        "clientify",
    )
    assert [(h["run_id"], h["outcome"], h["mode"]) for h in rec["history"]] == [
        (RUN2, "conflict", "modified")
    ]
    # The same pair from the Clientify side.
    assert view.record(*FM, "clientify", "contact", "9001")["inv_ref"] == ("client", "101")


def test_record_with_a_failed_create_shows_its_dead_letter(view: Q.LedgerView) -> None:
    rec = view.record(*FM, "invoicing", "client", "105")
    assert rec["link"] is None and rec["crm_ref"] is None
    [dead] = rec["dead_letters"]
    assert (dead["state"], dead["attempts"], dead["detail"]) == ("retrying", 3, FAILED_MESSAGE)
    assert [(h["outcome"], h["detail"]) for h in rec["history"]] == [("failed", FAILED_MESSAGE)]
    assert view.record(*FM, "invoicing", "client", "999") is None


def test_record_page_costs_at_most_seven_indexed_queries(view: Q.LedgerView) -> None:
    view.dead_letters_table()
    with count_statements(view.engine) as statements:
        view.record(*FM, "invoicing", "client", "101")
    assert len(statements) <= 7
    with view.engine.connect() as conn:
        plan = " ".join(str(r) for r in conn.execute(sa.text(
            "EXPLAIN QUERY PLAN SELECT id FROM cs_plan_items WHERE integration='facturama' AND entity='contacts' "
            "AND inv_type='client' AND inv_id='101'")))  # fmt: skip
    assert "ix_cs_ui_plan_inv" in plan


def test_conflicts_filter_and_scope(view: Q.LedgerView) -> None:
    assert [c["field"] for c in view.conflicts(Q.all_scopes()).rows] == ["email"]
    assert view.conflicts(Q.all_scopes(), winner="invoicing").rows == []
    assert view.conflicts(Q.all_scopes(), field_name="name").rows == []
    assert len(view.conflicts(Q.all_scopes(), run_id=RUN2).rows) == 1
    assert view.conflicts([FD]).rows == []


def test_dead_letter_states_and_actions(view: Q.LedgerView) -> None:
    def rids(state: str | None) -> list[str]:
        return [d["rid"] for d in view.dead_letters([FM], state=state).rows]

    assert rids("open") == ["105", "107"] and rids("exhausted") == ["107"] and rids("retrying") == ["105"]
    assert rids("dismissed") == [] and view.actions_supported
    assert view.act_on_dead_letter("dismiss", *FM, "invoicing", "client", "105", "ada.admin")
    [dismissed] = view.dead_letters([FM], state="dismissed").rows
    assert dismissed["dismissed_by"] == "ada.admin" and dismissed["state"] == "dismissed"
    assert rids("open") == ["107"] and _summary(view, FM).dead_open == 1
    assert view.act_on_dead_letter("retry", *FM, "invoicing", "client", "107", "bo.operator")
    [retry] = view.dead_letters([FM], state="retry_requested").rows
    assert (retry["rid"], retry["retry_requested_by"], retry["state"]) == (
        "107",
        "bo.operator",
        "retry_requested",
    )
    # A retry lifts a dismissal.
    assert view.act_on_dead_letter("retry", *FM, "invoicing", "client", "105", "bo.operator")
    assert rids("dismissed") == []
    assert not view.act_on_dead_letter("dismiss", *FM, "invoicing", "client", "nope", "ada.admin")
    with pytest.raises(ValueError):
        view.act_on_dead_letter("delete", *FM, "invoicing", "client", "105", "ada.admin")


def test_ledger_before_schema_v3_lists_but_cannot_act(tmp_path: Path) -> None:
    """A ledger the engine has not upgraded yet (the API server may start first): lists work, actions say why."""
    engine = create_ledger_engine(f"sqlite:///{tmp_path / 'v2.db'}")
    with engine.begin() as conn:  # cs_dead_letters as schema version 2 had it
        conn.execute(sa.text(
            "CREATE TABLE cs_dead_letters (integration VARCHAR(32), entity VARCHAR(32), side VARCHAR(16), "
            "rtype VARCHAR(16), rid VARCHAR(64), reason VARCHAR(64) NOT NULL, detail TEXT, attempts INTEGER NOT NULL, "
            "first_run VARCHAR(250) NOT NULL, last_run VARCHAR(250) NOT NULL, "
            "PRIMARY KEY (integration, entity, side, rtype, rid))"))  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO cs_dead_letters VALUES ('facturama', 'contacts', 'invoicing', 'client', '105', "
            "'validation_error', 'bad e-mail', 2, 'r1', 'r2')"))  # fmt: skip
    view = Q.LedgerView(engine)
    try:
        assert [d["rid"] for d in view.dead_letters([FM], state="open").rows] == ["105"]
        assert view.dead_letters([FM], state="dismissed").rows == []
        assert not view.actions_supported
        with pytest.raises(Q.SchemaTooOld):
            view.act_on_dead_letter("dismiss", *FM, "invoicing", "client", "105", "ada.admin")
    finally:
        engine.dispose()


def test_cursors_are_opaque_and_tamper_safe() -> None:
    cursor = Q.encode_cursor(["facturama", "contacts", "invoicing", "client", SCRIPT_NAME])
    assert Q.decode_cursor(cursor, 5)[-1] == SCRIPT_NAME
    assert Q.decode_cursor("not-base64!", 5) is None and Q.decode_cursor(cursor, 1) is None


def test_scope_of_dag_ids() -> None:
    assert Q.scope_of("facturadirecta_estimates") == ("facturadirecta", "estimates")
    assert Q.scope_of("example_bash_operator") is None and Q.scope_of("facturama_invoices") is None


def test_snapshot_highlights_real_differences_only() -> None:
    link = {"base": {"name": "Ana Pérez", "email": "a@x.mx"}}
    inv = {"data": {"name": "ANA PEREZ", "email": "a@x.mx", "city": "León"}}
    crm = {"data": {"name": "Ana  Pérez", "email": "b@x.mx"}}
    rows = {r["field"]: r for r in Q._snapshot(link, inv, crm)}
    assert not rows["name"]["differs"] and rows["email"]["differs"]
    assert not rows["city"]["differs"]  # one side has no value to compare
    assert [r["differs"] for r in Q._snapshot(None, inv, None)] == [False, False, False]
