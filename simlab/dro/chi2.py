"""chi^2 worst case over a discrete law (docs/theory/dro.md §2.2).

Convention: D_chi(q||p) = 1/2 sum_j p_j (q_j/p_j - 1)^2 <= eps  (the papers' rho_P = 2 eps).
Exact dual, with c = sqrt(1 + 2 eps):

    sup_{D_chi(q||p) <= eps} <q, l> = min_zeta f(zeta),  f(zeta) = zeta + c sqrt(sum_j p_j (l_j - zeta)_+^2)

attained at q_j = p_j (l_j - zeta*)_+ / sum_k p_k (l_k - zeta*)_+ (D_chi(q*) = eps).

Solvers (all exact, selectable by ``method``):

* ``"active_set"`` (default): for a fixed active set S the minimiser is
  zeta_S = m_S - sqrt(v_S / (c^2 P_S - 1)) (p-mass P_S, p-mean m_S, p-variance v_S of l on S).
  Starting from S = support (zeta_0 = l_bar - sqrt(Var/(2 eps)), the unclipped solution) and
  iterating S <- {l > zeta_S} increases zeta monotonically to zeta* (each f_S touches f at the
  current zeta and f_S' >= f' to its right), so it stops after a few O(A) passes with a consistent
  active set; capped, then finished by bisection, so the cost is O(A log(1/tol)) in the worst case.
* ``"sort"``: the O(A log A) sort-based solve of docs/theory/dro.md §2.2 (first consistent k, ties grouped).
* ``"bisection"``: bisection on f'(zeta) over the bracket
  [min(l_min, l_bar - sqrt(Var/(2 eps))) - 1, l_max] (a fixed bracket [l_min - 100, l_max] fails
  silently for small eps).

Saturation: if c^2 P_max >= 1 the value is max l and q* is p restricted to the argmax.

Input domain (README "Input domain of the DRO duals"): the law is p / sum p for probabilities summing
to 1 within 1e-9 (the kernels use the constant c^2 / sum p on the unnormalised weights); the
unclipped regime (zeta_0 <= min l) is answered in closed form, mean + sqrt(2 eps Var); losses that
are not well scaled (see :mod:`simlab.dro.kl`) are solved on the standardised support, so the value is
exact to round-off and scale/translation equivariant for any finite losses; constant losses on the
support are detected exactly.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simlab._jit import kernel
from simlab.dro._inputs import (argmax_weights_kernel, check_law_pair, check_losses_probs, check_radius, key_to_float,
                                ordered_key, standardize_support_kernel, support_stats_kernel, unstandardize,
                                well_scaled)
from simlab.validation import check_choice

CHI2_METHODS = ("active_set", "sort", "bisection")
# an active-set step whose variance is below this fraction of its squared mean shift has lost more
# than ~1e-10 of v to cancellation: it is followed by a refining step (:func:`_chi2_active_set_kernel`)
VARIANCE_CANCEL_RTOL = 1e-6


class Chi2WorstCase(NamedTuple):
    """chi^2 worst case: value, worst-case weights q, dual threshold zeta (max l if saturated,
    -inf at radius 0), and the number of passes/iterations the solver used."""

    value: float
    q: np.ndarray
    zeta: float
    iterations: int


@kernel
def _chi2_support_moments_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float) -> tuple:
    """(p-mass of the support, P_max = p-mass of l == lmax, p-variance of l, number of atoms with
    p > 0, min l over p > 0, E_p l - mean) in one pass, the variance about the p-mean (non-finite when some atom,
    of zero probability or not, has (l - mean)^2 beyond the float range).  The support's mass, mean
    and variance are the first active set's (S = support), so this pass also gives the active-set
    start zeta_0.  The min is taken on int64 keys so that the loop vectorises."""
    mass = 0.0
    pmax = 0.0
    s1 = 0.0
    s2 = 0.0
    count = 0
    lmin_key = ordered_key(np.inf)
    for j in range(l.size):
        w = p[j]
        d = l[j] - mean
        mass += w
        pmax += w if l[j] == lmax else 0.0
        s1 += w * d
        s2 += w * d * d
        count += w > 0.0
        lmin_key = min(lmin_key, ordered_key(l[j] if w > 0.0 else np.inf))
    m = s1 / mass
    var = s2 / mass - m * m
    return mass, pmax, (max(var, 0.0) if np.isfinite(var) else var), count, key_to_float(lmin_key), m


@kernel
def _chi2_active_set_kernel(l: np.ndarray, p: np.ndarray, c2: float, zeta0: float, count0: int,
                            max_iter: int) -> tuple:
    """Monotone active-set iteration S <- {l > zeta_S} from zeta_0 = zeta_{S_0} (S_0 of count0
    atoms); returns (zeta, passes, converged, A, B) with A = sum p (l - zeta)_+ and
    B = sum p (l - zeta)_+^2 at the returned zeta (the certificate's normaliser and value).  Each
    pass takes its sums about the current zeta, so the final ones are the certificate's exactly.

    The set's variance v = B/P - (A/P)^2 is taken about zeta, which loses eps (m_S - zeta)^2 to
    cancellation: when v is below VARIANCE_CANCEL_RTOL (m_S - zeta)^2 (a set whose variance is tiny
    against its distance from zeta, e.g. almost all mass on one atom) a consistent set does not end the
    iteration: one more step from sums about the new zeta (now close to zeta_S) corrects it."""
    zeta = zeta0
    prev_count = count0
    accurate = True  # zeta_0 comes from the support's centred moments
    for it in range(max_iter):
        mass = 0.0
        a = 0.0
        b = 0.0
        count = 0
        for j in range(l.size):  # selects instead of a branch: the loop vectorises
            active = p[j] > 0.0 and l[j] > zeta
            w = p[j] if active else 0.0
            t = l[j] - zeta if active else 0.0
            mass += w
            a += w * t
            b += w * t * t
            count += active
        refine = count == prev_count
        if refine and accurate:
            return zeta, it + 1, True, a, b
        prev_count = count
        denom = c2 * mass - 1.0
        if denom <= 0.0:
            return zeta, it + 1, False, a, b
        m = a / mass
        v = max(b / mass - m * m, 0.0)
        zeta_new = zeta + m - np.sqrt(v / denom)
        accurate = refine or v >= VARIANCE_CANCEL_RTOL * m * m
        if zeta_new < zeta and not refine:  # only round-off can do this: zeta is final
            return zeta, it + 1, True, a, b
        zeta = zeta_new
    return zeta, max_iter, False, 0.0, 0.0


@kernel
def _chi2_dual_slope_kernel(l: np.ndarray, p: np.ndarray, c: float, zeta: float) -> float:
    """f'(zeta) = 1 - c sum p (l - zeta)_+ / sqrt(sum p (l - zeta)_+^2) (nondecreasing)."""
    s1 = 0.0
    s2 = 0.0
    for j in range(l.size):
        t = l[j] - zeta
        if t > 0.0 and p[j] > 0.0:
            s1 += p[j] * t
            s2 += p[j] * t * t
    if s2 <= 0.0:
        return 1.0
    return 1.0 - c * s1 / np.sqrt(s2)


@kernel
def _chi2_bisection_kernel(l: np.ndarray, p: np.ndarray, c: float, lo: float, hi: float,
                           max_iter: int) -> tuple:
    """Bisection on the sign of f' over [lo, hi] to 1e-15 of the bracket's width and magnitude;
    returns (zeta, iterations) with zeta the lower end (f' < 0 there, so zeta <= zeta* and the
    certificate q(zeta) is feasible: D(q(zeta)) increases with zeta)."""
    it = 0
    width = hi - lo
    while it < max_iter and hi - lo > 1e-15 * max(width, abs(lo), abs(hi)):
        mid = 0.5 * (lo + hi)
        if _chi2_dual_slope_kernel(l, p, c, mid) < 0.0:
            lo = mid
        else:
            hi = mid
        it += 1
    return lo, it


@kernel
def _chi2_certificate_kernel(l: np.ndarray, p: np.ndarray, c: float, zeta: float,
                             q: np.ndarray) -> float:
    """q = p (l - zeta)_+ / sum p (l - zeta)_+ in place; returns the dual value f(zeta)."""
    s1 = 0.0
    s2 = 0.0
    for j in range(l.size):  # selects instead of a branch: the loop vectorises
        t = l[j] - zeta
        t = t if (t > 0.0 and p[j] > 0.0) else 0.0
        w = p[j] * t
        q[j] = w
        s1 += w
        s2 += w * t
    if s1 <= 0.0:
        return np.nan
    for j in range(l.size):
        q[j] /= s1
    return zeta + c * np.sqrt(s2)


@kernel
def _chi2_weights_kernel(l: np.ndarray, p: np.ndarray, zeta: float, a: float, q: np.ndarray) -> None:
    """q = p (l - zeta)_+ / a in place, with a = sum p (l - zeta)_+ already known (one pass)."""
    inv_a = 1.0 / a
    for j in range(l.size):
        t = l[j] - zeta
        q[j] = p[j] * t * inv_a if (t > 0.0 and p[j] > 0.0) else 0.0


def _chi2_sort_zeta(l: np.ndarray, p: np.ndarray, c2: float, center: float) -> float:
    """Sort-based exact solve (docs/theory/dro.md §2.2): the first consistent k of the decreasing order."""
    keep = p > 0
    order = np.argsort(-l[keep], kind="stable")
    ls = l[keep][order] - center
    ps = p[keep][order]
    mass = np.cumsum(ps)
    m = np.cumsum(ps * ls) / mass
    v = np.maximum(np.cumsum(ps * ls * ls) / mass - m * m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zeta = np.where(c2 * mass > 1.0, m - np.sqrt(v / (c2 * mass - 1.0)), np.nan)
    nxt = np.append(ls[1:], -np.inf)
    ok = (c2 * mass > 1.0) & (nxt < ls) & (nxt <= zeta) & (zeta <= ls)
    k = int(np.argmax(ok))
    if not ok[k]:
        raise RuntimeError("chi2 sort solve found no consistent active set")
    return float(zeta[k] + center)


@kernel
def chi2_worst_case_kernel(l: np.ndarray, p: np.ndarray, radius: float, q: np.ndarray) -> tuple:
    """In-numba exact chi^2 worst case by the active-set solve with a bisection fallback (no input
    checks): writes q, returns (value, zeta, iterations).

    The one implementation behind :func:`chi2_worst_case` (method "active_set"); other kernels
    (e.g. whole-loop SGD) call it directly.  The ball is around p / sum p; losses of any finite
    magnitude are solved standardised.

    Parameters
    ----------
    l, p, q
        As :func:`simlab.dro.kl.kl_worst_case_kernel`.
    radius : float
        The ball's radius eps, >= 0.

    Returns
    -------
    tuple of (float, float, int)
        (value, zeta, iterations), as :func:`chi2_worst_case`.
    """
    lmax, mean = support_stats_kernel(l, p)
    return _chi2_worst_case_given_stats_kernel(l, p, lmax, mean, radius, q)


@kernel
def _chi2_worst_case_given_stats_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float,
                                        radius: float, q: np.ndarray) -> tuple:
    """:func:`chi2_worst_case_kernel` once max l over the support and the p-mean of l are known (the
    public call takes them in its input-checking pass): one moments pass (which is also the first
    active set's), then the closed-form cases (radius 0, constant losses on the support, saturation
    (1 + 2 radius) P_max >= sum p), or the active-set passes and one pass writing q on the losses as
    given when they are well scaled, or else on the standardised support
    (:func:`simlab.dro._inputs.standardize_support_kernel`; one more pass and a copy)."""
    mass, pmax, var, count, lmin, offset = _chi2_support_moments_kernel(l, p, lmax, mean)
    if radius == 0.0 or lmin == lmax:
        for j in range(l.size):
            q[j] = p[j] / mass
        return (lmax if lmin == lmax else mean), -np.inf, 0
    # the law is p / mass: D = 1/2 sum (p/mass) (q mass/p - 1)^2, i.e. the constant c^2 = (1 + 2 radius)/mass
    c2 = (1.0 + 2.0 * radius) / mass
    if c2 * pmax >= 1.0:
        argmax_weights_kernel(l, p, lmax, pmax, q)
        return lmax, lmax, 0
    if well_scaled(max(lmax - mean, mean - lmin)) and np.isfinite(var):
        value, zeta, it = _chi2_solve_kernel(l, p, lmax, mean, offset, lmin, mass, var, count, radius, q)
        return min(max(value, mean), lmax), zeta, it  # mean <= value <= max l also under round-off
    x, w, idx, centre, k2, k = standardize_support_kernel(l, p)
    xmax, xmean = support_stats_kernel(x, w)
    mass_x, _, var_x, count_x, xmin, offset_x = _chi2_support_moments_kernel(x, w, xmax, xmean)
    qx = np.empty(x.size)
    value_x, zeta_x, it = _chi2_solve_kernel(x, w, xmax, xmean, offset_x, xmin, mass_x, var_x, count_x,
                                             radius, qx)
    q[:] = 0.0
    for i in range(idx.size):
        q[idx[i]] = qx[i]
    value = min(max(unstandardize(value_x, centre, k2, k), mean), lmax)
    return value, unstandardize(zeta_x, centre, k2, k), it


@kernel
def _chi2_unclipped_weights_kernel(l: np.ndarray, p: np.ndarray, mean: float, offset: float, slope: float,
                                   inv_mass: float, q: np.ndarray) -> None:
    """q = (p / sum p) (1 + (l - mean - offset) slope) in place (the unclipped worst case, centred at
    the p-mean up to the round-off ``offset`` of ``mean``; atoms with p = 0 get 0).  The weights sum
    to 1 up to slope eps |mean|; when that exceeds a few ulp (a variance tiny against the mean) a
    second pass divides by their sum."""
    s = 0.0
    for j in range(l.size):
        w = p[j] * inv_mass
        qj = w * (1.0 + ((l[j] - mean) - offset) * slope) if w > 0.0 else 0.0
        q[j] = qj
        s += qj
    if abs(s - 1.0) > 1e-15:
        inv_s = 1.0 / s
        for j in range(l.size):
            q[j] *= inv_s


@kernel
def _chi2_solve_kernel(l: np.ndarray, p: np.ndarray, lmax: float, mean: float, offset: float, lmin: float,
                       mass: float, var: float, count: int, radius: float, q: np.ndarray) -> tuple:
    """The solve for (1 + 2 radius) P_max < sum p on well-scaled, non-constant losses, given the
    moments pass, with the constant c2 = (1 + 2 radius) / sum p of the normalised law.  Unclipped
    regime (zeta_0 = mean - sqrt(Var / (c^2 - 1)) <= min l on the support, c^2 = c2 sum p = 1 + 2 radius): value = mean + sqrt(2 radius Var) and
    q = (p / sum p)(1 + (l - mean) sqrt(2 radius / Var)) in closed form (docs/theory/dro.md §2.2),
    one pass and no sums about zeta_0 (which would overflow at tiny radii); otherwise the active-set
    passes from zeta_0 (bisection fallback).  ``offset`` = E_p l - mean from the moments pass (the
    round-off of ``mean``).  Returns (value, zeta, passes)."""
    c2 = (1.0 + 2.0 * radius) / mass
    c = np.sqrt(c2)
    excess = 2.0 * radius  # c2 sum p - 1, without its round-off (which is all of it at radius < 1e-16)
    zeta0 = mean - np.sqrt(var / excess)
    if zeta0 + offset <= lmin and var > 0.0:
        slope = np.sqrt(excess / var)
        _chi2_unclipped_weights_kernel(l, p, mean, offset, slope, 1.0 / mass, q)
        return mean + (offset + np.sqrt(excess * var)), zeta0 + offset, 1
    zeta, it, ok, a, b = _chi2_active_set_kernel(l, p, c2, zeta0, count, 200)
    if ok and a > 0.0:
        _chi2_weights_kernel(l, p, zeta, a, q)
        return zeta + c * np.sqrt(b), zeta, it
    if not ok:  # round-off (a step past zeta*) or no convergence: bisect from below zeta*
        # below min l every atom is active and f' < 0 iff zeta < zeta_0; here zeta_0 > min l (clipped),
        # so min l - (max l - min l) is a lower end with f' < 0 by a margin that rounding cannot flip
        zeta, it2 = _chi2_bisection_kernel(l, p, c, lmin - (lmax - lmin), lmax, 200)
        it += it2
        value = _chi2_certificate_kernel(l, p, c, zeta, q)
        if np.isfinite(value):
            return value, zeta, it
    # zeta = max l by round-off: the worst case is the argmax
    pmax = 0.0
    for j in range(l.size):
        pmax += p[j] if (l[j] == lmax and p[j] > 0.0) else 0.0
    argmax_weights_kernel(l, p, lmax, pmax, q)
    return lmax, lmax, it


def chi2_worst_case(losses, probs, radius, method: str = "active_set") -> Chi2WorstCase:
    """Exact chi^2 worst case sup_{1/2 E_p (q/p - 1)^2 <= radius} <q, l> by its dual
    (docs/theory/dro.md §2.2), for the law p / sum p.

    Returns ``Chi2WorstCase(value, q, zeta, iterations)``; ``value`` = f(zeta*) = <q*, l>.
    Input domain: as :func:`simlab.dro.kl.kl_worst_case` (any finite losses; ``probs`` in [0, 1]
    summing to 1 within 1e-9, normalised; radius finite >= 0).  The "sort" and "bisection" methods
    are references for the tests and solve on the losses as given (they need well-scaled losses:
    deviations from the mean within 2^-20..2^20 and no zero-probability atom beyond that).

    Parameters
    ----------
    losses, probs
        As :func:`simlab.dro.kl.kl_penalized`.
    radius : float
        The ball's radius eps, finite >= 0.
    method : {"active_set", "sort", "bisection"}
        The dual solver (module docstring); "active_set" is the production one.

    Returns
    -------
    Chi2WorstCase
        (value, q, zeta, iterations): the worst-case value, the worst-case weights, the dual threshold
        and the solver's passes or iterations.

    Raises
    ------
    ValueError
        Naming ``losses``, ``probs``, ``radius`` or ``method`` when it is outside the domain above.
    """
    l, p, lmax, mean = check_losses_probs(losses, probs)
    radius = check_radius(radius)
    check_choice("method", method, CHI2_METHODS)
    q = np.empty_like(l)
    if method == "active_set":
        value, zeta, it = _chi2_worst_case_given_stats_kernel(l, p, lmax, mean, radius, q)
        return Chi2WorstCase(float(value), q, float(zeta), int(it))
    mass, pmax, var, _, lmin, _ = _chi2_support_moments_kernel(l, p, lmax, mean)
    c2 = (1.0 + 2.0 * radius) / mass
    if radius == 0.0 or lmin == lmax or c2 * pmax >= 1.0:
        value, zeta, it = chi2_worst_case_kernel(l, p, radius, q)  # the closed-form cases
        return Chi2WorstCase(float(value), q, float(zeta), int(it))
    if method == "sort":
        zeta, it = _chi2_sort_zeta(l, p, c2, mean), 1
    else:
        lo = min(float(np.min(l[p > 0])), mean - np.sqrt(var / (2.0 * radius))) - 1.0
        zeta, it = _chi2_bisection_kernel(l, p, np.sqrt(c2), lo, lmax, 200)
    value = _chi2_certificate_kernel(l, p, np.sqrt(c2), zeta, q)
    return Chi2WorstCase(float(value), q, float(zeta), int(it))


def chi2_divergence(q, p) -> float:
    """D_chi(q||p) = 1/2 sum_j p_j (q_j/p_j - 1)^2 (inf if q is not << p), for weight vectors as given
    (no normalisation); ValueError naming ``q`` or ``p`` on bad input.

    Parameters
    ----------
    q, p : array_like of float, shape (A,)
        Finite weights >= 0.

    Returns
    -------
    float
        D_chi(q||p), inf when q puts mass where p has none.
    """
    q, p = check_law_pair(q, p)
    if np.any(q[p == 0] > 0):
        return np.inf
    m = p > 0
    return float(0.5 * np.sum((q[m] - p[m]) ** 2 / p[m]))
