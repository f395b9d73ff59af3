"""Stable scalar functions shared by kernels: softplus and the logistic sigmoid (numba, inlinable)."""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel


@kernel
def softplus(t: float) -> float:
    """log(1 + e^t), stable for any t.

    Evaluated as max(t, 0) + log1p(e^-|t|), which never overflows and keeps full relative accuracy
    for large negative t (docs/theory/environment.md §1.1 notation; the DPO loss is
    softplus(-varsigma h), docs/theory/dpo.md §3.1).

    Parameters
    ----------
    t : float
        Any float64.

    Returns
    -------
    float
        softplus(t) = log(1 + e^t) > 0; its derivative is :func:`sigmoid`.
    """
    return max(t, 0.0) + np.log1p(np.exp(-abs(t)))


@kernel
def sigmoid(t: float) -> float:
    """1 / (1 + e^-t), stable for any t.

    For t >= 0 it is 1 / (1 + e^-t); for t < 0 the equal form e^t / (1 + e^t), so no exponential
    overflows (docs/theory/environment.md §1.1 notation).

    Parameters
    ----------
    t : float
        Any float64.

    Returns
    -------
    float
        sigma(t) in [0, 1], with sigma(-t) = 1 - sigma(t).
    """
    if t >= 0.0:
        return 1.0 / (1.0 + np.exp(-t))
    e = np.exp(t)
    return e / (1.0 + e)
