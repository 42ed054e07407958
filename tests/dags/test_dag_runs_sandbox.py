"""The DAGs end to end: ``dag.test()`` runs with the real engine, hooks and clients against the sandbox.

Connections come from ``AIRFLOW_CONN_*`` variables (the sandbox defaults of ``airflow_settings.yaml``,
repointed at the fixture's ports), the state ledger is a fresh SQLite file per test. The DAGs are
built from a test config identical to the shipped one except ``lookback_minutes: 0`` (so a
``modified`` run reads only what changed after the watermark) and ``retry_delay_minutes: 0`` (so an
unexpected failure retries at once instead of parking ``dag.test()`` for minutes).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import yaml

from clientify_sync.dag_factory import build_dags
from clientify_sync.integrations import DEFAULT_PATH, parse_integrations
from clientify_sync.watermark import normalise, parse_timestamp
from include.load_settings import connection_env
from tests.dags.conftest import (
    EXPECTED_DAG_IDS,
    ROOT,
    create_backfill,
    running_existing_dagrun,
    stored_watermarks,
    task_states,
    xcom_value,
)

WRITES = ("POST", "PUT", "PATCH", "DELETE")


@pytest.fixture(scope="module")
def dags():
    raw = yaml.safe_load(DEFAULT_PATH.read_text())
    raw.update(lookback_minutes=0, retry_delay_minutes=0)
    return build_dags(parse_integrations(raw))


@pytest.fixture
def world(clean_sandbox, monkeypatch, tmp_path, fresh_dags):
    """Sandbox reset, connections pointing at it, a fresh ledger, no DAG history."""
    sandbox = clean_sandbox
    hosts = {f"{api}_default": sandbox.url(api) for api in ("facturama", "clientify", "facturadirecta")}
    for name, value in connection_env(ROOT / "airflow_settings.yaml", hosts=hosts).items():
        monkeypatch.setenv(name, value)
    ledger = {"conn_type": "generic", "extra": {"url": f"sqlite:///{tmp_path}/ledger.db"}}
    monkeypatch.setenv("AIRFLOW_CONN_CLIENTIFY_SYNC_STATE", json.dumps(ledger))
    fresh_dags(*EXPECTED_DAG_IDS)
    return sandbox


def sync(dags, dag_id: str, **conf: Any):
    """One ``dag.test()`` run; every param named (dag.test keeps conf values on the DAG object)."""
    dag_run = dags[dag_id].test(run_conf={"mode": "modified", "dry_run": False, **conf})
    return dag_run, xcom_value(dag_run, "commit")


def writes(sandbox, api: str) -> int:
    return sum(row["count"] for row in sandbox.stats(api)["by_route"] if row["method"] in WRITES)


def api_client(api: str):
    """The project's own API client, built by its hook from the AIRFLOW_CONN_* variable."""
    from clientify_sync.hooks.clientify import ClientifyHook
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from clientify_sync.hooks.facturama import FacturamaHook

    hook = {"facturama": FacturamaHook, "clientify": ClientifyHook, "facturadirecta": FacturaDirectaHook}[api]
    return hook().get_conn()


def test_full_then_modified_carries_the_watermark(dags, world):
    world.seed("facturama", products=4, seed=11)
    world.seed("clientify", products=3, seed=12)

    first, report = sync(dags, "facturama_products", mode="full")
    assert first.state == "success", task_states(first)
    assert report["mode"] == "full" and report["watermark_in"] is None
    assert report["counts"]["invoicing→clientify"]["created"] == 4
    assert report["counts"]["clientify→invoicing"]["created"] == 3
    mark = xcom_value(first, "commit", key="watermark")
    assert mark is not None and mark == normalise(report["watermark_out"])
    assert mark.endswith("Z")  # Clientify answers in Europe/Madrid time; stored as UTC

    # One change in Clientify, then a modified run: it starts from the watermark and reads little.
    with api_client("clientify") as clientify:
        product = next(iter(clientify.products.iter_records()))
        clientify.products.update(product["id"], {"price": "7000.00"})
    second, report = sync(dags, "facturama_products")
    assert second.state == "success", task_states(second)
    assert xcom_value(second, "read_watermark")["watermark"] == mark
    extract = xcom_value(second, "extract_clientify")
    # Clientify was read from the watermark (lookback 0). That still includes the records the first
    # run itself wrote after reading (its creates and link fields); the engine recognises them.
    assert parse_timestamp(extract["since"]) == parse_timestamp(mark)
    assert report["watermark_in"] == mark
    assert report["counts"]["clientify→invoicing"]["updated"] == 1
    new_mark = xcom_value(second, "commit", key="watermark")
    assert parse_timestamp(new_mark) > parse_timestamp(mark)
    with api_client("facturama") as facturama:
        assert 7000 in {float(p["Price"]) for p in facturama.products.iter_records()}

    # Nothing changed: the next run reads (almost) nothing and keeps the watermark.
    third, report = sync(dags, "facturama_products")
    assert third.state == "success"
    assert xcom_value(third, "extract_clientify")["records"] <= 1
    assert xcom_value(third, "commit", key="watermark") == new_mark


