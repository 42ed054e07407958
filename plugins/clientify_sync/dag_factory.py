"""Build the sync DAGs: one per invoicing platform and entity, from the integration config.

Each DAG is seven thin tasks around one engine job (``clientify_sync.engine.job.SyncJob``)::

    read_watermark ─┬─> extract_invoicing ─┬─> reconcile ─> apply_clientify ─> apply_invoicing ─> commit
                    └─> extract_clientify ─┘

- Only small values cross XCom (counts, ids, the watermark string, the run report); the records are
  staged in the state ledger by the engine, keyed by the DAG run's ``run_id``, so every task opens
  the job afresh and a failed task can be retried alone.
- Hooks, clients and the engine are created inside the tasks; building a DAG does no I/O.
- The watermark: ``read_watermark`` pulls what ``commit`` pushed in the latest earlier run of the
  same DAG; ``commit`` (default trigger rule: only when everything upstream succeeded) pushes, as its
  last action, the ``watermark_out`` of the engine's run report. The engine alone applies the rules
  (:mod:`clientify_sync.watermark`); the DAG only carries the value between runs.
- Ordering: contacts and products run on the platform's clock and publish an Asset from ``commit``;
  estimates are scheduled on those two assets alone (a run is created once both were updated by a
  successful commit since the last estimates run), and their first task, ``wait_for_prerequisites``,
  waits (poking) while any contacts or products run of the platform is
  queued or running. So an estimates run never syncs while its customers or products are being
  synced, and it sees the latest completed cycle. See docs/airflow.md, "Ordering".
- ``AuthenticationError`` (and configuration errors) fail the task with ``AirflowFailException``:
  retrying with the same credentials cannot succeed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, TypeAlias, TypedDict, TypeVar, cast

import pendulum
from airflow.sdk import (
    DAG,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
    Param,
    get_current_context,
    task,
)
from airflow.sdk.exceptions import AirflowFailException, AirflowNotFoundException, AirflowSkipException

from clientify_sync import watermark as wm
from clientify_sync.assets import inbox_asset, is_inbox_asset, sync_asset
from clientify_sync.engine.vocabulary import Entity, Mode, Platform
from clientify_sync.integrations import IntegrationsConfig, PlatformConfig, load_integrations

if TYPE_CHECKING:
    from airflow.sdk import Asset, XComArg
    from airflow.sdk.definitions.dag import ScheduleArg

    from clientify_sync.api.protocols import CrmClient, InvoicingClient
    from clientify_sync.engine.job import SyncJob
    from clientify_sync.engine.ledger import Ledger
    from clientify_sync.engine.vocabulary import JobSpec
    from clientify_sync.hooks.clientify import ClientifyHook
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook
    from clientify_sync.hooks.facturama import FacturamaHook

log = logging.getLogger(__name__)

START_DATE = pendulum.datetime(2026, 1, 1, tz="UTC")
DAGRUN_TIMEOUT = timedelta(hours=3)
WATERMARK_KEY = "watermark"
COMMIT_TASK_ID = "commit"
TAGS = ("clientify-sync",)
# Estimates reference customers and products: they wait for both of these of the same platform.
ESTIMATE_PREREQUISITES = (Entity.CONTACTS, Entity.PRODUCTS)

_PLATFORM_LABELS = {
    Platform.FACTURAMA: "Facturama (Mexico, JSON)",
    Platform.FACTURADIRECTA: "FacturaDirecta (Spain, XML)",
}
_ENTITY_LABELS = {
    Entity.CONTACTS: "contacts and companies",
    Entity.PRODUCTS: "products",
    Entity.ESTIMATES: "estimates (Clientify budgets)",
}

# What crosses XCom between the tasks. A step summary is the engine's, made plain JSON by ``_small``
# (its keys differ by step and entity; the tasks read only ``max_modified`` and ``watermark_out``).
JSONValue: TypeAlias = "str | int | float | bool | None | list[JSONValue] | dict[str, JSONValue]"
StepSummary: TypeAlias = "dict[str, JSONValue]"


class WatermarkRead(TypedDict):
    """What ``read_watermark`` returns: where this run reads from (None in full mode), and the stored value."""

    watermark: str | None
    stored: str | None


# The API hooks ``_hook`` builds (created inside tasks: only imported for type checking here).
HookT = TypeVar("HookT", "FacturamaHook", "FacturaDirectaHook", "ClientifyHook")
# What ``_opened`` yields: the run's spec, its ledger, and the invoicing and Clientify clients.
Opened: TypeAlias = "tuple[JobSpec, Ledger, InvoicingClient, CrmClient]"


def sync_params() -> dict[str, Param]:
    """Return the Params every sync DAG takes (shown in the trigger form)."""
    return {
        "mode": Param(
            Mode.MODIFIED.value,
            type="string",
            enum=[mode.value for mode in (Mode.MODIFIED, Mode.FULL)],
            title="Mode",
            description=(
                "modified: only Clientify records changed since the last successful run's watermark "
                "(minus the lookback overlap). full: read everything and reset the watermark."
            ),
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Read, reconcile and plan, but write nothing to either API; the watermark is kept.",
        ),
    }


def build_dags(config: IntegrationsConfig | None = None) -> dict[str, DAG]:
    """Build every sync DAG of the enabled integrations.

    Args:
        config: the integration config; when omitted, the packaged defaults with the overrides of
            ``$CLIENTIFY_SYNC_INTEGRATIONS`` and the Variable ``clientify_sync_integrations`` (see
            :mod:`clientify_sync.integrations`).

    Returns:
        DAGs by ``dag_id`` (``{platform}_{entity}``), in config order.
    """
    if config is None:
        config = load_integrations()
        log.debug("Integration config from %s", " + ".join(config.sources))
    dags: dict[str, DAG] = {}
    for platform in config.enabled_platforms:
        for entity in Entity:
            dag = build_sync_dag(platform, entity, config)
            dags[dag.dag_id] = dag
    return dags


def build_schedule(platform: Platform | str, entity: Entity | str, config: IntegrationsConfig) -> ScheduleArg:
    """Return the schedule of one DAG: data intervals on the clock; estimates on both prerequisite assets.

    Estimates have no clock of their own: a clock tick would start them beside the contacts and
    products runs of the same tick (or match a stale event of the previous cycle), which is what
    ordering by assets is for. Their full resync is a manual trigger with ``mode=full``.
    """
    if entity == Entity.ESTIMATES:
        contacts, products = (sync_asset(platform, prerequisite) for prerequisite in ESTIMATE_PREREQUISITES)
        if config.webhooks:  # an estimate's own events wake it too; missing customers/products defer it
            return (contacts & products) | inbox_asset(platform, entity)
        return contacts & products
    # Each platform on its own clock, read in its country's timezone (business hours differ).
    settings = config.platform(platform)
    clock = CronDataIntervalTimetable(settings.schedule, timezone=settings.timezone)
    if config.webhooks:  # the clock or the inbox, whichever comes first; max_active_runs=1 coalesces
        return AssetOrTimeSchedule(timetable=clock, assets=inbox_asset(platform, entity))
    return clock


def run_mode(params: Mapping[str, object], triggering_assets: Iterable[Asset]) -> Mode:
    """A run woken by its inbox asset alone syncs what the events name (``Mode.EVENTS``); any other
    run (the clock, a manual trigger, the estimates' prerequisites) the mode of its params."""
    assets = list(triggering_assets)
    if assets and all(is_inbox_asset(asset) for asset in assets):
        return Mode.EVENTS
    return Mode(str(params["mode"]))


def prerequisite_dag_ids(platform: Platform | str) -> list[str]:
    """The DAGs whose runs an estimates run of ``platform`` must not overlap."""
    return [f"{Platform(platform).value}_{entity.value}" for entity in ESTIMATE_PREREQUISITES]


def build_sync_dag(platform: PlatformConfig, entity: Entity | str, config: IntegrationsConfig) -> DAG:
    """Build the ``{platform}_{entity}`` DAG."""
    entity = Entity(entity)
    dag_id = f"{platform.name.value}_{entity.value}"
    asset = sync_asset(platform.name, entity)
    with DAG(
        dag_id=dag_id,
        description=f"Sync {_ENTITY_LABELS[entity]} between {_PLATFORM_LABELS[platform.name]} and Clientify",
        doc_md=_doc_md(platform, entity, config),
        schedule=build_schedule(platform.name, entity, config),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        max_active_tasks=config.max_active_tasks,
        dagrun_timeout=DAGRUN_TIMEOUT,
        default_args={
            "owner": "clientify-sync",
            "retries": config.retries,
            "retry_delay": config.retry_delay,
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=30),
        },
        params=sync_params(),
        tags=[*TAGS, platform.name.value, entity.value],
    ) as dag:
        _wire_tasks(platform, entity, config, asset)
    return dag


