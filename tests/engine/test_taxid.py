from __future__ import annotations

import pytest

from clientify_sync.engine.taxid import Kind, TaxProblem, classify_nif, classify_rfc


@pytest.mark.parametrize(
    ("value", "key", "kind"),
    [
        pytest.param("URE180429TM6", "URE180429TM6", Kind.COMPANY, id="company-12"),
        pytest.param(" cacx7605101p8 ", "CACX7605101P8", Kind.PERSON, id="person-13-trimmed-uppercased"),
        pytest.param("IAÑL750210963", "IAÑL750210963", Kind.PERSON, id="enye"),
        pytest.param("EKU9003173C9", "EKU9003173C9", Kind.COMPANY, id="sat-test-rfc"),
        pytest.param("GODE561231GR9", "GODE561231GR9", Kind.PERSON, id="wrong-check-digit-still-valid"),
    ],
)
def test_rfc_classifies_person_and_company(value, key, kind):
    tax = classify_rfc(value)
    assert (tax.key, tax.kind, tax.problem) == (key, kind, None)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        pytest.param("", TaxProblem.MISSING, id="empty"),
        pytest.param(None, TaxProblem.MISSING, id="none"),
        pytest.param("XAXX010101000", TaxProblem.GENERIC, id="publico-en-general"),
        pytest.param("xexx010101000", TaxProblem.GENERIC, id="extranjero"),
        pytest.param("RODJ899315654", TaxProblem.INVALID, id="month-99"),
        pytest.param("ABC", TaxProblem.INVALID, id="too-short"),
        pytest.param("GODE561231", TaxProblem.INVALID, id="no-homoclave"),
    ],
)
def test_rfc_problems(value, problem):
    assert classify_rfc(value).problem == problem


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("12345678Z", Kind.PERSON),
        ("00000001R", Kind.PERSON),
        ("X6089822C", Kind.PERSON),
        ("Y1234567X", Kind.PERSON),
        ("K1234567L", Kind.PERSON),
        ("B12345674", Kind.COMPANY),
        ("ES B-12345674", Kind.COMPANY),
        ("Q2826000H", Kind.COMPANY),
        ("N0032484H", Kind.COMPANY),
    ],
)
def test_nif_kinds(value, kind):
    tax = classify_nif(value)
    assert tax.ok and tax.kind == kind


@pytest.mark.parametrize("value", ["12345678A", "B12345675", "Q2826000A", "HELLO"])
def test_nif_invalid(value):
    assert classify_nif(value).problem == TaxProblem.INVALID


@pytest.mark.parametrize("value", ["00000000T", "x-0000000-t"])
def test_placeholder_nifs_are_generic(value):
    assert classify_nif(value).problem == TaxProblem.GENERIC


@pytest.mark.parametrize("value", ["12345678Z", "B12345674", "ES B-12345674", "X6089822C"])
def test_a_spanish_nif_in_the_mexican_integration_belongs_to_the_other_platform(value):
    assert classify_rfc(value).problem == TaxProblem.OTHER_PLATFORM


@pytest.mark.parametrize("value", ["URE180429TM6", "CACX7605101P8", "XAXX010101000"])
def test_a_mexican_rfc_in_the_spanish_integration_belongs_to_the_other_platform(value):
    assert classify_nif(value).problem == TaxProblem.OTHER_PLATFORM


@pytest.mark.parametrize("value", ["12345678A", "HELLO", "GODE561231"])
def test_what_is_no_tax_id_of_either_country_stays_invalid(value):
    assert classify_rfc(value).problem == TaxProblem.INVALID
    assert classify_nif(value).problem == TaxProblem.INVALID
