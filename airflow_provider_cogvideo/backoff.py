"""The one backoff policy: how long to wait before trying again, and what a ``Retry-After`` means.

Three places wait after a refusal, each with its own numbers but the same rule: the hook between
attempts of one request (tenacity calls a :class:`Backoff` as its ``wait``), the trigger between
polls that failed transiently, and the generate operator after a submit refused by the rate limit.

The rule: the n-th consecutive failure waits ``first * 2**(n-1)`` seconds, capped at ``ceiling``, and
drawn uniformly from ``jitter`` times that (so many tasks refused at once do not come back at
once). A server's ``Retry-After`` wins, capped at ``retry_after_cap``: a server may say how long,
but never for longer than the caller can afford. A ``Retry-After`` that is neither a number of
seconds nor an HTTP date is ignored, never an exception.
"""

from __future__ import annotations

import calendar
import email.utils
import math
import random
import time
from dataclasses import dataclass
from typing import Any

EQUAL_JITTER = (0.5, 1.0)
"""Between half and all of the exponential value: never hammers, never waits longer than planned."""


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter; honours a server's ``Retry-After`` up to a cap.

    :param first: seconds before jitter after the first failure.
    :param ceiling: the exponential value stops growing here.
    :param jitter: the wait is drawn uniformly from ``(lo * value, hi * value)``.
    :param retry_after_cap: longest ``Retry-After`` honoured; ``None`` = ``ceiling``.
    """

    first: float
    ceiling: float
    jitter: tuple[float, float] = EQUAL_JITTER
    retry_after_cap: float | None = None

    def wait(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the ``failures``-th consecutive failure (1-based)."""
        if retry_after is not None:
            return min(retry_after, self.ceiling if self.retry_after_cap is None else self.retry_after_cap)
        value = min(self.ceiling, self.first * 2 ** (max(1, failures) - 1))
        lo, hi = self.jitter
        return random.uniform(lo * value, hi * value)

    def __call__(self, retry_state: Any) -> float:
        """tenacity's ``wait`` protocol: the attempt number and the failure's ``retry_after``."""
        outcome = retry_state.outcome
        exc = outcome.exception() if outcome is not None else None
        return self.wait(retry_state.attempt_number, getattr(exc, "retry_after", None))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header in seconds (a number or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        # An HTTP date is UTC; a missing offset ("-0000", RFC 2822's "origin unknown") is UTC too.
        seconds = calendar.timegm(parsed[:9]) - (parsed[9] or 0) - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


__all__ = ["EQUAL_JITTER", "Backoff", "retry_after_seconds"]