def _wire_tasks(platform: PlatformConfig, entity: Entity, config: IntegrationsConfig, asset: Asset) -> None:
    """Declare the seven tasks of one sync DAG inside the active ``with DAG`` block.

    ``multiple_outputs=False`` everywhere: TaskFlow would otherwise infer it from the ``dict`` return
    annotations and push every key of a summary as its own XCom (a report key named ``watermark``
    would then collide with the real one).
    """

    @task(task_id="read_watermark", multiple_outputs=False)
    def read_watermark() -> WatermarkRead:
        """Pull the watermark the last successful run's ``commit`` pushed.

        Returns ``{"watermark": <what this run reads from, None in full mode>, "stored": <the stored
        value>}``: always a value, so the tasks that pull it never miss an XCom. ``stored`` lets a dry
        run push back exactly what it found.
        """
        context = get_current_context()
        params = context["params"]
        ti = context["ti"]
        if entity is Entity.ESTIMATES:
            _skip_if_unsupported(platform, entity, config)
        stored = None
        # Before the first successful run nothing was pushed: asking would only log "XCom not found".
        if ti.get_dr_count(dag_id=ti.dag_id, states=["success"]):
            # map_indexes=-1 matters: without it, Airflow 3.3 answers an include_prior_dates pull through
            # the "all map indexes" route, which returns the values of *every* earlier run as a list, in
            # no particular order. With it, the newest (by logical date) single value comes back.
            stored = ti.xcom_pull(
                task_ids=COMMIT_TASK_ID, key=WATERMARK_KEY, include_prior_dates=True, map_indexes=-1
            )
        try:
            stored = wm.normalise(stored)
        except (TypeError, ValueError) as exc:
            raise AirflowFailException(
                f"The stored watermark {stored!r} is not an ISO-8601 timestamp ({exc}). "
                "Run the DAG once with mode=full to reset it."
            ) from exc
        if Mode(params["mode"]) is Mode.FULL:
            log.info("Mode full: the stored watermark (%s) is ignored and will be reset by commit.", stored)
            return {"watermark": None, "stored": stored}
        if stored is None:
            log.info("No watermark yet: this run reads every Clientify record.")
        else:
            log.info(
                "Watermark %s (re-read from %s with the lookback overlap)",
                stored,
                wm.since(stored, config.lookback),
            )
        return {"watermark": stored, "stored": stored}

    @task(task_id="extract_invoicing", pool=platform.pool, multiple_outputs=False)
    def extract_invoicing() -> StepSummary:
        """Read the platform's records and stage them in the ledger."""
        with _sync_job(platform, entity, config) as job:
            return _small(job.extract_invoicing())

    @task(task_id="extract_clientify", pool=config.clientify_pool, multiple_outputs=False)
    def extract_clientify(start: WatermarkRead) -> StepSummary:
        """Read Clientify's records modified since the watermark (all of them when ``None``)."""
        with _sync_job(platform, entity, config) as job:
            return _small(job.extract_clientify(start["watermark"]))

    @task(task_id="reconcile", multiple_outputs=False)
    def reconcile(invoicing: StepSummary, clientify: StepSummary) -> StepSummary:
        """Match, merge and plan the writes on both sides (no API call)."""
        with _sync_job(platform, entity, config) as job:
            return _small(job.reconcile())

    @task(task_id="apply_clientify", pool=config.clientify_pool, multiple_outputs=False)
    def apply_clientify(plan: StepSummary) -> StepSummary:
        """Write the planned changes to Clientify (plan only in a dry run)."""
        with _sync_job(platform, entity, config) as job:
            return _small(job.apply_clientify())

    @task(task_id="apply_invoicing", pool=platform.pool, multiple_outputs=False)
    def apply_invoicing(clientify_outcome: StepSummary) -> StepSummary:
        """Write the planned changes to the invoicing platform (plan only in a dry run)."""
        with _sync_job(platform, entity, config) as job:
            return _small(job.apply_invoicing())

    @task(task_id=COMMIT_TASK_ID, outlets=[asset], multiple_outputs=False)
    def commit(start: WatermarkRead, clientify: StepSummary, invoicing_outcome: StepSummary) -> StepSummary:
        """Record the run, log its report and, last of all, push the report's ``watermark_out``.

        The engine gets the *stored* watermark, not the one this run read from (``None`` in full
        mode): its rules then give the value to store in every case, a dry run included (it keeps
        the stored one), so nothing here recomputes or second-guesses it.
        """
        context = get_current_context()
        params = context["params"]
        stored = start["stored"]
        with _sync_job(platform, entity, config) as job:
            # extract_clientify's summary: the highest Clientify ``modified`` read, an ISO string or None.
            seen_max = cast("str | None", clientify.get("max_modified"))
            report = _small(job.commit(previous_watermark=stored, seen_max=seen_max))
        from clientify_sync.engine.report import format_report_table
        from clientify_sync.hooks.state import StateLedgerHook

        log.info("Run report for %s:\n%s", context["dag"].dag_id, format_report_table(report))
        log.info("State ledger: %s", StateLedgerHook().describe())
        context["outlet_events"][asset].extra = {
            "run_id": context["run_id"],
            "mode": params["mode"],
            "dry_run": bool(params["dry_run"]),
        }
        new = report["watermark_out"]
        log.info(
            "Watermark %s -> %s (mode %s%s)",
            stored,
            new,
            params["mode"],
            ", dry run" if params["dry_run"] else "",
        )
        # Last action: once this is pushed, later runs start from it. A dry run pushes the stored value
        # back, so it counts as a successful run that left a watermark; ``None`` after a full run that
        # saw nothing is pushed too: it is the reset.
        context["ti"].xcom_push(key=WATERMARK_KEY, value=new)
        return report

    # Calling a task while declaring the DAG returns an XComArg; passed to a task, Airflow resolves it
    # to the upstream task's return value before the downstream task runs (``_pulled``, ``_summary``).
    start = read_watermark()
    if entity is Entity.ESTIMATES:
        _wait_for_prerequisites(platform, config) >> start
    invoicing_summary = extract_invoicing()
    clientify_summary = extract_clientify(_pulled(start))
    start >> invoicing_summary
    plan = reconcile(_summary(invoicing_summary), _summary(clientify_summary))
    clientify_outcome = apply_clientify(_summary(plan))
    invoicing_outcome = apply_invoicing(_summary(clientify_outcome))
    commit(_pulled(start), _summary(clientify_summary), _summary(invoicing_outcome))


