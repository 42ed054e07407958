"""Decimal arithmetic for computed totals: half-up to 2 decimals, as both invoicing specs demand."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")


def q2(value: Decimal) -> Decimal:
    """Round half-up to 2 decimals (``Decimal`` alone rounds half-even)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def quantize(value: Decimal, places: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def to_decimal(value: Any) -> Decimal:
    """Numbers, numeric strings (``"0.16"``, ``" 21 "``) -> ``Decimal``; anything else -> ``ValueError``."""
    if isinstance(value, bool) or value is None:
        raise ValueError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return result
