"""Progress lines while a long apply step runs: a user watching a task log sees it is alive.

Every ``every`` records, or ``interval_s`` seconds after the last line, whichever comes first:
``apply_clientify facturama contacts: 1500/100000 done, 3 errors so far``. The run page of the status
view shows the same counts live from the ledger (outcomes are flushed per batch).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass
class Progress:
    """Counts settled records and logs ``done / total`` now and then.

    Args:
        label: what is progressing (``"apply_clientify facturama contacts"``).
        total: records planned for the step (``None`` when unknown).
        every: a line at least every this many records.
        interval_s: and at least this often while records keep settling.
    """

    label: str
    total: int | None = None
    every: int = 500
    interval_s: float = 30.0
    clock: Callable[[], float] = time.monotonic
    done: int = 0
    errors: int = 0
    lines: int = 0
    _last_time: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._last_time = self.clock()

    def settled(self, *, failed: bool) -> None:
        """Count one record that ended (any outcome) and log a line when one is due."""
        self.done += 1
        self.errors += int(failed)
        now = self.clock()
        if self.done % self.every == 0 or now - self._last_time >= self.interval_s:
            self.report(now)

    def report(self, now: float | None = None) -> None:
        """Log the line now (also used once at the end of a step)."""
        total = "?" if self.total is None else str(self.total)
        log.info("%s: %d/%s done, %d errors so far", self.label, self.done, total, self.errors)
        self.lines += 1
        self._last_time = self.clock() if now is None else now