def _pulled(start: XComArg) -> WatermarkRead:
    """``read_watermark``'s output as its downstream tasks receive it: the SDK types a task's output
    ``XComArg`` while the DAG is declared, and Airflow passes the pulled value in its place at run time."""
    return cast("WatermarkRead", start)


def _summary(output: XComArg) -> StepSummary:
    """A step's output as its downstream tasks receive it (see ``_pulled``)."""
    return cast("StepSummary", output)


def _skip_if_unsupported(platform: PlatformConfig, entity: Entity, config: IntegrationsConfig) -> None:
    """End the run green, once, when an API lacks a resource the entity needs (probed with one read).

    Raises:
        AirflowSkipException: every later task is skipped; the run succeeds and its report in the
            ledger says which API answered 404 where, and what to set.
    """
    from clientify_sync.engine.job import check_supported

    # Only the clients and the ledger: a whole SyncJob would also load the estimates' directory.
    with _opened(platform, entity, config) as (spec, ledger, invoicing, clientify):
        found = check_supported(spec, ledger, invoicing, clientify)
    if found:
        messages = "; ".join(item["message"] for item in found)
        log.warning("%s %s is not synced: %s", platform.name, entity, messages)
        raise AirflowSkipException(f"{platform.name} {entity} unsupported by the account: {messages}")


