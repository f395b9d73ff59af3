"""Wasserstein worst cases for losses that see the features only through a margin (docs/theory/dro.md §2.3).

Cost: move only the feature part z = dphi of each atom, at Euclidean cost; labels/rewards fixed.

* Linear loss l(z) = a^T z + b, any W_p (p >= 1): sup_{W_p <= eps} E_Q l = E_p l + eps ||a||, attained by
  shifting every atom by eps a/||a||  (``w_linear_worst_case``).
* Margin-linear loss l_j(z) = ell_j(g^T z) with slope vector g (DPO: g = beta (theta - theta_ref);
  REBEL: g = (theta - theta_anc)/eta).  Worst moves are along u = g/||g||; with s = ||g||, the
  margin shift t = delta s and mu = lambda_W / s^2 the exact W_2 value is the 1-D dual

      sup_{W_2 <= eps} E_Q l = inf_{mu > 0} mu s^2 eps^2 + sum_j p_j sup_t [ell_j(m_j + t) - mu t^2],

  whose mu-derivative is s^2 eps^2 - sum_j p_j t_j(mu)^2 (decreasing in mu).  ``w2_margin_worst_case``
  solves it by safeguarded Newton on log mu; the per-atom inner problems are solved globally:
  concave (unique root) when 2 mu >= sup ell'' (1/4 logistic, 2 squared), otherwise split at the
  inflection points of ell' - 2 mu t into monotone pieces and keep the best root.  Losses (``loss``):

  - "logistic": ell_j(h) = softplus(h) - y_j h (targets = labels y in [0, 1]);
  - "squared": ell_j(h) = (h - r_j)^2 (targets = r, e.g. Delta r~), with the closed form
    sup E_Q (m - r)^2 = (rms_p(m - r) + eps s)^2.

* Gradient-norm surrogate S = E_p l + eps sqrt(E_p ||grad_z l||^2) = E_p ell + eps s rms_p(ell')
  (first-order expansion): exact - S = O(eps^2) for smooth losses, exactly eps^2 s^2 for the squared
  loss, 0 for linear losses; for losses convex in z, S <= exact <= E_p l + eps Lip_z(l).
* ``w2_margin_value_grad_hess`` / ``w2_surrogate_value_grad_hess`` return value, gradient and Hessian
  in g.  The exact gradient is Danskin's: sum_j p_j ell_j'(h'_j) (z_j + delta_j u) at the moved
  features; the Hessian comes from the implicit function theorem on the saddle system in
  (lambda_W, delta) (an arrow matrix, O(A d^2)).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simlab._jit import kernel
from simlab.dro._inputs import as_float_array, check_radius
from simlab.special import sigmoid, softplus
from simlab.validation import check_array, check_choice, check_float, check_int, check_probabilities

LOSSES = ("logistic", "squared")
_LOGISTIC, _SQUARED = 0, 1


class W2WorstCase(NamedTuple):
    """Exact W_2 worst case of a margin-linear loss: dual value; per-atom margin shifts t_j
    (the moved feature is z_j + (t_j/s) u); the multiplier mu = lambda_W/s^2 (inf at radius 0);
    and the number of outer dual iterations.

    In the nonconcave regime (mu < 1/8, logistic) T(mu) = sum p t^2 can jump at mu*: the value is
    still exact, but the worst case then splits one atom between its two inner maximisers
    (a Kantorovich coupling) and ``shift`` holds only one branch."""

    value: float
    shift: np.ndarray
    mu: float
    iterations: int


@kernel
def _ell(kind: int, h: float, target: float) -> tuple:
    """(ell, ell', ell'', ell''') of the margin loss at h."""
    if kind == _SQUARED:
        e = h - target
        return e * e, 2.0 * e, 2.0, 0.0
    s = sigmoid(h)
    v = s * (1.0 - s)
    return softplus(h) - target * h, s - target, v, v * (1.0 - 2.0 * s)


# The inner-problem kernels keep their operations in source order (no reassociation): the
# residual's cancellation-free form 2 mu (t - lo) and the products (mu t) t, which stay finite where
# t^2 overflows, must not be rewritten.
@kernel(ordered=True)
def _logistic_residual(m: float, mu: float, lo: float, hi: float, t: float) -> float:
    """r(t) = sigma(m + t) - y - 2 mu t, the t-derivative of ell(m + t) - mu t^2, written without
    cancellation against y: with lo = -y/(2 mu) and hi = (1 - y)/(2 mu),
    r = sigma(m + t) - 2 mu (t - lo) for m + t < 0 and r = 2 mu (hi - t) - sigma(-(m + t)) otherwise
    (sigma(m + t) - y loses everything once sigma(m + t) is below one ulp of y).  So r(lo) >= 0 and
    r(hi) <= 0 exactly."""
    h = m + t
    if h < 0.0:
        return sigmoid(h) - 2.0 * mu * (t - lo)
    return 2.0 * mu * (hi - t) - sigmoid(-h)


@kernel(ordered=True)
def logistic_residual_and_sigmoid(m: float, mu: float, lo: float, hi: float, t: float) -> tuple:
    """(r(t), sigma(m + t)) with r the residual of :func:`_logistic_residual`: where m + t < 0 both from
    one exponential e^(m + t) with the operations of ``_logistic_residual`` and
    :func:`simlab.special.sigmoid`, so the same bits at half the exponentials (the inner root solve of
    the W_2 dual evaluates both at every step).

    Parameters
    ----------
    m : float
        The atom's margin.
    mu : float
        The dual multiplier (> 0).
    lo, hi : float
        -y/(2 mu) and (1 - y)/(2 mu) for the atom's label y.
    t : float
        The margin shift.

    Returns
    -------
    tuple of float
        (r(t), sigma(m + t)).
    """
    h = m + t
    if h < 0.0:
        ex = np.exp(h)
        s = ex / (1.0 + ex)
        return s - 2.0 * mu * (t - lo), s
    # m + t >= 0: the two calls (one exponential each); sharing e^-h here lets LLVM's reciprocal rule (arcp)
    # rewrite e/(1 + e) as e * (1/(1 + e)), which rounds differently
    return _logistic_residual(m, mu, lo, hi, t), sigmoid(h)


@kernel(ordered=True)
def _root_decreasing(m: float, mu: float, lo: float, hi: float, a: float, b: float, x0: float) -> float:
    """Root of r (:func:`_logistic_residual`) on [a, b], where r decreases from r(a) >= 0 to
    r(b) <= 0: Newton from x0 inside the shrinking bracket, bisection when a step leaves it."""
    x = min(max(x0, a), b)
    left, right = a, b
    for _ in range(200):
        r, s = logistic_residual_and_sigmoid(m, mu, lo, hi, x)
        if r == 0.0:
            return x
        if r > 0.0:
            left = x
        else:
            right = x
        dr = s * (1.0 - s) - 2.0 * mu
        xn = x - r / dr if dr < 0.0 else 0.5 * (left + right)
        if not (xn > left and xn < right):
            xn = 0.5 * (left + right)
        if abs(xn - x) <= 1e-15 * (1.0 + abs(x)) or right - left <= 1e-15 * (1.0 + abs(x)):
            return xn
        x = xn
    return x


@kernel(ordered=True)
def _logistic_inner(m: float, y: float, mu: float, t0: float) -> float:
    """argmax_t softplus(m+t) - y (m+t) - mu t^2, solved globally.

    The maximiser lies in [lo, hi] = [-y/(2 mu), (1 - y)/(2 mu)], where the derivative r goes from
    r(lo) >= 0 to r(hi) <= 0 (analytically: :func:`_logistic_residual`).  For mu >= 1/8 r decreases
    on all of it (one root).  Below, r increases between the inflection points of ell',
    m + t = +-log((1 + s)/(1 - s)), s = sqrt(1 - 8 mu) (where sigma' = 2 mu), so the maxima are the
    roots on the outer, decreasing pieces [lo, b1] (a root iff r(b1) <= 0) and [b2, hi] (iff
    r(b2) >= 0); at least one exists, and the better one is kept."""
    lo = -y / (2.0 * mu)
    hi = (1.0 - y) / (2.0 * mu)
    if mu >= 0.125:
        return _root_decreasing(m, mu, lo, hi, lo, hi, t0)
    s = np.sqrt(1.0 - 8.0 * mu)
    # log((1 + s)/(1 - s)) = log((1 + s)^2 / (8 mu)): 1 - s = 8 mu/(1 + s) is 0 in floats for tiny mu
    hh = 2.0 * np.log1p(s) - np.log(8.0 * mu)
    b1 = min(max(-m - hh, lo), hi)
    b2 = min(max(-m + hh, lo), hi)
    r1 = _logistic_residual(m, mu, lo, hi, b1)
    r2 = _logistic_residual(m, mu, lo, hi, b2)
    first = b1 > lo and r1 <= 0.0
    last = b2 < hi and r2 >= 0.0
    if not (first or last):
        # r(b1) > 0 > r(b2) cannot hold for r increasing on [b1, b2]: both are round-off from 0
        return b1 if abs(r1) <= abs(r2) else b2
    best_t = 0.0
    best_v = -np.inf
    for k in range(2):
        if (k == 0 and not first) or (k == 1 and not last):
            continue
        a = lo if k == 0 else b2
        b = b1 if k == 0 else hi
        t = _root_decreasing(m, mu, lo, hi, a, b, min(max(t0, a), b) if t0 != 0.0 else 0.5 * (a + b))
        v = softplus(m + t) - y * (m + t) - (mu * t) * t
        if v > best_v:
            best_v = v
            best_t = t
    return best_t


@kernel(ordered=True)
def _inner_sweep(kind: int, m: np.ndarray, tgt: np.ndarray, p: np.ndarray, mu: float,
                 t: np.ndarray) -> tuple:
    """Solve every inner problem at mu (warm start from t, updated in place).
    Returns (T = sum p t^2, dT/dmu, sum p [ell(m + t) - mu t^2])."""
    T = 0.0
    dT = 0.0
    val = 0.0
    for j in range(m.size):
        if p[j] <= 0.0:
            t[j] = 0.0
            continue
        if kind == _SQUARED:
            tj = (m[j] - tgt[j]) / (mu - 1.0)
        else:
            tj = _logistic_inner(m[j], tgt[j], mu, t[j])
        t[j] = tj
        l0, l1, l2, _ = _ell(kind, m[j] + tj, tgt[j])
        T += p[j] * tj * tj
        denom = l2 - 2.0 * mu
        if denom < 0.0:
            dT += p[j] * 4.0 * tj * tj / denom
        val += p[j] * (l0 - (mu * tj) * tj)
    return T, dT, val


@kernel
def _w2_dual_kernel(kind: int, m: np.ndarray, tgt: np.ndarray, p: np.ndarray, kappa: float,
                    mu0: float, mu_floor: float, t: np.ndarray, max_iter: int) -> tuple:
    """Solve T(mu) = kappa (T decreasing) by Newton on log mu inside a bisection bracket.
    Returns (mu, dual value, iterations); t holds the inner maximisers at mu."""
    lo = mu_floor
    hi = np.inf
    mu = max(mu0, 1.0001 * mu_floor) if mu_floor > 0.0 else mu0
    it = 0
    dual = np.inf
    while it < max_iter:
        it += 1
        T, dT, val = _inner_sweep(kind, m, tgt, p, mu, t)
        dual = mu * kappa + val
        if T > kappa:
            lo = mu
        else:
            hi = mu
        if abs(T - kappa) <= 1e-14 * kappa or (hi < np.inf and hi - lo <= 1e-15 * hi):
            break
        cand = -1.0
        if dT < 0.0 and T > 0.0:
            # Newton on log T(mu) = log kappa in the variable log mu
            cand = mu * np.exp(-(np.log(T) - np.log(kappa)) * T / (mu * dT))
        if not (cand > lo and cand < hi):
            if hi == np.inf:
                cand = 4.0 * mu
            elif lo <= mu_floor:
                cand = mu_floor + 0.25 * (hi - mu_floor)
            else:
                cand = np.sqrt(lo * hi)
        if abs(cand - mu) <= 1e-15 * mu:
            break
        mu = cand
    return mu, dual, it


def _check_margin_inputs(margins, targets, probs, loss, atoms: str = "margins"):
    """(margins, targets, p / sum p, loss code), or a ValueError naming the argument; ``atoms`` names
    what fixes the number of atoms in the messages (the margins, or the rows of z)."""
    check_choice("loss", loss, LOSSES)
    m = check_array("margins", as_float_array("margins", margins), ndim=1)
    if m.size == 0:
        raise ValueError("margins must be a non-empty 1-D array, got shape (0,)")
    if targets is None:
        raise ValueError("targets is required: the labels in [0, 1] (logistic) or the regression targets "
                         "(squared), one per atom")
    tgt = check_array("targets", as_float_array("targets", targets), ndim=1)
    if tgt.shape != m.shape:
        raise ValueError(f"targets must have one entry per atom ({atoms}: {m.size}), got shape {tgt.shape}")
    p = check_probabilities("probs", as_float_array("probs", probs))
    if p.shape != m.shape:
        raise ValueError(f"probs must have one entry per atom ({atoms}: {m.size}), got shape {p.shape}")
    if loss == "logistic" and np.any((tgt < 0) | (tgt > 1)):
        raise ValueError("targets (labels) must lie in [0, 1] for the logistic loss")
    return m, tgt, p / p.sum(), (_LOGISTIC if loss == "logistic" else _SQUARED)


def _check_design(z, g) -> tuple[np.ndarray, np.ndarray]:
    """(z, g): the (A, d) features with A, d >= 1 and the slope vector of length d, finite."""
    z = check_array("z", as_float_array("z", z), ndim=2)
    if z.size == 0:
        raise ValueError(f"z must have at least one row and one column, got shape {z.shape}")
    g = check_array("g", as_float_array("g", g), shape=(z.shape[1],))
    return z, g


def _check_slope_norm(slope_norm) -> float:
    """The slope norm s = ||g||: a finite float >= 0."""
    if isinstance(slope_norm, np.ndarray) and slope_norm.size == 1:
        slope_norm = slope_norm.reshape(())[()]
    return check_float("slope_norm", slope_norm, 0.0)


@kernel
def _loss_moments_kernel(kind: int, m: np.ndarray, tgt: np.ndarray, p: np.ndarray) -> tuple:
    """(E_p ell, E_p ell'^2) at the unmoved margins."""
    v = 0.0
    g2 = 0.0
    for j in range(m.size):
        l0, l1, _, _ = _ell(kind, m[j], tgt[j])
        v += p[j] * l0
        g2 += p[j] * l1 * l1
    return v, g2


def w2_margin_worst_case(margins, slope_norm, probs, radius, loss: str = "logistic", targets=None,
                         max_iter: int = 200, check_input: bool = True) -> W2WorstCase:
    """Exact sup_{W_2(Q, p) <= radius} E_Q ell(g^T z) for margins m_j = g^T z_j and s = ||g||
    (docs/theory/dro.md §2.3).  ``targets`` (required) are the labels in [0, 1] (logistic) or the
    regression targets (squared).

    Input domain: finite margins and targets of any magnitude; ``probs`` in [0, 1] summing to 1
    within 1e-9 (the law p / sum p is used); ``slope_norm`` and ``radius`` finite >= 0.  Zero
    probability atoms do not move.  The logistic value is the 1-D dual's minimum, with every inner
    maximum global (no cancellation at strongly misranked atoms, any mu > 0), so it is exact to
    round-off for every such input; the squared loss has a closed form.

    Parameters
    ----------
    margins : array_like of float, shape (A,)
        Margins m_j = g^T z_j.
    slope_norm : float
        s = ||g||, finite >= 0.
    probs : array_like of float, shape (A,)
        Atom probabilities summing to 1 within 1e-9; the law is p / sum p.
    radius : float
        The W_2 radius, finite >= 0.
    loss : {"logistic", "squared"}
        The margin loss ell.
    targets : array_like of float, shape (A,)
        Labels y in [0, 1] (logistic) or regression targets r (squared).
    max_iter : int
        Cap on the outer dual iterations, >= 1.
    check_input : bool, default True
        Validate the inputs. ``False`` is for callers that validated them (float64 C-contiguous margins,
        targets and probs, floats slope_norm and radius, an int max_iter): the same arithmetic, the law
        still normalised as p / sum p, so the result is the same to the bit.

    Returns
    -------
    W2WorstCase
        (value, shift, mu, iterations): the worst-case value, the per-atom margin shifts t_j, the
        multiplier mu = lambda_W / s^2 and the number of outer iterations.

    Raises
    ------
    ValueError
        Naming the argument on bad input, or when (slope_norm radius)^2 overflows.
    """
    if check_input:
        m, tgt, p, kind = _check_margin_inputs(margins, targets, probs, loss)
        radius = check_radius(radius)
        s = _check_slope_norm(slope_norm)
        max_iter = check_int("max_iter", max_iter, 1)
    else:
        m, tgt, p, kind, s = margins, targets, probs / probs.sum(), LOSSES.index(loss), slope_norm
    budget = s * radius
    kappa = budget * budget
    if not np.isfinite(kappa):
        raise ValueError(f"slope_norm * radius must be below 1e154 (its square is the transport budget), "
                         f"got slope_norm={s!r}, radius={radius!r}")
    base, g2 = _loss_moments_kernel(kind, m, tgt, p)
    t = np.zeros_like(m)
    if kappa == 0.0:
        return W2WorstCase(float(base), t, np.inf, 0)
    if kind == _SQUARED:
        rms = np.sqrt(g2) / 2.0  # ell' = 2e
        e = m - tgt
        t = np.where(p > 0, e * np.sqrt(kappa) / rms, 0.0) if rms > 0 else np.where(p > 0, np.sqrt(kappa), 0.0)
        mu = 1.0 + rms / np.sqrt(kappa)
        return W2WorstCase(float((rms + s * radius) ** 2), t, float(mu), 0)
    # |ell'| <= 1 bounds the shifts by 1/(2 mu), so mu* <= 1/(2 sqrt(kappa)); the first-order start
    # sqrt(E ell'^2)/(2 sqrt(kappa)) is below it (strict convexity still moves atoms with ell' = 0)
    mu0 = max(np.sqrt(g2), 1e-3) / (2.0 * np.sqrt(kappa))
    mu, dual, it = _w2_dual_kernel(kind, m, tgt, p, kappa, mu0, 0.0, t, max_iter)
    return W2WorstCase(float(dual), t, float(mu), int(it))


def w2_margin_surrogate(margins, slope_norm, probs, radius, loss: str = "logistic",
                        targets=None) -> float:
    """Gradient-norm surrogate E_p ell + radius * s * rms_p(ell') (docs/theory/dro.md §2.3).

    Parameters
    ----------
    margins, slope_norm, probs, radius, loss, targets
        As :func:`w2_margin_worst_case`.

    Returns
    -------
    float
        E_p ell + radius s rms_p(ell').
    """
    m, tgt, p, kind = _check_margin_inputs(margins, targets, probs, loss)
    radius = check_radius(radius)
    s = _check_slope_norm(slope_norm)
    base, g2 = _loss_moments_kernel(kind, m, tgt, p)
    return float(base + radius * s * np.sqrt(g2))


def w_linear_worst_case(a, z, probs, radius, b=None) -> tuple[float, np.ndarray]:
    """Linear loss l(z) = a^T z + b under any W_p ball (p >= 1): value E_p l + radius ||a||, attained
    by moving every atom to z + radius a/||a|| (returned as the moved atoms)  (docs/theory/dro.md §2.3).

    Parameters
    ----------
    a : array_like of float, shape (d,)
        The loss's slope.
    z : array_like of float, shape (A, d)
        The atoms' features.
    probs : array_like of float, shape (A,)
        Atom probabilities (normalised to p / sum p).
    radius : float
        The W_p radius, finite >= 0.
    b : array_like of float, shape (A,), optional
        Per-atom offsets (0 by default).

    Returns
    -------
    value : float
        E_p l + radius ||a||.
    moved : ndarray of float64, shape (A, d)
        The worst-case atoms z_j + radius a/||a||.
    """
    z = check_array("z", as_float_array("z", z), ndim=2)
    if z.size == 0:
        raise ValueError(f"z must have at least one row and one column, got shape {z.shape}")
    a = check_array("a", as_float_array("a", a), shape=(z.shape[1],))
    p = check_probabilities("probs", as_float_array("probs", probs))
    if p.shape[0] != z.shape[0]:
        raise ValueError(f"probs must have length {z.shape[0]} (rows of z), got {p.shape[0]}")
    p = p / p.sum()
    b = np.zeros(z.shape[0]) if b is None else check_array("b", as_float_array("b", b), shape=(z.shape[0],))
    radius = check_radius(radius)
    na = float(np.linalg.norm(a))
    moved = z + (radius * a / na if na > 0 else 0.0)
    return float(p @ (z @ a + b) + radius * na), moved


@kernel
def _w2_vgh_kernel(kind: int, g: np.ndarray, z: np.ndarray, tgt: np.ndarray, p: np.ndarray,
                   t: np.ndarray, mu: float, grad: np.ndarray, hess: np.ndarray) -> None:
    """Danskin gradient and implicit-function Hessian of the exact W_2 value in g (see module doc)."""
    A, d = z.shape
    s = 0.0
    for k in range(d):
        s += g[k] * g[k]
    s = np.sqrt(s)
    lam = mu * s * s
    u = g / s
    grad[:] = 0.0
    hess[:, :] = 0.0
    v = np.zeros(d)
    S = 0.0
    w = np.empty(d)
    kv = np.empty(d)
    proj_coef = 0.0
    for j in range(A):
        if p[j] <= 0.0:
            continue
        delta = t[j] / s
        for k in range(d):
            w[k] = z[j, k] + delta * u[k]
        # summed in a loop of its own: a loop that both stores and sums is vectorised behind a runtime
        # check on the arrays' addresses, and its scalar fallback rounds differently under reassociation
        h = 0.0
        for k in range(d):
            h += g[k] * w[k]
        _, l1, l2, _ = _ell(kind, h, tgt[j])
        a = l2 * s * s - 2.0 * lam
        b = -2.0 * delta
        proj_coef += p[j] * l1 * delta / s
        for k in range(d):
            grad[k] += p[j] * l1 * w[k]
            kv[k] = l2 * s * w[k] + l1 * u[k]
        for k in range(d):
            v[k] += p[j] * kv[k] * b / a
            for c in range(d):
                hess[k, c] += p[j] * (l2 * w[k] * w[c] - kv[k] * kv[c] / a)
        S -= p[j] * b * b / a
    for k in range(d):
        for c in range(d):
            proj = (1.0 if k == c else 0.0) - u[k] * u[c]
            hess[k, c] += proj_coef * proj
            if S > 0.0:
                hess[k, c] -= v[k] * v[c] / S


def w2_margin_value_grad_hess(g, z, targets, probs, radius, loss: str = "logistic", check_input: bool = True):
    """Exact W_2 robust value of sum_j p_j ell_j(g^T z_j) with its gradient and Hessian in g
    (docs/theory/dro.md §2.3, §2.4).  Returns (value, grad, hess, W2WorstCase).

    At g = 0 the value is not differentiable (it grows like radius ||g|| rms(ell')); the nominal
    gradient/Hessian are returned there (the nominal gradient lies in the subdifferential).

    Parameters
    ----------
    g : array_like of float, shape (d,)
        The slope vector.
    z : array_like of float, shape (A, d)
        Per-atom features (z = dphi).
    targets : array_like of float, shape (A,)
        Labels y in [0, 1] (logistic) or regression targets r (squared).
    probs : array_like of float, shape (A,)
        Atom probabilities summing to 1 within 1e-9; the law is p / sum p.
    radius : float
        The W_2 radius, finite >= 0.
    loss : {"logistic", "squared"}
        The margin loss ell.
    check_input : bool, default True
        Validate the inputs. ``False`` is for Newton loops that validated them once (float64 C-contiguous
        g, z, targets and probs of matching shapes, radius a float >= 0): the same arithmetic (the law
        normalised as p / sum p), so the result is the same to the bit.

    Returns
    -------
    value : float
        The exact W_2 robust value.
    grad : ndarray of float64, shape (d,)
        Its gradient in g (Danskin's, at the moved features).
    hess : ndarray of float64, shape (d, d)
        Its Hessian in g.
    worst_case : W2WorstCase
        The solve of :func:`w2_margin_worst_case` at g.
    """
    if check_input:
        z, g = _check_design(z, g)
    s = float(np.linalg.norm(g))
    if check_input:
        _, tgt, p, kind = _check_margin_inputs(np.zeros(z.shape[0]), targets, probs, loss, "rows of z")
    else:
        tgt, p, kind = targets, probs / probs.sum(), LOSSES.index(loss)
    res = w2_margin_worst_case(z @ g, s, p, radius, loss, tgt, check_input=check_input)
    d = z.shape[1]
    grad = np.empty(d)
    hess = np.empty((d, d))
    if s == 0.0 or not np.isfinite(res.mu):
        _surrogate_vgh_kernel(kind, g, z, tgt, p, 0.0, grad, hess)
    else:
        _w2_vgh_kernel(kind, g, z, tgt, p, res.shift, res.mu, grad, hess)
    return res.value, grad, hess, res


@kernel
def _surrogate_vgh_kernel(kind: int, g: np.ndarray, z: np.ndarray, tgt: np.ndarray,
                          p: np.ndarray, radius: float, grad: np.ndarray,
                          hess: np.ndarray) -> float:
    """S(g) = E ell + radius ||g|| sqrt(E ell'^2), its gradient and Hessian (radius 0: nominal)."""
    A, d = z.shape
    s = 0.0
    for k in range(d):
        s += g[k] * g[k]
    s = np.sqrt(s)
    base = 0.0
    Q = 0.0
    ga = np.zeros(d)   # E[ell' ell'' z]
    grad[:] = 0.0
    hess[:, :] = 0.0
    M = np.zeros((d, d))  # E[(ell''^2 + ell' ell''') z z^T]
    for j in range(A):
        if p[j] <= 0.0:
            continue
        h = 0.0
        for k in range(d):
            h += g[k] * z[j, k]
        l0, l1, l2, l3 = _ell(kind, h, tgt[j])
        base += p[j] * l0
        Q += p[j] * l1 * l1
        for k in range(d):
            grad[k] += p[j] * l1 * z[j, k]
            ga[k] += p[j] * l1 * l2 * z[j, k]
            for c in range(d):
                hess[k, c] += p[j] * l2 * z[j, k] * z[j, c]
                M[k, c] += p[j] * (l2 * l2 + l1 * l3) * z[j, k] * z[j, c]
    if radius == 0.0 or s == 0.0 or Q == 0.0:
        return base
    R = np.sqrt(Q)
    for k in range(d):
        uk = g[k] / s
        grad[k] += radius * (R * uk + s * ga[k] / R)
        for c in range(d):
            uc = g[c] / s
            d2s = ((1.0 if k == c else 0.0) - uk * uc) / s
            d2R = M[k, c] / R - ga[k] * ga[c] / (R * R * R)
            hess[k, c] += radius * (R * d2s + uk * ga[c] / R + ga[k] * uc / R + s * d2R)
    return base + radius * s * R


def w2_surrogate_value_grad_hess(g, z, targets, probs, radius, loss: str = "logistic", check_input: bool = True):
    """The gradient-norm surrogate S(g) = E_p ell(g^T z) + radius ||g|| rms_p(ell') with gradient and
    Hessian in g (docs/theory/dro.md §2.3; the WDPO paper's objective with radius = rho0).  Not differentiable at
    g = 0 (the nominal derivatives are returned there).

    Parameters
    ----------
    g, z, targets, probs, radius, loss, check_input
        As :func:`w2_margin_value_grad_hess`.

    Returns
    -------
    value : float
        S(g).
    grad : ndarray of float64, shape (d,)
        Its gradient in g.
    hess : ndarray of float64, shape (d, d)
        Its Hessian in g.
    """
    if check_input:
        z, g = _check_design(z, g)
        _, tgt, p, kind = _check_margin_inputs(np.zeros(z.shape[0]), targets, probs, loss, "rows of z")
        radius = check_radius(radius)
    else:
        tgt, p, kind = targets, probs / probs.sum(), LOSSES.index(loss)
    d = z.shape[1]
    grad = np.empty(d)
    hess = np.empty((d, d))
    value = _surrogate_vgh_kernel(kind, g, z, tgt, p, radius, grad, hess)
    return float(value), grad, hess
