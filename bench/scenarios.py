"""The measured runs: ours (1 full, 2 idle, 2b idle again, 3 after 1% edits) and the naive baseline.

Each scenario: count the lower bound's reads (outside the window), reset the sandbox's stats, then
under the RSS sampler and the clock run the three syncs per integration in DAG order, reading and
resetting the stats after each sync (per-entity calls; their sum is the scenario's). Edits happen
before the count and the reset, so they are never in the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from bench.baseline import NaiveSync
from bench.bounds import (
    Bound,
    Integration,
    definition_writes,
    definitions,
    read_bound,
    writes_from_edits,
    writes_from_report,
)
from bench.config import BenchConfig
from bench.edits import Edit, apply_edits, ledger_pairs, pick
from bench.engine import ENTITIES, ApiClients, EngineDriver
from bench.sampler import RssSampler, release_free_memory
from bench.sandbox import (
    Calls,
    SandboxHandle,
    applied_delay_s,
    read_calls,
    seed_world,
    set_latency,
    set_rest_rate,
)
from clientify_sync.engine.ledger import Ledger
from clientify_sync.engine.vocabulary import Entity, Mode, Platform

TITLES = {"settle": "unmeasured idle run before the profile switch", "1": "initial full sync", "2": "idle modified run", "2b": "second idle modified run",
          "1t": "initial full sync again on fresh data, FacturaDirecta REST at {profile}",
          "3": "modified run after 1% edits each side", "2r": "idle modified run, {profile} profile",
          "3r": "modified run after 1% edits each side, {profile} profile"}  # fmt: skip
REALISTIC_EDIT_OFFSET = 1_000_000  # 3r's edit values count from here (3's from 1)
CP = (Entity.CONTACTS, Entity.PRODUCTS)  # what the baseline syncs


@dataclass
class ScenarioResult:
    name: str
    mode: str
    calls: Calls
    rss: dict[str, Any]
    by_entity: dict[str, Calls] = field(default_factory=dict)
    bound: Bound | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    edits: list[Edit] = field(default_factory=list)
    outcomes: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0  # latency the sandbox added during the scenario (sum over requests)
    profile: str = "none"  # latency: "none" (the flat latency_ms only) or a profile name
    concurrency: int = 1

    @property
    def title(self) -> str:
        return TITLES[self.name].format(profile=self.profile)

    @property
    def floor_s(self) -> float:
        """The API floor: the latency the sandbox added (calls × per-call latency) ÷ concurrency, as if
        every call, reads included, ran ``concurrency`` at a time and cost nothing else."""
        return self.delay_s / max(self.concurrency, 1)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of the process that ran the sync (user + system) during the scenario."""
        return float(self.rss.get("cpu_s", {}).get("bench", 0.0))

    @property
    def unchanged(self) -> int:
        """Records the run found unchanged (sum over its syncs' reports)."""
        return sum(int(r.get("unchanged") or 0) for r in self.reports.values())

    def entity_calls(self, entities: tuple[Entity, ...]) -> Calls:
        """Calls of the given entities only (all integrations)."""
        total = Calls()
        for key, calls in self.by_entity.items():
            if Entity(key.split("/")[1]) in entities:
                total.add(calls)
        return total


def _sandbox_pid(handle: SandboxHandle) -> dict[str, int]:
    """The sandbox process to count CPU of: ours, or the one a parent started (``sandbox_pid``)."""
    pid = handle.process.pid if handle.process is not None else getattr(handle, "sandbox_pid", None)
    return {"sandbox": pid} if pid else {}


def by_name(results: list[ScenarioResult]) -> dict[str, ScenarioResult]:
    return {r.name: r for r in results}


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("counts", "unchanged", "matched", "reasons", "conflicts", "failures_total", "watermark_in",
            "watermark_out", "extract", "step_seconds")  # fmt: skip
    return {k: report.get(k) for k in keep} | {"failures": report.get("failures", [])[:5]}


