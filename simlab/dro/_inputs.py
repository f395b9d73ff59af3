"""Input checks shared by the DRO duals: one fused pass over (losses, probs) (spec §2 conventions).

Bad input raises ``ValueError`` naming the argument: non-finite losses, probabilities outside [0, 1]
or not summing to 1 (tolerance 1e-9), shape mismatch, negative radius, non-positive temperature.
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.validation import check_float

PROBS_ATOL = 1e-9


@kernel
def _scan_kernel(losses: np.ndarray, probs: np.ndarray) -> tuple:
    """(sum of losses, sum p, number of p outside [0, 1]) in one pass; NaN/inf propagate into the
    sums (a NaN p is in no comparison but makes sum p NaN).  Counting instead of a running min/max
    lets the loop vectorise (a float min/max reduction does not without the excluded 'nnan')."""
    s_l = 0.0
    s_p = 0.0
    outside = 0
    for j in range(losses.size):
        s_l += losses[j]
        pj = probs[j]
        s_p += pj
        outside += (pj < 0.0) | (pj > 1.0)
    return s_l, s_p, outside


def check_losses_probs(losses, probs) -> tuple[np.ndarray, np.ndarray]:
    """Return (losses, probs) as contiguous float64 vectors of equal length, or raise ValueError."""
    losses = np.ascontiguousarray(losses, dtype=np.float64)
    probs = np.ascontiguousarray(probs, dtype=np.float64)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"losses must be a non-empty 1-D array, got shape {losses.shape}")
    if probs.shape != losses.shape:
        raise ValueError(f"probs must have the shape of losses {losses.shape}, got {probs.shape}")
    s_l, s_p, outside = _scan_kernel(losses, probs)
    if not np.isfinite(s_l) and not np.all(np.isfinite(losses)):
        raise ValueError("losses contains NaN or inf")
    if not (np.isfinite(s_p) and outside == 0):
        raise ValueError("probs entries must be finite and lie in [0, 1]")
    if abs(s_p - 1.0) > PROBS_ATOL:
        raise ValueError(f"probs must sum to 1 (tolerance {PROBS_ATOL:g}), sums to {s_p:.12g}")
    return losses, probs


def check_radius(radius) -> float:
    """The ball radius: a finite float >= 0."""
    return check_float("radius", radius, 0.0)


def check_tau(tau) -> float:
    """The KL temperature: a finite float > 0."""
    return check_float("tau", tau, 0.0, low_open=True)
