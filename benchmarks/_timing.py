"""Shared by the benchmark scripts: pin BLAS/numba to one thread, and time a call by its median.

Import this module before numpy so that the thread pinning takes effect.
"""
from __future__ import annotations

import os
import statistics
import time

from simlab.threads import THREAD_VARS

for _var in THREAD_VARS:  # a caller's own setting wins here (benchmarks may compare thread counts)
    os.environ.setdefault(_var, "1")


def median_time(fn, repeats: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls, after one warm-up call (compilation, caches)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(statistics.median(times))