def _wait_for_prerequisites(platform: PlatformConfig, config: IntegrationsConfig) -> XComArg:
    """Declare the estimates gate: done when no contacts/products run of the platform is queued or running.

    Asked through the task SDK (``get_dr_count``), since tasks may not read the metadata database.
    Poke mode, holding one worker slot while it waits (minutes, at most two estimates DAGs): in
    reschedule mode Airflow 3.3 can fail the sensor when the executor's event for one poke arrives
    after the next poke was queued (apache/airflow#71172, fix PR #71194 open), which turns a wait
    into a retry.
    """
    dag_ids = prerequisite_dag_ids(platform.name)

    @task.sensor(
        task_id="wait_for_prerequisites",
        mode="poke",
        poke_interval=config.prerequisite_poke.total_seconds(),
        timeout=config.prerequisite_timeout.total_seconds(),
    )
    def wait_for_prerequisites() -> bool:
        """Wait while the customers or products of this platform are being synced."""
        ti = get_current_context()["ti"]
        busy = {dag_id: ti.get_dr_count(dag_id=dag_id, states=["queued", "running"]) for dag_id in dag_ids}
        going = {dag_id: count for dag_id, count in busy.items() if count}
        if going:
            log.info("Waiting for %s to finish before syncing estimates.", going)
            return False
        log.info("No run of %s is queued or running: estimates see their latest cycle.", ", ".join(dag_ids))
        return True

    return wait_for_prerequisites()


