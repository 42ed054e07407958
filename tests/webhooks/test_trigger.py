"""``InboxTrigger``: fires on new pending rows once a burst is quiet (or waited long), never twice for
the same rows, remembers where it was; driven through ``run().__anext__()`` on a fake clock."""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from clientify_sync.engine.ledger import Ledger, write_transaction
from clientify_sync.engine.ledger.inbox import InboxEvent, add
from clientify_sync.engine.ledger.meta import Meta
from clientify_sync.engine.ledger.schema import inbox
from clientify_sync.webhooks.trigger import STATE_KEY, InboxTrigger
from tests.webhooks.conftest import FakeClock, drive

KW = {"integration": "facturama", "entity": "contacts", "poll_s": 1.0, "quiet_s": 10.0, "max_wait_s": 40.0}


def deliver(engine: Engine, *ids: int | str, integrations: tuple[str, ...] = ("facturama",)) -> None:
    with write_transaction(engine) as conn:
        for rid in ids:
            add(conn, InboxEvent("clientify", "contacts", "contact", str(rid), "contact.saved", f"k-{rid}", "0" * 64),
                integrations)  # fmt: skip


def max_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.max(inbox.c.id))) or 0)


def trigger(engine: Engine, clock: FakeClock, **overrides: Any) -> InboxTrigger:
    made = InboxTrigger(**{**KW, **overrides})
    made.engine = engine
    made.clock = clock
    return made


def fire(made: InboxTrigger) -> list[tuple[float, dict[str, Any]]]:
    return asyncio.run(drive(made))


def test_serialize_round_trip() -> None:
    original = InboxTrigger(**KW, resignal_s=120.0, state_conn_id="ledger_pg")
    classpath, kwargs = original.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert isinstance(rebuilt, InboxTrigger) and rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {**KW, "resignal_s": 120.0, "state_conn_id": "ledger_pg"}


@pytest.mark.parametrize("bad", [{"poll_s": 0}, {"quiet_s": 0.5}, {"max_wait_s": 5.0}])
def test_inconsistent_timings_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="poll_s"):
        InboxTrigger(**{**KW, **bad})


def test_fires_once_the_inbox_is_quiet_and_not_again_without_new_rows(engine: Engine) -> None:
    deliver(engine, 1, 2, 3)
    fired = fire(trigger(engine, FakeClock(stop_at=120)))
    assert [p for _, p in fired] == [
        {
            "integration": "facturama",
            "entity": "contacts",
            "max_id": max_id(engine),
            "new": 3,
            "reason": "quiet",
        }
    ]
    assert fired[0][0] == 10.0  # first seen at 0, nothing newer for quiet_s


def test_a_burst_that_never_ends_fires_at_max_wait_then_again_when_quiet(engine: Engine) -> None:
    arrivals = iter(range(100))

    def one_per_second(now: float) -> None:
        if now <= 55:
            deliver(engine, next(arrivals))

    deliver(engine, "first")
    fired = fire(trigger(engine, FakeClock(stop_at=200, on_tick=one_per_second)))
    assert [(t, p["reason"]) for t, p in fired] == [(40.0, "max_wait"), (65.0, "quiet")]
    assert fired[0][1]["new"] == 41 and fired[1][1]["max_id"] == max_id(engine)
    assert sum(p["new"] for _, p in fired) == 56  # every row signalled exactly once


def test_rows_of_another_scope_or_already_claimed_wake_nothing(engine: Engine) -> None:
    deliver(engine, 1, integrations=("facturadirecta",))
    deliver(engine, 2)
    Ledger(engine, "facturama", "contacts").inbox.claim("clock-run")  # the hourly run took it first
    assert fire(trigger(engine, FakeClock(stop_at=60))) == []


def test_the_position_survives_a_restart_in_the_ledger(engine: Engine) -> None:
    deliver(engine, 1, 2)
    [(_, first)] = fire(trigger(engine, FakeClock(stop_at=30)))
    assert Meta(engine).get("inbox:facturama:contacts:last_signalled_id") == str(first["max_id"])
    assert fire(trigger(engine, FakeClock(stop_at=30))) == []  # a restarted trigger: nothing new
    deliver(engine, 3)
    [(_, again)] = fire(trigger(engine, FakeClock(stop_at=30)))
    assert (again["new"], again["max_id"]) == (1, max_id(engine))