@pytest.mark.parametrize(
    ("revoked", "failing_task"),
    [
        pytest.param("clientify_default", "extract_clientify", id="clientify"),
        pytest.param("facturama_default", "extract_invoicing", id="facturama"),
    ],
)
def test_wrong_credentials_fail_clearly_write_nothing_and_keep_the_watermark(
    dags, world, monkeypatch, capfd, revoked, failing_task
):
    world.seed("facturama", clients=3, seed=21)
    world.seed("clientify", contacts=2, seed=22, country="MX")
    first, _ = sync(dags, "facturama_contacts", mode="full")
    assert first.state == "success", task_states(first)
    mark = xcom_value(first, "commit", key="watermark")
    world.seed("clientify", contacts=2, seed=23, country="MX")  # new work a successful run would write
    world.reset_stats()
    capfd.readouterr()

    good = connection_env(ROOT / "airflow_settings.yaml")[f"AIRFLOW_CONN_{revoked.upper()}"]
    bad = json.loads(good) | {"password": "revoked-credentials", "host": world.url(revoked.split("_")[0])}
    monkeypatch.setenv(f"AIRFLOW_CONN_{revoked.upper()}", json.dumps(bad))
    failed, _ = sync(dags, "facturama_contacts")
    assert failed.state == "failed"
    states = task_states(failed)
    assert states[failing_task] == "failed"  # not up_for_retry: auth errors are not retried
    assert states["commit"] == "upstream_failed"
    output = "".join(capfd.readouterr())
    assert "Authentication failed against" in output
    assert f"Airflow connection '{revoked}'" in output
    for api in ("facturama", "clientify", "facturadirecta"):
        assert writes(world, api) == 0, api
    assert [w for _, w in stored_watermarks("facturama_contacts")] == [mark]

    # Credentials fixed: the next run starts from the last good watermark and does the work.
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{revoked.upper()}", json.dumps(json.loads(good) | {"host": bad["host"]})
    )
    fixed, report = sync(dags, "facturama_contacts")
    assert fixed.state == "success", task_states(fixed)
    assert report["watermark_in"] == mark
    assert report["counts"]["clientify→invoicing"]["created"] == 2


def test_dry_run_writes_nothing(dags, world):
    world.seed("facturama", clients=3, seed=31)
    world.seed("clientify", contacts=2, companies=1, seed=32, country="MX")
    world.reset_stats()

    dry, report = sync(dags, "facturama_contacts", mode="full", dry_run=True)
    assert dry.state == "success", task_states(dry)
    assert report["dry_run"] is True
    assert sum(report["counts"]["invoicing→clientify"].values()) == 3  # planned, not written
    for api in ("facturama", "clientify", "facturadirecta"):
        assert writes(world, api) == 0, api
    assert world.stats("clientify")["by_method"].get("GET", 0) > 0  # it did read
    # The watermark is not touched: the run pushes back exactly what it found (none yet).
    assert [w for _, w in stored_watermarks("facturama_contacts")] == [None]

    real, report = sync(dags, "facturama_contacts", mode="full")
    assert real.state == "success"
    assert writes(world, "clientify") > 0 and writes(world, "facturama") > 0


def test_backfill_with_mode_full(dags, world):
    """A backfill created like ``airflow backfill create --dag-run-conf '{"mode": "full"}'``, run in-process."""
    world.seed("facturadirecta", products=3, seed=41)
    world.seed("clientify", products=2, seed=42)
    latest, _ = sync(dags, "facturadirecta_products", dry_run=True)  # registers the DAG in the metadata DB
    assert latest.state == "success"

    # Every param named in the conf: the dry run above left dry_run=True on the in-process DAG object.
    conf = {"mode": "full", "dry_run": False}
    (backfill_run,) = create_backfill("facturadirecta_products", hours_ago=(2, 2), conf=conf)
    assert backfill_run["run_type"] == "backfill" and backfill_run["conf"] == conf
    with running_existing_dagrun(backfill_run["run_id"]):
        done, report = sync(dags, "facturadirecta_products", **conf)
    assert done.run_id == backfill_run["run_id"]
    assert done.state == "success", task_states(done)
    assert report["mode"] == "full" and report["dry_run"] is False
    assert report["run_id"] == backfill_run["run_id"]
    assert report["counts"]["invoicing→clientify"]["created"] == 3
    assert report["counts"]["clientify→invoicing"]["created"] == 2


def test_a_platform_in_order_contacts_products_then_estimates(dags, world):
    """What the asset schedule orders, run by hand: estimates find their customers and products linked."""
    world.seed("facturadirecta", clients=3, products=3, estimates=2, seed=51)
    reports = {}
    for entity in ("contacts", "products", "estimates"):
        dag_run, reports[entity] = sync(dags, f"facturadirecta_{entity}", mode="full")
        assert dag_run.state == "success", (entity, task_states(dag_run))
    assert reports["contacts"]["counts"]["invoicing→clientify"]["created"] == 3
    assert reports["products"]["counts"]["invoicing→clientify"]["created"] == 3
    assert reports["estimates"]["counts"]["invoicing→clientify"]["created"] == 2
    assert not reports["estimates"]["failures"]


def test_an_account_without_estimates_ends_the_run_green_with_the_reason(dags, world):
    """Facturama publishes no estimates API: the probe's 404 makes the run succeed, skip the sync
    steps and say why in its report, instead of failing every hour."""
    from clientify_sync.engine.ledger import Ledger

    world.config("facturama", estimates_available=False)
    dag_run = dags["facturama_estimates"].test(run_conf={"mode": "modified", "dry_run": False})
    states = task_states(dag_run)
    assert dag_run.state == "success", states
    assert states["wait_for_prerequisites"] == "success"
    assert {state for task, state in states.items() if task != "wait_for_prerequisites"} == {"skipped"}
    assert writes(world, "facturama") == writes(world, "clientify") == 0
    ledger_url = json.loads(os.environ["AIRFLOW_CONN_CLIENTIFY_SYNC_STATE"])["extra"]["url"]
    ledger = Ledger.open(ledger_url, "facturama", "estimates")
    report = ledger.runs.report(dag_run.run_id)
    ledger.close()
    (problem,) = report["unsupported"]
    assert problem["api"] == "facturama" and problem["message"].startswith(
        "unsupported: facturama answered 404 on"
    )
