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
``w -> sum_j w_j H_j`` (rank-one structure, e.g. DPO, stays O(A d^2)).

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
from simlab.dro.chi2 import chi2_worst_case
from simlab.dro.kl import kl_penalized, kl_worst_case
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


def worst_case_value_grad_hess(losses, grads, hess_sum, probs, divergence: str, radius):
    """Robust value R = sup_{D(q||p) <= radius} <q, l>, its Danskin gradient and exact Hessian.

    Returns (value, grad, hess, q).  ``divergence`` in {"kl", "chi2"}.  At radius 0 this is the
    nominal objective; in the saturated case (value = max l) the Hessian is that of the max.

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
    """
    check_choice("divergence", divergence, DIVERGENCES)
    l = np.asarray(losses, dtype=np.float64)
    if divergence == "kl":
        res = kl_worst_case(l, probs, radius)
    else:
        res = chi2_worst_case(l, probs, radius)
    q = res.q
    grads = _check_grads(grads, q.size)
    grad = q @ grads
    hess = _hess_sum(hess_sum, q)
    if divergence == "kl":
        tau = res.tau
        if 0.0 < tau < np.inf:
            cg = grads - grad
            dl = l - q @ l
            var_l = float(q @ dl**2)
            c = (q * dl) @ cg
            hess = hess + (cg.T * q) @ cg / tau
            if var_l > 0:
                hess = hess - np.outer(c, c) / (tau * var_l)
        return res.value, grad, hess, q
    zeta = res.zeta
    if not np.isfinite(zeta) or zeta >= np.max(l[np.asarray(probs) > 0]):
        return res.value, grad, hess, q
    p = np.asarray(probs, dtype=np.float64)
    p = p / p.sum()  # the ball is around the normalised law, like the value and q
    c_eps = np.sqrt(1.0 + 2.0 * float(radius))
    act = (l > zeta) & (p > 0)
    e = np.where(act, l - zeta, 0.0)
    pa = np.where(act, p, 0.0)
    r = np.sqrt(pa @ e**2)
    pe = pa * e
    m = pe @ grads                       # sum_S p (l - zeta) grad l
    s1 = pe.sum()                        # sum_S p (l - zeta)
    g_act = pa @ grads                   # sum_S p grad l
    # F_tt = c [ (sum_S p grad grad^T + sum_S p (l - zeta) H)/r - m m^T / r^3 ]
    F_tt = c_eps * (((grads.T * pa) @ grads + _hess_sum(hess_sum, pe)) / r - np.outer(m, m) / r**3)
    F_tz = c_eps * (-g_act / r + m * s1 / r**3)
    F_zz = c_eps * (pa.sum() / r - s1**2 / r**3)
    hess = F_tt - np.outer(F_tz, F_tz) / F_zz if F_zz > 0 else F_tt
    return res.value, grad, hess, q


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

