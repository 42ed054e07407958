"""The planner's pure steps on literal before/after data: no database, no API."""

from __future__ import annotations

from clientify_sync.engine.ledger.candidates import LinkedRow, RecordRow
from clientify_sync.engine.model import CONTACT_SCHEMA
from clientify_sync.engine.plan import Action, Direction, Outcome, PlanItem, Reason, Ref, Status
from clientify_sync.engine.planner import (
    Matching,
    PairState,
    PairToMerge,
    Settled,
    defer_missing,
    match_invoicing,
    match_linked,
    match_window,
    plan_pair,
    prioritise,
    settle_unsyncable,
)
from clientify_sync.engine.vocabulary import Side

RUN = "run-2"


def record(
    rid: str,
    key: str = "",
    *,
    rtype: str = "client",
    problem: str | None = None,
    link: str | None = None,
    hashes: tuple[str, str | None] = ("h", "h"),
    kind: str | None = "company",
) -> RecordRow:
    return RecordRow(rtype, rid, key, kind, problem, link, hashes[0], hashes[1], RUN)


def linked(
    link_id: int,
    *,
    link: tuple[str, str] = ("i", "c"),
    now: tuple[str, str | None] = ("i", "c"),
    window: bool = False,
) -> LinkedRow:
    return LinkedRow(link_id, "client", f"A{link_id}", "company", f"{link_id}", *link, *now, window)


def matching(*, inv_dupes: set[str] | None = None, crm_dupes: set[str] | None = None) -> Matching:
    return Matching(Reason.DUPLICATE_TAX_ID, False, inv_dupes or set(), crm_dupes or set())


def crm_type_for(kind: str | None) -> str:
    return "company" if kind == "company" else "contact"


# -- settle_unsyncable ------------------------------------------------------------------------------
def test_a_problem_is_skipped_and_listed_only_when_new_or_changed():
    rows = [
        record("A", problem="invalid_tax_id", hashes=("h2", "h1")),  # changed since the last listing
        record("B", problem="invalid_tax_id"),  # same as last time: counted, not listed
        record("C", problem="totals_mismatch", hashes=("h", None)),  # new, and its data is wrong
    ]
    settled = list(settle_unsyncable(rows, Side.INVOICING, full=False))
    assert [(s.item.inv_id, s.item.outcome, s.item.reason, s.listed) for s in settled] == [
        ("A", Outcome.SKIPPED, "invalid_tax_id", True),
        ("B", Outcome.SKIPPED, "invalid_tax_id", False),
        ("C", Outcome.FAILED, "totals_mismatch", True),
    ]
    assert all(s.item.direction is Direction.TO_CLIENTIFY and s.item.status is Status.DONE for s in settled)


def test_a_full_run_lists_every_problem_and_clientify_problems_go_the_other_way():
    [settled] = settle_unsyncable(
        [record("9", rtype="contact", problem="other_platform")], Side.CLIENTIFY, full=True
    )
    assert settled.listed and settled.item.direction is Direction.TO_INVOICING
    assert settled.item.crm == Ref("contact", "9") and settled.item.inv is None


# -- match_linked -------------------------------------------------------------------------------------
def test_only_changed_or_failed_pairs_are_merged():
    rows = [
        linked(1),  # same hashes: unchanged
        linked(2, now=("i2", "c")),  # the invoicing record changed
        linked(3, now=("i", "c2"), window=True),  # the Clientify record changed and was read in this run
        linked(4, now=("i", "c2"), window=False),  # a stale mirror outside the window proves nothing
        linked(5),  # unchanged, but it failed in an earlier run
        linked(6, now=("i", None)),  # the Clientify record was never seen
    ]
    pairs, failed, unchanged = match_linked(rows, full=False, dead={("clientify", "company", "5")})
    assert [p.inv.rid for p in pairs] == ["A2", "A3", "A5"]
    assert unchanged == 2
    assert [(f.inv_id, f.outcome, f.reason) for f in failed] == [
        ("A6", Outcome.FAILED, Reason.CLIENTIFY_RECORD_UNKNOWN)
    ]


def test_a_full_run_merges_every_known_pair():
    pairs, _failed, unchanged = match_linked([linked(1), linked(2)], full=True, dead=set())
    assert len(pairs) == 2 and unchanged == 0
    assert pairs[0].link_hashes == ("i", "c") and pairs[0].link_id == 1


# -- match_invoicing ----------------------------------------------------------------------------------
def test_link_field_then_key_then_create():
    state = matching()
    rows = [record("A", "AAA"), record("B", "BBB"), record("C", "CCC", kind="person")]
    out = list(
        match_invoicing(
            rows, {"A": Ref("company", "10")}, {"BBB": Ref("company", "11")}, state, crm_type_for=crm_type_for
        )
    )
    assert state.new_pairs == [
        (Ref("client", "A"), Ref("company", "10")),
        (Ref("client", "B"), Ref("company", "11")),
    ]
    [create] = out
    assert isinstance(create, PlanItem) and create.action is Action.CREATE
    assert (create.inv_id, create.crm_type, create.crm_id, create.reason) == (
        "C",
        "contact",
        None,
        "no_match",
    )


def test_a_duplicated_key_is_quarantined_never_guessed():
    state = matching(crm_dupes={"DUP"})
    [out] = match_invoicing([record("A", "DUP")], {}, {}, state, crm_type_for=crm_type_for)
    assert isinstance(out, Settled)
    assert (out.item.outcome, out.item.reason, out.listed) == (Outcome.QUARANTINED, "duplicate_tax_id", False)
    assert state.new_pairs == []


