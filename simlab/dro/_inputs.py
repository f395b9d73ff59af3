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
    """Reinterpret the bits of an int64 as a float64 (LLVM bitcast; vectorises).

    A numba intrinsic: callable from numba-compiled code only, as ``int64_bits_as_float64(bits)``.

    Parameters
    ----------
    typingctx : numba.core.typing.context.Context
        numba's typing context (passed by numba, not by the caller).
    bits : numba.types.Integer
        The numba type of the argument; the call site passes an int64.

    Returns
    -------
    tuple of (numba.core.typing.templates.Signature, callable)
        The signature ``float64(int64)`` and the code generator that emits the bitcast: the compiled
        call returns the float64 whose IEEE-754 bit pattern is ``bits``.
    """
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def float64_bits_as_int64(typingctx, x):
    """Reinterpret the bits of a float64 as an int64 (LLVM bitcast; vectorises).

    A numba intrinsic: callable from numba-compiled code only, as ``float64_bits_as_int64(x)``.

    Parameters
    ----------
    typingctx : numba.core.typing.context.Context
        numba's typing context (passed by numba, not by the caller).
    x : numba.types.Float
        The numba type of the argument; the call site passes a float64.

    Returns
    -------
    tuple of (numba.core.typing.templates.Signature, callable)
        The signature ``int64(float64)`` and the code generator that emits the bitcast: the compiled
        call returns the int64 with the IEEE-754 bit pattern of ``x``.
    """
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


_NON_SIGN_BITS = 0x7FFFFFFFFFFFFFFF


@kernel
def ordered_key(x: float) -> int:
    """An int64 ordered like the float64 x: its bits with the non-sign bits of negatives flipped.

    With b the bits of x as an int64, the key is b XOR ((b >> 63) AND 0x7FFFFFFFFFFFFFFF): non-negative
    floats keep their bits (already ordered as integers), negative ones have their magnitude bits
    reversed, so x < y implies ordered_key(x) < ordered_key(y) for non-NaN floats (and -0.0 gets the
    key just below +0.0's). An integer max/min over keys vectorises where a float one does not.

    Parameters
    ----------
    x : float
        A float64, not NaN (-inf and inf get keys below and above those of every finite float).

    Returns
    -------
    int
        The int64 key; :func:`key_to_float` inverts it.
    """
    b = float64_bits_as_int64(x)
    return b ^ ((b >> 63) & _NON_SIGN_BITS)


@kernel
def key_to_float(key: int) -> float:
    """The float64 whose :func:`ordered_key` is ``key`` (the flip is its own inverse).

    Parameters
    ----------
    key : int
        An int64 key, as returned by :func:`ordered_key` (or a max/min of such keys).

    Returns
    -------
    float
        x with ordered_key(x) = key: the bits key XOR ((key >> 63) AND 0x7FFFFFFFFFFFFFFF) read as a float64.
    """
    return int64_bits_as_float64(key ^ ((key >> 63) & _NON_SIGN_BITS))


