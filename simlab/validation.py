"""Input validation shared by every public function: each error names the field and the allowed range."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def check_int(name: str, value, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as int, or raise ``ValueError`` if it is not an integer in [low, high].

    A bool is rejected (True is not the number 1 here).

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    low, high : int, optional
        Inclusive bounds (None: unbounded).

    Returns
    -------
    int
        ``value``.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    _check_range(name, value, low, high)
    return value


def check_float(name: str, value, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """Return ``value`` as a finite float in [low, high] (or (low, high] with ``low_open``).

    Like :func:`check_int`, a bool is rejected (True is not the number 1.0 here).

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    low, high : float, optional
        Bounds (None: unbounded).
    low_open : bool, default False
        Exclude ``low``.

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
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
    """Return ``value`` if it is one of ``allowed``, else raise ``ValueError``.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : object
        The value to check.
    allowed : iterable of str
        The allowed values.

    Returns
    -------
    str
        ``value``.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def check_probabilities(name: str, p, atol: float = 1e-9) -> np.ndarray:
    """Return ``p`` as a float64 vector with entries in [0, 1] summing to 1 within ``atol``.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    p : array_like
        A non-empty 1-D probability vector.
    atol : float, default 1e-9
        Tolerance on the sum.

    Returns
    -------
    ndarray
        ``p`` as a contiguous float64 array (not renormalised).

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    arr = check_array(name, p, finite=False)
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
    """Return ``a`` as a contiguous float64 array of the given ndim/shape.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    a : array_like
        The value to check (a string or None is rejected).
    ndim : int, optional
        Required number of dimensions.
    shape : tuple, optional
        Required shape; None entries are free.
    finite : bool, default True
        Reject NaN and inf.

    Returns
    -------
    ndarray
        ``a`` as a contiguous float64 array.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    if a is None or isinstance(a, (str, bytes)):
        raise ValueError(f"{name} must be a numeric array, got {a!r}")
    try:
        arr = np.ascontiguousarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array, got {type(a).__name__}") from None
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {arr.shape}")
    if shape is not None:
        if arr.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, arr.shape)):
            raise ValueError(f"{name} must have shape {shape}, got {arr.shape}")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def check_weights(name: str, w, n: int) -> np.ndarray:
    """Return atom weights ``w`` as a float64 vector of length n, finite, >= 0, with a positive sum.

    Weights are never filtered silently: a negative entry is an error.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    w : array_like
        The weights.
    n : int
        Required length.

    Returns
    -------
    (n,) ndarray
        The weights.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    arr = check_array(name, w, shape=(n,))
    if np.any(arr < 0.0):
        raise ValueError(f"{name} (atom weights) must be >= 0; entry {int(np.argmin(arr))} is {arr.min()!r}")
    if not arr.sum() > 0.0:
        raise ValueError(f"{name} (atom weights) must have a positive sum")
    return arr


def check_labels(name: str, y, n: int) -> np.ndarray:
    """Return preference labels ``y`` as a float64 vector of length n with entries in [0, 1].

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    y : array_like
        The labels.
    n : int
        Required length.

    Returns
    -------
    (n,) ndarray
        The labels.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    arr = check_array(name, y, shape=(n,))
    if np.any((arr < 0.0) | (arr > 1.0)):
        raise ValueError(f"{name} (labels) must lie in [0, 1]")
    return arr


def check_generator(name: str, rng) -> np.random.Generator:
    """Return ``rng`` if it is a ``numpy.random.Generator``.

    Seeds come from SeedSequences: an int or a legacy RandomState is rejected, never coerced.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    rng : object
        The value to check.

    Returns
    -------
    numpy.random.Generator
        ``rng``.

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{name} must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def check_linear_atoms(theta, anchor, dphi, targets, weights=None, *, anchor_name: str = "theta_ref",
                       target_name: str = "y", labels: bool = False):
    """Validate the inputs of an objective over weighted atoms j with a linear score (theta - anchor)^T dphi_j.

    Parameters
    ----------
    theta : (d,) array_like
        Parameter.
    anchor : (d,) array_like
        The anchor of the score (e.g. theta_ref).
    dphi : (A, d) array_like
        Feature differences, finite.
    targets : (A,) array_like
        Per-atom targets: labels in [0, 1] with ``labels``, else any finite value.
    weights : (A,) array_like, optional
        Atom weights, checked by :func:`check_weights` (named ``w``).
    anchor_name, target_name : str
        Names of the anchor and the targets in error messages.
    labels : bool, default False
        Check the targets as labels.

    Returns
    -------
    tuple
        ``(theta, anchor, dphi, targets, weights)`` as float64 arrays (``weights`` None if not given).

    Raises
    ------
    ValueError
        Naming ``name`` and the allowed range.
    """
    dphi = check_array("dphi", dphi, ndim=2)
    n, d = dphi.shape
    theta = check_array("theta", theta, shape=(d,))
    anchor = check_array(anchor_name, anchor, shape=(d,))
    targets = check_labels(target_name, targets, n) if labels else check_array(target_name, targets, shape=(n,))
    if weights is not None:
        weights = check_weights("w", weights, n)
    return theta, anchor, dphi, targets, weights


def _check_range(name, value, low, high):
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value!r}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value!r}")
