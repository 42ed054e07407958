"""``make demo`` (include/demo.py): FacturaDirecta on its REST API unless told otherwise (issue 24), the
edits it makes through each API, and the Clientify price edit that must not land on the rounding product.

The pieces run against the test sandbox; the whole demo (``dag.test()`` runs, about a minute) runs once,
marked ``dagrun``, in its own process and ``AIRFLOW_HOME``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clientify_sync.api.facturadirecta import FacturaDirectaClient
from clientify_sync.api.facturadirecta_rest import FacturaDirectaRestClient
from clientify_sync.engine.documents import RoundingPolicy
from clientify_sync.hooks.clientify import ClientifyHook
from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
from include import demo

ROOT = Path(__file__).resolve().parent.parent
ROUNDING_SKU = RoundingPolicy().sku


def test_the_price_edit_skips_the_rounding_product_and_products_without_sku():
    products: list[dict[str, Any]] = [
        {"id": 1, "sku": ROUNDING_SKU.lower()},
        {"id": 2, "sku": ""},
        {"id": 3, "sku": "P-000003"},
    ]
    assert demo.real_product(products, ROUNDING_SKU)["id"] == 3
    with pytest.raises(LookupError):
        demo.real_product(products[:2], ROUNDING_SKU)


def test_the_demo_config_puts_facturadirecta_on_the_connection_of_the_chosen_api():
    rest, classic = demo.demo_config("rest"), demo.demo_config("classic")
    assert rest["integrations"]["facturadirecta"]["conn_id"] == "facturadirecta_rest"
    assert classic["integrations"]["facturadirecta"]["conn_id"] == "facturadirecta_default"
    assert rest["integrations"]["facturama"] == classic["integrations"]["facturama"]
    assert rest["integrations"]["facturama"]["conn_id"] == "facturama_default"


def test_request_routes_are_told_apart_by_api():
    assert demo.is_rest_route("/api/{company_id}/contacts")
    assert demo.is_rest_route("/api/profile")
    assert not demo.is_rest_route("/api/clients.xml")
    line, only = demo.fd_api_line("rest", {"rest": 5, "classic": 0})
    assert only and line.startswith("FacturaDirecta API: REST API (connection facturadirecta_rest)")
    assert demo.fd_api_line("rest", {"rest": 5, "classic": 1})[1] is False
    assert demo.fd_api_line("classic", {"rest": 0, "classic": 3})[1] is True


def _sandbox(handle: Any) -> demo.Sandbox:
    """The demo's view of the test sandbox (never stopped here: the session owns the process)."""
    return demo.Sandbox({api: handle.url(api) for api in demo.APIS}, handle.process, handle.log_path)


@pytest.mark.parametrize("fd_api", ["rest", "classic"])
def test_seed_and_edits_go_through_the_chosen_facturadirecta_api(
    clean_sandbox, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, fd_api: str
):
    sandbox = _sandbox(clean_sandbox)
    for name, value in demo.connection_variables(sandbox, tmp_path / "ledger.db").items():
        monkeypatch.setenv(name, value)
    clean_sandbox.reset_stats()
    created = demo.seed(sandbox, 6, fd_api)
    # The rounding product, as an estimates run creates it: the newest, so the first Clientify lists.
    with ClientifyHook().get_conn() as clientify:
        clientify.products.create({"name": "Ajuste de redondeo", "sku": ROUNDING_SKU, "price": "0.00"})
        assert next(iter(clientify.products.iter_records()))["sku"] == ROUNDING_SKU
    fd_keys = {"rest": {"rest_contacts", "rest_products", "rest_estimates"},
               "classic": {"clients", "products", "estimates"}}[fd_api]  # fmt: skip
    assert set(created["facturadirecta"]) == fd_keys and created["facturadirecta"]

    edits = demo.make_edits(sandbox, fd_api)

    with ClientifyHook().get_conn() as clientify:
        products = list(clientify.products.iter_records())
    by_sku = {p["sku"]: p for p in products if p.get("sku")}
    assert float(by_sku[ROUNDING_SKU]["price"]) == 0.0
    assert [sku for sku, p in by_sku.items() if float(p["price"]) == 7000.0] != []
    assert not any(ROUNDING_SKU in line for line in edits)
    api_name = demo.FD_API_NAMES[fd_api]
    assert [line for line in edits if line.startswith(f"FacturaDirecta ({api_name})")] != []

    with FacturaDirectaHook(demo.FD_CONNECTIONS[fd_api]).get_conn() as fd:
        if fd_api == "rest":
            assert isinstance(fd, FacturaDirectaRestClient)
            emails = [c["content"]["main"].get("email") for c in fd.clients.iter_records()]
            skus = [p["content"]["main"].get("sku") for p in fd.products.iter_records()]
        else:
            assert isinstance(fd, FacturaDirectaClient)
            emails = [c.get("email") for c in fd.clients.iter_records()]
            skus = [p.get("productCode") for p in fd.products.iter_records()]
    assert "administracion.demo@example.es" in emails and "DEMO-MANT-1" in skus
    calls = demo.fd_api_calls(sandbox)
    other = "classic" if fd_api == "rest" else "rest"
    assert calls[fd_api] > 0 and calls[other] == 0, calls


@pytest.mark.dagrun
def test_make_demo_runs_facturadirecta_on_the_rest_api(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_") and k != "DEMO_FD_API"}
    env |= {"AIRFLOW_HOME": str(tmp_path / "airflow")}
    done = subprocess.run([sys.executable, "-m", "include.demo", "--size", "6"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    out = done.stdout
    assert "FacturaDirecta on its REST API (connection facturadirecta_rest)" in out
    assert "FacturaDirecta (REST API): contact con_" in out
    api_line = next(line for line in out.splitlines() if line.startswith("FacturaDirecta API:"))
    assert api_line.startswith("FacturaDirecta API: REST API") and api_line.endswith(
        " 0 to the classic XML API"
    )
    runs = [line.split() for line in out.splitlines() if line.startswith("  facturadirecta_")]
    assert len(runs) == 6 and all(run[1] == "success" for run in runs), runs
    assert "All 12 runs succeeded (FacturaDirecta on its REST API)." in out
