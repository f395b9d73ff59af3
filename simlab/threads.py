"""One BLAS/numba thread per process: the environment variables that pin it, set before numpy loads.

A stored number must not depend on how many threads a BLAS call used (OpenBLAS with several threads
rounds some solves differently), so every process that computes cells runs them on one thread: pool
workers, Dask workers, the command line (which may compute cells itself with one worker), the test
suite and the benchmarks. This module imports nothing but ``os``, so importing it first pins the
threads before numpy loads.
"""
from __future__ import annotations

import os

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
BLAS_THREAD_VARS = tuple(v for v in THREAD_VARS if v != "NUMBA_NUM_THREADS")


def pin_threads() -> None:
    """Set every variable of ``THREAD_VARS`` to ``"1"`` (effective for numpy/numba loaded afterwards,
    and for child processes)."""
    for var in THREAD_VARS:
        os.environ[var] = "1"


def threads_pinned() -> bool:
    """Whether this process runs BLAS and numba on one thread, as pool workers do.

    Returns
    -------
    bool
        True when every variable of ``THREAD_VARS`` is ``"1"`` (the command line and the test suite
        set them before numpy loads).
    """
    return all(os.environ.get(var) == "1" for var in THREAD_VARS)