@contextmanager
def _sync_job(platform: PlatformConfig, entity: Entity, config: IntegrationsConfig) -> Iterator[SyncJob]:
    """Open the engine job of the current DAG run (see ``_opened``), and close everything after."""
    from clientify_sync.engine.job import SyncJob
    from clientify_sync.engine.vocabulary import SyncOptions

    options = SyncOptions(lookback=config.lookback, invoicing_wins=config.invoicing_wins,
                          rounding_adjustment=config.rounding_adjustment)  # fmt: skip
    with _opened(platform, entity, config) as (spec, ledger, invoicing, clientify):
        yield SyncJob(spec, invoicing=invoicing, clientify=clientify, ledger=ledger, options=options)


@contextmanager
def _opened(platform: PlatformConfig, entity: Entity, config: IntegrationsConfig) -> Iterator[Opened]:
    """Open the run's ledger and fresh API clients sharing the account budgets; close everything after.

    Yields:
        ``(spec, ledger, invoicing, clientify)``.

    Raises:
        AirflowFailException: an error a retry cannot fix (bad credentials, bad configuration,
            missing connection), so Airflow fails the task at once.
    """
    # Imported here: DAG parsing must not load the engine or the API clients.
    from clientify_sync.engine.ledger import Ledger
    from clientify_sync.engine.vocabulary import JobSpec
    from clientify_sync.errors import AuthenticationError, ConfigurationError, PlanLimitExceededError
    from clientify_sync.hooks.state import StateLedgerHook

    context = get_current_context()
    params = context["params"]
    spec = JobSpec(
        platform=platform.name,
        entity=entity,
        run_id=context["run_id"],
        mode=run_mode(params, context.get("triggering_asset_events") or ()),
        dry_run=bool(params["dry_run"]),
    )
    conn_ids = {platform.name.value: platform.conn_id, "clientify": config.clientify_conn_id}
    try:
        with ExitStack() as stack:
            ledger = Ledger.open(StateLedgerHook().get_url(), spec.platform.value, spec.entity.value)
            stack.callback(ledger.close)
            invoicing_hook, clientify_hook = _invoicing_hook(platform), _clientify_hook(config)
            for hook in (invoicing_hook, clientify_hook):
                stack.callback(hook.close)
                hook.share_budget(ledger.engine)  # one requests_per_minute for all tasks of the account
            invoicing, clientify = invoicing_hook.get_conn(), clientify_hook.get_conn()
            yield spec, ledger, invoicing, clientify
    except PlanLimitExceededError as exc:  # an AuthenticationError, but the credentials are fine
        conn_id = conn_ids.get(exc.api, platform.conn_id)
        raise AirflowFailException(
            f"The {exc.api} plan of Airflow connection '{conn_id}' caps what this run was creating "
            f"({exc.detail or exc}). Nothing more was written and the watermark was not advanced; not "
            "retrying, since every create would hit the same cap: raise the plan, or archive records, then "
            "run again."
        ) from exc
    except AuthenticationError as exc:
        api = getattr(exc, "api", None) or "the API"
        conn_id = conn_ids.get(api, f"{platform.conn_id} / {config.clientify_conn_id}")
        raise AirflowFailException(
            f"Authentication failed against {api} ({exc}). Check the credentials of Airflow "
            f"connection '{conn_id}'. Nothing more was written and the watermark was not advanced; "
            "not retrying, since the same credentials would fail again."
        ) from exc
    except ConfigurationError as exc:
        raise AirflowFailException(f"Configuration error: {exc}. Not retrying.") from exc
    except AirflowNotFoundException as exc:
        raise AirflowFailException(
            f"{exc}. Define the connection (see airflow_settings.yaml and docs/airflow.md). Not retrying."
        ) from exc


