"""One end time for a whole provider call, from which each phase takes its timeout."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    """The monotonic time by which a call must be done. Each phase (connect,
    first token, the rest) waits at most its own timeout and never past the
    deadline: `timeout_for(phase_timeout)`."""

    def __init__(self, total_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.ends_at = clock() + total_seconds

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.ends_at - self._clock())

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    def timeout_for(self, phase_timeout: float) -> float:
        """The phase's timeout, shortened to what is left of the deadline (0 once expired)."""
        return min(phase_timeout, self.remaining())