# -- ours -------------------------------------------------------------------------------------------


@dataclass
class OurRuns:
    """Our side of the benchmark: one ledger, one driver per integration, scenarios in order."""

    handle: SandboxHandle
    cfg: BenchConfig
    clients: ApiClients
    ledger_url: str
    drivers: list[EngineDriver] = field(default_factory=list)

    measured: int = 0  # scenarios run so far on this ledger

    def __post_init__(self) -> None:
        self.drivers = [
            EngineDriver(p, self.clients, self.ledger_url, self.cfg.options) for p in self.cfg.platforms
        ]

    def _integration(self, driver: EngineDriver) -> Integration:
        api = self.cfg.api_of(driver.platform)
        client = self.clients.invoicing(driver.platform)
        positions = feed_positions(self.ledger_url, driver.platform) if api == "rest" else {}
        link_title = str(getattr(client.settings, "link_attribute", "") or "ID_CRM")
        return Integration(driver.platform, client.settings.page_size, dict(driver.watermarks), api, positions,
                           first_scenario=self.measured == 0, link_title=link_title)  # fmt: skip

    def scenario(
        self, name: str, mode: Mode, edits: list[Edit] | None = None, profile: str = "none"
    ) -> ScenarioResult:
        integrations = [self._integration(d) for d in self.drivers]
        self.measured += 1
        bound, windows = read_bound(self.handle, integrations, mode, timedelta(seconds=self.cfg.lookback_s))
        defined = definitions(self.handle)
        self.handle.reset_stats()
        applied_delay_s(self.handle)  # zero the counters: only this scenario's delays
        by_entity: dict[str, Calls] = {}
        reports: dict[str, dict[str, Any]] = {}
        release_free_memory()
        with RssSampler(cpu_of=_sandbox_pid(self.handle)) as rss:
            for driver in self.drivers:
                for entity in ENTITIES:
                    key = f"{driver.platform.value}/{entity.value}"
                    reports[key] = driver.sync(
                        entity, mode, after_step=lambda step, k=key: rss.mark(f"{k}/{step}")
                    )
                    by_entity[key] = read_calls(self.handle)
        delay_s = applied_delay_s(self.handle)
        total = Calls()
        for calls in by_entity.values():
            total.add(calls)
        if edits is None:
            for key, report in reports.items():
                platform, entity = key.split("/")
                writes_from_report(
                    bound, Platform(platform), Entity(entity), report, self.cfg.api_of(Platform(platform))
                )
        else:
            writes_from_edits(bound, edits)
        per_platform = {d.platform: Calls() for d in self.drivers}
        for key, calls in by_entity.items():
            per_platform[Platform(key.split("/")[0])].add(calls)
        definition_writes(bound, per_platform, defined)
        result = ScenarioResult(name, mode.value, total, rss.as_dict(), by_entity, bound, windows,
                                {k: _summary(r) for k, r in reports.items()}, edits or [], delay_s=delay_s,
                                profile=profile, concurrency=self.cfg.concurrency)  # fmt: skip
        _log(result)
        return result

    def edit(self, tag: str = "", first: int = 0) -> list[Edit]:
        """1% of each side, among the pairs the ledger links (outside any measured window); ``tag`` and
        ``first`` make a second round pick other records and write other values."""
        picks = []
        totals = {Entity.CONTACTS: self.cfg.clients, Entity.PRODUCTS: self.cfg.products,
                  Entity.ESTIMATES: self.cfg.estimates}  # fmt: skip
        linked: dict[tuple[str, str, str], list[str]] = {}  # (entity, crm type, crm id) -> integrations
        for driver in self.drivers:
            for entity in ENTITIES:
                pairs = ledger_pairs(self.ledger_url, driver.platform, entity)
                for p in pairs:
                    linked.setdefault((entity.value, p.crm_type, p.crm_id), []).append(driver.platform.value)
                seed = f"bench-edits{tag}:{self.cfg.seed}:{driver.platform.value}:{entity.value}"
                picks.append(
                    (driver.platform, entity, *pick(pairs, totals[entity], self.cfg.edit_fraction, seed))
                )
        edits = apply_edits(self.clients, picks, self.cfg.concurrency, first)
        return [replace(e, reach=tuple(linked[(e.entity.value, e.rtype, e.rid)])) if e.side == "clientify" else e
                for e in edits]  # fmt: skip


