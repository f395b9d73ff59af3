"""Danskin (envelope) gradients and exact Hessians of f-divergence robust objectives (docs/theory/dro.md §2.4).

For R(theta) = sup_{q in ball(p)} sum_j q_j l_j(theta) with a unique worst case q*, Danskin gives
grad R = sum_j q*_j grad l_j (q* frozen, "detached").  The Hessians below differentiate the dual
solution as well (implicit function theorem on the 1-D dual), so Newton on R is exact:

* penalised KL, fixed tau:  H = sum q H_j + Cov_q(grad l)/tau.
* constrained KL (tau* solves KL(q_tau||p) = eps):
  H = sum q H_j + Cov_q(grad l)/tau - c c^T / (tau Var_q l),  c = Cov_q(l, grad l).
* chi^2 (zeta* interior, S = {l > zeta*}, r = sqrt(sum_S p (l - zeta)^2), c_eps = sqrt(1 + 2 eps)):
  with F(theta, zeta) = zeta + c_eps r,  H = F_tt - F_tz F_zt / F_zz.

Per-atom Hessians are passed as ``hess_sum``: either an (A, d, d) array or a callable
``w -> sum_j w_j H_j`` (rank-one structure, e.g. DPO, stays O(A d^2)).  The formulas live once, in
:func:`worst_case_value_grad_hess_kernel` (arrays and scalars only): it returns the Hessian without its
per-atom part and the weights omega of the per-atom Hessians (H = hess + sum_j omega_j H_j), so the
checked NumPy entry :func:`worst_case_value_grad_hess` and whole-loop kernels (the DRO-REBEL Newton fit,
:func:`simlab.objectives.rebel.robust_rebel_vgh_kernel`) share it.

The reference codes differentiate through the softmax weights instead ("non-detached"):
``non_detached_softmax_gradient`` returns that gradient, sum_j P_j grad l_j (1 + (l_j - <P, l>)/tau),
which is *not* the envelope gradient (switch ``dro.weights``, docs/theory/variants.md §9).

Whole-loop jitted solvers (minibatch KLDPO, online KL-REBEL) take the penalised-KL softmax weights
from :func:`simlab.dro.kl.kl_penalized_kernel` (the weights of ``kl_penalized`` to the bit) and the
non-detached coefficients from ``non_detached_coefficients_kernel`` here (the one home of each).
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.dro._inputs import check_losses_probs, check_radius
from simlab.dro.chi2 import chi2_worst_case, chi2_worst_case_kernel
from simlab.dro.kl import kl_penalized, kl_worst_case, kl_worst_case_kernel
from simlab.validation import check_array, check_choice

DIVERGENCES = ("kl", "chi2")


def _hess_sum(hess_sum, w: np.ndarray) -> np.ndarray:
    if callable(hess_sum):
        return np.asarray(hess_sum(w), dtype=np.float64)
    return np.einsum("j,jkl->kl", w, hess_sum)


def _check_grads(grads, n: int) -> np.ndarray:
    grads = check_array("grads", grads, ndim=2)
    if grads.shape[0] != n:
        raise ValueError(f"grads must have one row per atom ({n}), got shape {grads.shape}")
    return grads


@kernel
def non_detached_coefficients_kernel(l: np.ndarray, q: np.ndarray, tau: float, coef: np.ndarray) -> None:
    """coef_j = q_j (1 + (l_j - <q, l>)/tau): the weights of grad l_j in the autograd gradient of
    sum_j P_j l_j with P = softmax_p(l/tau) not detached (q = P; coef may be q itself).

    Parameters
    ----------
    l : ndarray of float64, shape (A,)
        Losses.
    q : ndarray of float64, shape (A,)
        The softmax weights P = softmax_p(l/tau).
    tau : float
        Temperature, > 0.
    coef : ndarray of float64, shape (A,)
        Output (may be ``q`` itself).

    Returns
    -------
    None
    """
    ql = 0.0
    for j in range(l.size):
        ql += q[j] * l[j]
    for j in range(l.size):
        coef[j] = q[j] * (1.0 + (l[j] - ql) / tau)


def danskin_gradient(q, grads) -> np.ndarray:
    """Envelope gradient sum_j q_j grad l_j for frozen worst-case weights q (docs/theory/dro.md §2.4).

    Parameters
    ----------
    q : array_like of float, shape (A,)
        Worst-case weights.
    grads : array_like of float, shape (A, d)
        Per-atom gradients grad l_j.

    Returns
    -------
    ndarray of float64, shape (d,)
        sum_j q_j grad l_j.
    """
    q = np.asarray(q, dtype=np.float64)
    return q @ _check_grads(grads, q.size)


def non_detached_softmax_gradient(losses, grads, probs, tau) -> np.ndarray:
    """Autograd of sum_j P_j(theta) l_j(theta) with P = softmax_p(l/tau) not detached (docs/theory/dro.md §2.4):
    sum_j P_j grad l_j (1 + (l_j - sum_k P_k l_k)/tau).  Differs from the envelope gradient by
    O(1) relatively when tau is comparable to the loss spread.

    Parameters
    ----------
    losses, grads
        As :func:`kl_penalized_value_grad_hess`.
    probs, tau
        As :func:`simlab.dro.kl.kl_penalized`.

    Returns
    -------
    ndarray of float64, shape (d,)
        The non-detached gradient.
    """
    _, P = kl_penalized(losses, probs, tau)
    l = np.ascontiguousarray(losses, dtype=np.float64)
    coef = np.empty_like(l)
    non_detached_coefficients_kernel(l, P, float(tau), coef)
    return coef @ _check_grads(grads, l.size)


def kl_penalized_value_grad_hess(losses, grads, hess_sum, probs, tau):
    """tau log E_p e^{l/tau}, its gradient sum q grad l and Hessian sum q H + Cov_q(grad l)/tau.

    Parameters
    ----------
    losses : array_like of float, shape (A,)
        Finite losses l_j(theta).
    grads : array_like of float, shape (A, d)
        Per-atom gradients grad l_j.
    hess_sum : callable or array_like of float, shape (A, d, d)
        The per-atom Hessians H_j, or a callable w -> sum_j w_j H_j.
    probs : array_like of float, shape (A,)
        Atom probabilities summing to 1 within 1e-9; the law is p / sum p.
    tau : float
        Temperature, > 0.

    Returns
    -------
    value : float
        tau log E_p e^{l/tau}.
    grad : ndarray of float64, shape (d,)
        sum_j q_j grad l_j.
    hess : ndarray of float64, shape (d, d)
        sum_j q_j H_j + Cov_q(grad l)/tau.
    q : ndarray of float64, shape (A,)
        The worst-case weights softmax_p(l/tau).
    """
    value, q = kl_penalized(losses, probs, tau)
    grads = _check_grads(grads, q.size)
    grad = q @ grads
    cg = grads - grad
    hess = _hess_sum(hess_sum, q) + (cg.T * q) @ cg / tau
    return value, grad, hess, q


@kernel(ordered=True)  # small arrays, loops that store and sum: no reassociation
def worst_case_value_grad_hess_kernel(l: np.ndarray, grads: np.ndarray, p: np.ndarray, mass: float, code: int,
                                      radius: float, q: np.ndarray, grad: np.ndarray, hess: np.ndarray,
                                      hess_weights: np.ndarray) -> float:
    """In-numba robust value R = sup_{D(q||p) <= radius} <q, l>, its Danskin gradient and exact Hessian
    (docs/theory/dro.md §2.4; no input checks): the one implementation behind
    :func:`worst_case_value_grad_hess`, called directly by whole-loop kernels (the DRO-REBEL Newton fit).

    The per-atom Hessians H_j stay with the caller (they may be a callable or a rank-one structure): the
    kernel writes the rest of the Hessian to ``hess`` and the weights omega_j of the per-atom Hessians to
    ``hess_weights``, so the exact Hessian of R is ``hess + sum_j omega_j H_j``:

    * KL (tau* in (0, inf)): omega = q*, hess = Cov_q(grad l)/tau - c c^T/(tau Var_q l),
      c = Cov_q(l, grad l) (the last term only where Var_q l > 0);
    * chi^2 (zeta* below max l on the support, active set S = {l > zeta*, p > 0}, r = ||(l - zeta*)_+||_{L2(p)},
      c_eps = sqrt(1 + 2 radius)): with F(theta, zeta) = zeta + c_eps r, the Hessian F_tt - F_tz F_zt / F_zz
      (F_tt alone when F_zz <= 0), omega_j = c_eps p_j (l_j - zeta*)/r on S and 0 elsewhere;
    * radius 0, constant losses, saturation (value max l): omega = q*, hess = 0.

    Parameters
    ----------
    l, grads : ndarray of float64, shapes (A,) and (A, d)
        The finite losses l_j(theta) and their gradients grad l_j (C-contiguous).
    p : ndarray of float64, shape (A,)
        Atom weights >= 0; the ball is around p / ``mass``.
    mass : float
        sum_j p_j as the caller normalises (1.0 for weights that already are a law: the chi^2 Hessian
        then uses p as given).
    code : int
        Index into ``DIVERGENCES``: 0 = "kl", 1 = "chi2".
    radius : float
        The ball's radius, >= 0.
    q : ndarray of float64, shape (A,)
        Output: the worst-case weights q* (:func:`simlab.dro.kl.kl_worst_case_kernel`,
        :func:`simlab.dro.chi2.chi2_worst_case_kernel`).
    grad : ndarray of float64, shape (d,)
        Output: Danskin's gradient sum_j q*_j grad l_j.
    hess : ndarray of float64, shape (d, d)
        Output: the Hessian of R without its per-atom-Hessian part (symmetric).
    hess_weights : ndarray of float64, shape (A,)
        Output: the weights omega_j of the per-atom Hessians H_j.

    Returns
    -------
    float
        The robust value R.
    """
    n, d = grads.shape
    if code == 0:
        value, dual, _ = kl_worst_case_kernel(l, p, radius, q)
    else:
        value, dual, _ = chi2_worst_case_kernel(l, p, radius, q)
    grad[:] = 0.0
    hess[:, :] = 0.0
    for j in range(n):
        hess_weights[j] = q[j]
        if q[j] == 0.0:
            continue
        for k in range(d):
            grad[k] += q[j] * grads[j, k]
    if code == 0:
        tau = dual
        if 0.0 < tau < np.inf:
            ql = 0.0
            for j in range(n):
                ql += q[j] * l[j]
            cvec = np.zeros(d)
            var_l = 0.0
            for j in range(n):
                if q[j] == 0.0:
                    continue
                dl = l[j] - ql
                var_l += q[j] * dl * dl
                for k in range(d):
                    ck = grads[j, k] - grad[k]
                    cvec[k] += q[j] * dl * ck
                    for m in range(k + 1):
                        hess[k, m] += q[j] * ck * (grads[j, m] - grad[m]) / tau
            if var_l > 0.0:
                for k in range(d):
                    for m in range(k + 1):
                        hess[k, m] -= cvec[k] * cvec[m] / (tau * var_l)
        for k in range(d):
            for m in range(k):
                hess[m, k] = hess[k, m]
        return value
    zeta = dual
    lmax = -np.inf
    for j in range(n):
        if p[j] > 0.0 and l[j] > lmax:
            lmax = l[j]
    if not (np.isfinite(zeta) and zeta < lmax):
        return value  # saturated: the Hessian of the max, sum q H
    c_eps = np.sqrt(1.0 + 2.0 * radius)
    r2 = 0.0
    s1 = 0.0
    s0 = 0.0
    mvec = np.zeros(d)
    g_act = np.zeros(d)
    for j in range(n):  # hess <- sum_S p grad l grad l^T (the rest of F_tt's numerator is sum_S p (l - zeta) H)
        if not (l[j] > zeta and p[j] > 0.0):
            hess_weights[j] = 0.0
            continue
        ex = l[j] - zeta
        pj = p[j] / mass
        hess_weights[j] = pj * ex
        r2 += pj * ex * ex
        s1 += pj * ex
        s0 += pj
        for k in range(d):
            gk = grads[j, k]
            mvec[k] += pj * ex * gk
            g_act[k] += pj * gk
            for m in range(k + 1):
                hess[k, m] += pj * gk * grads[j, m]
    r = np.sqrt(r2)
    r3 = r**3
    f_zz = c_eps * (s0 / r - s1 * s1 / r3)
    for j in range(n):
        hess_weights[j] = c_eps * hess_weights[j] / r
    for k in range(d):
        for m in range(k + 1):
            hess[k, m] = c_eps * (hess[k, m] / r - mvec[k] * mvec[m] / r3)
    if f_zz > 0.0:
        for k in range(d):
            f_k = c_eps * (-g_act[k] / r + mvec[k] * s1 / r3)
            for m in range(k + 1):
                f_m = c_eps * (-g_act[m] / r + mvec[m] * s1 / r3)
                hess[k, m] -= f_k * f_m / f_zz
    for k in range(d):
        for m in range(k):
            hess[m, k] = hess[k, m]
    return value


def worst_case_value_grad_hess(losses, grads, hess_sum, probs, divergence: str, radius):
    """Robust value R = sup_{D(q||p) <= radius} <q, l>, its Danskin gradient and exact Hessian.

    Returns (value, grad, hess, q).  ``divergence`` in {"kl", "chi2"}.  At radius 0 this is the
    nominal objective; in the saturated case (value = max l) the Hessian is that of the max.
    Checks the inputs, then :func:`worst_case_value_grad_hess_kernel` (the formulas) and
    hess plus the per-atom Hessians weighted by omega (through ``hess_sum``).

    Parameters
    ----------
    losses, grads, hess_sum
        As :func:`kl_penalized_value_grad_hess`.
    probs : array_like of float, shape (A,)
        Atom probabilities summing to 1 within 1e-9; the ball is around p / sum p.
    divergence : {"kl", "chi2"}
        The ball's divergence.
    radius : float
        The ball's radius, >= 0.

    Returns
    -------
    value : float
        The robust value R.
    grad : ndarray of float64, shape (d,)
        Danskin's gradient sum_j q*_j grad l_j.
    hess : ndarray of float64, shape (d, d)
        The exact Hessian of R (module docstring).
    q : ndarray of float64, shape (A,)
        The worst-case weights q*.

    Raises
    ------
    ValueError
        Naming ``divergence``, ``losses``, ``probs``, ``radius`` or ``grads`` on bad input.
    """
    check_choice("divergence", divergence, DIVERGENCES)
    l, p, _, _ = check_losses_probs(losses, probs)
    radius = check_radius(radius)
    grads = np.ascontiguousarray(_check_grads(grads, l.size))
    n, d = grads.shape
    q, grad, hess, omega = np.empty(n), np.empty(d), np.empty((d, d)), np.empty(n)
    value = worst_case_value_grad_hess_kernel(l, grads, p, float(p.sum()), DIVERGENCES.index(divergence),
                                              radius, q, grad, hess, omega)
    return float(value), grad, hess + _hess_sum(hess_sum, omega), q


def worst_case(losses, probs, divergence: str, radius) -> tuple[float, np.ndarray]:
    """Exact worst-case expectation sup_q sum_j q_j l_j over the ball of the given radius around
    the discrete law p / sum p (docs/theory/dro.md §2.1-2.2).

    Works for weighted atoms (population p0) and empirical/uniform weights alike.  The balls:

    - "kl": KL(q||p) <= radius, by the 1-D dual in the temperature; saturated (value max l) at
      radius >= log(1/P_max);
    - "chi2": 1/2 E_p (q/p - 1)^2 <= radius, by the exact dual
      min_zeta zeta + sqrt(1 + 2 radius) ||(l - zeta)_+||_{L2(p)}; saturated at (1 + 2 radius) P_max >= 1.

    Parameters
    ----------
    losses : array_like of float, shape (A,)
        The losses l_j, finite; those of atoms with p_j = 0 play no part.
    probs : array_like of float, shape (A,)
        The law p: entries in [0, 1] summing to 1 within 1e-9 (the ball is around p / sum p).
    divergence : {"kl", "chi2"}
        The ball's divergence.
    radius : float
        The ball's radius, finite >= 0.

    Returns
    -------
    value : float
        The worst-case expectation.
    q : ndarray of float64, shape (A,)
        The worst-case weights.

    Raises
    ------
    ValueError
        Naming the argument on a negative radius, probabilities not summing to 1 (tolerance 1e-9),
        NaN losses or a shape mismatch.
    """
    check_choice("divergence", divergence, DIVERGENCES)
    res = kl_worst_case(losses, probs, radius) if divergence == "kl" else chi2_worst_case(losses, probs, radius)
    return res.value, res.q

