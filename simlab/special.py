"""Stable scalar functions shared by kernels: softplus and the logistic sigmoid (numba, inlinable)."""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel


@kernel
def softplus(t: float) -> float:
    """log(1 + e^t), stable for any t."""
    return max(t, 0.0) + np.log1p(np.exp(-abs(t)))


@kernel
def sigmoid(t: float) -> float:
    """1 / (1 + e^-t), stable for any t."""
    if t >= 0.0:
        return 1.0 / (1.0 + np.exp(-t))
    e = np.exp(t)
    return e / (1.0 + e)
