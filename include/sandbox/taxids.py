"""Tax-id rules the emulators enforce: Mexican RFC (facturama-api.md §7), Spanish NIF/NIE/CIF (§10)."""

from __future__ import annotations

import re

# The product's own definition: the emulator accepts the generic RFCs the sync knows about.
from clientify_sync.api.facturama import GENERIC_RFCS

__all__ = [
    "GENERIC_RFCS",
    "normalise_rfc",
    "normalise_tax_code",
    "rfc_check_digit",
    "rfc_problem",
    "spanish_tax_code_kind",
]

# SAT tdCFDI t_RFC pattern.
RFC_PATTERN = re.compile(r"[A-Z&Ñ]{3,4}[0-9]{2}(0[1-9]|1[012])(0[1-9]|[12][0-9]|3[01])[A-Z0-9]{2}[0-9A]")
_RFC_ALPHABET = "0123456789ABCDEFGHIJKLMN&OPQRSTUVWXYZ Ñ"


def normalise_rfc(value: str) -> str:
    return value.strip().upper()


def rfc_check_digit(rfc: str) -> str:
    """The check character as python-stdnum computes it (a 12-char RFC gets one leading space)."""
    padded = ("   " + rfc[:-1])[-12:]
    total = sum(_RFC_ALPHABET.index(c) * (13 - i) for i, c in enumerate(padded))
    return _RFC_ALPHABET[(11 - total) % 11]


def rfc_problem(rfc: str, check_digit: bool) -> str | None:
    """``None`` when valid, else a Spanish reason. The two generic RFCs are always accepted."""
    if rfc in GENERIC_RFCS:
        return None
    if len(rfc) not in (12, 13) or not RFC_PATTERN.fullmatch(rfc):
        return f"El RFC '{rfc}' no tiene un formato válido."
    if check_digit and any(c not in _RFC_ALPHABET for c in rfc):
        return f"El RFC '{rfc}' no tiene un formato válido."
    if check_digit and rfc_check_digit(rfc) != rfc[-1]:
        return f"El dígito verificador del RFC '{rfc}' no es válido."
    return None


# -- Spain ------------------------------------------------------------------------------------------

_NIF_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"
_CIF_LETTERS = "JABCDEFGHI"


def normalise_tax_code(value: str) -> str:
    """Upper-case, drop spaces, ``-`` and ``.``; strip a leading ``ES`` (EU VAT form) when longer than 3."""
    code = re.sub(r"[\s.\-]", "", value).upper()
    if code.startswith("ES") and len(code) > 3:
        code = code[2:]
    return code


def _nif_ok(digits: str, letter: str) -> bool:
    return _NIF_LETTERS[int(digits) % 23] == letter


def _cif_ok(code: str) -> bool:
    kind, digits, check = code[0], code[1:8], code[8]
    a = sum(int(d) for d in digits[1::2])
    b = sum(sum(divmod(2 * int(d), 10)) for d in digits[0::2])
    e = (10 - (a + b) % 10) % 10
    letter_only = kind in "PQRSNW" or digits.startswith("00")
    digit_only = kind in "ABEH"
    if letter_only:
        return check == _CIF_LETTERS[e]
    if digit_only:
        return check == str(e)
    return check in (str(e), _CIF_LETTERS[e])


def spanish_tax_code_kind(value: str) -> str | None:
    """``"F"`` for a valid DNI/NIE/special NIF, ``"J"`` for a valid CIF, ``None`` when invalid."""
    code = normalise_tax_code(value)
    if re.fullmatch(r"\d{8}[A-Z]", code):
        return "F" if _nif_ok(code[:8], code[8]) else None
    if re.fullmatch(r"[XYZ]\d{7}[A-Z]", code):
        return "F" if _nif_ok(str("XYZ".index(code[0])) + code[1:8], code[8]) else None
    if re.fullmatch(r"[KLM]\d{7}[A-Z]", code):
        return "F" if _nif_ok("0" + code[1:8], code[8]) else None
    if re.fullmatch(r"[ABCDEFGHJNPQRSUVW]\d{7}[0-9A-J]", code):
        return "J" if _cif_ok(code) else None
    return None
