"""JSON in and out with exact decimals.

Why not plain ``json``: Facturama amounts are .NET ``decimal`` values that Json.NET writes as bare
numbers keeping their scale (``200.0000``, ``13000.00``, ``2.0``); a float would print ``200.0`` and
lose cents on sums. Decimals are parsed as ``Decimal`` and written back as bare numbers.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

_MARK = "\x00DEC\x00"
_MARKED = re.compile(r'"\\u0000DEC\\u0000([-+0-9.Ee]+)"')


def format_decimal(value: Decimal) -> str:
    """Json.NET style: keep the scale, and give integral values one decimal (``2`` -> ``2.0``)."""
    text = f"{value:f}"
    return text if "." in text else text + ".0"


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return _MARK + format_decimal(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    """Compact JSON; ``Decimal`` becomes a bare number with its scale."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=_default)
    return _MARKED.sub(r"\1", text) if "\\u0000DEC" in text else text


def loads(text: str | bytes) -> Any:
    """Parse JSON keeping every non-integer number as an exact ``Decimal``."""
    return json.loads(text, parse_float=Decimal)