class FakeAssetStore:
    """What the triggerer injects as ``asset_state_store`` (Airflow 3.3): async get / set per key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = value


def test_the_position_lives_in_the_asset_state_store_when_there_is_one(engine: Engine) -> None:
    store = FakeAssetStore()
    deliver(engine, 1)
    made = trigger(engine, FakeClock(stop_at=30))
    made.asset_state_store = store  # type: ignore[assignment]
    [(_, payload)] = fire(made)
    assert store.values == {STATE_KEY: payload["max_id"]}
    assert Meta(engine).get("inbox:facturama:contacts:last_signalled_id") is None
    again = trigger(engine, FakeClock(stop_at=30))
    again.asset_state_store = store  # type: ignore[assignment]
    assert fire(again) == []


def test_signalled_rows_still_pending_are_signalled_again_after_resignal_s(engine: Engine) -> None:
    """A wake-up Airflow dropped (apache/airflow#56050) costs ``resignal_s``, not the clock's hour."""
    deliver(engine, 1)
    fired = fire(trigger(engine, FakeClock(stop_at=400), resignal_s=300.0))
    assert [(t, p["reason"], p["new"]) for t, p in fired] == [(10.0, "quiet", 1), (310.0, "resignal", 0)]
    Ledger(engine, "facturama", "contacts").inbox.claim("woken-run")
    assert fire(trigger(engine, FakeClock(stop_at=700), resignal_s=300.0)) == []


def test_resignal_zero_never_signals_twice(engine: Engine) -> None:
    deliver(engine, 1)
    assert [p["reason"] for _, p in fire(trigger(engine, FakeClock(stop_at=1000), resignal_s=0))] == ["quiet"]


def test_an_unreadable_ledger_delays_the_signal_without_ending_the_trigger(tmp_path) -> None:
    from clientify_sync.engine.ledger import create_ledger_engine, upgrade_schema

    engine = create_ledger_engine(f"sqlite:///{tmp_path}/late.db")  # no tables yet: every poll fails

    def schema_appears(now: float) -> None:
        if now == 5.0:
            upgrade_schema(engine)
            deliver(engine, 1)

    made = trigger(engine, FakeClock(stop_at=30, on_tick=schema_appears))
    made._load_state = lambda: asyncio.sleep(0, result=0)  # type: ignore[method-assign]
    assert [(t, p["new"]) for t, p in fire(made)] == [(15.0, 1)]
    engine.dispose()


def test_without_an_engine_it_opens_the_ledger_of_its_connection(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/from_conn.db"
    monkeypatch.setenv(
        "AIRFLOW_CONN_LEDGER_FOR_TRIGGER", json.dumps({"conn_type": "generic", "extra": {"url": url}})
    )
    made = InboxTrigger(**KW, state_conn_id="ledger_for_trigger")
    made.clock = FakeClock(stop_at=30, on_tick=lambda now: deliver(made.engine, 1) if now == 1.0 else None)  # type: ignore[arg-type]
    [(_, payload)] = fire(made)
    assert made.engine is not None and str(made.engine.url) == url and payload["new"] == 1
    made.engine.dispose()


def test_an_inbox_asset_watched_by_it_serializes_with_the_dag() -> None:
    """What the DAG wiring will declare: an inbox asset per DAG, watched by this trigger, on AssetOrTimeSchedule."""
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, AssetWatcher
    from airflow.serialization.serialized_objects import DagSerialization
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.trigger import CronTriggerTimetable
    from airflow.triggers.base import BaseEventTrigger

    watched = InboxTrigger(integration="facturama", entity="contacts")
    asset = Asset(name="facturama_contacts_inbox", uri="clientify-sync-inbox://facturama/contacts",
                  group="clientify_sync", watchers=[AssetWatcher(name="facturama_contacts_inbox", trigger=watched)])  # fmt: skip
    schedule = AssetOrTimeSchedule(timetable=CronTriggerTimetable("0 * * * *", timezone="UTC"), assets=asset)
    with DAG("facturama_contacts_wiring_check", schedule=schedule, max_active_runs=1) as dag:
        EmptyOperator(task_id="noop")
    serialized = json.dumps(DagSerialization.to_dict(dag))
    assert '"classpath": "clientify_sync.webhooks.trigger.InboxTrigger"' in serialized
    assert json.dumps(watched.serialize()[1])[1:-1] in serialized
    other = InboxTrigger(integration="facturadirecta", entity="contacts")
    assert BaseEventTrigger.hash(*watched.serialize()) != BaseEventTrigger.hash(*other.serialize())
