"""Tax IDs: normalise, validate (python-stdnum) and tell a person from a company.

The tax ID is the natural key of a customer: it decides whether a record syncs at all, which Clientify
resource it becomes (contact or company) and how unlinked records are matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from stdnum.es import cif as es_cif
from stdnum.es import nif as es_nif
from stdnum.exceptions import ValidationError as StdnumValidationError
from stdnum.mx import rfc as mx_rfc

# GENERIC_RFCS, RMF rule 2.7.1.26: "público en general" and "residente en el extranjero", which
# identify no one. A SAT rule the Facturama client needs too, so it lives below both layers.
from clientify_sync.facts import GENERIC_RFCS

__all__ = [
    "GENERIC_RFCS",
    "PLACEHOLDER_NIFS",
    "Kind",
    "TaxId",
    "TaxProblem",
    "classify_nif",
    "classify_rfc",
    "normalise",
]

# Spain has no official generic NIF; these all-zero DNI/NIE numbers are valid by their check letter
# and are used as "cliente de contado" placeholders. Like the generic RFCs, they identify no one.
PLACEHOLDER_NIFS = frozenset({"00000000T", "X0000000T"})

_SEPARATORS = re.compile(r"[\s.\-/]")


class Kind(StrEnum):
    """What a customer is: it picks the Clientify resource and the FacturaDirecta legal type."""

    PERSON = "person"
    COMPANY = "company"


class TaxProblem(StrEnum):
    """Why a record with this tax ID does not sync (the skip reason in the run report)."""

    MISSING = "no_tax_id"
    INVALID = "invalid_tax_id"
    GENERIC = "generic_tax_id"
    # A valid tax ID of the other integration's country (a Spanish NIF in the Mexican integration, or
    # an RFC in the Spanish one): the customer belongs to the other platform, nothing is wrong with it.
    OTHER_PLATFORM = "other_platform"


@dataclass(frozen=True)
class TaxId:
    """A classified tax ID: ``key`` is the normalised value records are matched on."""

    key: str
    kind: Kind | None
    problem: TaxProblem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def normalise(value: str | None) -> str:
    """Trim, upper-case and drop separators: the form two tax IDs are compared in."""
    return _SEPARATORS.sub("", (value or "").strip().upper())


def classify_rfc(value: str | None) -> TaxId:
    """A Mexican RFC: 13 characters a person, 12 a company; the check digit is not enforced.

    About 1.5% of real RFCs carry a wrong check digit, so python-stdnum's default (off) is kept.
    """
    key = normalise(value)
    if not key:
        return TaxId(key, None, TaxProblem.MISSING)
    if key in GENERIC_RFCS:
        return TaxId(key, None, TaxProblem.GENERIC)
    try:
        key = mx_rfc.validate(key, validate_check_digits=False)
    except StdnumValidationError:
        return TaxId(key, None, TaxProblem.OTHER_PLATFORM if _is_nif(key) else TaxProblem.INVALID)
    if len(key) == 13:
        return TaxId(key, Kind.PERSON)
    if len(key) == 12:
        return TaxId(key, Kind.COMPANY)
    return TaxId(key, None, TaxProblem.INVALID)  # 10-character RFCs lack the homoclave


def classify_nif(value: str | None) -> TaxId:
    """A Spanish NIF: DNI, NIE and K/L/M are persons, a CIF is a company (``legalType`` F/J)."""
    key = normalise(value)
    if key.startswith("ES") and len(key) > 3:
        key = key[2:]  # EU VAT form
    if not key:
        return TaxId(key, None, TaxProblem.MISSING)
    try:
        key = es_nif.validate(key)
    except StdnumValidationError:
        return TaxId(key, None, TaxProblem.OTHER_PLATFORM if _is_rfc(key) else TaxProblem.INVALID)
    if key in PLACEHOLDER_NIFS:
        return TaxId(key, None, TaxProblem.GENERIC)
    return TaxId(key, Kind.COMPANY if es_cif.is_valid(key) else Kind.PERSON)


def _is_nif(key: str) -> bool:
    """A Spanish NIF (also in its EU VAT form ``ES...``)."""
    return es_nif.is_valid(key[2:] if key.startswith("ES") and len(key) > 3 else key)


def _is_rfc(key: str) -> bool:
    """A Mexican RFC of a person or a company (generic RFCs included: they are Mexican too)."""
    return key in GENERIC_RFCS or (mx_rfc.is_valid(key, validate_check_digits=False) and len(key) in (12, 13))
