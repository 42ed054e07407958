"""Staging the pages an extract step reads: a record the API returns unchanged is only marked seen.

The invoicing platforms have no modified filter, so every run reads their whole listing; most of it is
what the last run read. A raw record whose digest equals the stored one is neither mapped nor hashed
again (``Records.touch``); the others are mapped and staged in full (``Records.stage``).

The shortcut is only sound while the mapping is the same: the digest of the mapping code and of the
mapper's settings is kept in the ledger per integration, entity and side, and a run that finds another
one maps every record once and stores the new digest. A mapping that depends on more than the raw
record (estimates read the contacts' and products' links and keys: the ``Directory``) puts that state's
own ``fingerprint()`` into the digest: an estimate is skipped only while it and the directory are both
unchanged, so an idle run maps no document and a run that links one customer maps them all again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.records import raw_hash
from clientify_sync.engine.mapping import Mapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.vocabulary import Side

BATCH = 1000  # records gathered before one write transaction
ENGINE = Path(__file__).resolve().parent
# The code a mapping's result depends on.
MAPPING_SOURCES = (
    *sorted((ENGINE / "mapping").glob("*.py")),
    ENGINE / "model.py",
    ENGINE / "documents.py",  # the document rules (lines, totals) and the directory the estimates read
    ENGINE / "taxid.py",
    ENGINE.parent / "facts.py",  # custom_field_value, GENERIC_RFCS
)


@cache
def _code_digest() -> str:
    digest = hashlib.blake2b(digest_size=16)
    for path in MAPPING_SOURCES:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def mapping_fingerprint(mapper: Mapper) -> str:
    """A digest of the mapping code and of this mapper's settings: its public attributes, callables by
    name (a ``_private`` attribute is state, not a setting)."""
    settings = {
        name: _setting(value) for name, value in sorted(vars(mapper).items()) if not name.startswith("_")
    }
    return hashlib.blake2b(
        f"{_code_digest()}|{type(mapper).__qualname__}|{settings}".encode(), digest_size=16
    ).hexdigest()


def _setting(value: Any) -> str:
    """How a mapper setting enters the fingerprint: a state it reads by its own ``fingerprint()``
    (the estimates' ``Directory``), a callable by name, anything else by ``repr``."""
    fingerprint = getattr(value, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    return getattr(value, "__qualname__", None) or repr(value)


@dataclass
class PageStager:
    """Stages one side's pages for one run; ``finish()`` remembers the mapping that staged them."""

    ledger: Ledger
    side: Side
    mapper: Mapper
    run_id: str
    fingerprint: str = ""
    skip_unchanged: bool = False
    counts: dict[str, int] = field(default_factory=lambda: {"records": 0, "unchanged": 0, "pages": 0})
    _pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.mapper.identity is None:
            return  # always mapped: no digest to compare, none to keep
        self.fingerprint = mapping_fingerprint(self.mapper)
        self.skip_unchanged = self.ledger.meta.get(self._meta_key) == self.fingerprint

    @property
    def _meta_key(self) -> str:
        return f"mapping:{self.ledger.integration}:{self.ledger.entity}:{self.side.value}"

    def stage(self, rtype: str, raws: list[dict[str, Any]]) -> None:
        """Stage one page of API records of type ``rtype`` (``""`` when the mapper knows it); pages are
        gathered up to ``BATCH`` records and written in one transaction."""
        self.counts["pages"] += 1
        self.counts["records"] += len(raws)
        self._pending.extend((rtype, raw) for raw in raws)
        if len(self._pending) >= BATCH:
            self._flush()

    def finish(self) -> dict[str, int]:
        """Write what is gathered, remember the mapping these records were staged with; return the counts."""
        self._flush()
        if self.fingerprint and not self.skip_unchanged:
            self.ledger.meta.set(self._meta_key, self.fingerprint)
        return dict(self.counts)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        identity = self.mapper.identity if self.skip_unchanged else None
        if identity is None:
            self.ledger.records.stage([self.mapper.read(rtype, raw) for rtype, raw in pending], self.run_id)
            return
        fixed_type, id_key = identity
        # Per type, the last state of each record (a record can move between pages read concurrently).
        by_type: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        for rtype, raw in pending:
            by_type.setdefault(fixed_type or rtype, {})[str(raw[id_key])] = (rtype, raw)
        changed: list[SideRecord] = []
        with self.ledger.begin() as conn:
            for record_type, latest in by_type.items():
                stored = self.ledger.records.raw_digests(
                    self.side.value, record_type, list(latest), conn=conn
                )
                unchanged = [
                    rid for rid, (_, raw) in latest.items() if rid in stored and stored[rid] == raw_hash(raw)
                ]
                self.ledger.records.touch(self.side.value, record_type, unchanged, self.run_id, conn=conn)
                self.counts["unchanged"] += len(unchanged)
                kept = set(unchanged)
                changed.extend(
                    self.mapper.read(rtype, raw) for rid, (rtype, raw) in latest.items() if rid not in kept
                )
            self.ledger.records.stage(changed, self.run_id, conn=conn)
