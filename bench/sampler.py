"""Peak resident memory of this process, sampled on a thread (psutil), and a wall clock.

Sampling (not ``ru_maxrss``) because the high-water mark of a long process never comes down: each
scenario needs its own peak, and its own starting point to report the delta.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import threading
import time
from types import TracebackType

import psutil

MB = 1024 * 1024


class RssSampler:
    """``with RssSampler() as rss: ...`` then ``rss.baseline_mb``, ``rss.peak_mb``, ``rss.wall_s``."""

    def __init__(self, interval_s: float = 0.02, *, cpu_of: dict[str, int] | None = None) -> None:
        self.interval_s = interval_s
        self._process = psutil.Process()
        # CPU seconds of this process (less this sampler's thread) and of others (the sandbox): who was
        # busy during the wall time.
        self._cpu_procs = {"bench": self._process} | {
            k: psutil.Process(pid) for k, pid in (cpu_of or {}).items()
        }
        self._cpu_start: dict[str, float] = {}
        self.cpu_s: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.baseline = self.peak = self._section_peak = 0
        self.samples = 0
        self.sections: dict[str, float] = {}
        self._started = self._ended = 0.0
        self._sampler_cpu_s = 0.0

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        started = time.thread_time()
        while not self._stop.wait(self.interval_s):
            rss = self._rss()
            self.peak = max(self.peak, rss)
            self._section_peak = max(self._section_peak, rss)
            self.samples += 1
        # Its own CPU is not the sync's: about 15 ms per second of wall, 0.5 s of a 30-s realistic run.
        self._sampler_cpu_s = time.thread_time() - started

    def mark(self, name: str) -> None:
        """Close a section (e.g. one sync step): its peak is the highest sample since the last mark."""
        rss = self._rss()
        self.sections[name] = round(max(self._section_peak, rss) / MB, 1)
        self._section_peak = rss

    def __enter__(self) -> RssSampler:
        self.baseline = self.peak = self._section_peak = self._rss()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        self._cpu_start = {k: _cpu(p) for k, p in self._cpu_procs.items()}
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ended = time.perf_counter()
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.cpu_s = {k: round(_cpu(p) - self._cpu_start[k], 1) for k, p in self._cpu_procs.items()}
        self.cpu_s["bench"] = round(max(0.0, self.cpu_s["bench"] - self._sampler_cpu_s), 1)
        self.peak = max(self.peak, self._rss())

    @property
    def wall_s(self) -> float:
        return (self._ended or time.perf_counter()) - self._started

    @property
    def baseline_mb(self) -> float:
        return self.baseline / MB

    @property
    def peak_mb(self) -> float:
        return self.peak / MB

    def as_dict(self) -> dict[str, float | int]:
        return {"wall_s": round(self.wall_s, 2), "baseline_rss_mb": round(self.baseline_mb, 1),
                "peak_rss_mb": round(self.peak_mb, 1), "delta_rss_mb": round(self.peak_mb - self.baseline_mb, 1),
                "rss_samples": self.samples, "cpu_s": self.cpu_s, "step_peak_rss_mb": dict(self.sections)}  # fmt: skip


def release_free_memory() -> None:
    """Collect garbage and hand the allocator's free pages back to the OS (glibc ``malloc_trim``).

    Called before each measured scenario: an Airflow task runs in a fresh process, while the bench runs
    every scenario of a (platform, size) in one, so without this a scenario's starting RSS would carry
    the free-but-kept heap of the scenarios and edit picks before it.
    """
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc:
        trim = getattr(ctypes.CDLL(libc), "malloc_trim", None)
        if trim is not None:
            trim(0)


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)
