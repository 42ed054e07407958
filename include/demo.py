"""``make demo``: the whole sync, through Airflow, against a fresh sandbox, in about a minute.

1. Start the API sandbox (``python -m include.sandbox``) on free loopback ports, with a fresh SQLite
   file under ``$AIRFLOW_HOME/demo/``, and seed both invoicing platforms and Clientify with generated
   data (``POST /_sandbox/seed``; FacturaDirecta's into the store of the API the demo uses, and a share
   of each platform's customers already in the CRM, unlinked, matched by tax ID).
2. Prepare Airflow: ``AIRFLOW_HOME`` (``.airflow`` unless set), the metadata DB migrated (as
   ``airflow db migrate``), connections as ``AIRFLOW_CONN_*`` variables pointing at the sandbox, a
   fresh state ledger, the facturadirecta platform on the connection of the API the demo uses.
3. Run every DAG with ``dag.test()`` (tasks, XComs, params and watermarks exactly as in Airflow, no
   scheduler): ``mode=full``, per platform contacts, products, then estimates.
4. Edit records on both sides through the vendor APIs (a price and a product in Clientify, a
   customer e-mail and a product in each invoicing platform).
5. Run every DAG again with ``mode=modified`` and print the run reports of both platforms, then which
   FacturaDirecta API the runs called (the sandbox's request counts of each).

FacturaDirecta runs on its REST API (connection ``facturadirecta_rest``, extra ``api: rest``); the classic
XML API (``facturadirecta_default``) with ``--fd-api classic`` or ``DEMO_FD_API=classic``.

Exit status 0 when every run succeeded on the chosen API, 1 when a run failed (or FacturaDirecta's calls
went to the other API), 2 when a piece is missing. Task logs go to ``$AIRFLOW_HOME/demo/demo.log``.
After the demo, ``make airflow`` shows the runs in the UI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.sandbox.ports import free_ports as _free_ports

if TYPE_CHECKING:  # imported at run time once _configure_environment put plugins/ on the path
    from clientify_sync.engine.vocabulary import Mode

ROOT = Path(__file__).resolve().parent.parent
# The sandbox's three emulators, by the name its control API knows them by.
APIS = ("facturama", "clientify", "facturadirecta")
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
# FacturaDirecta's two APIs and the connection of airflow_settings.yaml the demo syncs each through.
FD_CONNECTIONS = {"rest": "facturadirecta_rest", "classic": "facturadirecta_default"}
FD_API_NAMES = {"rest": "REST API", "classic": "classic XML API"}
DEFAULT_FD_API = "rest"


def _configure_environment() -> Path:
    """Set what Airflow reads at import time (as the Makefile does); return AIRFLOW_HOME."""
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow"))).resolve()
    os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
    os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    os.environ.setdefault("AIRFLOW__CORE__PARALLELISM", "4")
    for path in (ROOT, ROOT / "plugins"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([str(ROOT), str(ROOT / "plugins"), *paths]))
    return home


def _missing_pieces() -> list[str]:
    """What the demo needs from the other parts of the project, and is not there."""
    import importlib

    needed = {
        "include.sandbox.__main__": "the API sandbox (include/sandbox)",
        "clientify_sync.engine.job": "the sync engine (plugins/clientify_sync/engine/job.py)",
        "clientify_sync.engine.report": "the run report (plugins/clientify_sync/engine/report.py)",
        "clientify_sync.hooks.facturama": "the Facturama hook",
        "clientify_sync.hooks.clientify": "the Clientify hook",
        "clientify_sync.hooks.facturadirecta": "the FacturaDirecta hook",
    }
    missing = []
    for module, what in needed.items():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing.append(f"{what}: {exc}")
    return missing


# -- sandbox -----------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    """A sandbox subprocess started by the demo."""

    urls: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def control(self, api: str, method: str, path: str, body: Any = None) -> Any:
        import httpx

        response = httpx.request(method, f"{self.urls[api]}/_sandbox/{path}", json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def writes(self, api: str) -> int:
        stats = self.control(api, "GET", "stats")
        return sum(row["count"] for row in stats["by_route"] if row["method"] in WRITE_METHODS)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_sandbox(workdir: Path, timeout: float = 30.0) -> Sandbox:
    """Start ``python -m include.sandbox`` on free ports with a fresh database file; wait until it answers."""
    import httpx

    ports = dict(zip(APIS, _free_ports(len(APIS)), strict=True))
    db = workdir / "sandbox.db"
    for stale in workdir.glob("sandbox.db*"):
        stale.unlink()
    log_path = workdir / "sandbox.log"
    command = [sys.executable, "-m", "include.sandbox", "--host", "127.0.0.1", "--db", str(db)]
    for api, port in ports.items():
        command += [f"--{api}-port", str(port)]
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=os.environ.copy(), stdout=log, stderr=subprocess.STDOUT
        )
    sandbox = Sandbox({api: f"http://127.0.0.1:{port}" for api, port in ports.items()}, process, log_path)
    deadline = time.monotonic() + timeout
    for api in APIS:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the sandbox exited with {process.returncode}; see {log_path}")
            try:
                if httpx.get(f"{sandbox.urls[api]}/_sandbox/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                sandbox.stop()
                raise RuntimeError(f"the sandbox did not answer within {timeout:.0f}s; see {log_path}")
            time.sleep(0.1)
    return sandbox


def seed(sandbox: Sandbox, size: int, fd_api: str = DEFAULT_FD_API) -> dict[str, Any]:
    """Generated data: each platform's customers, products and estimates (FacturaDirecta's in the store
    of ``fd_api``: the sandbox keeps one per API); Clientify's own records, plus a share of each
    platform's customers already in the CRM (unlinked, matched by RFC or NIF)."""
    created = {
        "facturama": sandbox.control(
            "facturama",
            "POST",
            "seed",
            {"seed": 7, "clients": size, "products": size // 2, "estimates": size // 2},
        )["created"],
        "facturadirecta": sandbox.control(
            "facturadirecta",
            "POST",
            "seed",
            {"seed": 8, "clients": size, "products": size // 2, "estimates": size // 2, "target": fd_api},
        )["created"],
        "clientify": sandbox.control(
            "clientify",
            "POST",
            "seed",
            {
                "seed": 9,
                "overlap": [
                    {"platform": "facturama", "customers": size, "fraction": 0.3, "seed": 7},
                    {"platform": "facturadirecta", "customers": size, "fraction": 0.3, "seed": 8},
                ],
                "contacts": size // 3,
                "companies": size // 4,
                "products": size // 3,
            },
        )["created"],
    }
    return created


# -- Airflow -----------------------------------------------------------------------------------------


@dataclass
class RunResult:
    dag_id: str
    mode: Mode
    state: str
    seconds: float
    report: dict[str, Any] | None = None
    failed_tasks: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _output_to(log_path: Path) -> Iterator[None]:
    """Send everything written to fds 1 and 2 (Airflow's task logs) to a file for a while."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with log_path.open("a") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def prepare_airflow(workdir: Path, sandbox: Sandbox, log_path: Path, fd_api: str = DEFAULT_FD_API) -> None:
    """Migrate the metadata DB, point the connections (env vars) at the sandbox and a fresh ledger, and
    the facturadirecta platform at the connection of ``fd_api``."""
    import yaml

    ledger = workdir / "clientify_sync_state.db"
    for stale in workdir.glob("clientify_sync_state.db*"):
        stale.unlink()
    os.environ.update(connection_variables(sandbox, ledger))
    config_path = workdir / "integrations.yaml"
    config_path.write_text(yaml.safe_dump(demo_config(fd_api), sort_keys=False))
    os.environ["CLIENTIFY_SYNC_INTEGRATIONS"] = str(config_path)

    with _output_to(log_path):
        from airflow.utils import db

        db.upgradedb()


def connection_variables(sandbox: Sandbox, ledger: Path) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` values: airflow_settings.yaml's connections on the sandbox's ports (both
    FacturaDirecta connections on its one port, which serves both APIs), the ledger in ``ledger``."""
    from include.load_settings import connection_env

    hosts = {f"{api}_default": url for api, url in sandbox.urls.items()}
    hosts[FD_CONNECTIONS["rest"]] = sandbox.urls["facturadirecta"]
    env = connection_env(ROOT / "airflow_settings.yaml", hosts=hosts)
    env["AIRFLOW_CONN_CLIENTIFY_SYNC_STATE"] = json.dumps(
        {"conn_type": "generic", "extra": {"url": f"sqlite:///{ledger}"}}
    )
    return env


def demo_config(fd_api: str) -> dict[str, Any]:
    """The shipped example config with a short retry delay (a failure ends the demo quickly) and the
    facturadirecta platform on the connection of ``fd_api``."""
    import yaml

    config: dict[str, Any] = yaml.safe_load((ROOT / "include" / "integrations.yaml").read_text())
    config["retry_delay_minutes"] = 0.05
    config["integrations"]["facturadirecta"]["conn_id"] = FD_CONNECTIONS[fd_api]
    return config


def load_dags() -> dict[str, Any]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(ROOT / "dags"))
    if bag.import_errors:
        raise RuntimeError(f"DAG import errors: {bag.import_errors}")
    return bag.dags


def run_dag(dag: Any, mode: Mode, log_path: Path) -> RunResult:
    """One ``dag.test()`` run; the conf names every param (dag.test keeps values on the DAG object)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    started = time.monotonic()
    with _output_to(log_path):
        dag_run = dag.test(run_conf={"mode": mode.value, "dry_run": False})
    with create_session() as session:
        xcom = session.scalar(
            select(XComModel).where(
                XComModel.dag_id == dag.dag_id,
                XComModel.run_id == dag_run.run_id,
                XComModel.task_id == "commit",
                XComModel.key == "return_value",
            )
        )
        failed = [
            ti.task_id
            for ti in dag_run.get_task_instances(session=session)
            if str(ti.state) in ("failed", "upstream_failed", "up_for_retry")
        ]
        report = XComModel.deserialize_value(xcom) if xcom is not None else None
    return RunResult(dag.dag_id, mode, str(dag_run.state), time.monotonic() - started, report, failed)


# -- edits through the vendor APIs -------------------------------------------------------------------


def real_product(products: Iterable[dict[str, Any]], rounding_sku: str) -> dict[str, Any]:
    """The first Clientify product the sync carries: it has a SKU and is not the product our rounding
    lines reference (the product sync skips that one, so an edit of it would show nothing)."""
    for product in products:
        sku = str(product.get("sku") or "").strip()
        if sku and sku.upper() != rounding_sku.upper():
            return product
    raise LookupError(f"no Clientify product with a SKU other than {rounding_sku}")


def make_edits(sandbox: Sandbox, fd_api: str = DEFAULT_FD_API) -> list[str]:
    """Change records on both sides through the APIs, with the project's own clients. Only record ids
    and the demo's own values are printed, never a customer's data."""
    from clientify_sync.engine.documents import RoundingPolicy
    from clientify_sync.engine.mapping import without_empty_strings
    from clientify_sync.hooks.clientify import ClientifyHook
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from clientify_sync.hooks.facturama import FacturamaHook

    done = []
    with ClientifyHook().get_conn() as clientify:
        product = real_product(clientify.products.iter_records(), RoundingPolicy().sku)
        clientify.products.update(product["id"], {"price": "7000.00"})
        done.append(f"Clientify: product {product['sku']} price {product.get('price')} -> 7000.00")
        clientify.products.create({"name": "Consultoría (demo)", "sku": "DEMO-CONS-1", "price": "1200.50"})
        done.append("Clientify: new product DEMO-CONS-1")
    with FacturamaHook().get_conn() as facturama:
        client = next(c for c in facturama.clients.iter_records() if c.get("Email"))
        # Read-modify-write as Facturama's own MCP server does it: "" values are refused on a PUT.
        record = without_empty_strings(facturama.clients.get(client["Id"]))
        record["Email"] = "facturacion.demo@example.mx"
        facturama.clients.update(client["Id"], record)
        done.append(f"Facturama: client {client['Id']} e-mail -> facturacion.demo@example.mx")
        facturama.products.create(
            {
                "Unit": "Servicio",
                "UnitCode": "E48",
                "IdentificationNumber": "DEMO-WEB-1",
                "Name": "Sitio web (demo)",
                "Description": "Sitio web (demo)",
                "Price": 6500.0,
                "CodeProdServ": "43232408",
                "TaxObject": "02",  # CFDI 4.0: taxed
                "Taxes": [{"Name": "IVA", "Rate": 0.16, "IsRetention": False, "IsFederalTax": True}],
            }
        )
        done.append("Facturama: new product DEMO-WEB-1")
    with FacturaDirectaHook(FD_CONNECTIONS[fd_api]).get_conn() as facturadirecta:
        edit = _edit_facturadirecta_rest if fd_api == "rest" else _edit_facturadirecta_classic
        done += [f"FacturaDirecta ({FD_API_NAMES[fd_api]}): {line}" for line in edit(facturadirecta)]
    return done


def _edit_facturadirecta_rest(facturadirecta: Any) -> list[str]:
    """A contact's e-mail and a new product on the REST API. Its PUT replaces the whole record, so the
    contact is read, changed and sent back whole, without ``title`` (server-computed, §8)."""
    contact = next(iter(facturadirecta.clients.iter_records()))
    record = facturadirecta.clients.get(contact["content"]["uuid"])
    main = {k: v for k, v in record["content"]["main"].items() if k != "title"}
    main["email"] = "administracion.demo@example.es"
    body = {"content": {"type": "contact", "main": main}, "tags": list(record.get("tags") or [])}
    facturadirecta.clients.update(record["content"]["uuid"], body)
    facturadirecta.products.create(
        {
            "content": {
                "type": "product",
                "main": {
                    "name": "Mantenimiento (demo)",
                    "sku": "DEMO-MANT-1",
                    "currency": "EUR",
                    "sales": {  # a sales product needs its taxes and account (§8)
                        "price": 90.0,
                        "tax": ["S_IVA_21"],
                        "account": "7000000",
                        "description": "Mantenimiento (demo)",
                    },
                },
            }
        },
        natural_key="DEMO-MANT-1",
    )
    return [
        f"contact {record['content']['uuid']} e-mail -> administracion.demo@example.es",
        "new product DEMO-MANT-1",
    ]


def _edit_facturadirecta_classic(facturadirecta: Any) -> list[str]:
    """A client's e-mail and a new product on the classic XML API (partial updates)."""
    client = next(iter(facturadirecta.clients.iter_records()))
    facturadirecta.clients.update(client["id"], {"email": "administracion.demo@example.es"})
    facturadirecta.products.create(
        {
            "name": "Mantenimiento (demo)",
            "description": "Mantenimiento (demo)",
            "price": "90.00",
            "productCode": "DEMO-MANT-1",
        }  # fmt: skip
    )
    return [f"client {client['id']} e-mail -> administracion.demo@example.es", "new product DEMO-MANT-1"]


# -- which FacturaDirecta API ran -------------------------------------------------------------------


def is_rest_route(route: str) -> bool:
    """Whether a route of the sandbox's request stats is the REST API's: the classic and the REST API
    share FacturaDirecta's port (and ``/api``), the REST API's routes all name the company."""
    from include.sandbox.fd_rest_app import is_rest_path

    return route.startswith("/api/{company_id}") or is_rest_path(route)


def fd_api_calls(sandbox: Sandbox) -> dict[str, int]:
    """Requests FacturaDirecta's port answered since the sandbox started, per API (``rest``, ``classic``)."""
    calls = dict.fromkeys(FD_CONNECTIONS, 0)
    for row in sandbox.control("facturadirecta", "GET", "stats")["by_route"]:
        calls["rest" if is_rest_route(row["route"]) else "classic"] += row["count"]
    return calls


def fd_api_line(fd_api: str, calls: dict[str, int]) -> tuple[str, bool]:
    """The summary's line on the API FacturaDirecta ran on, and whether only that API was called."""
    other = next(api for api in FD_CONNECTIONS if api != fd_api)
    line = (
        f"FacturaDirecta API: {FD_API_NAMES[fd_api]} (connection {FD_CONNECTIONS[fd_api]}): "
        f"{calls[fd_api]} requests to it, {calls[other]} to the {FD_API_NAMES[other]}"
    )
    return line, calls[fd_api] > 0 and calls[other] == 0


# -- output ------------------------------------------------------------------------------------------


def _counts(report: dict[str, Any] | None) -> str:
    if not report:
        return "-"
    parts = []
    for direction, outcomes in sorted((report.get("counts") or {}).items()):
        arrow = "→CRM" if direction.startswith("invoicing") else "CRM→"
        parts.append(f"{arrow} " + ",".join(f"{k}={v}" for k, v in sorted(outcomes.items())))
    parts.append(f"unchanged={report.get('unchanged', 0)}")
    return "; ".join(parts)


def print_summary(results: list[RunResult]) -> None:
    from clientify_sync.watermark import normalise

    print(f"\n{'DAG':<26} {'mode':<9} {'state':<8} {'secs':>5}  {'watermark (UTC)':<28} counts")
    for r in results:
        watermark = normalise((r.report or {}).get("watermark_out")) or "-"
        print(
            f"{r.dag_id:<26} {r.mode:<9} {r.state:<8} {r.seconds:5.1f}  {watermark:<28} {_counts(r.report)}"
        )
        if r.failed_tasks:
            print(f"{'':<26} failed tasks: {', '.join(r.failed_tasks)}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=12, help="customers seeded per platform (default 12)")
    parser.add_argument("--keep-sandbox", action="store_true", help="leave the sandbox running at the end")
    parser.add_argument(
        "--fd-api", choices=sorted(FD_CONNECTIONS), default=os.environ.get("DEMO_FD_API") or DEFAULT_FD_API,
        help=f"FacturaDirecta's API (default: $DEMO_FD_API, else {DEFAULT_FD_API})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.fd_api not in FD_CONNECTIONS:  # argparse checks choices on the command line, not defaults
        parser.error(f"DEMO_FD_API={args.fd_api!r}: expected one of {', '.join(sorted(FD_CONNECTIONS))}")

    home = _configure_environment()
    from clientify_sync.engine.vocabulary import Entity, Mode, Platform

    workdir = home / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "demo.log"
    log_path.write_text("")
    print(f"clientify-sync demo · AIRFLOW_HOME={home} · task logs: {log_path}")
    print(f"FacturaDirecta on its {FD_API_NAMES[args.fd_api]} (connection {FD_CONNECTIONS[args.fd_api]})")

    missing = _missing_pieces()
    if missing:
        print("Cannot run the demo; missing:", *(f"  - {m}" for m in missing), sep="\n", file=sys.stderr)
        return 2

    sandbox = start_sandbox(workdir)
    results: list[RunResult] = []
    try:
        print("Sandbox:", ", ".join(f"{api} {url}" for api, url in sandbox.urls.items()))
        created = seed(sandbox, args.size, args.fd_api)
        print("Seeded:", "; ".join(f"{api} {counts}" for api, counts in created.items()))
        prepare_airflow(workdir, sandbox, log_path, args.fd_api)
        with _output_to(log_path):
            dags = load_dags()
        print(f"DAGs: {', '.join(sorted(dags))}")

        for mode in (Mode.FULL, Mode.MODIFIED):
            if mode is Mode.MODIFIED:
                print("\nEdits through the APIs:")
                with _output_to(log_path):  # the clients' own log lines (rate limits) go with the task logs
                    edits = make_edits(sandbox, args.fd_api)
                for line in edits:
                    print(f"  - {line}")
            print(f"\n== {mode} sync: per platform contacts, products, then estimates ==")
            for platform in Platform:
                for entity in Entity:  # dependencies first: contacts, products, then estimates
                    dag_id = f"{platform.value}_{entity.value}"
                    if dag_id not in dags:
                        continue
                    result = run_dag(dags[dag_id], mode, log_path)
                    results.append(result)
                    print(
                        f"  {dag_id:<26} {result.state:<8} {result.seconds:5.1f}s  {_counts(result.report)}"
                    )
                    if result.state != "success":
                        print(f"    failed tasks: {', '.join(result.failed_tasks)} (see {log_path})")

        from clientify_sync.engine.report import format_report_table

        print("\n== Reports of the modified runs ==")
        for result in results:
            if result.mode is Mode.MODIFIED and result.report:
                print(f"\n-- {result.dag_id} ({result.report.get('run_id')}) --")
                print(format_report_table(result.report))
        print_summary(results)
        api_line, api_ok = fd_api_line(args.fd_api, fd_api_calls(sandbox))
        print(f"\n{api_line}")
    except Exception as exc:  # the demo reports any failure and exits non-zero
        print(f"\nDemo failed: {type(exc).__name__}: {exc} (task logs: {log_path}, sandbox log: {sandbox.log_path})",
              file=sys.stderr)  # fmt: skip
        return 1
    finally:
        if args.keep_sandbox:
            print(f"\nSandbox left running (pid {sandbox.process.pid}): " + ", ".join(sandbox.urls.values()))
        else:
            sandbox.stop()

    failed = [r.dag_id + f" ({r.mode})" for r in results if r.state != "success"]
    if failed:
        print(f"\nFAILED runs: {', '.join(failed)}; task logs in {log_path}", file=sys.stderr)
        return 1
    if not api_ok:
        print(f"\nFacturaDirecta did not run on the {FD_API_NAMES[args.fd_api]} alone", file=sys.stderr)
        return 1
    print(f"\nAll {len(results)} runs succeeded (FacturaDirecta on its {FD_API_NAMES[args.fd_api]}).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
