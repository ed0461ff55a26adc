"""Resource states that settle with time: ``Pending`` → ``Active``, ``Deleting`` → gone.

Real capacity providers and published versions take minutes to become ``Active``. Here the wait
is ``LMI_EMULATOR_STATE_DELAY_SECONDS`` (or ``--state-delay``; default 0, so a fast test sees the
settled state on its first read). States are computed when read, so no background thread exists.
A test can also force a state (e.g. ``Failed``) through the control endpoint, see ``control``.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass

# One lock for all extension state: moto's server handles requests on several threads.
LOCK = threading.RLock()

_delay_seconds = float(os.environ.get("LMI_EMULATOR_STATE_DELAY_SECONDS", "0"))


def set_delay(seconds: float) -> None:
    global _delay_seconds
    if seconds < 0:
        raise ValueError("the state delay cannot be negative")
    _delay_seconds = seconds


def delay() -> float:
    return _delay_seconds


def now() -> float:
    return time.monotonic()


@dataclass
class Settling:
    """A state that reads ``pending`` until ``ready_at`` (the delay in force when it started),
    then ``settled``; a forced state wins over both."""

    pending: str
    settled: str
    ready_at: float
    forced: str | None = None

    @classmethod
    def start(cls, pending: str, settled: str) -> Settling:
        return cls(pending, settled, now() + _delay_seconds)

    def current(self) -> str:
        if self.forced is not None:
            return self.forced
        return self.settled if self.has_settled() else self.pending

    def has_settled(self) -> bool:
        return now() >= self.ready_at

    def restart(self, pending: str, settled: str) -> None:
        self.pending, self.settled = pending, settled
        self.ready_at, self.forced = now() + _delay_seconds, None
