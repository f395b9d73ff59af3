"""KL worst cases over a discrete law (docs/theory/dro.md §2.1), for the normalised law p / sum p.

* Penalised:   sup_q <q, l> - tau KL(q||p) = tau log E_p e^{l/tau},  q = softmax_p(l/tau).
* Constrained: sup_{KL(q||p) <= eps} <q, l> = inf_{tau>0} tau eps + tau log E_p e^{l/tau},
  attained at q* = softmax_p(l/tau*) with KL(q*||p) = eps.  With alpha = 1/tau,
  K(alpha) = KL(q_alpha||p) = alpha E_q l - log E_p e^{alpha l} increases from 0 to log(1/P_max)
  (K'(alpha) = alpha Var_q l), so tau* solves K = eps by safeguarded Halley steps on log alpha
  inside a bisection bracket (lower end sqrt(8 eps)/spread), started from the root of K's
  small-radius cumulant series (8th order, one pass without exponentials): O(A log(1/tol)).  Once the
  steps are small an iteration moves the stored tilted weights by a polynomial factor instead of a new
  exponential pass, and a last step below 1e-8 is folded into the normalising pass, so from the series
  start the benchmark's solves (n = 1e5, radius 0.01..1) take one exponential pass and at most one
  polynomial pass.  When alpha spread < 2^-8 the series is K itself to round-off: its root is tau*
  and the value comes from the cumulant series (no eps / alpha loss at tiny radii).
* Saturation: if eps >= log(1/P_max) (P_max = p-mass of the maximal loss) the value is max l and
  q* is p restricted to the argmax (tau* = 0).

Input domain (README "Input domain of the DRO duals"): probabilities summing to 1 within 1e-9 are
normalised (the sums carry 1 / sum p: log Z - log sum p, P_max / sum p); losses of any finite magnitude
are solved as given when well scaled (the support's deviations from the mean within
[SPREAD_MIN, SPREAD_MAX] = [2^-20, 2^20], no atom farther than SPREAD_MAX), otherwise on the
standardised support (:func:`simlab.dro._inputs.standardize_support_kernel`; the worst case is
translation and scale equivariant, docs/theory/dro.md §2.5).  Constant losses on the support are
detected exactly (min l == max l over p > 0).

Every function works for weighted atoms (population p0) and uniform/empirical weights alike; atoms
with p_j = 0 carry no mass (q << p).  All exponentials subtract max l (softmax is shift invariant),
so every exponent is <= 0 and is taken by :func:`exp_nonpositive`, an exp that LLVM vectorises
(numba's np.exp is a scalar libm call per element: ~5 ns against ~1 ns vectorised).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from simlab._jit import kernel
from simlab.dro._inputs import (SPREAD_MAX, SPREAD_MIN, argmax_weights_kernel, check_law_pair, check_losses_probs,
                                check_radius, check_tau, int64_bits_as_float64, key_to_float, ordered_key,
                                standardize_support_kernel, support_stats_kernel, unstandardize, well_scaled)
# a dual step below this relative size is round-off: at the root the computed residual
# K(alpha) - radius scatters by a few 1e-15 over 1e5 atoms, i.e. steps of ~1e-14 relative.
ALPHA_STEP_RTOL = 1e-13
# A last Halley step below FOLD_STEP_RTOL (relative) is taken without evaluating the residual after it:
# it starts where the residual was just evaluated, so its error is O(step^3) ~ 1e-24, far below
# round-off.  It is folded into the normalising pass, whose factor 1 + x + x^2/2 (x = step (l - lmax))
# is e^x to |x|^3/6 < 3e-20 while |x| <= FOLD_MAX.
FOLD_STEP_RTOL = 1e-8
FOLD_MAX = 2.0 ** -20
# the dual takes at most a factor e^LOG_STEP_MAX = 16 per step (a Halley step far from the root can
# otherwise jump into the saturated regime, where K is flat and the steps crawl)
LOG_STEP_MAX = float(np.log(16.0))


# exp(x) = 2^n e^r with n = round(x / ln 2), r = x - n ln 2 in [-ln2/2, ln2/2] (Cody-Waite split of ln 2:
# n * LN2_HI is exact for |n| <= 1100), e^r by its Taylor polynomial of degree 13 (remainder < 2e-18).
LOG2E = 1.4426950408889634
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
EXP_UNDERFLOW = -708.0  # below this e^x < 3.3e-308 is returned as 0 (2^n must stay a normal number)


# Not @kernel on purpose: the project flag 'reassoc' would let LLVM fold the two-step reduction
# (x - n LN2_HI) - n LN2_LO into x - n ln2 and lose up to ~100 ulp near x = -700 (measured); with
# 'contract' only this is within ~1 ulp of libm over [-708, 0].  It inlines into @kernel loops, which
# keep their own flags (reassoc for the reductions), so those loops still vectorise.
@njit(cache=True, fastmath={"contract"}, nogil=True)
def exp_nonpositive(x: float) -> float:
    """e^min(x, 0) to ~1 ulp, 0 for x < -708, written so that loops calling it vectorise
    (no libm call): 2^n by exponent bits, e^r by a degree-13 Horner polynomial.

    Parameters
    ----------
    x : float
        The exponent; values above 0 are taken as 0.

    Returns
    -------
    float
        e^min(x, 0), or 0 when x < -708.
    """
    under = x < EXP_UNDERFLOW
    x = min(max(x, EXP_UNDERFLOW), 0.0)
    n = np.floor(x * LOG2E + 0.5)
    r = (x - n * LN2_HI) - n * LN2_LO
    e = 1.0 / 6227020800.0
    e = e * r + 1.0 / 479001600.0
    e = e * r + 1.0 / 39916800.0
    e = e * r + 1.0 / 3628800.0
    e = e * r + 1.0 / 362880.0
    e = e * r + 1.0 / 40320.0
    e = e * r + 1.0 / 5040.0
    e = e * r + 1.0 / 720.0
    e = e * r + 1.0 / 120.0
    e = e * r + 1.0 / 24.0
    e = e * r + 1.0 / 6.0
    e = e * r + 0.5
    e = e * r + 1.0
    e = e * r + 1.0
    e = e * int64_bits_as_float64((np.int64(n) + 1023) << 52)
    return 0.0 if under else e


class KLWorstCase(NamedTuple):
    """Constrained KL worst case: value, worst-case weights q, dual temperature tau (0 if saturated,
    inf at radius 0), and the number of dual iterations."""

    value: float
    q: np.ndarray
    tau: float
    iterations: int


@kernel
def _kl_support_moments_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float) -> tuple:
    """(P_max = p-mass of l == lmax, mass = sum p, min l over p > 0, far, mu) in one pass, with
    mu[k] = E_p (l - mean)^k / E_p 1 for k = 0..8 (central moments about the p-mean keep the variance
    and the start's cumulants accurate) and far = the number of atoms, of zero probability or not,
    with |l - mean| > SPREAD_MAX (:func:`_kl_well_scaled`).  The min is taken on int64 keys
    (:func:`simlab.dro._inputs.ordered_key`) so that the loop vectorises."""
    s0 = 0.0
    pmax = 0.0
    m1 = m2 = m3 = m4 = m5 = m6 = m7 = m8 = 0.0
    lmin_key = ordered_key(np.inf)
    far = 0
    for j in range(l.size):
        w = p[j]
        d = l[j] - mean
        d2 = d * d
        d4 = d2 * d2
        s0 += w
        pmax += w if l[j] == lmax else 0.0
        m1 += w * d
        m2 += w * d2
        m3 += w * d2 * d
        m4 += w * d4
        m5 += w * d4 * d
        m6 += w * d4 * d2
        m7 += w * d4 * d2 * d
        m8 += w * d4 * d4
        lmin_key = min(lmin_key, ordered_key(l[j] if w > 0.0 else np.inf))
        far += abs(d) > SPREAD_MAX
    mu = np.array([s0, m1, m2, m3, m4, m5, m6, m7, m8]) / s0
    return pmax, s0, key_to_float(lmin_key), far, mu


@kernel
def _kl_well_scaled(lmax: float, lmin: float, mean: float, far: int) -> bool:
    """Whether the KL dual can solve on the losses as given: :func:`simlab.dro._inputs.well_scaled`
    on the support's reach max(lmax - mean, mean - lmin), and no atom, of zero probability or not,
    farther than SPREAD_MAX from the mean (every power up to the 8th of l - mean, and every
    polynomial tilt move, then stays a finite float, so zero probabilities contribute exact zeros)."""
    return well_scaled(max(lmax - mean, mean - lmin)) and far == 0


@kernel
def _tilt_summary(z: float, s1: float, s2: float, s3: float) -> tuple:
    """(Z, E_q c, Var_q c, third central moment of c under q) from the weighted sums
    Z = sum w, s_k = sum w c^k of q = w/Z."""
    m1 = s1 / z
    m2 = s2 / z
    var = max(m2 - m1 * m1, 0.0)
    k3 = s3 / z - 3.0 * m1 * m2 + 2.0 * m1 * m1 * m1
    return z, m1, var, k3


@kernel
def _tilt_moments_kernel(l: np.ndarray, p: np.ndarray, lmax: float, alpha: float,
                         w: np.ndarray) -> tuple:
    """Unnormalised tilted weights w = p e^{alpha (l - lmax)} (written to w; one exponential pass)
    and, for q = w/Z, (Z, E_q[l - lmax], Var_q l, third central moment of l under q)."""
    for j in range(l.size):
        w[j] = p[j] * exp_nonpositive(alpha * (l[j] - lmax))
    return _tilt_sums_kernel(l, lmax, w)


# A move alpha -> alpha + delta multiplies each tilted weight by e^{delta c}.  While |delta| |c| <= h on
# the support the Taylor polynomial of degree k gives that factor to h^(k+1)/(k+1)! relative: degree 7
# up to h = 1/32 (< 3e-17) and degree 4 up to h = 2^-12 (< 1e-20), i.e. as exactly as an exponential,
# at about half (degree 7) or 40% (degree 4) of the cost of an exponential pass.  Coefficients
# 1/k!, ..., 1/1!, 1/0! in Horner order.
TILT_UPDATE_MAX = 1.0 / 32.0
TAYLOR_7 = tuple(1.0 / math.factorial(k) for k in range(7, -1, -1))
TILT_UPDATE_SMALL = 2.0 ** -12
TAYLOR_4 = tuple(1.0 / math.factorial(k) for k in range(4, -1, -1))


@kernel
def _tilt_update_kernel(l: np.ndarray, lmax: float, delta: float, taylor: tuple, w: np.ndarray) -> tuple:
    """Move the tilted weights w of some alpha to alpha + delta in place, w <- w e^{delta (l - lmax)}
    with e^x by the Taylor polynomial whose coefficients (Horner order) are ``taylor`` (requires
    |delta| |l - lmax| within that degree's bound over the support; atoms off it have w = 0 and stay
    0), and return what :func:`_tilt_moments_kernel` returns."""
    for j in range(l.size):
        x = delta * (l[j] - lmax)
        e = taylor[0]
        for coef in taylor[1:]:
            e = e * x + coef
        w[j] *= e
    return _tilt_sums_kernel(l, lmax, w)


@kernel
def _tilt_sums_kernel(l: np.ndarray, lmax: float, w: np.ndarray) -> tuple:
    """:func:`_tilt_summary` of the weights w: Z = sum w and s_k = sum w (l - lmax)^k, k = 1..3.

    A loop that only sums (the weights are written by a separate loop): LLVM vectorises a loop
    that both stores and sums behind a runtime check on the arrays' addresses and falls back to a
    scalar loop, which with reassociation rounds differently, so such a loop's result depends on
    where the arrays lie in memory; a loop without stores has one version, whose rounding depends
    only on the length (tests/dro/test_address_independence.py)."""
    z = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for j in range(l.size):
        c = l[j] - lmax
        wj = w[j]
        z += wj
        s1 += wj * c
        s2 += wj * c * c
        s3 += wj * c * c * c
    return _tilt_summary(z, s1, s2, s3)


@kernel
def _tilt_at_kernel(l: np.ndarray, p: np.ndarray, lmax: float, spread: float, alpha: float,
                    alpha_w: float, w: np.ndarray) -> tuple:
    """The tilted weights of alpha in w and their summary (:func:`_tilt_moments_kernel`): a
    polynomial update of the weights of alpha_w already in w when alpha is close to it (degree 4
    within TILT_UPDATE_SMALL, 7 within TILT_UPDATE_MAX), an exponential pass otherwise
    (alpha_w <= 0: w holds none)."""
    delta = alpha - alpha_w
    if alpha_w > 0.0:
        reach = abs(delta) * spread
        if reach <= TILT_UPDATE_SMALL:
            return _tilt_update_kernel(l, lmax, delta, TAYLOR_4, w)
        if reach <= TILT_UPDATE_MAX:
            return _tilt_update_kernel(l, lmax, delta, TAYLOR_7, w)
    return _tilt_moments_kernel(l, p, lmax, alpha, w)


@kernel
def _tilt_normalise_kernel(l: np.ndarray, lmax: float, delta: float, inv_z: float, q: np.ndarray) -> None:
    """q <- q e^{delta (l - lmax)} inv_z in place, e^x by 1 + x + x^2/2 (|x| <= FOLD_MAX): normalises
    the tilted weights and moves them by a folded last step delta; delta = 0 only scales."""
    if delta == 0.0:
        for j in range(q.size):
            q[j] *= inv_z
        return
    for j in range(q.size):
        x = delta * (l[j] - lmax)
        q[j] *= (1.0 + x * (1.0 + 0.5 * x)) * inv_z


@kernel
def _softmax_weights_kernel(l: np.ndarray, p: np.ndarray, lmax: float, alpha: float,
                            q: np.ndarray) -> float:
    """q = p e^{alpha (l - lmax)} / sum p e^{alpha (l - lmax)} in place; returns log Z with
    Z = E_p e^{alpha (l - lmax)} for the normalised law p / sum p.  The one computation of softmax_p
    weights: :func:`kl_penalized`, the dual's small-radius branch and :func:`kl_penalized_kernel` call it.

    The loop that writes q does not sum, and the sums run in a loop without stores: a loop that both
    stores and sums is vectorised behind a runtime check on the arrays' addresses, and its scalar
    fallback rounds differently (a copy that summed Z while storing changed bits with the arrays'
    addresses in 82 of 3000 random calls; :func:`_tilt_sums_kernel`)."""
    for j in range(l.size):
        q[j] = p[j] * exp_nonpositive(alpha * (l[j] - lmax))
    z = 0.0
    mass = 0.0
    for j in range(l.size):
        z += q[j]
        mass += p[j]
    for j in range(l.size):
        q[j] /= z
    return np.log(z) - np.log(mass)


@kernel
def kl_penalized_kernel(l: np.ndarray, p: np.ndarray, tau: float, q: np.ndarray) -> float:
    """In-numba penalised KL worst case (no input checks): writes q = softmax_p(l/tau), i.e.
    q_j = p_j e^{(l_j - lmax)/tau} / sum_k p_k e^{(l_k - lmax)/tau} with lmax = max l over p > 0, and
    returns the value tau log E_p e^{l/tau} = lmax + tau log E_p e^{(l - lmax)/tau} for the normalised
    law p / sum p (docs/theory/dro.md §2.1).

    The kernel behind :func:`kl_penalized` for whole-loop jitted solvers (minibatch KLDPO, online
    KL-REBEL): the same primitive (:func:`_softmax_weights_kernel`), so the same weights to round-off
    (inlined into another kernel LLVM may round a few ulp differently), without the public call's
    standardisation of badly scaled losses or its cumulant series at tau far above the spread.
    Requires tau > 0 with 1/tau finite; every exponent is <= 0 (:func:`exp_nonpositive`), so tiny
    weights underflow to 0 below e^-708 without a cut-off.

    Parameters
    ----------
    l : ndarray of float64, shape (A,)
        Losses (finite).
    p : ndarray of float64, shape (A,)
        Atom weights >= 0 with a positive sum (the law is p / sum p).
    tau : float
        Temperature, > 0.
    q : ndarray of float64, shape (A,)
        Output: the worst-case weights softmax_p(l/tau) (0 where p = 0).

    Returns
    -------
    float
        tau log E_p e^{l/tau}.
    """
    lmax, _ = support_stats_kernel(l, p)
    return lmax + tau * _softmax_weights_kernel(l, p, lmax, 1.0 / tau, q)


# Below this alpha * (max l - min l) the 8th-order series of K has relative truncation error
# < ~0.5 (alpha spread)^7 < 1e-17 (every cumulant is a sum of at most Bell(9) products of central
# moments, each <= Var spread^(n-2)): the series root is then the dual's root.
SERIES_EXACT_MAX = 2.0 ** -8

# K(alpha) = sum_{n>=2} (n-1)/n! kappa_n alpha^n (kappa_n the cumulants of l under p): coefficients
# (n-1)/n! for n = 2..8 of the small-radius series that gives the dual's starting point.
_K_SERIES = (1.0 / 2.0, 1.0 / 3.0, 1.0 / 8.0, 1.0 / 30.0, 1.0 / 144.0, 1.0 / 840.0, 1.0 / 5760.0)


@kernel
def _kl_cumulants(mu: np.ndarray) -> np.ndarray:
    """kappa_0..8 (kappa_0 = 0) of l under p from its moments mu about any centre:
    kappa_n = mu_n - sum_{k=1}^{n-1} C(n-1, k-1) kappa_k mu_{n-k} (kappa_1 is the p-mean minus the
    centre)."""
    kap = np.zeros(9)
    kap[1] = mu[1]
    for n in range(2, 9):
        acc = mu[n]
        binom = 1.0  # C(n-1, k-1)
        for k in range(1, n):
            acc -= binom * kap[k] * mu[n - k]
            binom = binom * (n - k) / k
        kap[n] = acc
    return kap


@kernel
def _kl_series_root(kap: np.ndarray, radius: float) -> tuple:
    """Starting point for K(alpha) = radius: the root of the small-radius series of K truncated after
    the 8th cumulant of l under p (``kap`` from :func:`_kl_cumulants`), found by Newton from the
    2nd-order guess alpha_2 = sqrt(2 radius / Var_p) in x = alpha / alpha_2, on the series divided by
    radius (so that radii down to the smallest subnormal neither underflow nor lose digits).
    Returns (alpha, converged); falls back to alpha_2 (converged False) if the truncated series is not
    increasing along the way (heavy tails); the dual iteration is safeguarded either way, this only
    saves passes (typical error 1e-2..1e-6 against 1e-1 for the 2nd-order guess), unless alpha spread
    is so small that the series is K itself (:func:`_kl_solve_kernel`)."""
    if not (kap[2] > 0.0):  # the p-variance is below the round-off of the moments about the mean
        return 0.0, False
    alpha0 = np.sqrt(2.0 * radius) / np.sqrt(kap[2])
    # K(alpha0 x) / radius = sum_n coef_n x^n, coef_n = (n-1)/n! kappa_n alpha0^n / radius
    #                      = 2 (n-1)/n! (kappa_n / kappa_2) alpha0^(n-2)   (coef_2 = 1)
    coef = np.zeros(9)
    power = 1.0
    for n in range(2, 9):
        coef[n] = 2.0 * _K_SERIES[n - 2] * (kap[n] / kap[2]) * power
        power *= alpha0
    x = 1.0
    for _ in range(50):
        f = -1.0
        df = 0.0
        xn = x  # x^(n-1)
        for n in range(2, 9):
            df += n * coef[n] * xn
            xn *= x
            f += coef[n] * xn
        if not (df > 0.0):
            return alpha0, False
        step = f / df
        x -= step
        if not (x > 0.0 and np.isfinite(x)):
            return alpha0, False
        if abs(step) <= 1e-12 * x:  # quadratic convergence: the error is now ~1e-24
            return alpha0 * x, True
    return alpha0, False


@kernel
def _kl_halley_kernel(l: np.ndarray, p: np.ndarray, lmax: float, spread: float, radius: float,
                      log_mass: float, alpha0: float, max_iter: int, q: np.ndarray) -> tuple:
    """Solve K(alpha) = radius for alpha = 1/tau from alpha0; returns (alpha, log Z, iterations) and
    leaves the worst-case weights q = p e^{alpha (l - lmax)} / sum p e^{alpha (l - lmax)} of the final
    alpha in q, with Z = E_p e^{alpha (l - lmax)} for the normalised law p / sum p
    (log_mass = log sum p).

    Requires 0 < radius < log(1/P_max).  Safeguarded Halley iteration on x = log alpha:
    F = K - radius, F' = alpha^2 Var_q l, F'' = 2 alpha^2 Var_q l + alpha^3 kappa3_q; a step that
    leaves the bisection bracket, or does not halve the step before last, is replaced by bisection
    in log alpha (or expansion while unbracketed); steps are capped at a factor 16.  Stops
    when the residual is at round-off or the next step is below ALPHA_STEP_RTOL (then the weights
    of the current alpha are kept: no pass is spent on a round-off move).  Each iteration is one
    pass (:func:`_tilt_at_kernel`): exponential, or polynomial once the steps are small, so from a
    good start the solve costs one exponential and one polynomial pass.  A last step below
    FOLD_STEP_RTOL is taken inside the normalising pass (:func:`_tilt_normalise_kernel`), with
    log Z moved by the cumulant series of l under q.
    """
    # K(alpha) = int_0^alpha a Var_{q_a} l da <= alpha^2 spread^2 / 8 (Popoviciu): the root is at least
    # sqrt(8 radius) / spread, a lower end for the bracket from the start (so that a start far above
    # the root, e.g. from the variance of a law with a tiny-probability maximum, is bisected down in
    # log alpha instead of quartered)
    lo = np.sqrt(8.0 * radius) / spread
    alpha = max(alpha0, lo)
    alpha_w = 0.0  # the alpha whose tilted weights q holds (0: none yet)
    hi = np.inf
    it = 0
    z = 1.0
    last_step = np.inf
    # round-off of the residual: a few ulp per term, growing like sqrt(n) over the n-term sums
    sum_rtol = (4.0 + np.sqrt(l.size)) * 1.1e-16
    step_before_last = np.inf
    fold = 0.0
    m1 = var_q = k3 = 0.0
    while it < max_iter:
        it += 1
        z, m1, var_q, k3 = _tilt_at_kernel(l, p, lmax, spread, alpha, alpha_w, q)
        log_z = np.log(z) - log_mass
        alpha_w = alpha
        resid = alpha * m1 - log_z - radius
        if resid > 0.0:
            hi = alpha
        else:
            lo = alpha
        floor = sum_rtol * (abs(alpha * m1) + abs(log_z)) + 1e-15 * radius
        if abs(resid) <= floor or (hi < np.inf and hi - lo <= 1e-15 * hi):
            break
        f1 = alpha * alpha * var_q
        f2 = 2.0 * f1 + alpha * alpha * alpha * k3
        den = 2.0 * f1 * f1 - resid * f2
        cand = -1.0
        if f1 > 0.0:
            step = 2.0 * resid * f1 / den if den > 0.0 else resid / f1
            step = min(max(step, -LOG_STEP_MAX), LOG_STEP_MAX)
            # a step that does not halve the one before last is not converging: bisect instead
            if abs(step) <= 0.5 * abs(step_before_last):
                cand = alpha * np.exp(-step)
            step_before_last = last_step
            last_step = step
        if cand > lo and cand < hi and np.isfinite(cand):
            delta = cand - alpha
            if abs(delta) <= FOLD_STEP_RTOL * alpha and abs(delta) * spread <= FOLD_MAX:
                fold = delta  # the last step: taken by the normalising pass
                break
            if abs(delta) <= ALPHA_STEP_RTOL * alpha:
                break  # the step is round-off noise and too large to fold: alpha and q are final
            alpha = cand
            continue
        if hi == np.inf:
            alpha = 4.0 * alpha
        else:
            alpha = np.sqrt(lo * hi)
    if alpha_w != alpha:
        z, m1, var_q, k3 = _tilt_at_kernel(l, p, lmax, spread, alpha, alpha_w, q)
    # log Z(alpha + fold) = log Z(alpha) + log E_q e^{fold (l - lmax)}, by its cumulant series
    shift = fold * (m1 + fold * (0.5 * var_q + fold * k3 / 6.0))
    _tilt_normalise_kernel(l, lmax, fold, np.exp(-shift) / z, q)
    return alpha + fold, np.log(z) - log_mass + shift, it


@kernel
def kl_worst_case_kernel(l: np.ndarray, p: np.ndarray, radius: float, q: np.ndarray) -> tuple:
    """In-numba constrained KL worst case (no input checks): writes q, returns (value, tau, iterations).

    The one implementation behind :func:`kl_worst_case`; other kernels (e.g. whole-loop SGD) call it
    directly.  Radius 0 or constant losses: q = p (tau = inf); saturation: q = p on argmax (tau = 0).
    The ball is around p / sum p; losses of any finite magnitude are solved standardised.

    Parameters
    ----------
    l : ndarray of float64, shape (A,)
        Finite losses.
    p : ndarray of float64, shape (A,)
        Atom weights >= 0 with a positive sum (the law is p / sum p).
    radius : float
        The ball's radius, >= 0.
    q : ndarray of float64, shape (A,)
        Output: the worst-case weights.

    Returns
    -------
    tuple of (float, float, int)
        (value, tau, iterations), as :func:`kl_worst_case`.
    """
    lmax, mean = support_stats_kernel(l, p)
    return _kl_worst_case_given_stats_kernel(l, p, lmax, mean, radius, q)


@kernel
def _kl_worst_case_given_stats_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float,
                                      radius: float, q: np.ndarray) -> tuple:
    """:func:`kl_worst_case_kernel` once max l over the support and the p-mean of l are known (the
    public call takes them in its input-checking pass): one moments pass, then the closed-form cases
    (radius 0, constant losses on the support, saturation radius >= log(sum p / P_max)), or the dual
    solve on the losses as given when they are well scaled, or else on the standardised support
    (:func:`simlab.dro._inputs.standardize_support_kernel`; one more pass and a copy)."""
    pmax, mass, lmin, far, mu = _kl_support_moments_kernel(l, p, lmax, mean)
    if radius == 0.0 or lmin == lmax:
        for j in range(l.size):
            q[j] = p[j] / mass
        return (lmax if lmin == lmax else mean), np.inf, 0
    if radius >= np.log(mass) - np.log(pmax):
        argmax_weights_kernel(l, p, lmax, pmax, q)
        return lmax, 0.0, 0
    if _kl_well_scaled(lmax, lmin, mean, far):
        value, tau, it = _kl_solve_kernel(l, p, lmax, mean, lmin, mass, mu, radius, q)
        return min(max(value, mean), lmax), tau, it  # mean <= value <= max l also under round-off
    x, w, idx, centre, k2, k = standardize_support_kernel(l, p)
    xmax, xmean = support_stats_kernel(x, w)
    _, mass_x, xmin, _, mu_x = _kl_support_moments_kernel(x, w, xmax, xmean)
    qx = np.empty(x.size)
    value_x, tau_x, it = _kl_solve_kernel(x, w, xmax, xmean, xmin, mass_x, mu_x, radius, qx)
    q[:] = 0.0
    for i in range(idx.size):
        q[idx[i]] = qx[i]
    value = min(max(unstandardize(value_x, centre, k2, k), mean), lmax)
    return value, math.ldexp(tau_x, k + k2), it


@kernel
def _kl_solve_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float, lmin: float, mass: float,
                     mu: np.ndarray, radius: float, q: np.ndarray) -> tuple:
    """The dual solve for 0 < radius < log(sum p / P_max) on well-scaled, non-constant losses, given
    the moments pass: the series start, the Halley solve (which ends with the normalising pass).
    Returns (value, tau, iterations)."""
    spread = lmax - lmin  # the support's spread bounds the polynomial moves
    kap = _kl_cumulants(mu)
    alpha0, converged = _kl_series_root(kap, radius)
    if converged and alpha0 * spread <= SERIES_EXACT_MAX:
        # the truncated series is K to round-off: alpha0 is the root, and the value is taken from the
        # cumulant series of log E_p e^{alpha (l - mean)} (lmax + (radius + log Z)/alpha would lose
        # eps / alpha to the rounding of Z ~ 1)
        premium = radius / alpha0  # (radius + log E_p e^{alpha (l - mean)} - alpha kappa_1) / alpha
        power = 1.0  # alpha^(n-1)
        factorial = 1.0
        for n in range(2, 9):
            factorial *= n
            power *= alpha0
            premium += kap[n] * power / factorial
        _softmax_weights_kernel(l, p, lmax, alpha0, q)
        return mean + kap[1] + premium, 1.0 / alpha0, 1
    if not (alpha0 > 0.0 and alpha0 < np.inf):  # the p-variance underflowed: start from the spread
        alpha0 = 1.0 / spread
    alpha, log_z, it = _kl_halley_kernel(l, p, lmax, spread, radius, np.log(mass), alpha0, 200, q)
    return lmax + (radius + log_z) / alpha, 1.0 / alpha, it


def _temperature_problem(l: np.ndarray, p: np.ndarray, lmax: float, tau: float) -> tuple:
    """The fixed-temperature problem on the support only: (x, w, max x, tau_x, back, index) with
    (x, w) = (l, p) on p > 0 when the support's spread max l - min l lies in [SPREAD_MIN, SPREAD_MAX],
    else the standardised support (:func:`simlab.dro._inputs.standardize_support_kernel`) with the
    temperature in the same units, tau_x = tau 2^-(k + k2); ``back`` maps a value of x's problem to
    the losses' units (the penalised value and q are equivariant under l -> a + b l, tau -> b tau)."""
    support = p > 0
    index = np.flatnonzero(support)
    lmin = float(np.min(l[support]))
    spread = lmax - lmin
    if SPREAD_MIN <= spread <= SPREAD_MAX:
        return l[index], p[index], lmax, tau, (lambda v: v), index
    x, w, index, centre, k2, k = standardize_support_kernel(l, p)
    return x, w, float(np.max(x)), math.ldexp(tau, -(k + k2)), (lambda v: unstandardize(v, centre, k2, k)), index


def _small_tilt_series(x: np.ndarray, w: np.ndarray, xmax: float, alpha: float):
    """(tau log E_w e^{x/tau}, K(alpha)) by their cumulant series (8th order) when alpha (max x - min x)
    <= SERIES_EXACT_MAX, where the series are exact to round-off and, unlike max x + tau log Z and
    alpha E_q x - log Z, lose nothing to the rounding of Z ~ 1 at large tau; None otherwise."""
    xmin = float(np.min(x))
    if xmin == xmax:  # constant on the support
        return xmax, 0.0
    if not alpha * (xmax - xmin) <= SERIES_EXACT_MAX:
        return None
    _, mean = support_stats_kernel(x, w)
    _, _, _, _, mu = _kl_support_moments_kernel(x, w, xmax, mean)
    kap = _kl_cumulants(mu)
    premium = 0.0
    radius = 0.0
    power = 1.0  # alpha^(n-1)
    factorial = 1.0
    for n in range(2, 9):
        factorial *= n
        power *= alpha
        premium += kap[n] * power / factorial
        radius += (n - 1) * kap[n] * power * alpha / factorial
    return mean + kap[1] + premium, radius


def kl_penalized(losses, probs, tau) -> tuple[float, np.ndarray]:
    """Penalised KL worst case (docs/theory/dro.md §2.1): with the normalised law p / sum p,

        value = tau log E_p e^{l/tau} = tau log (sum_j p_j e^{l_j/tau} / sum_j p_j)
              = max_q <q, l> - tau KL(q || p / sum p),

    attained at q = softmax_p(l/tau) (returned; 0 where p = 0).  ``probs`` must sum to 1 within 1e-9
    (a ValueError names ``probs`` otherwise); within it, the law p / sum p is used.  Stable for any
    tau > 0 (max-subtracted log-sum-exp; q tends to p restricted to argmax l as tau -> 0, and is
    exactly that once 1/tau overflows on the losses' scale; q = p and the value is the mean once tau
    overflows on it) and any finite losses (standardised when their spread on the support is outside
    2^-20..2^20).  Scale equivariant in (l, tau) jointly and translation equivariant in l.

    Parameters
    ----------
    losses : array_like of float, shape (A,)
        Finite losses l_j (values on atoms with p_j = 0 are ignored).
    probs : array_like of float, shape (A,)
        Atom probabilities in [0, 1] summing to 1 within 1e-9; the law is p / sum p.
    tau : float
        Temperature, > 0.

    Returns
    -------
    value : float
        tau log E_p e^{l/tau}.
    q : ndarray of float64, shape (A,)
        The worst-case weights softmax_p(l/tau).

    Raises
    ------
    ValueError
        Naming ``losses``, ``probs`` or ``tau`` when it is outside the domain above.
    """
    l, p, lmax, mean = check_losses_probs(losses, probs)
    tau = check_tau(tau)
    x, w, xmax, tau_x, back, index = _temperature_problem(l, p, lmax, tau)
    q = np.zeros_like(l)
    alpha = 1.0 / tau_x
    if alpha == 0.0:  # tau beyond the float range on the losses' scale: q = p, the mean
        q[index] = w / w.sum()
        return float(mean), q
    if not np.isfinite(alpha):  # tau below it: the argmax
        at_max = x == xmax
        q[index] = np.where(at_max, w, 0.0) / w[at_max].sum()
        return float(lmax), q
    qx = np.empty_like(x)
    log_z = _softmax_weights_kernel(x, w, xmax, alpha, qx)
    q[index] = qx
    series = _small_tilt_series(x, w, xmax, alpha)
    value_x = xmax + tau_x * log_z if series is None else series[0]
    return float(min(max(back(value_x), mean), lmax)), q


def kl_radius_of_tau(losses, probs, tau) -> float:
    """The radius eps(tau) = KL(softmax_p(l/tau) || p) that a fixed temperature implies
    (docs/theory/rebel.md §4.4), for the normalised law p / sum p; it decreases in tau, from
    log(sum p / P_max) at tau -> 0 to 0 at tau -> inf.  Same input domain as :func:`kl_penalized`.

    Parameters
    ----------
    losses, probs, tau
        As :func:`kl_penalized`.

    Returns
    -------
    float
        KL(softmax_p(l/tau) || p / sum p), >= 0.
    """
    l, p, lmax, _ = check_losses_probs(losses, probs)
    tau = check_tau(tau)
    x, w, xmax, tau_x, _, _ = _temperature_problem(l, p, lmax, tau)
    alpha = 1.0 / tau_x
    mass = float(w.sum())
    if alpha == 0.0:
        return 0.0
    if not np.isfinite(alpha):
        return float(np.log(mass) - np.log(w[x == xmax].sum()))
    series = _small_tilt_series(x, w, xmax, alpha)
    if series is not None:
        return float(max(series[1], 0.0))
    z, m1, _, _ = _tilt_moments_kernel(x, w, xmax, alpha, np.empty_like(x))
    return float(max(m1 * alpha - (np.log(z) - np.log(mass)), 0.0))


def kl_worst_case(losses, probs, radius) -> KLWorstCase:
    """Constrained KL worst case sup_{KL(q || p / sum p) <= radius} <q, l> by its 1-D dual
    (docs/theory/dro.md §2.1).

    Returns ``KLWorstCase(value, q, tau, iterations)``; ``value`` is the dual value
    tau* radius + tau* log E_p e^{l/tau*}, equal to <q, l> at the certificate q (KL(q||p) = radius).

    Input domain: ``losses`` any finite floats (values on atoms with p = 0 are ignored); ``probs``
    entries in [0, 1] summing to 1 within 1e-9, and the ball is built around p / sum p (outside the
    tolerance a ValueError names ``probs`` and the tolerance); ``radius`` finite >= 0.  Exact to
    round-off of the losses' scale over the whole float range (scale and translation equivariant);
    ``tau`` is in the losses' units (0 when saturated, inf at radius 0 or constant losses).

    Parameters
    ----------
    losses, probs
        As :func:`kl_penalized`.
    radius : float
        The ball's radius, finite >= 0.

    Returns
    -------
    KLWorstCase
        (value, q, tau, iterations): the worst-case value, the worst-case weights, the dual temperature
        and the number of dual iterations.

    Raises
    ------
    ValueError
        Naming ``losses``, ``probs`` or ``radius`` when it is outside the domain above.
    """
    l, p, lmax, mean = check_losses_probs(losses, probs)
    radius = check_radius(radius)
    q = np.empty_like(l)
    value, tau, it = _kl_worst_case_given_stats_kernel(l, p, lmax, mean, radius, q)
    return KLWorstCase(float(value), q, float(tau), int(it))


def kl_divergence(q, p) -> float:
    """KL(q||p) = sum_j q_j log(q_j/p_j) with 0 log 0 = 0 (inf if q is not << p), for weight vectors
    as given (no normalisation); ValueError naming ``q`` or ``p`` on bad input.

    Parameters
    ----------
    q, p : array_like of float, shape (A,)
        Finite weights >= 0.

    Returns
    -------
    float
        KL(q||p), inf when q is not absolutely continuous with respect to p.
    """
    q, p = check_law_pair(q, p)
    m = q > 0
    if np.any(p[m] == 0.0):
        return np.inf
    return float(np.sum(q[m] * np.log(q[m] / p[m])))
