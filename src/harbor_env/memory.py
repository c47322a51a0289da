"""Give freed heap back to the operating system, so an env server's RSS stays flat for days.

Every episode allocates and frees many short-lived buffers (trajectories, rendered prompts,
HTTP bodies) from several threads. glibc keeps freed memory in its arenas, fragmented, and
the env server's RSS creeps up over thousands of episodes although Python holds no more
objects (measured: +23% over 1000 episodes at concurrency 32; flat with periodic trimming).
`malloc_trim(0)` returns the free pages; it costs a few milliseconds, so it runs at most once
per interval and off the event loop.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time
from collections.abc import Callable

TRIM_INTERVAL_SEC = 10.0


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on other C libraries (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


class HeapTrimmer:
    """Calls malloc_trim at most once per `interval_sec`, in a worker thread."""

    def __init__(self, interval_sec: float = TRIM_INTERVAL_SEC):
        self.interval_sec = interval_sec
        self._malloc_trim = _load_malloc_trim()
        self._last = float("-inf")
        self.trims = 0

    async def maybe_trim(self) -> None:
        now = time.monotonic()
        if self._malloc_trim is None or now - self._last < self.interval_sec:
            return
        self._last = now
        await asyncio.to_thread(self._malloc_trim, 0)
        self.trims += 1


heap_trimmer = HeapTrimmer()
