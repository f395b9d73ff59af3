"""Input validation shared by every public function: each error names the field and the allowed range."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as int, or raise ``ValueError`` if it is not an integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    _check_range(name, value, low, high)
    return value


def check_float(name: str, value, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """Return ``value`` as a finite float in [low, high] (or (low, high] with ``low_open``)."""
    try:
        out = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if low_open and low is not None and out <= low:
        raise ValueError(f"{name} must be > {low}, got {out!r}")
    _check_range(name, out, low, high)
    return out


def check_choice(name: str, value, allowed: Iterable[str]) -> str:
    """Raise ``ValueError`` unless ``value`` is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_probabilities(name: str, p, atol: float = 1e-9) -> np.ndarray:
    """Return ``p`` as a float64 vector with entries in [0, 1] summing to 1 within ``atol``."""
    arr = np.ascontiguousarray(p, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    if np.any(arr < 0) or np.any(arr > 1):
        raise ValueError(f"{name} entries must lie in [0, 1]")
    if abs(arr.sum() - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (tolerance {atol:g}), sums to {arr.sum():.12g}")
    return arr


def check_array(name: str, a, ndim: int | None = None, shape: tuple | None = None,
                finite: bool = True) -> np.ndarray:
    """Return ``a`` as a contiguous float64 array of the given ndim/shape (None entries are free)."""
    arr = np.ascontiguousarray(a, dtype=np.float64)
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, arr.shape)):
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def _check_range(name, value, low, high):
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
