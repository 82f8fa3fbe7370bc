"""When to try again: the retry schedule of a retryable failure, and how long it keeps trying.

Pure. The seed asks for retries after 10 s, 30 s and 60 s, increasing; after those the delay doubles
up to a cap. The schedule, not SQS's receive count, is the clock: the worker reads the attempt number
from the order record and hides the message for :meth:`RetrySchedule.delay` seconds
(ChangeMessageVisibility), and the queue's ``maxReceiveCount`` is derived from the schedule
(:meth:`RetrySchedule.receives_within`) so a message reaches the dead-letter queue only after the
horizon (≥ 24 h), never during a platform outage shorter than that.
"""

from __future__ import annotations

from dataclasses import dataclass

#: SQS refuses a visibility timeout above 12 hours.
SQS_MAX_VISIBILITY_SECONDS = 12 * 3600


@dataclass(frozen=True)
class RetrySchedule:
    """``first`` delays, then doubling from the last of them up to ``cap``; ``horizon`` in seconds."""

    first: tuple[int, ...] = (10, 30, 60)
    cap: int = 900
    horizon: int = 24 * 3600

    def __post_init__(self) -> None:
        if not self.first or any(d <= 0 for d in self.first):
            raise ValueError("retry schedule: the first delays must be positive")
        if not 0 < self.cap <= SQS_MAX_VISIBILITY_SECONDS:
            raise ValueError(f"retry schedule: the cap must be 1..{SQS_MAX_VISIBILITY_SECONDS} s")
        if self.horizon < 24 * 3600:
            raise ValueError("retry schedule: the horizon must be at least 24 hours")

    def delay(self, attempt: int) -> int:
        """Seconds to wait before retry number ``attempt`` (1 = the first retry)."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        if attempt <= len(self.first):
            return min(self.first[attempt - 1], self.cap)
        doublings = attempt - len(self.first)
        # Doubling a bounded number of times: beyond ~40 the cap has long been reached.
        grown: int = self.first[-1] * 2 ** min(doublings, 40)
        return min(grown, self.cap)

    def elapsed(self, attempts: int) -> int:
        """Seconds spent waiting over the first ``attempts`` retries."""
        return sum(self.delay(n) for n in range(1, attempts + 1))

    def attempts_within(self, seconds: int) -> int:
        """How many retries fit in ``seconds`` of waiting."""
        n, total = 0, 0
        while total + self.delay(n + 1) <= seconds:
            n += 1
            total += self.delay(n)
        return n

    def receives_within(self, margin: int = 20) -> int:
        """The queue's ``maxReceiveCount``: receives the horizon needs, plus ``margin`` for receives
        that are not retries (a crashed invocation, a message handed back unstarted)."""
        return 1 + self.attempts_within(self.horizon) + margin


DEFAULT_SCHEDULE = RetrySchedule()
