"""Log-spaced checkpoints at which iterative solvers record their iterates."""
from __future__ import annotations

import numpy as np

from simlab.validation import check_int


MAX_CHECKPOINTS = 10**5  # histories are (checkpoints, d): bounded before allocation


def log_checkpoints(T: int, k: int, k_name: str = "k") -> np.ndarray:
    """At most k distinct iteration counts in [1, T], log-spaced, always including 1 and T.

    Parameters
    ----------
    T : int
        The last iteration (>= 1).
    k : int
        Maximum number of checkpoints, in [1, MAX_CHECKPOINTS].
    k_name : str, default "k"
        The caller's name of k in error messages (e.g. "n_checkpoints").

    Returns
    -------
    int64 ndarray
        Sorted distinct iteration counts.
    """
    T = check_int("T", T, 1)
    k = check_int(k_name, k, 1, MAX_CHECKPOINTS)
    pts = np.unique(np.round(np.geomspace(1, T, k)).astype(np.int64))
    return np.unique(np.concatenate([pts, [T]])).astype(np.int64)