def test_a_clientify_record_is_matched_once():
    state = matching()
    taken = Ref("company", "11")
    state.matched_crm.add(taken)
    [out] = match_invoicing([record("B", "BBB")], {}, {"BBB": taken}, state, crm_type_for=crm_type_for)
    assert isinstance(out, PlanItem) and out.action is Action.CREATE


# -- match_window -------------------------------------------------------------------------------------
def test_window_rules():
    state = matching(inv_dupes={"DUP"})
    state.matched_crm.add(Ref("company", "5"))
    rows = [
        record("5", "X", rtype="company"),  # matched by match_invoicing: nothing more
        record("6", "Y", rtype="company", link="GONE"),  # names an invoicing record that is not there
        record("7", "DUP", rtype="company"),  # its key is held twice on the invoicing side
        record("8", "Z", rtype="company", link="A"),  # names a record that is linked elsewhere
        record("9", "TAKEN", rtype="company"),  # its key matches an invoicing record already linked
        record("10", "NEW", rtype="company"),  # nobody: create on the invoicing side
    ]
    out = list(match_window(rows, {"A"}, {"TAKEN": Ref("client", "T")}, {Ref("client", "T")}, state))
    settled = [(o.item.crm_id, o.item.outcome, o.item.reason) for o in out if isinstance(o, Settled)]
    assert settled == [
        ("6", Outcome.SKIPPED, "linked_record_missing"),
        ("7", Outcome.QUARANTINED, "duplicate_tax_id"),
        ("8", Outcome.QUARANTINED, "link_conflict"),
        ("9", Outcome.QUARANTINED, "duplicate_tax_id"),
    ]
    [create] = [o for o in out if isinstance(o, PlanItem)]
    assert (create.action, create.target, create.crm_id, create.inv_type) == (
        Action.CREATE,
        Side.INVOICING,
        "10",
        "",
    )


def test_a_sku_held_by_an_invoicing_product_linked_elsewhere_is_quarantined_as_a_duplicate_sku():
    state = Matching(Reason.DUPLICATE_SKU, False, set(), set())
    row = record("9", "SKU-1", rtype="product")
    taken = Ref("product", "T")
    [out] = list(match_window([row], set(), {"SKU-1": taken}, {taken}, state))
    assert isinstance(out, Settled)
    assert (out.item.outcome, out.item.reason) == (Outcome.QUARANTINED, "duplicate_sku")


# -- plan_pair ----------------------------------------------------------------------------------------
def contact(**fields: str) -> dict[str, str]:
    return {f: "" for f in CONTACT_SCHEMA.fields} | {"tax_id": "AAA", "name": "ACME"} | fields


def pair_state(base, inv, crm, *, link: str | None = "A", hashes=("hi", "hc")) -> PairState:
    pair = PairToMerge(Ref("client", "A"), Ref("company", "10"), ("hi", "hc"), 1)
    return PairState(pair, inv, hashes[0], crm, hashes[1], link, base)


def test_an_edit_on_one_side_updates_the_other():
    items, conflicts, unchanged = plan_pair(
        pair_state(contact(), contact(), contact(city="Lyon")), CONTACT_SCHEMA
    )
    [update] = items
    assert (update.action, update.target, update.fields) == (Action.UPDATE, Side.INVOICING, ("city",))
    assert update.merged is not None and update.merged["city"] == "Lyon"
    assert conflicts == [] and not unchanged


def test_the_same_field_edited_on_both_sides_is_a_conflict_won_by_policy():
    items, conflicts, _ = plan_pair(
        pair_state(contact(), contact(name="Inv"), contact(name="Crm")), CONTACT_SCHEMA
    )
    assert [(c.field, c.winner) for c in conflicts] == [("name", "invoicing")]  # a fiscal field
    assert [(i.target, i.reason) for i in items] == [(Side.CLIENTIFY, Reason.CONFLICT)]


def test_a_missing_link_field_is_written_and_a_settled_pair_is_unchanged():
    items, _, _ = plan_pair(pair_state(contact(), contact(), contact(), link=None), CONTACT_SCHEMA)
    assert [(i.action, i.target, i.fields, i.reason) for i in items] == [
        (Action.UPDATE, Side.CLIENTIFY, (), Reason.LINK)
    ]
    assert plan_pair(pair_state(contact(), contact(), contact()), CONTACT_SCHEMA) == ([], [], True)


def test_the_same_edit_on_both_sides_only_moves_the_base():
    items, _, unchanged = plan_pair(
        pair_state(contact(), contact(city="Lyon"), contact(city="Lyon")), CONTACT_SCHEMA
    )
    assert [i.action for i in items] == [Action.TOUCH] and not unchanged


# -- before storing -----------------------------------------------------------------------------------
def test_a_write_missing_a_dependency_is_deferred_and_others_pass():
    item = PlanItem.create(Direction.TO_CLIENTIFY, Ref("estimate", "E1"), target_type="budget")

    def needs_customer(data: dict[str, str], side: str) -> list[str]:
        return [] if data.get("customer") else [f"customer not linked in {side}"]

    deferred = defer_missing(item, {"customer": ""}, needs_customer)
    assert (deferred.action, deferred.status, deferred.reason) == (
        Action.DEFERRED,
        Status.DONE,
        Reason.DEPENDENCY_MISSING,
    )
    assert deferred.detail == "customer not linked in clientify"
    assert defer_missing(item, {"customer": "X"}, needs_customer) is item


def test_failed_records_of_earlier_runs_go_first():
    item = PlanItem.create(Direction.TO_INVOICING, Ref("company", "10"), target_type="")
    assert prioritise(item, {("clientify", "company", "10")}).priority == 0
    assert prioritise(item, {("invoicing", "company", "10")}).priority == 1
