"""The webhook delivery worker: one thread with its own event loop, owned by the sandbox process.

Why a worker: a platform answers the API call that made a change first and delivers the webhook
afterwards, retrying on its own schedule, so deliveries must not run inside a request handler. The
emulators ``submit`` jobs; the worker sends each when it is due (``httpx``, no proxies, no redirects,
loopback targets only), applies the platform's retry rule and the test's rules (``webhook_rules``), and
keeps per-API counts and the last attempts for ``/_sandbox/webhooks``. ``server.serve`` starts and stops
it; a ``submit`` starts it too (in-process apps). The queue is bounded (``MAX_QUEUE`` jobs per process):
beyond it a job is refused and counted as ``overflow``. Jobs live in memory: a restart loses them.

Retry rules (``RetryPolicy``): Clientify counts any HTTP answer as delivered and retries only when
nothing answers, 5 times after 1, 2, 4, 8 and 16 s (realtime.md §1.1); FacturaDirecta retries any
non-2xx answer or no answer, 12 attempts in all, after 15 s, 45 s, 2 min, 5 min, 15 min, 45 min, 2 h, 5 h,
10 h, 18 h and 36 h (facturadirecta-rest-api.md §12). The waits are multiplied by the job's time scale
(config ``webhook_time_scale`` / ``rest_webhook_time_scale``) so tests run in seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from include.sandbox.webhook_rules import Rule, RuleSet
from include.sandbox.webhook_targets import target_problem

MAX_QUEUE = 10_000
MAX_CONCURRENCY = 32
LOG_SIZE = 500
STOP_TIMEOUT_S = 5.0

Prepared = tuple[bytes, dict[str, str]]


@dataclass(frozen=True)
class RetryPolicy:
    """When a platform counts a delivery as done, and the waits before each retry (seconds)."""

    name: str
    waits_s: tuple[float, ...]
    retry_answered: bool  # a non-success HTTP answer is retried (FacturaDirecta) or final (Clientify)
    any_answer_delivers: bool  # Clientify: 4xx/5xx count as delivered

    def delivered(self, status: int | None) -> bool:
        return status is not None and (self.any_answer_delivers or 200 <= status < 300)

    def retries(self, status: int | None, attempts: int) -> bool:
        """Whether another attempt follows ``attempts`` attempts that ended with ``status``."""
        if attempts > len(self.waits_s) or self.delivered(status):
            return False
        return status is None or self.retry_answered


CLIENTIFY_POLICY = RetryPolicy("clientify", (1, 2, 4, 8, 16), retry_answered=False, any_answer_delivers=True)
FACTURADIRECTA_POLICY = RetryPolicy(
    "facturadirecta",
    (15, 45, 120, 300, 900, 2700, 7200, 18000, 36000, 64800, 129600),
    retry_answered=True,
    any_answer_delivers=False,
)


@dataclass
class Outcome:
    status: int | None = None
    error: str | None = None


@dataclass
class Settlement:
    """What happened to one attempt (or to a job that was never sent), for the emulator's bookkeeping."""

    job: Job
    state: str  # retrying | delivered | failed | dropped | cancelled | refused | overflow
    outcome: Outcome | None
    next_in_s: float | None
    at: float  # epoch seconds


@dataclass
class Job:
    """One event to one target. ``prepare`` (run in a thread before each attempt) returns the body and
    headers, or None when the event must not be sent any more; ``settle`` records each result."""

    api: str
    event: str
    ref: str
    target: str
    policy: RetryPolicy
    scale: float
    timeout_s: float
    prepare: Callable[[], Prepared | None]
    settle: Callable[[Settlement], None] | None = None
    copy: bool = False
    attempts: int = 0
    delivery: int = 0
    generation: int = 0
    decided: bool = False

    def duplicate(self) -> Job:
        return Job(
            self.api,
            self.event,
            self.ref,
            self.target,
            self.policy,
            self.scale,
            self.timeout_s,
            self.prepare,
            None,
            copy=True,
            generation=self.generation,
            decided=True,
        )


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class _Held:
    rule: Rule
    until: float
    jobs: list[Job] = field(default_factory=list)


