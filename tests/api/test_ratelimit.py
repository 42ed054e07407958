"""The token bucket, on a fake clock."""

from __future__ import annotations

import threading

from clientify_sync.api.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def test_zero_means_unlimited() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    assert [bucket.acquire() for _ in range(100)] == [0.0] * 100
    assert clock.sleeps == []


def test_requests_are_spaced_evenly_at_the_budget() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, clock=clock, sleep=clock.sleep)  # one per second
    waits = [bucket.acquire() for _ in range(4)]
    # The first is free; the rest queue one second apart (reservations, nobody advanced the clock).
    assert waits == [0.0, 1.0, 2.0, 3.0]


def test_idle_time_refills_up_to_the_burst_only() -> None:
    clock = FakeClock()
    bucket = TokenBucket(60, burst=2, clock=clock, sleep=clock.sleep)
    bucket.acquire()
    bucket.acquire()
    clock.now += 3600  # an hour idle refills two tokens, not 3600
    assert [bucket.acquire(), bucket.acquire(), bucket.acquire()] == [0.0, 0.0, 1.0]


def test_threads_share_one_budget() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1200, clock=clock, sleep=clock.sleep)  # one every 50 ms
    threads = [threading.Thread(target=bucket.acquire) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Eight threads at one instant: one reservation each, 50 ms apart, none lost to a race.
    assert sorted(round(s, 3) for s in clock.sleeps) == [0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35]
