"""Input checks shared by the DRO duals: one fused pass over (losses, probs) (docs/theory/dro.md §2).

Bad input raises ``ValueError`` naming the argument: non-finite losses, probabilities outside [0, 1]
or not summing to 1 (tolerance 1e-9), shape mismatch, negative radius, non-positive temperature.
Probabilities within the tolerance are accepted and every ball is built around the law p / sum p
(the duals carry the factor 1 / sum p through their sums instead of copying p).
The same pass takes max l over the support p > 0 and the p-mean of l, which the duals need first; the
max is taken on order-preserving int64 keys of the floats (``ordered_key``), because a float max
reduction does not vectorise without the 'nnan' flag the project excludes (55 -> 20 us at n = 1e5).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from simlab._jit import kernel
from simlab.validation import check_float

PROBS_ATOL = 1e-9


@intrinsic
def int64_bits_as_float64(typingctx, bits):
    """Reinterpret the bits of an int64 as a float64 (LLVM bitcast; vectorises)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def float64_bits_as_int64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (LLVM bitcast; vectorises)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


_NON_SIGN_BITS = 0x7FFFFFFFFFFFFFFF


@kernel
def ordered_key(x: float) -> int:
    """An int64 ordered like the float64 x: its bits with the non-sign bits of negatives flipped."""
    b = float64_bits_as_int64(x)
    return b ^ ((b >> 63) & _NON_SIGN_BITS)


@kernel
def key_to_float(key: int) -> float:
    """The float64 whose :func:`ordered_key` is ``key`` (the flip is its own inverse)."""
    return int64_bits_as_float64(key ^ ((key >> 63) & _NON_SIGN_BITS))


@kernel
def scan_kernel(losses: np.ndarray, probs: np.ndarray) -> tuple:
    """(sum of losses, sum p, number of p outside [0, 1], max of losses over p > 0, sum p l) in one
    pass; NaN/inf propagate into the sums (a NaN p is in no comparison but makes sum p NaN).
    Counting instead of a running min/max, and the max on int64 keys, let the loop vectorise.
    The in-numba solves call it too, so that they see the same max and p-mean as the public ones."""
    s_l = 0.0
    s_p = 0.0
    s_pl = 0.0
    outside = 0
    key = ordered_key(-np.inf)
    for j in range(losses.size):
        lj = losses[j]
        s_l += lj
        pj = probs[j]
        s_p += pj
        s_pl += pj * lj
        outside += (pj < 0.0) | (pj > 1.0)
        key = max(key, ordered_key(lj if pj > 0.0 else -np.inf))
    return s_l, s_p, outside, key_to_float(key), s_pl


@kernel
def support_stats_kernel(l: np.ndarray, p: np.ndarray) -> tuple:
    """(max of l over the support p > 0, p-mean of l) by the input-checking pass, for the in-numba
    entry points that skip the checks."""
    _, s_p, _, lmax, s_pl = scan_kernel(l, p)
    return lmax, s_pl / s_p


@kernel
def argmax_weights_kernel(l: np.ndarray, p: np.ndarray, lmax: float, pmax: float, q: np.ndarray) -> None:
    """q = p restricted to the argmax of l over the support, normalised: q_j = p_j / P_max where
    l_j = lmax and p_j > 0, else 0 (the saturated worst case of every f-divergence ball;
    ``pmax`` is the p-mass of the argmax)."""
    for j in range(l.size):
        q[j] = p[j] / pmax if (l[j] == lmax and p[j] > 0.0) else 0.0


