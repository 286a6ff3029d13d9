"""Per-client rate limits, held in the memory of one server process.

The algorithm is GCRA (the generic cell rate algorithm, as in redis-cell): a key keeps one number,
the time its budget is spent until. A client may burst `per_minute` events at once and then make
one every `60 / per_minute` seconds; a refusal says how long to wait. Memory is bounded: idle keys
are forgotten, and a flood of new keys pushes out the least recently seen.

Replicas share nothing: behind N of them a client gets up to N times the limit. That is enough for
what these limits are for — one client flooding one process — and the README says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from modelyard.errors import RateLimitedError


class RateLimiter:
    """At most `per_minute` events a minute per key (0: no limit)."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:
        self.per_minute = per_minute
        self.interval = 60.0 / per_minute if per_minute > 0 else 0.0
        self.tolerance = 60.0 - self.interval
        self.clock = clock
        self.max_keys = max_keys
        self._until: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._until)

    def wait(self, key: str) -> float:
        """Seconds until `key` may have its next event (0: now)."""
        until = self._until.get(key)
        if until is None or not self.interval:
            return 0.0
        return max(0.0, until - self.clock() - self.tolerance)

    def check(self, key: str, what: str) -> None:
        """Raise RateLimitedError while `key` has spent its budget; record nothing."""
        wait = self.wait(key)
        if wait > 0:
            seconds = math.ceil(wait)
            raise RateLimitedError(
                f"too many {what} from this address (at most {self.per_minute} a minute): "
                f"retry in {seconds} s", retry_after=seconds,
            )

    def hit(self, key: str) -> None:
        """Record one event of `key`."""
        if not self.interval:
            return
        now = self.clock()
        until = max(self._until.pop(key, now), now) + self.interval
        self._until[key] = until  # re-inserted: the dict stays in least-recently-seen order
        if len(self._until) > self.max_keys:
            self._forget(now)

    def take(self, key: str, what: str) -> None:
        """`check`, then `hit`: one event of `key`, or RateLimitedError."""
        self.check(key, what)
        self.hit(key)

    def _forget(self, now: float) -> None:
        """Drop idle keys (a full budget again), then the least recently seen down to 3/4 of the cap."""
        self._until = {k: t for k, t in self._until.items() if t > now}
        excess = len(self._until) - self.max_keys * 3 // 4
        for key in list(self._until)[:max(excess, 0)]:
            del self._until[key]
