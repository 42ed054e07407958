"""Staging the pages an extract step reads: a record the API returns unchanged is only marked seen.

The invoicing platforms have no modified filter, so every run reads their whole listing; most of it is
what the last run read. A raw record whose digest equals the stored one is neither mapped nor hashed
again (``Records.touch``); the others are mapped and staged in full (``Records.stage``).

The shortcut is only sound while the mapping is the same. What "the same" means is the mapping's
fingerprint, kept in the ledger per integration, entity and side; a run that finds another one maps
every record once and stores the new one. The fingerprint is the mapper's class, its
``MAPPING_VERSION``, its settings and the installed versions of the libraries the mappings call
(``MAPPING_LIBRARIES``). A mapping that depends on more than the raw record (estimates read the
contacts' and products' links and keys: the ``Directory``) holds that state as a setting with its own
``fingerprint()``: an estimate is skipped only while it and the directory are both unchanged, so an
idle run maps no document and a run that links one customer maps them all again.

Why a version checked against a golden corpus, not a digest of the mapping's source files (what this
module did before): a hand-kept list of files goes stale without a sound when a mapper starts to use
another module, and no digest of our files sees a library's new behaviour (python-stdnum validating a
tax ID differently). The output is what matters, so the output is what is checked: every mapper has a
corpus of raw records (``tests/engine/mapping/golden/<mapper>.json``) whose mapped results (canonical
data, key, kind, problem, link, rounding) are stored and hashed, and a test fails when any of them
changes while ``MAPPING_VERSION`` stays the same, whatever the cause (our code, a helper it calls, a
library upgraded in the lock). Bumping the version and running
``python -m tests.engine.mapping.golden --update`` records the new output; the new version then maps
every stored record once in production. The corpus covers branches, not every possible record: a
change of output it does not reach still relies on a reviewer's bump, but nothing lists files, so no
file can be forgotten. A deployment resolves its libraries within the package's ranges, not the lock,
so their installed versions join the fingerprint (the golden test checks that ``MAPPING_LIBRARIES``
names every library the mapping modules import). A mapper without a ``MAPPING_VERSION`` is always
mapped again, as is one whose ``identity`` is ``None``; ``identity`` names the id by its key, or by a
dotted path when the id is nested in an envelope (FacturaDirecta REST's ``content.uuid``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.ledger.records import raw_hash
from clientify_sync.engine.mapping import Mapper
from clientify_sync.engine.model import SideRecord
from clientify_sync.engine.vocabulary import Side

BATCH = 1000  # records gathered before one write transaction
# The libraries the mapping modules call, by import name: their distribution, whose installed version
# joins every fingerprint (tests/engine/mapping/test_golden.py checks that no imported one is missing).
MAPPING_LIBRARIES = {"stdnum": "python-stdnum"}


def mapping_version(mapper: Mapper) -> int | None:
    """The mapper's ``MAPPING_VERSION`` (a class attribute next to its ``read``), None when it has none."""
    found = getattr(type(mapper), "MAPPING_VERSION", None)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


@cache
def _library_versions() -> str:
    found = []
    for distribution in sorted(MAPPING_LIBRARIES.values()):
        try:
            found.append(f"{distribution}=={version(distribution)}")
        except PackageNotFoundError:
            found.append(f"{distribution}==?")
    return ",".join(found)


def mapping_fingerprint(mapper: Mapper) -> str:
    """A digest of what a record's mapping depends on besides the record: the mapper's class and
    ``MAPPING_VERSION``, the mapping libraries' versions and the mapper's settings (its public
    attributes, callables by name: a ``_private`` attribute is state, not a setting)."""
    cls = type(mapper)
    settings = {
        name: _setting(value) for name, value in sorted(vars(mapper).items()) if not name.startswith("_")
    }
    mapping = f"{cls.__module__}.{cls.__qualname__}|v{mapping_version(mapper)}|{_library_versions()}"
    return hashlib.blake2b(f"{mapping}|{settings}".encode(), digest_size=16).hexdigest()


def _setting(value: Any) -> str:
    """How a mapper setting enters the fingerprint: a state it reads by its own ``fingerprint()``
    (the estimates' ``Directory``), a callable by name, anything else by ``repr``."""
    fingerprint = getattr(value, "fingerprint", None)
    if callable(fingerprint):
        return str(fingerprint())
    return getattr(value, "__qualname__", None) or repr(value)


def id_reader(path: str) -> Callable[[dict[str, Any]], str]:
    """How to read a raw record's id from the mapper's ``identity`` key: a top-level key (``"Id"``), or
    keys joined by dots for an id nested in an envelope (FacturaDirecta REST's ``"content.uuid"``)."""
    keys = path.split(".")
    if len(keys) == 1:
        return lambda raw: str(raw[path])

    def nested(raw: dict[str, Any]) -> str:
        value: Any = raw
        for key in keys:
            value = value[key]
        return str(value)

    return nested


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
        if self.mapper.identity is None or mapping_version(self.mapper) is None:
            return  # always mapped: no fingerprint to compare, none to keep
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
        fixed_type, id_path = identity
        record_id = id_reader(id_path)
        # Per type, the last state of each record (a record can move between pages read concurrently).
        by_type: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {}
        for rtype, raw in pending:
            by_type.setdefault(fixed_type or rtype, {})[record_id(raw)] = (rtype, raw)
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
