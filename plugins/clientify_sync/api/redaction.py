"""Keep credentials and personal data out of logs and error messages.

Only methods, route templates, statuses and record ids may be logged. httpx logs every request URL
at INFO, query string included: that would leak ``api_token`` and search values (RFCs, e-mails,
tax ids), so a filter on the ``httpx`` logger masks every query value.
"""

from __future__ import annotations

import logging
import re

_QUERY_VALUE = re.compile(r"([?&][^=&#\s\"']*=)[^&#\s\"']*")
_API_TOKEN = re.compile(r"(api_token=)[^&#\s\"']*", re.IGNORECASE)


def redact_url(url: object) -> str:
    """``https://h/api/clients.xml?api_token=abc&taxCode=B1`` -> ``...?api_token=***&taxCode=***``."""
    return _QUERY_VALUE.sub(r"\1***", str(url))


def redact_token(text: str) -> str:
    """Mask an ``api_token`` query parameter wherever it appears in a text."""
    return _API_TOKEN.sub(r"\1***", text)


class QueryRedactingFilter(logging.Filter):
    """Rewrites URL-looking arguments of httpx's log records with their query values masked."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_arg(arg) for arg in record.args)
        if isinstance(record.msg, str) and "?" in record.msg:
            record.msg = redact_url(record.msg)
        return True


def _redact_arg(arg: object) -> object:
    text = str(arg)
    return redact_url(text) if "?" in text and "://" in text else arg


_FILTER = QueryRedactingFilter()


def install_httpx_log_redaction() -> None:
    """Attach the filter to the ``httpx`` logger once (idempotent, process-wide)."""
    logger = logging.getLogger("httpx")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
