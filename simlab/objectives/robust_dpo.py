"""Robust DPO objectives over weighted atoms: WDPO, KLDPO, chi^2-DPO (docs/theory/dpo.md §3.2, docs/theory/dro.md §2, docs/theory/variants.md §9).

All objectives are R(theta) = sup_{Q in ball(w)} E_Q l_DPO(theta) (or the papers' surrogates) for the
atom weights w (p0: population; N/n: empirical), with the DPO loss l = softplus(h) - y h and margin
h = beta (theta - theta_ref)^T dphi.  Each ``*_value_grad_hess`` returns (value, grad, Hessian) in
theta; the duals, Danskin gradients and Hessians come from :mod:`simlab.dro` (the one home of
duals); this module only maps the DPO atoms into them.

Paper-faithful objectives (defaults, docs/theory/variants.md §9):

* ``wdpo_exact``:        exact W_2 value, cost ||dphi' - dphi|| (features only), g = beta (theta - theta_ref).
* ``wdpo_surrogate``:    the WDPO paper's L^W = E l + rho0 sqrt(E ||grad_dphi l||^2)
                         = E l + rho0 beta ||theta - theta_ref|| sqrt(E (sigma(h) - y)^2).
* ``kldpo_penalized``:   tau log E_w e^{l/tau} (KLDPO Algorithm 2 with fixed tau; softmax weights).
* ``kldpo_constrained``: sup_{KL(q||w) <= eps} E_q l (dual temperature solved exactly).
* ``chi2dpo``:           sup_{1/2 E_w (q/w - 1)^2 <= eps} E_q l.

Reference-code variants (switches ``wdpo.penalty``, ``kldpo.weights``):

* ``wdpo_code``:   mean(l + rho0 ||grad_emb l||^2) over both response embeddings
                   = E l + 2 rho0 beta^2 ||theta - theta_ref||^2 E (sigma(h) - y)^2 (squared, no root).
* ``kldpo_code_direction``: the official KLDPO full-batch update direction
                   sum_j w_j min(e^{(l_j - l_bar)/tau}, clip) grad l_j with detached, unnormalised
                   weights (not the gradient of any objective; its zeros define the code's estimator).
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit

from simlab.dro import (kl_penalized_value_grad_hess, w2_margin_value_grad_hess,
                        w2_surrogate_value_grad_hess, worst_case_value_grad_hess)
from simlab.objectives.dpo import dpo_losses
from simlab.validation import check_choice, check_float, check_linear_atoms

OBJECTIVES = ("dpo", "wdpo_exact", "wdpo_surrogate", "wdpo_code", "kldpo_penalized",
              "kldpo_constrained", "chi2dpo")


def _dpo_atoms(theta, theta_ref, beta, dphi, y):
    """Per-atom DPO losses, gradients beta (sigma - y) dphi and the Hessian sum w -> sum w_j H_j (inputs
    validated by the caller)."""
    l = dpo_losses(theta, theta_ref, beta, dphi, y, check_input=False)
    h = beta * (dphi @ (np.asarray(theta, float) - np.asarray(theta_ref, float)))
    s = expit(h)
    grads = (beta * (s - y))[:, None] * dphi
    curv = beta * beta * s * (1.0 - s)

    def hess_sum(w):
        return (dphi.T * (w * curv)) @ dphi

    return l, grads, hess_sum


def _validated(theta, theta_ref, beta, dphi, y, w):
    """(theta, theta_ref, beta, dphi, y, w) after :func:`simlab.validation.check_linear_atoms`."""
    theta, theta_ref, dphi, y, w = check_linear_atoms(theta, theta_ref, dphi, y, w, labels=True)
    return theta, theta_ref, check_float("beta", beta, 0.0, low_open=True), dphi, y, w


def robust_dpo_value_grad_hess(objective: str, theta, theta_ref, beta, dphi, y, w, radius,
                               check_input: bool = True):
    """(value, grad, Hessian) in theta of the named robust DPO objective (see module doc).

    ``radius`` is the ball radius eps (W_2, KL or chi^2), rho0 for ``wdpo_surrogate``/``wdpo_code``,
    tau for ``kldpo_penalized``; it is ignored for ``dpo``.  ``w`` must sum to 1.

    Parameters
    ----------
    objective : str
        One of ``OBJECTIVES``: "dpo", "wdpo_exact", "wdpo_surrogate", "wdpo_code", "kldpo_penalized",
        "kldpo_constrained", "chi2dpo" (formulas in the module docstring, derived in docs/theory/dpo.md §3.2
        from the duals of docs/theory/dro.md §2.1-§2.3).
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    y : array_like of float, shape (A,)
        Labels in [0, 1].
    w : array_like of float, shape (A,)
        Atom weights (p0 for the population, the empirical law for a sample).
        Must sum to 1.
    radius : float
        eps for ``wdpo_exact``, ``kldpo_constrained`` and ``chi2dpo``; rho0 for ``wdpo_surrogate`` and
        ``wdpo_code``; tau for ``kldpo_penalized``; ignored for ``dpo``.
    check_input : bool, default True
        Validate the inputs. ``False`` is for a Newton loop that validated them once
        (:func:`simlab.solvers.robust_dpo.fit_robust_dpo_exact`): ``objective`` one of ``OBJECTIVES``,
        float64 C-contiguous arrays of matching shapes, labels in [0, 1], ``w`` >= 0 summing to 1, beta a
        float > 0; the values are the same to the bit.

    Returns
    -------
    value : float
        R(theta), the robust objective's value.
    grad : ndarray of float64, shape (d,)
        Its gradient in theta (the Danskin gradient for the ball objectives, docs/theory/dro.md §2.4).
    hess : ndarray of float64, shape (d, d)
        Its exact Hessian in theta (that of the smooth parts where the objective has a kink).
    """
    if check_input:
        check_choice("objective", objective, OBJECTIVES)
        theta, theta_ref, beta, dphi, y, w = _validated(theta, theta_ref, beta, dphi, y, w)
    if objective in ("wdpo_exact", "wdpo_surrogate"):
        g = beta * (theta - theta_ref)
        fn = w2_margin_value_grad_hess if objective == "wdpo_exact" else w2_surrogate_value_grad_hess
        out = fn(g, dphi, y, w, radius, "logistic", check_input=check_input)
        return out[0], beta * out[1], beta * beta * out[2]
    if objective == "wdpo_code":
        return _wdpo_code_value_grad_hess(theta, theta_ref, beta, dphi, y, w, radius)
    l, grads, hess_sum = _dpo_atoms(theta, theta_ref, beta, dphi, y)
    if objective == "dpo":
        return float(w @ l), w @ grads, hess_sum(w)
    if objective == "kldpo_penalized":
        return kl_penalized_value_grad_hess(l, grads, hess_sum, w, radius)[:3]
    divergence = "kl" if objective == "kldpo_constrained" else "chi2"
    return worst_case_value_grad_hess(l, grads, hess_sum, w, divergence, radius)[:3]


def _wdpo_code_value_grad_hess(theta, theta_ref, beta, dphi, y, w, rho0):
    """E l + 2 rho0 ||g||^2 E ell'^2 with g = beta (theta - theta_ref), ell' = sigma(h) - y.

    In g: P = ||g||^2 Q, Q = E ell'^2;  grad P = 2 Q g + 2 ||g||^2 a, a = E[ell' ell'' dphi];
    Hess P = 2 Q I + 4 (g a^T + a g^T) + 2 ||g||^2 E[(ell''^2 + ell' ell''') dphi dphi^T].
    """
    rho0 = check_float("rho0", rho0, 0.0)
    g = beta * (theta - theta_ref)
    h = dphi @ g
    s = expit(h)
    l0 = dpo_losses(theta, theta_ref, beta, dphi, y, check_input=False)
    l1 = s - y
    l2 = s * (1.0 - s)
    l3 = l2 * (1.0 - 2.0 * s)
    Q = float(w @ l1**2)
    a = (w * l1 * l2) @ dphi
    M = (dphi.T * (w * (l2 * l2 + l1 * l3))) @ dphi
    gg = float(g @ g)
    value = float(w @ l0) + 2.0 * rho0 * gg * Q
    grad_g = (w * l1) @ dphi + 2.0 * rho0 * (2.0 * Q * g + 2.0 * gg * a)
    hess_g = (dphi.T * (w * l2)) @ dphi + 2.0 * rho0 * (
        2.0 * Q * np.eye(g.size) + 4.0 * (np.outer(g, a) + np.outer(a, g)) + 2.0 * gg * M)
    return value, beta * grad_g, beta * beta * hess_g


def kldpo_code_direction(theta, theta_ref, beta, dphi, y, w, tau, clip: float = 10.0) -> np.ndarray:
    """Official KLDPO (``src/kldpo.py``) full-batch direction sum_j w_j c_j grad l_j with detached,
    unnormalised weights c_j = min(e^{(l_j - l_bar)/tau}, clip), l_bar = sum_j w_j l_j (docs/theory/dpo.md §3.2).

    Without clipping its zeros are the penalised-KL minimiser (the weights are proportional to the
    softmax); with clipping the zero moves.  ``clip = inf`` disables clipping.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    y : array_like of float, shape (A,)
        Labels in [0, 1].
    w : array_like of float, shape (A,)
        Atom weights (p0 for the population, the empirical law for a sample).
    tau : float
        Temperature (> 0).
    clip : float, default 10.0
        Upper clip of the weights c_j (the code's 10); ``inf`` disables it.

    Returns
    -------
    ndarray of float64, shape (d,)
        sum_j w_j min(e^{(l_j - l_bar)/tau}, clip) beta (sigma(h_j) - y_j) dphi_j.
    """
    theta, theta_ref, beta, dphi, y, w = _validated(theta, theta_ref, beta, dphi, y, w)
    tau = check_float("tau", tau, 0.0, low_open=True)
    l, grads, _ = _dpo_atoms(theta, theta_ref, beta, dphi, y)
    c = np.minimum(np.exp((l - w @ l) / tau), clip)
    return (w * c) @ grads