class WebhookHub:
    """Thread-safe: emulators submit from request threads; one worker thread sends."""

    def __init__(self, max_queue: int = MAX_QUEUE) -> None:
        self.max_queue = max_queue
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, Job]] = []
        self._order = itertools.count()
        self._ids = itertools.count(1)
        self._active: dict[str, set[int]] = {}
        self._held: dict[str, _Held] = {}
        self._rules: dict[str, RuleSet] = {}
        self._counts: dict[str, Counter[str]] = {}
        self._statuses: dict[str, Counter[str]] = {}
        self._log: dict[str, deque[dict[str, Any]]] = {}
        self._generation: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False

    # -- life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        with self._cond:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping = False
            ready = threading.Event()
            self._thread = threading.Thread(
                target=self._run, args=(ready,), name="sandbox-webhooks", daemon=True
            )
            self._thread.start()
        ready.wait(STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Cancel what is in flight and end the worker thread (queued jobs stay queued, unsent)."""
        with self._cond:
            self._stopping = True
            thread, loop, wake = self._thread, self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)
        if thread is not None:
            thread.join(STOP_TIMEOUT_S)
        with self._cond:
            self._thread = None

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _run(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main(ready))
        finally:
            loop.close()
            with self._cond:
                self._loop = self._wake = None

    # -- submitting -----------------------------------------------------------------------------------

    def submit(self, job: Job, delay_s: float = 0.0) -> int:
        """Queue a job's first attempt (returns its delivery number; 0 when refused for a full queue)."""
        with self._cond:
            job.delivery = next(self._ids)
            job.generation = self._generation.get(job.api, 0)
            counts = self._counts_of(job.api)
            if sum(len(a) for a in self._active.values()) >= self.max_queue:
                counts["overflow"] += 1
                self._note(job, "overflow", None, None)
                return 0
            counts["submitted"] += 1
            self._active.setdefault(job.api, set()).add(job.delivery)
            self._push(job, time.monotonic() + delay_s)
        self.start()
        self._nudge()
        return job.delivery

    def _push(self, job: Job, due: float) -> None:
        heapq.heappush(self._heap, (due, next(self._order), job))

    def _nudge(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    # -- control --------------------------------------------------------------------------------------

    def set_rules(self, api: str, rules: RuleSet) -> None:
        with self._cond:
            self._rules[api] = rules

    def rules(self, api: str) -> dict[str, Any]:
        with self._cond:
            return self._rules.get(api, RuleSet()).as_dict()

    def flush(self, api: str) -> int:
        """Release a held (reorder) batch now; returns how many jobs it held."""
        with self._cond:
            held = self._held.get(api)
            if held is not None:
                held.until = 0.0
            count = len(held.jobs) if held else 0
        self._nudge()
        return count

    def reset(self, api: str) -> None:
        """Forget one API's queued jobs, held batch, rules, counts and log; results of attempts still in
        flight are ignored."""
        with self._cond:
            self._generation[api] = self._generation.get(api, 0) + 1
            self._heap = [entry for entry in self._heap if entry[2].api != api]
            heapq.heapify(self._heap)
            for table in (self._held, self._rules, self._counts, self._statuses, self._log, self._active):
                table.pop(api, None)
            self._cond.notify_all()

    def clear_log(self, api: str) -> None:
        with self._cond:
            for table in (self._counts, self._statuses, self._log):
                table.pop(api, None)

    def outstanding(self, api: str) -> int:
        with self._cond:
            return len(self._active.get(api, ()))

    def wait_idle(self, api: str, timeout_s: float) -> bool:
        """Block until no job of ``api`` is queued, held or in flight (or the timeout); True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._active.get(api), timeout_s)

    def snapshot(self, api: str, limit: int = 50) -> dict[str, Any]:
        with self._cond:
            held = self._held.get(api)
            log = list(self._log.get(api, ()))
            return {
                "running": self.running,
                "outstanding": len(self._active.get(api, ())),
                "held": len(held.jobs) if held else 0,
                "counts": dict(sorted(self._counts.get(api, Counter()).items())),
                "statuses": dict(sorted(self._statuses.get(api, Counter()).items())),
                "attempts": log[-limit:] if limit > 0 else [],
                **self._rules.get(api, RuleSet()).as_dict(),
            }

    # -- bookkeeping (under the lock) -------------------------------------------------------------------

    def _counts_of(self, api: str) -> Counter[str]:
        return self._counts.setdefault(api, Counter())

    def _note(
        self,
        job: Job,
        state: str,
        outcome: Outcome | None,
        next_in_s: float | None,
        started: float | None = None,
    ) -> None:
        entry: dict[str, Any] = {
            "delivery": job.delivery,
            "event": job.event,
            "ref": job.ref,
            "target": job.target,
            "attempt": job.attempts,
            "copy": job.copy,
            "state": state,
            "at": _iso(time.time()),
            "status": outcome.status if outcome else None,
            "error": outcome.error if outcome else None,
            "next_attempt_in_s": None if next_in_s is None else round(next_in_s, 6),
            # The platform's own wait before the next attempt, before the time scale.
            "platform_wait_s": None if next_in_s is None else job.policy.waits_s[job.attempts - 1],
        }
        if started is not None:
            entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        self._log.setdefault(job.api, deque(maxlen=LOG_SIZE)).append(entry)

    def _current(self, job: Job) -> bool:
        return job.generation == self._generation.get(job.api, 0)

    def _finish(self, job: Job) -> None:
        with self._cond:
            if self._current(job):
                self._active.get(job.api, set()).discard(job.delivery)
            self._cond.notify_all()

    # -- the worker -------------------------------------------------------------------------------------

    async def _main(self, ready: threading.Event) -> None:
        wake = asyncio.Event()
        with self._cond:
            self._loop, self._wake = asyncio.get_running_loop(), wake
        ready.set()
        tasks: set[asyncio.Task[None]] = set()
        limit = asyncio.Semaphore(MAX_CONCURRENCY)

        def spawn(coro: Any) -> None:
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)

        # trust_env=False: no proxy from the environment (traffic stays on loopback).
        async with httpx.AsyncClient(trust_env=False, verify=False, follow_redirects=False) as client:
            while True:
                wake.clear()
                with self._cond:
                    if self._stopping:
                        break
                    due, batches, wait_s = self._take_due()
                for job in due:
                    spawn(self._handle(job, client, limit))
                for batch in batches:
                    spawn(self._send_in_order(batch, client, limit))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), wait_s)
            for task in list(tasks):
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)

    def _take_due(self) -> tuple[list[Job], list[list[Job]], float]:
        now = time.monotonic()
        due: list[Job] = []
        while self._heap and self._heap[0][0] <= now:
            due.append(heapq.heappop(self._heap)[2])
        batches = []
        for api, held in list(self._held.items()):
            if held.until <= now:
                batches.append(self._release(api))
        deadlines = [self._heap[0][0]] if self._heap else []
        deadlines += [h.until for h in self._held.values()]
        wait_s = min(max(min(deadlines) - now, 0.0), 60.0) if deadlines else 60.0
        return due, batches, wait_s

    def _release(self, api: str) -> list[Job]:
        held = self._held.pop(api)
        order = self._rules.get(api, RuleSet()).permutation(len(held.jobs), held.rule.order)
        self._counts_of(api)["reordered"] += len(held.jobs)
        return [held.jobs[i] for i in order]

    async def _handle(self, job: Job, client: httpx.AsyncClient, limit: asyncio.Semaphore) -> None:
        """A job that came due: its first time through, the test's rules decide; then one attempt."""
        if not job.decided and not job.copy:
            job.decided = True
            batch: list[Job] | None = None
            with self._cond:
                if not self._current(job):
                    return
                decision = self._rules.get(job.api, RuleSet()).decide(job.event)
                counts = self._counts_of(job.api)
                if decision.drop:
                    counts["dropped"] += 1
                    self._note(job, "dropped", None, None)
                else:
                    now = time.monotonic()
                    for _ in range(decision.copies):
                        copy = job.duplicate()
                        copy.delivery = next(self._ids)
                        self._active.setdefault(job.api, set()).add(copy.delivery)
                        self._push(copy, now + decision.delay_s)
                    counts["duplicated"] += decision.copies
                    if decision.delay_s:
                        counts["delayed"] += 1
                    if decision.reorder is not None:
                        held = self._held.setdefault(
                            job.api, _Held(decision.reorder, now + decision.delay_s + decision.reorder.hold_s)
                        )
                        held.jobs.append(job)
                        if len(held.jobs) >= held.rule.window:
                            batch = self._release(job.api)
                    elif decision.delay_s:
                        self._push(job, now + decision.delay_s)
            if decision.drop:
                await self._settle(job, "dropped", None, None)
                self._finish(job)
                return
            if decision.copies or decision.delay_s:
                self._nudge()
            if batch is not None:
                await self._send_in_order(batch, client, limit)
            if decision.reorder is not None or decision.delay_s:
                return
        await self._attempt(job, client, limit)

    async def _send_in_order(
        self, jobs: list[Job], client: httpx.AsyncClient, limit: asyncio.Semaphore
    ) -> None:
        """A released batch, one after the other: each attempt is answered before the next starts."""
        for job in jobs:
            await self._attempt(job, client, limit)

    async def _attempt(self, job: Job, client: httpx.AsyncClient, limit: asyncio.Semaphore) -> None:
        async with limit:
            with self._cond:
                if not self._current(job):
                    return
            try:
                prepared, why = await asyncio.to_thread(job.prepare), None
            except Exception as exc:  # noqa: BLE001 - a job that cannot be built is cancelled, not retried
                prepared, why = None, Outcome(error=type(exc).__name__)
            if prepared is None:
                with self._cond:
                    self._counts_of(job.api)["cancelled"] += 1
                    self._note(job, "cancelled", why, None)
                await self._settle(job, "cancelled", why, None)
                self._finish(job)
                return
            problem = target_problem(job.target)
            if problem is not None:
                with self._cond:
                    self._counts_of(job.api)["refused"] += 1
                    self._note(job, "refused", Outcome(error=problem), None)
                await self._settle(job, "refused", Outcome(error=problem), None)
                self._finish(job)
                return
            body, headers = prepared
            started = time.monotonic()
            try:
                async with client.stream(
                    "POST", job.target, content=body, headers=headers, timeout=httpx.Timeout(job.timeout_s)
                ) as response:
                    outcome = Outcome(status=response.status_code)
            except (httpx.HTTPError, OSError, ValueError) as exc:  # nothing answered
                outcome = Outcome(error=type(exc).__name__)
        job.attempts += 1
        policy = job.policy
        next_in: float | None = None
        if policy.delivered(outcome.status):
            state = "delivered"
        elif policy.retries(outcome.status, job.attempts):
            state, next_in = "retrying", policy.waits_s[job.attempts - 1] * job.scale
        else:
            state = "failed"
        with self._cond:
            if not self._current(job):
                return
            counts = self._counts_of(job.api)
            counts["attempts"] += 1
            counts["answered" if outcome.status is not None else "no_answer"] += 1
            if outcome.status is not None:
                self._statuses.setdefault(job.api, Counter())[str(outcome.status)] += 1
            counts[{"delivered": "delivered", "failed": "failed", "retrying": "retries"}[state]] += 1
            self._note(job, state, outcome, next_in, started)
            if next_in is not None:
                self._push(job, time.monotonic() + next_in)
        await self._settle(job, state, outcome, next_in)
        if next_in is None:
            self._finish(job)
        else:
            self._nudge()

    async def _settle(self, job: Job, state: str, outcome: Outcome | None, next_in: float | None) -> None:
        if job.settle is None:
            return
        try:
            await asyncio.to_thread(job.settle, Settlement(job, state, outcome, next_in, time.time()))
        except Exception as exc:  # noqa: BLE001 - bookkeeping must not stop the worker
            with self._cond:
                self._counts_of(job.api)["settle_errors"] += 1
                self._note(job, "settle_error", Outcome(error=type(exc).__name__), None)


_HUBS: dict[int, tuple[Any, WebhookHub]] = {}
_HUBS_LOCK = threading.Lock()


def hub_for(owner: Any) -> WebhookHub:
    """The one hub of a sandbox (keyed by its store, which every context shares)."""
    with _HUBS_LOCK:
        found = _HUBS.get(id(owner))
        if found is None or found[0] is not owner:
            found = _HUBS[id(owner)] = (owner, WebhookHub())
        return found[1]
