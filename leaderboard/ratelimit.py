"""In-process rate limits with an injectable clock.

- `SlidingWindow`: at most `limit` events per key in the last `window_s` seconds (refused
  submissions per identity and per client address).
- `Backoff`: after `free` failures per key, each further attempt must wait an exponentially
  growing time after the last failure (maintainer tokens per client address); a success
  clears the key.

Both keep at most `max_keys` keys (the least recently used are forgotten first), so a flood
of distinct keys cannot grow memory without bound. State is per process and lost at a
restart; `leaderboard.submissions` adds a database count of refused submissions per
identity where that matters. Times are seconds of the `clock` (default `time.monotonic`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable

__all__ = ["SlidingWindow", "Backoff"]

Clock = Callable[[], float]


class SlidingWindow:
    """Counts events per key over the last `window_s` seconds."""

    def __init__(
        self, limit: int, window_s: float, clock: Clock = time.monotonic, max_keys: int = 10_000
    ):
        if limit < 1 or window_s <= 0:
            raise ValueError("limit must be >= 1 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self.max_keys = max_keys
        self._events: OrderedDict[Hashable, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: Hashable, now: float) -> deque[float]:
        events = self._events.get(key)
        if events is None:
            return deque()
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
        return events

    def count(self, key: Hashable) -> int:
        """Events of `key` in the window (at most `limit`: older ones are not kept)."""
        with self._lock:
            return len(self._recent(key, self.clock()))

    def retry_after(self, key: Hashable) -> float:
        """0 if `key` is under the limit, else seconds until its oldest event leaves the
        window."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            if len(events) < self.limit:
                return 0.0
            return max(0.0, events[-self.limit] + self.window_s - now)

    def add(self, key: Hashable) -> None:
        """Record one event of `key` now."""
        with self._lock:
            now = self.clock()
            events = self._recent(key, now)
            events.append(now)
            self._events[key] = events
            self._events.move_to_end(key)
            while len(events) > self.limit:  # older ones no longer matter
                events.popleft()
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)


class Backoff:
    """Exponential back-off after failures: after `free` failures of a key, the next attempt
    is allowed `base_s * 2 ** (failures - free)` seconds (at most `max_s`) after the last
    failure. A failure's record is forgotten after `forget_s` seconds without failures."""

    def __init__(
        self,
        free: int = 3,
        base_s: float = 1.0,
        max_s: float = 900.0,
        forget_s: float = 3600.0,
        clock: Clock = time.monotonic,
        max_keys: int = 10_000,
    ):
        self.free = free
        self.base_s = base_s
        self.max_s = max_s
        self.forget_s = forget_s
        self.clock = clock
        self.max_keys = max_keys
        self._failures: OrderedDict[Hashable, tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _state(self, key: Hashable, now: float) -> tuple[int, float]:
        state = self._failures.get(key)
        if state is None:
            return 0, now
        if now - state[1] > self.forget_s:
            del self._failures[key]
            return 0, now
        return state

    def delay(self, failures: int) -> float:
        """The wait after `failures` failures (0 while within the free ones)."""
        if failures < self.free:
            return 0.0
        return min(self.max_s, self.base_s * 2.0 ** (failures - self.free))

    def retry_after(self, key: Hashable) -> float:
        """Seconds `key` must still wait before its next attempt (0: it may try now)."""
        with self._lock:
            now = self.clock()
            failures, last = self._state(key, now)
            return max(0.0, last + self.delay(failures) - now) if failures else 0.0

    def failed(self, key: Hashable) -> None:
        """Record a failed attempt of `key` now."""
        with self._lock:
            now = self.clock()
            failures, _ = self._state(key, now)
            self._failures[key] = (failures + 1, now)
            self._failures.move_to_end(key)
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)

    def succeeded(self, key: Hashable) -> None:
        """Forget the failures of `key`."""
        with self._lock:
            self._failures.pop(key, None)