def feed_positions(ledger_url: str, platform: Platform) -> dict[Entity, str | None]:
    """Where each entity's last committed run read FacturaDirecta's activity feed to (the ledger's meta,
    ``activity:<integration>:<entity>``); None before the first."""
    ledger = Ledger.open(ledger_url, platform.value, Entity.CONTACTS.value)
    try:
        return {e: ledger.meta.get(f"activity:{platform.value}:{e.value}") or None for e in ENTITIES}
    finally:
        ledger.close()


def run_ours(handle: SandboxHandle, cfg: BenchConfig, ledger_url: str) -> list[ScenarioResult]:
    clients = ApiClients.for_sandbox(handle, cfg.concurrency, cfg.fd_api)
    try:
        runs = OurRuns(handle, cfg, clients, ledger_url)
        if cfg.fd_rate:
            return _full_at_rate(runs, cfg, ledger_url)
        results = [runs.scenario("1", Mode.FULL), runs.scenario("2", Mode.MODIFIED)]
        if re_read_echoes(results[-1]) or read_records(results[-1]):
            results.append(runs.scenario("2b", Mode.MODIFIED))
        edits = runs.edit()
        results.append(runs.scenario("3", Mode.MODIFIED, edits))
        if cfg.modified_profile != "none" and cfg.latency_profile == "none":
            results += _modified_at_profile(runs, cfg)
        return results
    finally:
        clients.close()


def _full_at_rate(runs: OurRuns, cfg: BenchConfig, ledger_url: str) -> list[ScenarioResult]:
    """The projection of the full sync's wall at a plan's rate, checked for real: (1) unthrottled, then
    the same seed again with the emulator enforcing ``cfg.fd_rate`` per minute (1t), on a fresh ledger
    with fresh clients (they remember custom-field definitions the reset removed)."""
    first = runs.scenario("1", Mode.FULL)
    seed_world(runs.handle, cfg)
    set_rest_rate(runs.handle, cfg.fd_rate)
    print(
        f"  reseeded; FacturaDirecta REST limited to {cfg.fd_rate} requests per minute (enforced)", flush=True
    )
    clients = ApiClients.for_sandbox(runs.handle, cfg.concurrency, cfg.fd_api)
    try:
        again = OurRuns(runs.handle, cfg, clients, ledger_url.replace("ledger.db", "ledger-rate.db"))
        return [first, again.scenario("1t", Mode.FULL, profile=f"{cfg.fd_rate} req/min")]
    finally:
        clients.close()
        set_rest_rate(runs.handle, 0)


def _modified_at_profile(runs: OurRuns, cfg: BenchConfig) -> list[ScenarioResult]:
    """The hourly runs at ``cfg.modified_profile`` (2r idle, 3r after new 1% edits). The full sync that
    built the state ran at the flat latency: at the realistic profile it would take hours at 100k.

    First an unmeasured idle run at the flat latency takes in what scenario 3 wrote (its echoes), so 2r
    is truly idle; the 3r edits are made at the flat latency too, then the profile is switched on."""
    handle, profile = runs.handle, cfg.modified_profile
    runs.scenario("settle", Mode.MODIFIED)
    set_latency(handle, 0, profile, cfg.latency_scale)
    print(f"  latency profile switched to {profile} (scale {cfg.latency_scale:g}) for 2r and 3r", flush=True)
    results = [runs.scenario("2r", Mode.MODIFIED, profile=profile)]
    set_latency(handle, cfg.latency_ms, "none")
    edits = runs.edit(tag=":r", first=REALISTIC_EDIT_OFFSET)
    set_latency(handle, 0, profile, cfg.latency_scale)
    results.append(runs.scenario("3r", Mode.MODIFIED, edits, profile=profile))
    set_latency(handle, cfg.latency_ms, "none")
    return results