def _invoicing_hook(platform: PlatformConfig) -> FacturamaHook | FacturaDirectaHook:
    if platform.name is Platform.FACTURAMA:
        from clientify_sync.hooks.facturama import FacturamaHook

        return _hook(FacturamaHook, platform.conn_id)
    from clientify_sync.hooks.facturadirecta import FacturaDirectaHook

    return _hook(FacturaDirectaHook, platform.conn_id)


def _clientify_hook(config: IntegrationsConfig) -> ClientifyHook:
    from clientify_sync.hooks.clientify import ClientifyHook

    return _hook(ClientifyHook, config.clientify_conn_id)


def _hook(hook_class: type[HookT], conn_id: str) -> HookT:
    # Each hook's first parameter is its connection id (named by ``conn_name_attr``, Airflow's convention).
    return hook_class(conn_id)


def _small(summary: Mapping[str, object] | None) -> StepSummary:
    """Return a plain-JSON copy of an engine summary (what XCom stores, and nothing it could choke on)."""
    if summary is None:
        return {}
    plain: StepSummary = json.loads(json.dumps(summary, default=str))
    return plain


def _doc_md(platform: PlatformConfig, entity: Entity, config: IntegrationsConfig) -> str:
    prerequisites = ""
    schedule = f"`{platform.schedule}` ({platform.timezone}), with data intervals"
    if entity is Entity.ESTIMATES:
        schedule = f"after `{platform.name}_contacts` and `{platform.name}_products`"
        prerequisites = (
            f"\n**Runs after** `{platform.name}_contacts` and `{platform.name}_products`: once both of their "
            "assets were updated by a successful run; its first task waits while either is queued or running. "
            "Full resync: a manual trigger with `mode=full` (an asset-scheduled DAG cannot be backfilled).\n"
        )
    backfill = ""
    if entity is not Entity.ESTIMATES:
        backfill = (
            f", or backfill one interval: `airflow backfill create --dag-id {platform.name}_{entity} "
            '--from-date T --to-date T --reprocess-behavior completed --dag-run-conf \'{"mode": "full"}\'`'
        )
    return f"""\
### {_PLATFORM_LABELS[platform.name]} ⇄ Clientify: {_ENTITY_LABELS[entity]}

Two-way sync of {_ENTITY_LABELS[entity]} between {_PLATFORM_LABELS[platform.name]} (connection
`{platform.conn_id}`, pool `{platform.pool}`) and Clientify (connection `{config.clientify_conn_id}`,
pool `{config.clientify_pool}`). Schedule: {schedule}.
{prerequisites}
**Params**: `mode` = `modified` (changes since the watermark, re-read with a
{int(config.lookback.total_seconds() // 60)}-minute overlap) or `full` (everything; resets the watermark);
`dry_run` = plan only, write nothing, keep the watermark.

**Watermark**: the highest Clientify `modified` seen, ISO-8601 UTC, pushed by `commit` (XCom key
`watermark`) only when every task succeeded; a failed run never advances it. Publishes asset
`clientify-sync://{platform.name}/{entity}` when `commit` succeeds.

**Full resync**: trigger `{platform.name}_{entity}` with `{{"mode": "full"}}`{backfill}.
"""
