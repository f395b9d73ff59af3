"""Placing an array at a chosen offset in memory, for tests that a kernel's bits do not depend on addresses."""
from __future__ import annotations

import numpy as np


def placed_copy(a: np.ndarray, offset: int) -> np.ndarray:
    """A copy of ``a`` stored ``offset`` float64 slots into a larger zeroed buffer (so its address, and its
    distance to the other arguments, differs from the original's)."""
    buf = np.zeros(a.size + 16)
    view = buf[offset:offset + a.size]
    view[:] = a.ravel()
    return view.reshape(a.shape)