def as_float_array(name: str, value) -> np.ndarray:
    """``value`` as a contiguous float64 array, or a ValueError naming ``name`` if it has no such
    conversion (strings, None, ragged lists, complex numbers)."""
    if value is None or isinstance(value, (str, bytes)):
        raise ValueError(f"{name} must be an array of real numbers, got {value!r}")
    try:
        arr = np.asarray(value)
        if np.iscomplexobj(arr):
            raise TypeError("complex")
        return np.ascontiguousarray(arr, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of real numbers, got {value!r:.80}") from None


def check_losses_probs(losses, probs) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Return (losses, probs) as contiguous float64 vectors of equal length, max l over p > 0 and the
    p-mean of l (both taken in the checking pass; the mean is sum p l / sum p), or raise ValueError."""
    losses = as_float_array("losses", losses)
    probs = as_float_array("probs", probs)
    if losses.ndim != 1 or losses.size == 0:
        raise ValueError(f"losses must be a non-empty 1-D array, got shape {losses.shape}")
    if probs.shape != losses.shape:
        raise ValueError(f"probs must have the shape of losses {losses.shape}, got {probs.shape}")
    s_l, s_p, outside, lmax, s_pl = scan_kernel(losses, probs)
    if not np.isfinite(s_l) and not np.all(np.isfinite(losses)):
        raise ValueError("losses contains NaN or inf")
    if not (np.isfinite(s_p) and outside == 0):
        raise ValueError("probs entries must be finite and lie in [0, 1]")
    if abs(s_p - 1.0) > PROBS_ATOL:
        raise ValueError(f"probs must sum to 1 (tolerance {PROBS_ATOL:g}), sums to {s_p:.12g}")
    return losses, probs, float(lmax), float(s_pl / s_p)


# The duals solve on the losses as given while max |l_j - mean| over the support lies in
# [SPREAD_MIN, SPREAD_MAX] and no atom, of zero probability or not, is farther than SPREAD_MAX from the
# mean (no 0 * inf): every power they take (up to the 8th, in the KL start) is then a normal float,
# and so are products of tiny weights (1e-290) with powers of the spread (a band of 2^+-60 let
# w (l - max l)^2 underflow and the KL iteration stop 4% short).  Otherwise they solve on
# :func:`standardize_support_kernel`'s losses (one pass and a copy; ordinary losses never need it).
SPREAD_MIN = 2.0 ** -20
SPREAD_MAX = 2.0 ** 20


@kernel
def standardize_support_kernel(l: np.ndarray, p: np.ndarray) -> tuple:
    """The support S = {p > 0} as standardised losses: (x, w, index, centre, k2, k) with
    x = (l_S 2^-k - centre) 2^-k2, w = p_S / sum p_S and l_S = (centre + x 2^k2) 2^k, where 2^k
    bounds max |l_S| and 2^k2 bounds max |l_S 2^-k - centre| (centre = their w-mean), so x has
    max |x| in [1/2, 1] (scaling by powers of 2 is exact; the subtraction is the only rounding).
    Constant losses on S give x = 0, k2 = 0, centre = the common value 2^-k l_S.  This is how the
    duals meet losses of any finite magnitude and zero-probability atoms of any value: the worst
    cases are translation and scale equivariant (docs/theory/dro.md §2.5), so they are solved on x
    and mapped back by :func:`unstandardize`."""
    n = 0
    mass = 0.0
    amax = 0.0
    for j in range(l.size):
        if p[j] > 0.0:
            n += 1
            mass += p[j]
            amax = max(amax, abs(l[j]))
    k = math.frexp(amax)[1] if amax > 0.0 else 0
    idx = np.empty(n, dtype=np.int64)
    x = np.empty(n)
    w = np.empty(n)
    i = 0
    s_w = 0.0
    s_wy = 0.0
    ymin = np.inf
    ymax = -np.inf
    for j in range(l.size):
        if p[j] > 0.0:
            idx[i] = j
            y = math.ldexp(l[j], -k)
            x[i] = y
            w[i] = p[j] / mass
            s_w += w[i]
            s_wy += w[i] * y
            ymin = min(ymin, y)
            ymax = max(ymax, y)
            i += 1
    if ymin == ymax:
        x[:] = 0.0
        return x, w, idx, ymax, 0, k
    centre = min(max(s_wy / s_w, ymin), ymax)
    spread = 0.0
    for i in range(n):
        x[i] -= centre
        spread = max(spread, abs(x[i]))
    k2 = math.frexp(spread)[1]
    for i in range(n):
        x[i] = math.ldexp(x[i], -k2)
    return x, w, idx, centre, k2, k


@kernel
def unstandardize(v: float, centre: float, k2: int, k: int) -> float:
    """The loss-scale value of a standardised one (:func:`standardize_support_kernel`):
    (centre + v 2^k2) 2^k."""
    return math.ldexp(centre + math.ldexp(v, k2), k)


@kernel
def well_scaled(reach: float) -> bool:
    """Whether max |l_j - mean| over the support lies in [SPREAD_MIN, SPREAD_MAX] (NaN: no)."""
    return reach >= SPREAD_MIN and reach <= SPREAD_MAX


def check_law_pair(q, p) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) as float64 vectors of one shape with finite entries >= 0 (the arguments of a
    divergence D(q || p)), or a ValueError naming the argument."""
    q = as_float_array("q", q)
    p = as_float_array("p", p)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f"q must be a non-empty 1-D array, got shape {q.shape}")
    if p.shape != q.shape:
        raise ValueError(f"p must have the shape of q {q.shape}, got {p.shape}")
    for name, arr in (("q", q), ("p", p)):
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise ValueError(f"{name} entries must be finite and >= 0")
    return q, p


def check_radius(radius) -> float:
    """The ball radius: a finite float >= 0."""
    return check_float("radius", radius, 0.0)


def check_tau(tau) -> float:
    """The KL temperature: a finite float > 0."""
    return check_float("tau", tau, 0.0, low_open=True)
