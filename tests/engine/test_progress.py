"""Progress lines of a long apply step: every 500 records or 30 seconds, whichever comes first."""

from __future__ import annotations

import logging

from clientify_sync.engine.progress import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_500_records(caplog):
    progress = Progress("apply_clientify facturama contacts", total=1200, clock=Clock())
    with caplog.at_level(logging.INFO, logger="clientify_sync.engine.progress"):
        for index in range(1200):
            progress.settled(failed=index % 400 == 0)
    assert [r.getMessage() for r in caplog.records] == [
        "apply_clientify facturama contacts: 500/1200 done, 2 errors so far",
        "apply_clientify facturama contacts: 1000/1200 done, 3 errors so far",
    ]


def test_a_line_after_30_seconds_of_slow_records(caplog):
    clock = Clock()
    progress = Progress("apply_invoicing facturadirecta estimates", total=None, clock=clock)
    with caplog.at_level(logging.INFO, logger="clientify_sync.engine.progress"):
        for _ in range(3):
            clock.now += 12.0  # one record every 12 s: a line at 36 s, then not again until 66 s
            progress.settled(failed=False)
    assert [r.getMessage() for r in caplog.records] == [
        "apply_invoicing facturadirecta estimates: 3/? done, 0 errors so far"
    ]
