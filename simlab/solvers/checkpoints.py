"""Log-spaced checkpoints at which iterative solvers record their iterates."""
from __future__ import annotations

import numpy as np

from simlab.validation import check_int


def log_checkpoints(T: int, k: int) -> np.ndarray:
    """At most k distinct iteration counts in [1, T], log-spaced, always including 1 and T (int64)."""
    T = check_int("T", T, 1)
    k = check_int("k", k, 1)
    pts = np.unique(np.round(np.geomspace(1, T, k)).astype(np.int64))
    return np.unique(np.concatenate([pts, [T]])).astype(np.int64)
