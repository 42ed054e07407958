from __future__ import annotations

from clientify_sync.engine.merge import equivalent, fold, merge_fields
from clientify_sync.engine.model import CONTACT_SCHEMA
from clientify_sync.engine.vocabulary import Side

FIELDS = CONTACT_SCHEMA.fields
WINS = CONTACT_SCHEMA.invoicing_wins
BASE = {f: "" for f in FIELDS} | {"tax_id": "URE180429TM6", "name": "ACME", "email": "a@x.mx", "city": "León"}


def test_edits_to_different_fields_both_survive():
    inv = BASE | {"name": "ACME SA"}
    crm = BASE | {"email": "b@x.mx"}
    result = merge_fields(FIELDS, BASE, inv, crm, WINS)
    assert result.merged["name"] == "ACME SA" and result.merged["email"] == "b@x.mx"
    assert result.to_clientify == {"name"} and result.to_invoicing == {"email"}
    assert result.conflicts == []


def test_same_field_conflict_follows_policy_and_is_recorded():
    inv = BASE | {"name": "ACME INV", "city": "Celaya"}
    crm = BASE | {"name": "Acme CRM", "city": "Irapuato"}
    result = merge_fields(FIELDS, BASE, inv, crm, WINS)
    assert result.merged["name"] == "ACME INV"  # fiscal: invoicing wins
    assert result.merged["city"] == "Irapuato"  # the rest: Clientify wins
    recorded = {(c.field, c.invoicing_value, c.clientify_value, c.winner) for c in result.conflicts}
    assert recorded == {
        ("name", "ACME INV", "Acme CRM", Side.INVOICING),
        ("city", "Celaya", "Irapuato", Side.CLIENTIFY),
    }


def test_same_change_on_both_sides_writes_nothing():
    changed = BASE | {"email": "new@x.mx"}
    result = merge_fields(FIELDS, BASE, changed, dict(changed), WINS)
    assert not result.to_clientify and not result.to_invoicing and not result.conflicts


def test_without_base_empty_values_are_filled_from_the_other_side():
    inv = BASE | {"email": ""}
    crm = BASE | {"city": "", "email": "c@x.mx"}
    result = merge_fields(FIELDS, None, inv, crm, WINS)
    assert result.merged["email"] == "c@x.mx" and result.merged["city"] == "León"
    assert result.to_invoicing == {"email"} and result.to_clientify == {"city"}


def test_clearing_a_field_on_one_side_propagates():
    crm = BASE | {"city": ""}
    result = merge_fields(FIELDS, BASE, dict(BASE), crm, WINS)
    assert result.merged["city"] == "" and result.to_invoicing == {"city"}


def test_first_match_without_base_follows_the_invoicing_side_and_records_it():
    inv = BASE | {"city": "Celaya"}
    crm = BASE | {"city": "Irapuato"}
    result = merge_fields(FIELDS, None, inv, crm, WINS)
    assert result.merged["city"] == "Celaya" and result.to_clientify == {"city"} and not result.to_invoicing
    # A first-match difference, kept apart from conflicts (nobody edited against anybody).
    assert result.conflicts == []
    assert [(c.field, c.winner, c.base_value) for c in result.first_match] == [("city", Side.INVOICING, None)]


def test_case_spacing_and_accents_are_the_same_value_neither_a_conflict_nor_a_write():
    inv = BASE | {"name": "JOSÉ  PÉREZ LÓPEZ", "city": "Celaya"}
    crm = BASE | {"name": "José Pérez López ", "city": "celaya"}
    result = merge_fields(FIELDS, None, inv, crm, WINS)
    assert result.conflicts == [] and result.first_match == []
    assert not result.to_clientify and not result.to_invoicing
    # A later real edit on one side still travels, compared against the equivalent base.
    edited = crm | {"city": "León"}
    again = merge_fields(FIELDS, result.merged, inv, edited, WINS)
    assert again.to_invoicing == {"city"} and again.merged["city"] == "León" and again.conflicts == []


def test_fold_drops_accents_case_and_extra_spaces_only():
    assert fold("  Ñandú   ÁRBOL ") == "nandu arbol"
    assert not equivalent("Celaya", "Celayas")
    assert equivalent(None, None) and not equivalent("1", 1)
