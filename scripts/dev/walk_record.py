"""Walk one record through a run: which package modules a Facturama contacts sync enters, step by step,
when exactly one Facturama client was edited since the last run (issue 23, ``docs/architecture.md``).

Why a script and not a test: it measures the shape of the code (how often control crosses modules), which
is a design figure to compare between trees, not a behaviour to pin. It runs in-process against a sandbox
subprocess, as the engine tests do (``tests/engine/conftest.py``), so it also runs on an older tree::

    PYTHONPATH=.:plugins .venv/bin/python scripts/dev/walk_record.py
    PYTHONPATH=/tmp/old:/tmp/old/plugins .venv/bin/python scripts/dev/walk_record.py   # another tree

How it counts (``sys.setprofile`` and ``threading.setprofile``, so the write threads are seen too): a
Python call into a function of ``clientify_sync/**`` is an *entry*. Its caller's module is the module of
the nearest ``clientify_sync`` frame below it on the same thread, so a call that passes through the
standard library or a library (``contextlib`` running ``ledger.begin()``, a thread pool running a write)
still counts from the package module that made it. An entry into another module than the caller's is a
*hop*; an entry with no package frame below (the driver starting a step, a write thread starting) is an
entry from outside. A hop or an entry from outside into a module already entered earlier in the same step
is a *re-entry*. A generator resumed (``for record in pages``) is entered again: it is counted, and shown
apart. Apart from those, a *return* into another module than the one returning (control coming back to
the caller, ``job.py`` after each call it makes elsewhere) is counted per module: what makes a hub. Only
the six steps count, from ``extract_invoicing`` to ``commit``: opening and closing the job do not.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import clientify_sync
from clientify_sync.engine.mapping import without_empty_strings
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from tests.engine.conftest import World, make_clients
from tests.fixtures.sandbox import start_sandbox, stop_sandbox

PACKAGE = Path(clientify_sync.__file__).resolve().parent
STEPS = (
    "extract_invoicing",
    "extract_clientify",
    "reconcile",
    "apply_clientify",
    "apply_invoicing",
    "commit",
)
GENERATOR_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR, CO_COROUTINE, CO_ASYNC_GENERATOR


@dataclass
class Step:
    """What one step entered: ``order`` is every hop or entry from outside, in order."""

    name: str
    order: list[str] = field(default_factory=list)
    entered: set[str] = field(default_factory=set)
    hops: int = 0
    outside: int = 0  # entries with no package frame below
    resumes: int = 0  # of those entries and hops, generators resumed
    reentries: Counter[str] = field(default_factory=Counter)
    calls: int = 0  # every call into the package, in-module ones included
    comebacks: Counter[str] = field(default_factory=Counter)  # returns into another package module


class Walk:
    """The profile hook: attributes every package call to the step running when it happens."""

    def __init__(self, leave_out: tuple[str, ...] = ()) -> None:
        self.leave_out = leave_out  # module path prefixes treated as outside the package
        self.steps: list[Step] = []
        self.current: Step | None = None
        self.step_frame: FrameType | None = None
        self._modules: dict[CodeType, str | None] = {}
        self._started: set[int] = set()  # generator frames already entered once (their ids, kept alive below)
        self._alive: list[FrameType] = []
        self._lock = threading.Lock()

    def module(self, code: CodeType) -> str | None:
        found = self._modules.get(code, "")
        if found == "":
            path = Path(code.co_filename)
            found = path.resolve().relative_to(PACKAGE).as_posix() if path.is_relative_to(PACKAGE) else None
            if found is not None and found.startswith(self.leave_out) and found != "engine/job.py":
                found = None
            self._modules[code] = found
        return found

    def caller(self, frame: FrameType) -> str | None:
        below = frame.f_back
        while below is not None:
            found = self.module(below.f_code)
            if found is not None:
                return found
            below = below.f_back
        return None

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "return" and frame is self.step_frame:
            self.current, self.step_frame = None, None
            return
        if event not in ("call", "return"):
            return
        module = self.module(frame.f_code)
        if module is None:
            return
        caller = self.caller(frame)
        if event == "return":
            if self.current is not None and caller is not None and caller != module:
                with self._lock:
                    self.current.comebacks[caller] += 1
            return
        with self._lock:
            if caller is None and self.step_frame is None and frame.f_code.co_name in STEPS:
                if module == "engine/job.py":
                    self.current, self.step_frame = Step(frame.f_code.co_name), frame
                    self.steps.append(self.current)
            step = self.current
            if step is None:
                return
            step.calls += 1
            if module == caller:
                return
            resumed = False
            if frame.f_code.co_flags & GENERATOR_FLAGS:
                resumed = id(frame) in self._started
                if not resumed:
                    self._started.add(id(frame))
                    self._alive.append(frame)  # an id is only unique while its frame lives
            if caller is None:
                step.outside += 1
            else:
                step.hops += 1
            step.resumes += resumed
            if module in step.entered:
                step.reentries[module] += 1
            step.entered.add(module)
            step.order.append(module)


def first_seen(order: list[str]) -> list[str]:
    return list(dict.fromkeys(order))


def summary(walk: Walk) -> dict[str, Any]:
    total_reentries: Counter[str] = Counter()
    comebacks: Counter[str] = Counter()
    for step in walk.steps:
        total_reentries.update(step.reentries)
        comebacks.update(step.comebacks)
    return {
        "package": str(PACKAGE),
        "steps": [
            {
                "step": s.name,
                "modules": first_seen(s.order),
                "entries": dict(Counter(s.order)),
                "hops": s.hops,
                "from_outside": s.outside,
                "generator_resumes": s.resumes,
                "reentries": sum(s.reentries.values()),
                "calls": s.calls,
                "comebacks_to_job": s.comebacks["engine/job.py"],
            }
            for s in walk.steps
        ],
        "hops": sum(s.hops for s in walk.steps),
        "from_outside": sum(s.outside for s in walk.steps),
        "generator_resumes": sum(s.resumes for s in walk.steps),
        "reentries": sum(total_reentries.values()),
        "reentries_by_module": dict(total_reentries.most_common()),
        "comebacks": sum(comebacks.values()),
        "comebacks_by_module": dict(comebacks.most_common()),
        "modules_entered": len({m for s in walk.steps for m in s.entered}),
    }


def print_summary(result: dict[str, Any], counts: Any) -> None:
    print(f"package: {result['package']}")
    print(f"run counts: {counts}")
    for step in result["steps"]:
        print(
            f"\n{step['step']}: {step['hops']} hops, {step['from_outside']} from outside, "
            f"{step['reentries']} re-entries ({step['generator_resumes']} generator resumes), {step['calls']} calls"
        )
        print(
            "  "
            + " → ".join(
                f"{m}×{step['entries'][m]}" if step["entries"][m] > 1 else m for m in step["modules"]
            )
        )
    by_module = result["reentries_by_module"]
    print(
        f"\ntotal: {result['hops']} module hops, {result['from_outside']} entries from outside, "
        f"{result['reentries']} re-entries ({result['generator_resumes']} generator resumes), "
        f"{result['modules_entered']} modules"
    )
    print("re-entries by module: " + ", ".join(f"{m} {n}" for m, n in by_module.items()))
    top = list(result["comebacks_by_module"].items())[:6]
    print(
        f"returns into another module: {result['comebacks']}; most into "
        + ", ".join(f"{m} {n}" for m, n in top)
    )


def run(clients: int, leave_out: tuple[str, ...] = ()) -> tuple[dict[str, Any], Any]:
    """Sync ``clients`` Facturama clients to Clientify, settle, edit one, walk the next run."""
    sandbox = start_sandbox()
    facturama, clientify, facturadirecta = make_clients(sandbox)
    try:
        with tempfile.TemporaryDirectory(prefix="walk-") as tmp:
            world = World(sandbox, facturama, clientify, facturadirecta, f"sqlite:///{tmp}/ledger.db")
            sandbox.seed("facturama", seed=23, clients=clients)
            world.sync(Platform.FACTURAMA, Entity.CONTACTS, mode=Mode.FULL)
            world.sync(Platform.FACTURAMA, Entity.CONTACTS)  # the echoes of the first run's writes
            settled = world.sync(Platform.FACTURAMA, Entity.CONTACTS)
            if any(n for side in settled["counts"].values() for k, n in side.items() if k != "skipped"):
                raise RuntimeError(f"the sync did not settle: {settled['counts']}")
            record = next(iter(facturama.clients.iter_records()))
            body = without_empty_strings(record)
            body["Email"] = f"walk.{record['Id'][:6].lower()}@example.com"
            facturama.clients.update(record["Id"], body)
            walk = Walk(leave_out)
            threading.setprofile(walk)
            sys.setprofile(walk)
            try:
                report = world.sync(Platform.FACTURAMA, Entity.CONTACTS)
            finally:
                sys.setprofile(None)
                threading.setprofile(None)  # type: ignore[arg-type]
            return summary(walk), report["counts"]
    finally:
        for client in (facturama, clientify, facturadirecta):
            client.close()
        stop_sandbox(sandbox)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=10, help="Facturama clients seeded (default 10)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument(
        "--leave-out", nargs="*", default=[], help="module path prefixes counted as outside (e.g. api/)"
    )
    args = parser.parse_args(argv)
    result, counts = run(args.clients, tuple(args.leave_out))
    print_summary(result, counts)
    if args.json:
        args.json.write_text(json.dumps({**result, "counts": counts, "clients": args.clients}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
