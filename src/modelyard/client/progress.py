"""A one-line progress bar on stderr: bytes done of total, rate and ETA, redrawn ≤ 10 times a second.

No dependency: `\\r` and padding are all a terminal needs, and worker threads may report at once.
Silent unless enabled (the caller enables it only for a TTY).
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from types import TracebackType
from typing import Self, TextIO

WIDTH = 24
WINDOW = 5.0
"""Seconds of recent progress the rate is measured over."""


def size(n: float) -> str:
    """Bytes in binary units: `512 B`, `3.1 MiB`."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def duration(seconds: float) -> str:
    """`4.2 s` under a minute, else `m:ss` or `h:mm:ss`."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Bytes done out of `total` under a label; `advance` is thread-safe and may go backwards."""

    def __init__(self, label: str, total: int, *, enabled: bool, stream: TextIO | None = None,
                 interval: float = 0.1) -> None:
        self.label = label
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        self.done = 0
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._drawn = 0.0
        self._width = 0
        self._samples: collections.deque[tuple[float, int]] = collections.deque([(self._start, 0)])

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def advance(self, n: int) -> None:
        """Count `n` more bytes (negative after a retry that lost them)."""
        with self._lock:
            self.done += n
            now = time.monotonic()
            if self.enabled and now - self._drawn >= self.interval:
                self._samples.append((now, self.done))
                while len(self._samples) > 2 and now - self._samples[0][0] > WINDOW:
                    self._samples.popleft()
                self._draw(now)

    def rate(self, now: float) -> float:
        """Bytes per second over the last few seconds."""
        first_t, first_done = self._samples[0]
        elapsed = now - first_t
        return (self.done - first_done) / elapsed if elapsed > 0 else 0.0

    def line(self, now: float, final: bool = False) -> str:
        """The text of the bar at `now`."""
        share = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(share * WIDTH)
        bar = "#" * filled + "-" * (WIDTH - filled)
        if final:
            elapsed = now - self._start
            average = self.done / elapsed if elapsed > 0 else 0.0
            tail = f"{size(average)}/s  in {duration(elapsed)}"
        else:
            rate = self.rate(now)
            left = self.total - self.done
            eta = duration(left / rate) if rate > 0 and left > 0 else "-"
            tail = f"{size(rate)}/s  ETA {eta}"
        return f"{self.label:<10} [{bar}] {share:4.0%}  {size(self.done)} / {size(self.total)}  {tail}"

    def _draw(self, now: float, final: bool = False) -> None:
        text = self.line(now, final)
        pad = max(self._width - len(text), 0)
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad + ("\n" if final else ""))
        self.stream.flush()
        self._drawn = now

    def close(self) -> None:
        """Draw the final line (with the average rate) and end it."""
        with self._lock:
            if self.enabled:
                self._draw(time.monotonic(), final=True)
                self.enabled = False
