"""Timing helpers the benchmarks share."""

from __future__ import annotations

import time
from collections.abc import Callable


def fastest(work: Callable[[], object], repeat: int) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``work``: on a shared machine the fastest
    run is the one least disturbed by other processes."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)