def re_read_echoes(result: ScenarioResult) -> bool:
    """More than one page per Clientify resource: the run re-read records written before it."""
    return result.calls.get("clientify", "GET") > len(result.windows)


def read_records(result: ScenarioResult) -> bool:
    """FacturaDirecta REST records read one by one: the activity feed named the run's own earlier writes
    (the link write-backs of a full sync), so the next run shows the idle state."""
    return any(n and api == "facturadirecta" and method == "GET" and route.endswith("/{rid}")
               for (api, method, route, _), n in result.calls.routes.items())  # fmt: skip


# -- the naive baseline -----------------------------------------------------------------------------


def run_baseline(handle: SandboxHandle, cfg: BenchConfig) -> list[ScenarioResult]:
    """Fresh state (reset + the same seed), then the requested scenarios; (1) always runs, as the
    initial load the others start from, but is reported only when requested."""
    if not cfg.baseline_scenarios or Platform.FACTURAMA not in cfg.platforms:
        return []
    seed_world(handle, cfg)
    naive = NaiveSync(handle, cfg.concurrency)
    results = []
    try:
        for name in ("1", "2", "3"):
            if name != "1" and name not in cfg.baseline_scenarios:
                continue
            edits = _baseline_edits(handle, cfg, naive) if name == "3" else []
            handle.reset_stats()
            with RssSampler(cpu_of=_sandbox_pid(handle)) as rss:
                outcomes = naive.run()
            result = ScenarioResult(
                name, "naive", read_calls(handle), rss.as_dict(), edits=edits, outcomes=outcomes
            )
            _log(result, prefix="baseline")
            if name in cfg.baseline_scenarios:
                results.append(result)
    finally:
        naive.close()
    return results


def _baseline_edits(handle: SandboxHandle, cfg: BenchConfig, naive: NaiveSync) -> list[Edit]:
    """The same kind of 1% edits on the baseline's own pairs (contacts and products: it has no estimates)."""
    clients = ApiClients.for_sandbox(handle, cfg.concurrency)
    try:
        totals = {Entity.CONTACTS: cfg.clients, Entity.PRODUCTS: cfg.products}
        picks = [(Platform.FACTURAMA, entity,
                  *pick(naive.pairs.get(entity, []), totals[entity], cfg.edit_fraction, f"bench-edits:{cfg.seed}:{entity.value}"))
                 for entity in CP]  # fmt: skip
        return apply_edits(clients, picks, cfg.concurrency)
    finally:
        clients.close()


def _log(result: ScenarioResult, prefix: str = "ours") -> None:
    bound = f", lower bound {result.bound.sum()}" if result.bound else ""
    print(f"  {prefix} scenario {result.name} ({result.title}): {result.calls.sum()} calls{bound}, "
          f"{result.calls.sum(writes=True)} writes, {result.rss['wall_s']} s, peak {result.rss['peak_rss_mb']} MB{_peak_step(result)}, "
          f"CPU s {result.rss['cpu_s']}{_failures(result)}", flush=True)  # fmt: skip


def _peak_step(result: ScenarioResult) -> str:
    steps: dict[str, float] = result.rss.get("step_peak_rss_mb", {})
    return f" (in {max(steps, key=steps.__getitem__)})" if steps else ""


def _failures(result: ScenarioResult) -> str:
    failed = sum(int(r.get("failures_total") or 0) for r in result.reports.values())
    return f", {failed} records failed (see the reports)" if failed else ""
