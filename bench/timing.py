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


def percentile(values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of ``values``, linear between closest ranks (numpy's
    default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    lo = int(rank)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (rank - lo)
