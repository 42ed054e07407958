"""The sandbox's own speed targets, timed here instead of in the unit tests (no wall-clock assertions there).

Each check is a stated target printed PASS/MISS with the measured figure: generating and seeding data,
a list page at 100k records, latency rules (applied, never on the control surface, overlapping in
parallel), the ``timeout`` fault, and the ``realistic`` latency profile's Clientify page cost. The
figures depend on the machine and its load; the unit tests check the same behaviours by counts.

``python -m bench.sandbox_checks`` runs them alone (about 40 s); ``make bench`` runs them first.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx

from bench.sandbox import SandboxHandle, start_sandbox, stop_sandbox
from bench.targets import Target
from include.sandbox import generator
from include.sandbox.latency import CLIENTIFY_MS_PER_LISTED_RECORD

GENERATOR_LIMIT_S = 10.0  # 100k Facturama client bodies
SEED_LIMIT_S = 30.0  # 10k Clientify contacts/companies through POST /_sandbox/seed
PAGE_LIMIT_MS = 100.0  # median Facturama /Products page at 100k records
PAGE_RECORDS = 100_000
LATENCY_MS = 150.0
PARALLEL = 8
PARALLEL_LATENCY_MS = 300.0
PARALLEL_LIMIT_S = 1.2  # 8 requests x 300 ms in parallel: one delay plus overhead, not eight
TIMEOUT_CLIENT_S = 0.3
TIMEOUT_GIVE_UP_LIMIT_S = 2.0
REALISTIC_SLACK = 1.25  # a realistic page may take up to 25% more than the profile's delay


def _elapsed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _target(name: str, ok: bool, detail: str) -> Target:
    target = Target("sandbox", name, ok, detail)
    print(f"  {target.line()}", flush=True)
    return target


def check_generator() -> Target:
    seconds = _elapsed(lambda: generator.facturama_clients(100_000, 42))
    return _target(
        f"generate 100k Facturama clients < {GENERATOR_LIMIT_S:g} s",
        seconds < GENERATOR_LIMIT_S,
        f"{seconds:.1f} s",
    )


def check_seeding(handle: SandboxHandle) -> Target:
    body = {"overlap": {"platform": "facturama", "customers": 10_000, "fraction": 1.0, "seed": 1}}
    seconds = _elapsed(lambda: handle.seed("clientify", **body))
    handle.reset("clientify")
    return _target(
        f"seed 10k Clientify records < {SEED_LIMIT_S:g} s", seconds < SEED_LIMIT_S, f"{seconds:.1f} s"
    )


def check_list_page(handle: SandboxHandle) -> Target:
    handle.seed("facturama", products=PAGE_RECORDS, seed=1)
    timings = []
    with handle.facturama_client() as api:
        for start in (0, PAGE_RECORDS // 2, PAGE_RECORDS - 100) * 5:
            timings.append(
                _elapsed(lambda s=start: api.get("/api/Products", params={"start": s, "length": 100}))
            )
    handle.reset("facturama")
    median_ms = statistics.median(timings) * 1000
    return _target(
        f"median list page at {PAGE_RECORDS // 1000}k records < {PAGE_LIMIT_MS:g} ms",
        median_ms < PAGE_LIMIT_MS,
        f"median {median_ms:.1f} ms, max {max(timings) * 1000:.1f} ms over {len(timings)} pages",
    )


def check_latency_rules(handle: SandboxHandle) -> list[Target]:
    handle.latency("clientify", "none")  # only the rules below delay
    handle.faults("clientify", [{"latency_ms": LATENCY_MS}])
    with handle.clientify_client() as api:
        api.get("/v1/users/")  # open the connection
        request_s = _elapsed(lambda: api.get("/v1/users/"))
    control_s = _elapsed(lambda: handle.control("clientify", "GET", "health"))
    found = [
        _target(
            f"a {LATENCY_MS:g} ms latency rule delays a request by at least that",
            request_s * 1000 >= LATENCY_MS,
            f"{request_s * 1000:.0f} ms",
        ),
        _target(
            f"the control surface is never delayed (< {LATENCY_MS:g} ms)",
            control_s * 1000 < LATENCY_MS,
            f"{control_s * 1000:.1f} ms",
        ),
    ]
    handle.faults("clientify", [{"path": "^/v1/contacts/$", "latency_ms": PARALLEL_LATENCY_MS}])
    clients = [handle.clientify_client() for _ in range(PARALLEL)]
    try:
        for client in clients:
            client.get("/v1/users/")
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            seconds = _elapsed(lambda: list(pool.map(lambda c: c.get("/v1/contacts/"), clients)))
    finally:
        for client in clients:
            client.close()
    found.append(
        _target(
            f"{PARALLEL} parallel requests with {PARALLEL_LATENCY_MS:g} ms latency overlap "
            f"({PARALLEL_LATENCY_MS / 1000:g}-{PARALLEL_LIMIT_S:g} s)",
            PARALLEL_LATENCY_MS / 1000 <= seconds < PARALLEL_LIMIT_S,
            f"{seconds:.2f} s",
        )
    )
    handle.faults("clientify", [{"method": "GET", "path": "^/v1/contacts/$", "rates": {"timeout": 1.0},
                                 "timeout_s": 3}])  # fmt: skip
    with handle.clientify_client(timeout=TIMEOUT_CLIENT_S) as api:
        started = time.perf_counter()
        try:
            api.get("/v1/contacts/")
            gave_up = False
        except httpx.ReadTimeout:
            gave_up = True
        seconds = time.perf_counter() - started
    found.append(
        _target(
            f"a client with a {TIMEOUT_CLIENT_S:g} s timeout gives up on a timeout fault "
            f"in < {TIMEOUT_GIVE_UP_LIMIT_S:g} s",
            gave_up and seconds < TIMEOUT_GIVE_UP_LIMIT_S,
            f"{'ReadTimeout' if gave_up else 'answered'} after {seconds:.2f} s",
        )
    )
    handle.clear_faults("clientify")
    return found


def check_realistic_profile(handle: SandboxHandle) -> list[Target]:
    handle.seed("clientify", contacts=100, seed=1)
    handle.latency("clientify", "realistic")
    found = []
    with handle.clientify_client() as api:
        api.get("/v1/users/")
        for size in (100, 20):
            expected = size * CLIENTIFY_MS_PER_LISTED_RECORD / 1000
            seconds = _elapsed(lambda n=size: api.get("/v1/contacts/", params={"page_size": n}))
            found.append(_target(f"realistic: a {size}-record Clientify page takes {expected:g}-"
                                 f"{expected * REALISTIC_SLACK:.2f} s", expected <= seconds < expected * REALISTIC_SLACK,
                                 f"{seconds:.2f} s"))  # fmt: skip
    handle.reset("clientify")
    return found


def run_checks(handle: SandboxHandle | None = None) -> list[Target]:
    """Every check, on ``handle`` (reset first and after) or on a sandbox of its own."""
    own = handle is None
    sandbox = start_sandbox() if handle is None else handle
    print("bench: sandbox checks", flush=True)
    try:
        sandbox.reset()
        sandbox.set_latency_profile("none")  # whatever SANDBOX_LATENCY_PROFILE started it with
        found = [check_generator(), check_seeding(sandbox), check_list_page(sandbox)]
        found += check_latency_rules(sandbox)
        found += check_realistic_profile(sandbox)
        sandbox.reset()
        return found
    finally:
        if own:
            stop_sandbox(sandbox)


def main(argv: Sequence[str] | None = None) -> int:
    found = run_checks()
    missed = [t for t in found if t.ok is False]
    print(f"bench: sandbox checks {len(found) - len(missed)}/{len(found)} PASS", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