@kernel
def scan_kernel(losses: np.ndarray, probs: np.ndarray) -> tuple:
    """(sum of losses, sum p, number of p outside [0, 1], max of losses over p > 0, sum p l) in one
    pass; NaN/inf propagate into the sums (a NaN p is in no comparison but makes sum p NaN).
    Counting instead of a running min/max, and the max on int64 keys, let the loop vectorise.
    The in-numba solves call it too, so that they see the same max and p-mean as the public ones.

    Parameters
    ----------
    losses : numpy.ndarray, shape (n,), float64
        The losses l_j of the n atoms.
    probs : numpy.ndarray, shape (n,), float64
        Their probabilities p_j (not checked here: that is what the counts are for).

    Returns
    -------
    tuple of (float, float, int, float, float)
        (sum_j l_j, sum_j p_j, #{j : p_j < 0 or p_j > 1}, max{l_j : p_j > 0}, sum_j p_j l_j); the max is
        -inf when no p_j is positive.
    """
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
    entry points that skip the checks.

    Parameters
    ----------
    l : numpy.ndarray, shape (n,), float64
        Losses.
    p : numpy.ndarray, shape (n,), float64
        Probabilities (sum within 1e-9 of 1; not checked).

    Returns
    -------
    tuple of (float, float)
        (max{l_j : p_j > 0}, sum_j p_j l_j / sum_j p_j), the same numbers :func:`check_losses_probs`
        returns for these inputs.
    """
    _, s_p, _, lmax, s_pl = scan_kernel(l, p)
    return lmax, s_pl / s_p


@kernel
def argmax_weights_kernel(l: np.ndarray, p: np.ndarray, lmax: float, pmax: float, q: np.ndarray) -> None:
    """q = p restricted to the argmax of l over the support, normalised: q_j = p_j / P_max where
    l_j = lmax and p_j > 0, else 0 (the saturated worst case of every f-divergence ball;
    ``pmax`` is the p-mass of the argmax).

    Parameters
    ----------
    l : numpy.ndarray, shape (n,), float64
        Losses.
    p : numpy.ndarray, shape (n,), float64
        Probabilities.
    lmax : float
        max{l_j : p_j > 0}.
    pmax : float
        P_max = sum{p_j : l_j = lmax, p_j > 0}, > 0.
    q : numpy.ndarray, shape (n,), float64
        Output, overwritten with the weights above (they sum to 1 up to round-off).
    """
    for j in range(l.size):
        q[j] = p[j] / pmax if (l[j] == lmax and p[j] > 0.0) else 0.0


def as_float_array(name: str, value) -> np.ndarray:
    """``value`` as a contiguous float64 array, or a ValueError naming ``name`` if it has no such
    conversion (strings, None, ragged lists, complex numbers).

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    value : array_like
        Real numbers of any shape.

    Returns
    -------
    numpy.ndarray
        C-contiguous float64 array of ``value``'s shape (a copy only when a conversion is needed).

    Raises
    ------
    ValueError
        If ``value`` is None, a string or bytes, complex, or not convertible to a float64 array.
    """
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
    p-mean of l (both taken in the checking pass; the mean is sum p l / sum p), or raise ValueError.

    Parameters
    ----------
    losses : array_like, shape (n,)
        Finite real losses, n >= 1.
    probs : array_like, shape (n,)
        Probabilities in [0, 1] summing to 1 within ``PROBS_ATOL`` = 1e-9.

    Returns
    -------
    losses : numpy.ndarray, shape (n,), float64
        The losses, contiguous.
    probs : numpy.ndarray, shape (n,), float64
        The probabilities, contiguous (not renormalised).
    lmax : float
        max{l_j : p_j > 0}.
    mean : float
        The p-mean sum_j p_j l_j / sum_j p_j.

    Raises
    ------
    ValueError
        Naming ``losses`` or ``probs``: wrong shape, empty, non-finite losses, probabilities outside
        [0, 1] or not finite, or a sum farther than 1e-9 from 1.
    """
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
    and mapped back by :func:`unstandardize`.

    Parameters
    ----------
    l : numpy.ndarray, shape (n,), float64
        Finite losses.
    p : numpy.ndarray, shape (n,), float64
        Probabilities with at least one p_j > 0.

    Returns
    -------
    x : numpy.ndarray, shape (m,), float64
        The standardised losses of the m support atoms, max |x| in [1/2, 1] (all 0 if constant).
    w : numpy.ndarray, shape (m,), float64
        Their probabilities p_S / sum p_S.
    index : numpy.ndarray, shape (m,), int64
        Positions of the support atoms in ``l``.
    centre : float
        The clipped w-mean of l_S 2^-k.
    k2 : int
        Exponent of the spread: 2^k2 bounds max |l_S 2^-k - centre|.
    k : int
        Exponent of the magnitude: 2^k bounds max |l_S| (0 when all l_S are 0).
    """
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
    (centre + v 2^k2) 2^k.

    Parameters
    ----------
    v : float
        A value on the standardised scale (a worst-case value or dual threshold solved on x).
    centre : float
        The centre returned by :func:`standardize_support_kernel`.
    k2 : int
        Its spread exponent.
    k : int
        Its magnitude exponent.

    Returns
    -------
    float
        (centre + v 2^k2) 2^k; the scalings by powers of 2 are exact, the addition rounds once.
    """
    return math.ldexp(centre + math.ldexp(v, k2), k)


@kernel
def well_scaled(reach: float) -> bool:
    """Whether max |l_j - mean| over the support lies in [SPREAD_MIN, SPREAD_MAX] (NaN: no).

    Parameters
    ----------
    reach : float
        max |l_j - mean| over the support (the caller takes it as max(lmax - mean, mean - lmin)).

    Returns
    -------
    bool
        True when 2^-20 <= reach <= 2^20: the duals then solve on the losses as given, otherwise on
        :func:`standardize_support_kernel`'s losses.
    """
    return reach >= SPREAD_MIN and reach <= SPREAD_MAX


def check_law_pair(q, p) -> tuple[np.ndarray, np.ndarray]:
    """(q, p) as float64 vectors of one shape with finite entries >= 0 (the arguments of a
    divergence D(q || p)), or a ValueError naming the argument.

    Parameters
    ----------
    q : array_like, shape (n,)
        The first law, n >= 1 (not required to sum to 1).
    p : array_like, shape (n,)
        The reference law.

    Returns
    -------
    q, p : numpy.ndarray, shape (n,), float64
        Both laws as contiguous arrays.

    Raises
    ------
    ValueError
        Naming ``q`` or ``p``: wrong shape, empty, non-finite or negative entries.
    """
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
    """The ball radius: a finite float >= 0.

    Parameters
    ----------
    radius : float
        The radius eps of the divergence ball.

    Returns
    -------
    float
        ``radius`` as a Python float.

    Raises
    ------
    ValueError
        Naming ``radius`` if it is not a finite real number >= 0.
    """
    return check_float("radius", radius, 0.0)


def check_tau(tau) -> float:
    """The KL temperature: a finite float > 0.

    Parameters
    ----------
    tau : float
        The temperature tau of the KL-penalised worst case (docs/theory/dro.md §2.1).

    Returns
    -------
    float
        ``tau`` as a Python float.

    Raises
    ------
    ValueError
        Naming ``tau`` if it is not a finite real number > 0.
    """
    return check_float("tau", tau, 0.0, low_open=True)
