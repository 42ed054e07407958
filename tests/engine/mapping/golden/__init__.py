"""Golden corpora of the mappers: raw records per mapper and what its ``read`` maps them to.

Why: staging skips an unchanged raw record while the mapping's fingerprint is the same, and the
fingerprint names the mapper's ``MAPPING_VERSION``, not its code (``engine/staging.py``). So a change
of output must come with a bump, and this is what tells: ``<MapperClass>.json`` holds cases (mapper
settings and raw records, each record's branch in ``note``) with the output recorded at the mapping
version named in the file, and a hash of the whole. ``tests/engine/mapping/test_golden.py`` fails when
any output differs while the version is the same (our code, a helper, a library in the lock).

After a bump of ``MAPPING_VERSION``, record the new output (refused for a mapper whose output changed
without a bump; new records of an unchanged mapping are filled in without one)::

    PYTHONPATH=.:plugins .venv/bin/python -m tests.engine.mapping.golden --update [MapperClass ...]

Without ``--update`` it prints what the test would find. Only ``read`` is covered: it is what staging
stores; the write bodies are built afresh on every write.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import pkgutil
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from clientify_sync.engine import taxid
from clientify_sync.engine.documents import Directory, RoundingPolicy
from clientify_sync.engine.mapping import __path__ as mapping_path
from clientify_sync.engine.model import SideRecord

HERE = Path(__file__).resolve().parent
MIN_RECORDS = 20  # a mapper's corpus covers its branches: a handful of records cannot
UPDATE = "PYTHONPATH=.:plugins .venv/bin/python -m tests.engine.mapping.golden --update"


def mappers() -> list[type]:
    """Every mapper class of ``engine/mapping/*.py``: a class defined there with a ``read`` of its own."""
    found = []
    for info in sorted(pkgutil.iter_modules(mapping_path), key=lambda m: m.name):
        module = importlib.import_module(f"clientify_sync.engine.mapping.{info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and "read" in vars(cls):
                found.append(cls)
    return found


def path_of(cls: type) -> Path:
    return HERE / f"{cls.__name__}.json"


def directory_of(spec: dict[str, Any]) -> Directory:
    """A ``Directory`` from its JSON form: tuple keys and values as lists (``[type, id]``)."""
    return Directory(
        customers={k: {**v, "crm": tuple(v["crm"]) if v.get("crm") else None} for k, v in spec.get("customers", {}).items()},
        products=spec.get("products", {}),
        inv_customer_keys=spec.get("inv_customer_keys", {}),
        crm_customer_keys={(t, rid): key for t, rid, key in spec.get("crm_customer_keys", [])},
        crm_customers_out_of_scope={(t, rid) for t, rid in spec.get("crm_customers_out_of_scope", [])},
        crm_product_skus=spec.get("crm_product_skus", {}),
        inv_products_raw=spec.get("inv_products_raw", {}),
    )  # fmt: skip


def build(cls: type, settings: dict[str, Any]) -> Any:
    """The mapper a case describes: ``classify`` names a ``taxid`` rule, ``directory`` and ``rounding``
    are their JSON forms, anything else is passed as it is."""
    decoded: dict[str, Any] = {}
    for name, value in settings.items():
        if name == "classify":
            decoded[name] = getattr(taxid, value)
        elif name == "directory":
            decoded[name] = directory_of(value)
        elif name == "rounding":
            decoded[name] = RoundingPolicy(**value)
        else:
            decoded[name] = value
    return cls(**decoded)


def output_of(record: SideRecord) -> dict[str, Any]:
    """What staging stores of a mapped record, the raw record aside."""
    return {
        "side": str(record.side), "rtype": record.rtype, "rid": record.rid, "key": record.key,
        "kind": None if record.kind is None else str(record.kind), "problem": record.problem,
        "link": record.link, "modified": record.modified, "rounding": str(record.rounding),
        "data": record.data,
    }  # fmt: skip


def map_one(mapper: Any, rtype: str, raw: dict[str, Any]) -> dict[str, Any]:
    """One record's output; an error ``read`` raises is an output too (its type)."""
    try:
        record = mapper.read(rtype, raw)
    except Exception as exc:  # noqa: BLE001 - the behaviour recorded, whatever it is
        return {"error": type(exc).__name__}
    return json.loads(json.dumps(output_of(record), default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON: {value!r}")


def digest(cases: list[dict[str, Any]], outputs: list[list[dict[str, Any]]]) -> str:
    """The hash of a corpus with its outputs: settings, record types, raw records and what they map to."""
    payload = [
        [
            case["settings"],
            [[r["rtype"], r["raw"], out] for r, out in zip(case["records"], outs, strict=True)],
        ]
        for case, outs in zip(cases, outputs, strict=True)
    ]
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


@dataclass
class Check:
    """A mapper against its corpus: the versions, the records whose output changed, the hashes."""

    cls: type
    version: int | None  # the mapper's MAPPING_VERSION
    recorded_version: int | None
    recorded_hash: str | None
    actual_hash: str
    records: int
    changed: list[str] = field(default_factory=list)  # "case/record (note): recorded -> now"
    new: int = 0  # records with no output recorded yet
    outputs: list[list[dict[str, Any]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.version is not None
            and self.version == self.recorded_version
            and not self.changed
            and not self.new
            and self.actual_hash == self.recorded_hash
        )

    @property
    def needs_bump(self) -> bool:
        """The output changed while the version stayed: only a bump may record it."""
        return bool(self.changed) and self.version == self.recorded_version

    def explain(self) -> str:
        name = self.cls.__name__
        if self.version is None:
            return f"{name} has no MAPPING_VERSION"
        if self.needs_bump:
            shown = "\n  ".join(self.changed[:5]) + ("\n  ..." if len(self.changed) > 5 else "")
            return (
                f"{name}: the output of {len(self.changed)} of {self.records} golden records changed while "
                f"MAPPING_VERSION stayed {self.version}; stored records would not be mapped again. Bump "
                f"{name}.MAPPING_VERSION to {self.version + 1}, then run `{UPDATE} {name}`:\n  {shown}"
            )
        if self.version != self.recorded_version:
            return f"{name}: MAPPING_VERSION is {self.version}, the corpus is of {self.recorded_version}: run `{UPDATE} {name}`"
        if self.new:
            return f"{name}: {self.new} records have no recorded output: run `{UPDATE} {name}`"
        if self.actual_hash != self.recorded_hash:
            return f"{name}: the corpus hash is not the one recorded (edited by hand?): run `{UPDATE} {name}`"
        return f"{name}: ok (version {self.version}, {self.records} records)"


def load(cls: type) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path_of(cls).read_text())
    return loaded


def check(cls: type, golden: dict[str, Any] | None = None) -> Check:
    golden = load(cls) if golden is None else golden
    version = getattr(cls, "MAPPING_VERSION", None)
    outputs, changed, new = [], [], 0
    for c, case in enumerate(golden["cases"]):
        mapper = build(cls, case["settings"])
        outs = []
        for r, record in enumerate(case["records"]):
            out = map_one(mapper, record["rtype"], record["raw"])
            outs.append(out)
            if "expected" not in record:
                new += 1
            elif out != record["expected"]:
                changed.append(f"{c}/{r} ({record.get('note', '')}): {_difference(record['expected'], out)}")
        outputs.append(outs)
    return Check(
        cls, version, golden.get("version"), golden.get("hash"), digest(golden["cases"], outputs),
        sum(len(case["records"]) for case in golden["cases"]), changed, new, outputs,
    )  # fmt: skip


def _difference(before: dict[str, Any], after: dict[str, Any]) -> str:
    names = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    if names == ["data"]:
        data_b, data_a = before["data"], after["data"]
        names = [f"data.{k}" for k in sorted(set(data_b) | set(data_a)) if data_b.get(k) != data_a.get(k)]
        return "; ".join(f"{n}: {data_b.get(n[5:])!r} -> {data_a.get(n[5:])!r}" for n in names)
    return "; ".join(f"{n}: {before.get(n)!r} -> {after.get(n)!r}" for n in names)


class NeedsBump(Exception):
    """The mapper's output changed and its ``MAPPING_VERSION`` did not."""


def updated(cls: type, golden: dict[str, Any]) -> dict[str, Any]:
    """The corpus with the current output and version recorded; raises ``NeedsBump`` when the output
    of a recorded record changed without a version bump."""
    result = check(cls, golden)
    if result.version is None:
        raise NeedsBump(result.explain())
    if result.needs_bump:
        raise NeedsBump(result.explain())
    cases = [
        {**case, "records": [{**record, "expected": out} for record, out in zip(case["records"], outs, strict=True)]}
        for case, outs in zip(golden["cases"], result.outputs, strict=True)
    ]  # fmt: skip
    return {**golden, "version": result.version, "hash": result.actual_hash, "cases": cases}


def dumps(golden: dict[str, Any]) -> str:
    """The corpus as JSON with one record per line, so a diff shows which records changed."""

    def one(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False, sort_keys=True)

    head = [
        f'  "{name}": {one(golden[name])},'
        for name in ("mapper", "version", "hash", "about")
        if name in golden
    ]
    cases = []
    for case in golden["cases"]:
        records = ",\n".join(
            "      {" + ", ".join(f"{one(k)}: {one(record[k])}" for k in ("note", "rtype", "raw", "expected") if k in record) + "}"
            for record in case["records"]
        )  # fmt: skip
        about = f'"about": {one(case["about"])}, ' if "about" in case else ""
        cases.append(f'    {{{about}"settings": {one(case["settings"])}, "records": [\n{records}\n    ]}}')
    return "{\n" + "\n".join(head) + '\n  "cases": [\n' + ",\n".join(cases) + "\n  ]\n}\n"
