"""List-page latency with 100k records per resource: ``python -m include.sandbox.measure [--write docs/sandbox.md]``.

Starts ``python -m include.sandbox --memory`` on free ports, seeds each API through ``/_sandbox/seed``
and times list pages over real HTTP (first, middle and last page; median and p95 of several runs).
With ``--write`` the table replaces the block between the ``measure`` markers of the given file.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from include.sandbox.ports import free_ports as _free_ports

ROOT = Path(__file__).resolve().parents[2]
BEGIN, END = "<!-- measure:begin -->", "<!-- measure:end -->"
APIS = ("facturama", "clientify", "facturadirecta")


@dataclass
class Row:
    api: str
    request: str
    median_ms: float
    p95_ms: float


def _start() -> tuple[subprocess.Popen, dict[str, str]]:
    ports = dict(zip(APIS, _free_ports(3), strict=True))
    cmd = [sys.executable, "-m", "include.sandbox", "--memory"]
    for api, port in ports.items():
        cmd += [f"--{api}-port", str(port)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    process = subprocess.Popen(cmd, cwd=ROOT, env=env)
    urls = {api: f"http://127.0.0.1:{port}" for api, port in ports.items()}
    deadline = time.monotonic() + 30
    for url in urls.values():
        while True:
            try:
                if httpx.get(f"{url}/_sandbox/health", timeout=1, verify=False).status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    process.terminate()
                    raise RuntimeError("sandbox did not start") from None
                time.sleep(0.05)
    return process, urls


def _time(call: Callable[[], httpx.Response], runs: int) -> tuple[float, float]:
    call()  # warm-up
    samples = []
    for _ in range(runs):
        began = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]


@dataclass
class Plan:
    api: str
    resource: str
    seed: dict[str, int]
    paths: list[str]
    auth: tuple[str, str] | None = None
    headers: dict[str, str] | None = None


def _plans(n: int) -> list[Plan]:
    """First, middle and last page of each API, plus one full-scan text search."""
    return [
        Plan(
            "facturama",
            "clients",
            {"clients": n, "seed": 1},
            [
                "/Clients?start=0&length=100",
                f"/Clients?start={n // 2}&length=100",
                f"/Clients?start={n - 100}&length=100",
                "/Clients?start=0&length=100&search=garcia",
            ],
            auth=("sandbox-user", "sandbox-password-fake"),
        ),
        Plan(
            "clientify",
            "contacts",
            {"contacts": n, "seed": 1},
            [
                "/v1/contacts/?page_size=100",
                f"/v1/contacts/?page_size=100&page={n // 200}",
                f"/v1/contacts/?page_size=100&page={n // 100}",
                f"/v1/contacts/?page_size=100&ordering=modified&modified%5Bgte%5D=2020-01-01&page={n // 100}",
            ],
            headers={"Authorization": "Token fake-clientify-sandbox-token"},
        ),
        Plan(
            "facturadirecta",
            "clients",
            {"clients": n, "seed": 1},
            [
                "/api/clients.xml?limit=250",
                f"/api/clients.xml?limit=250&start={n // 2}",
                f"/api/clients.xml?limit=250&start={n - 250}",
                "/api/clients.xml?limit=250&term=garcia",
            ],
            auth=("fake-facturadirecta-sandbox-token", "x"),
        ),
    ]


def measure(records: int, runs: int) -> tuple[list[Row], dict[str, float]]:
    process, urls = _start()
    rows: list[Row] = []
    seeding: dict[str, float] = {}
    try:
        with httpx.Client(timeout=600, verify=False) as http:
            for plan in _plans(records):
                url = urls[plan.api]
                began = time.perf_counter()
                http.post(f"{url}/_sandbox/seed", json=plan.seed).raise_for_status()
                seeding[f"{plan.api} {plan.resource}"] = time.perf_counter() - began
                for path in plan.paths:

                    def call(target: str = f"{url}{path}", p: Plan = plan) -> httpx.Response:
                        return http.get(target, auth=p.auth, headers=p.headers)

                    median, p95 = _time(call, runs)
                    rows.append(Row(plan.api, f"GET {path}", median, p95))
                http.post(f"{url}/_sandbox/reset").raise_for_status()
    finally:
        process.terminate()
        process.wait(timeout=10)
    return rows, seeding


def table(rows: list[Row], seeding: dict[str, float], records: int, runs: int) -> str:
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.machine()} / Python {platform.python_version()} "
        f"({os.cpu_count()} CPUs), in-memory database, {records:,} records per resource, "
        f"{runs} runs per request over real HTTP (`python -m include.sandbox.measure`).",
        "",
        "| API | Request | Median | p95 |",
        "|---|---|---|---|",
        *(f"| {r.api} | `{r.request}` | {r.median_ms:.1f} ms | {r.p95_ms:.1f} ms |" for r in rows),
        "",
        "| Seeding through `POST /_sandbox/seed` | Time |",
        "|---|---|",
        *(
            f"| {records:,} {name} (generator + insert) | {seconds:.1f} s |"
            for name, seconds in seeding.items()
        ),
    ]
    return "\n".join(lines)


def write(path: Path, text: str) -> None:
    content = path.read_text()
    start, end = content.index(BEGIN) + len(BEGIN), content.index(END)
    path.write_text(content[:start] + "\n" + text + "\n" + content[end:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--write", type=Path, help="markdown file with measure markers to update")
    args = parser.parse_args()
    rows, seeding = measure(args.records, args.runs)
    text = table(rows, seeding, args.records, args.runs)
    print(text)
    if args.write:
        write(args.write, text)


if __name__ == "__main__":
    main()
