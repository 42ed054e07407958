"""Issue 25's wiring: with ``webhooks: true`` each DAG runs on its clock or its inbox asset, and a run
woken by the inbox alone syncs in events mode."""

from __future__ import annotations

import json

from airflow.sdk import Asset, AssetOrTimeSchedule
from airflow.serialization.serialized_objects import DagSerialization

from clientify_sync.assets import inbox_asset, sync_asset
from clientify_sync.dag_factory import build_dags, build_schedule, run_mode
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.integrations import parse_integrations

ON = {"webhooks": True, "integrations": {"facturama": {"enabled": True}, "facturadirecta": {"enabled": True}}}


def test_webhooks_are_off_by_default_and_the_clock_alone_schedules():
    config = parse_integrations({})
    assert config.webhooks is False
    assert not isinstance(build_schedule(Platform.FACTURAMA, Entity.CONTACTS, config), AssetOrTimeSchedule)


def test_with_webhooks_every_dag_also_runs_on_its_inbox_asset():
    config = parse_integrations(ON)
    schedule = build_schedule(Platform.FACTURAMA, Entity.CONTACTS, config)
    assert isinstance(schedule, AssetOrTimeSchedule)
    dags = build_dags(config)
    assert set(dags) >= {"facturama_contacts", "facturadirecta_estimates"}
    for dag_id, dag in dags.items():
        platform, entity = dag_id.split("_", 1)
        serialized = json.dumps(DagSerialization.to_dict(dag))
        assert f'"{platform}_{entity}_inbox"' in serialized and "InboxTrigger" in serialized, dag_id
        assert dag.max_active_runs == 1  # events during a run coalesce into the next one


def test_a_run_woken_by_its_inbox_alone_is_an_events_run():
    params = {"mode": "modified"}
    assert run_mode(params, [inbox_asset("facturama", "contacts")]) is Mode.EVENTS
    # The estimates' prerequisites (or both at once) are an ordinary run; so are the clock and manual runs.
    assert (
        run_mode(params, [sync_asset("facturama", "contacts"), inbox_asset("facturama", "estimates")])
        is Mode.MODIFIED
    )
    assert run_mode(params, []) is Mode.MODIFIED
    assert run_mode({"mode": "full"}, [Asset(name="other", uri="s3://bucket/key")]) is Mode.FULL
