"""Exact asymptotic constants of (robust) M-estimators over weighted atoms: the sandwich tr(H^-1 V H^-1).

Every estimator in simlab minimises an objective R(theta; p) that depends on the atom weights p through
finitely many p-means (a nominal risk, a KL or chi^2 worst case through its 1-D dual, a root-mean-square).
The empirical estimator uses p = p_hat = N/n with N ~ Multinomial(n, p0), so by the delta method

    theta_hat - theta* = sum_j (p_hat_j - p0_j) psi_j + O_P(1/n),      n E||theta_hat - theta*||_A^2 -> C_A,
    C_A = sum_j p0_j psi_j^T A psi_j = tr(A H^-1 V H^-1),

with psi_j the influence row of atom j (the derivative of theta*(p) in the direction delta_j - p0).
For an objective written as a joint minimum R(theta; p) = min_nu Phi(theta, nu; p) with a dual variable
nu (KL temperature tau, chi^2 threshold zeta) the rows are psi_j = -[J^-1 g_j]_theta, where J is the
joint Hessian of Phi in (theta, nu) at the optimum and g_j = d/dt grad_(theta, nu) Phi(.; p0 + t(delta_j -
p0)) at t = 0 (the centred per-atom gradient). Derivations: docs/theory/rebel.md §4.7 (M-estimator
prediction) and docs/theory/dro.md §2.1-§2.3 (the duals whose p-derivatives enter g_j).

Joint systems used here (l_j, grad l_j, Hess l_j the per-atom loss, gradient, Hessian)::


    * nominal:        J = sum p Hess l;                         g_j = grad l_j - sum p grad l.
    * KL constrained: Phi = tau eps + tau log sum p e^{l/tau};  q = softmax_p(l/tau);
                      J_tt = sum q Hess l + Cov_q(grad l)/tau, J_ttau = -Cov_q(l, grad l)/tau^2,
                      J_tautau = Var_q(l)/tau^3;  g_j = (q_j/p_j) (grad l_j - sum q grad l,
                      1 - (l_j - <q, l>)/tau) - (0, 1).
    * KL penalised:   fixed tau, no dual variable: J = J_tt,  g_j = (q_j/p_j)(grad l_j - sum q grad l).
    * chi^2:          Phi = zeta + c sqrt(T), T = sum p a^2, a = (l - zeta)_+, c = sqrt(1 + 2 eps), A = sqrt(T),
                      m = sum p a grad l, s1 = sum p a, 1 = [a > 0]:
                      J_tt = c[(sum p 1 grad l grad l^T + sum p a Hess l)/A - m m^T/A^3],
                      J_tzeta = c[-sum p 1 grad l/A + m s1/A^3],  J_zetazeta = c[sum p 1/A - s1^2/A^3];
                      g_j = c(a_j grad l_j/A - m a_j^2/(2A^3), -a_j/A + s1 a_j^2/(2A^3)), centred.
    * W2-REBEL:       R = rms_p(e) + eps ||u||, e_j the residual, grad e_j = dphi_j/eta:
                      g_j = e_j dphi_j/(eta A) - (sum p e dphi/eta) e_j^2/(2 A^3), centred; J = Hess R.
    * WDPO surrogate: R = E l + rho0 beta ||v|| S, v = theta - theta_ref, S = sqrt(E ell'^2), ell' = sigma(h) - y:
                      g_j = grad l_j + rho0 beta [ell'_j^2 v/(2 S ||v||)
                            + ||v|| (beta ell'_j ell''_j dphi_j / S - b ell'_j^2/(2 S^3))], centred,
                      b = E[ell' ell'' beta dphi]; J = Hess R.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from simlab.dro import chi2_worst_case, kl_penalized, kl_worst_case
from simlab.objectives.dpo import dpo_losses
from simlab.objectives.rebel import (f_rebel_value_grad_hess, kl_rebel_penalized_value_grad_hess,
                                     rebel_residuals, w2_rebel_value_grad_hess)
from simlab.objectives.robust_dpo import robust_dpo_value_grad_hess
from simlab.validation import check_array, check_choice, check_float

F_DIVERGENCES = ("none", "kl", "kl_tau", "chi2")
REBEL_OBJECTIVES = ("rebel", "w2", "kl", "kl_tau", "chi2")
DPO_OBJECTIVES = ("dpo", "wdpo_surrogate", "kldpo_penalized", "kldpo_constrained", "chi2dpo")


@dataclass(frozen=True)
class Sandwich:
    """The asymptotic law of a (robust) M-estimator: population Hessian ``hess`` (of R in theta), per-atom
    influence rows ``influence`` (A, d) with sum_j p_j psi_j = 0, the gradient covariance ``V`` = H C H and
    the asymptotic covariance ``cov`` = H^-1 V H^-1 = sum_j p_j psi_j psi_j^T."""

    hess: np.ndarray
    influence: np.ndarray
    cov: np.ndarray

    def constant(self, metric: np.ndarray | None = None) -> float:
        """lim n E||theta_hat - theta*||_A^2 = tr(A cov).

        Parameters
        ----------
        metric : (d, d) ndarray, optional
            The norm's matrix A (default the identity).

        Returns
        -------
        float
            The asymptotic constant C_A.
        """
        return float(np.trace(self.cov)) if metric is None else float(np.trace(metric @ self.cov))

    @property
    def V(self) -> np.ndarray:
        """Covariance of the per-atom gradient, H cov H."""
        return self.hess @ self.cov @ self.hess


def _centre(rows: np.ndarray, p: np.ndarray) -> np.ndarray:
    return rows - p @ rows


def _assemble(J: np.ndarray, g: np.ndarray, p: np.ndarray, d: int) -> Sandwich:
    """Rows psi_j = -[J^-1 g_j]_theta and the Schur complement Hessian of R in theta."""
    J = 0.5 * (J + J.T)
    psi = -np.linalg.solve(J, g.T).T[:, :d]
    cov = (psi.T * p) @ psi
    hess = J[:d, :d]
    if J.shape[0] > d:
        hess = hess - J[:d, d:] @ np.linalg.solve(J[d:, d:], J[d:, :d])
    return Sandwich(hess=hess, influence=psi, cov=cov)


def f_divergence_sandwich(losses, grads, hess_sum, probs, divergence: str, radius: float) -> Sandwich:
    """Sandwich of argmin_theta sup_{D(q||p) <= radius} <q, l(theta)> at a minimiser theta* (see the module docstring).

    Atoms with p_j = 0 are dropped (their influence rows are 0).

    Parameters
    ----------
    losses : (A,) array_like
        Per-atom losses l_j(theta*).
    grads : (A, d) array_like
        Per-atom gradients at theta*.
    hess_sum : callable
        ``hess_sum(w) = sum_j w_j Hess l_j(theta*)`` for weights w of shape (A,).
    probs : (A,) array_like
        Atom probabilities p0.
    divergence : {"none", "kl", "kl_tau", "chi2"}
        Nominal risk, KL-constrained ball, KL-penalised (``radius`` = tau) or chi^2 ball.
    radius : float
        Ball radius (or tau).

    Returns
    -------
    Sandwich
        Hessian, influence rows and asymptotic covariance.

    Raises
    ------
    ValueError
        For a saturated ball (the worst case is then a max, not a smooth functional of p).
    """
    check_choice("divergence", divergence, F_DIVERGENCES)
    l = check_array("losses", losses, ndim=1)
    G = check_array("grads", grads, shape=(l.size, None))
    p = check_array("probs", probs, shape=(l.size,))
    radius = check_float("radius", radius, 0.0)
    keep = p > 0
    out_rows = np.zeros_like(G)
    l, G, p = l[keep], G[keep], p[keep] / p[keep].sum()
    d = G.shape[1]

    def hs(w):
        full = np.zeros(keep.size)
        full[keep] = w
        return hess_sum(full)

    if divergence == "none" or (radius == 0.0 and divergence != "kl_tau"):
        J = hs(p)
        g = _centre(G, p)
    elif divergence in ("kl", "kl_tau"):
        if divergence == "kl":
            res = kl_worst_case(l, p, radius)
            q, tau = res.q, res.tau
            if not 0.0 < tau < np.inf:
                raise ValueError(f"radius {radius:g}: the KL ball is saturated (tau = {tau:g}); no smooth sandwich")
        else:
            tau = check_float("radius", radius, 0.0, low_open=True)
            q = kl_penalized(l, p, tau)[1]
        gq = q @ G
        cg = G - gq
        J_tt = hs(q) + (cg.T * q) @ cg / tau
        ratio = q / p
        g_theta = ratio[:, None] * cg
        if divergence == "kl_tau":
            J, g = J_tt, g_theta
        else:
            dl = l - q @ l
            J = np.zeros((d + 1, d + 1))
            J[:d, :d] = J_tt
            J[:d, d] = J[d, :d] = -((q * dl) @ cg) / tau**2
            J[d, d] = float(q @ dl**2) / tau**3
            g = np.hstack([g_theta, (ratio * (1.0 - dl / tau) - 1.0)[:, None]])
    else:
        res = chi2_worst_case(l, p, radius)
        zeta = res.zeta
        if not np.isfinite(zeta) or zeta >= l.max():
            raise ValueError(f"radius {radius:g}: the chi^2 ball is saturated; no smooth sandwich")
        c = np.sqrt(1.0 + 2.0 * radius)
        a = np.maximum(l - zeta, 0.0)
        ind = (a > 0).astype(np.float64)
        A = np.sqrt(p @ a**2)
        m = (p * a) @ G
        s1 = float(p @ a)
        J = np.zeros((d + 1, d + 1))
        J[:d, :d] = c * (((G.T * (p * ind)) @ G + hs(p * a)) / A - np.outer(m, m) / A**3)
        J[:d, d] = J[d, :d] = c * (-((p * ind) @ G) / A + m * s1 / A**3)
        J[d, d] = c * (float(p @ ind) / A - s1**2 / A**3)
        g = np.hstack([c * (a[:, None] * G / A - np.outer(a**2, m) / (2 * A**3)),
                       (c * (-a / A + s1 * a**2 / (2 * A**3)))[:, None]])
        g = _centre(g, p)
    s = _assemble(J, g, p, d)
    out_rows[keep] = s.influence
    return Sandwich(s.hess, out_rows, s.cov)


def rebel_sandwich(objective: str, theta, theta_anc, eta, dphi, dr, probs, radius: float = 0.0) -> Sandwich:
    """Sandwich of one REBEL / DRO-REBEL iteration's estimator at its population minimiser ``theta``.

    Losses e_j^2 with e_j = (theta - theta_anc)^T dphi_j/eta - dr_j, gradients (2/eta) e_j dphi_j,
    Hessians (2/eta^2) dphi_j dphi_j^T (docs/theory/rebel.md §4.7).

    Parameters
    ----------
    objective : {"rebel", "w2", "kl", "kl_tau", "chi2"}
        The objectives of :func:`simlab.solvers.rebel.fit_rebel` ("w2": exact W2 in square-root form;
        "kl": constrained; "kl_tau": penalised).
    theta : (d,) array_like
        The population minimiser.
    theta_anc : (d,) array_like
        The iteration's anchor theta_t.
    eta : float
        REBEL step size.
    dphi : (A, d) array_like
        Feature differences.
    dr : (A,) array_like
        Observed reward differences.
    probs : (A,) array_like
        Atom probabilities.
    radius : float, default 0.0
        Ball radius (tau for "kl_tau").

    Returns
    -------
    Sandwich
        Hessian, influence rows and asymptotic covariance.
    """
    check_choice("objective", objective, REBEL_OBJECTIVES)
    dphi = check_array("dphi", dphi, ndim=2)
    p = check_array("probs", probs, shape=(dphi.shape[0],))
    p = p / p.sum()
    theta = np.asarray(theta, dtype=np.float64)
    e = rebel_residuals(theta, theta_anc, eta, dphi, dr)
    d = dphi.shape[1]
    if objective == "w2" and radius > 0:
        keep = p > 0
        A = float(np.sqrt(p @ e**2))
        b = (p * e) @ dphi / eta
        g = e[:, None] * dphi / (eta * A) - np.outer(e**2, b) / (2 * A**3)
        g = _centre(g, p)
        H = w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, p, radius)[2]
        s = _assemble(H, g[keep], p[keep], d)
        rows = np.zeros((p.size, d))
        rows[keep] = s.influence
        return Sandwich(s.hess, rows, s.cov)
    grads = (2.0 / eta) * e[:, None] * dphi

    def hess_sum(w):
        return (2.0 / eta**2) * (dphi.T * w) @ dphi

    div = {"rebel": "none", "w2": "none"}.get(objective, objective)
    return f_divergence_sandwich(e * e, grads, hess_sum, p, div, radius)


def dpo_sandwich(objective: str, theta, theta_ref, beta, dphi, y, probs, radius: float = 0.0) -> Sandwich:
    """Sandwich of a DPO-family estimator at its population minimiser ``theta``.

    Losses softplus(h) - y h, h = beta (theta - theta_ref)^T dphi; gradients beta (sigma(h) - y) dphi
    (docs/theory/rebel.md §4.7 for the M-estimator prediction).

    Parameters
    ----------
    objective : {"dpo", "wdpo_surrogate", "kldpo_penalized", "kldpo_constrained", "chi2dpo"}
        The objectives of :func:`simlab.solvers.robust_dpo.fit_robust_dpo_exact` (``radius`` is rho0 for
        "wdpo_surrogate" and tau for "kldpo_penalized").
    theta : (d,) array_like
        The population minimiser.
    theta_ref : (d,) array_like
        Reference policy parameter.
    beta : float
        KL temperature.
    dphi : (A, d) array_like
        Feature differences.
    y : (A,) array_like
        Labels.
    probs : (A,) array_like
        Atom probabilities.
    radius : float, default 0.0
        Ball radius (or rho0, tau).

    Returns
    -------
    Sandwich
        Hessian, influence rows and asymptotic covariance.
    """
    check_choice("objective", objective, DPO_OBJECTIVES)
    dphi = check_array("dphi", dphi, ndim=2)
    p = check_array("probs", probs, shape=(dphi.shape[0],))
    p = p / p.sum()
    theta = np.asarray(theta, dtype=np.float64)
    v = theta - np.asarray(theta_ref, dtype=np.float64)
    h = beta * (dphi @ v)
    s = expit(h)
    l1 = s - y
    l2 = s * (1.0 - s)
    grads = (beta * l1)[:, None] * dphi
    d = dphi.shape[1]
    if objective == "wdpo_surrogate" and radius > 0:
        keep = p > 0
        nv = float(np.linalg.norm(v))
        S = float(np.sqrt(p @ l1**2))
        b = (p * l1 * l2) @ dphi * beta
        g = grads + radius * beta * (np.outer(l1**2, v) / (2 * S * nv)
                                     + nv * (beta * (l1 * l2)[:, None] * dphi / S - np.outer(l1**2, b) / (2 * S**3)))
        g = _centre(g, p)
        H = robust_dpo_value_grad_hess("wdpo_surrogate", theta, theta_ref, beta, dphi, y, p, radius)[2]
        sw = _assemble(H, g[keep], p[keep], d)
        rows = np.zeros((p.size, d))
        rows[keep] = sw.influence
        return Sandwich(sw.hess, rows, sw.cov)

    def hess_sum(w):
        return (dphi.T * (w * beta * beta * l2)) @ dphi

    div = {"dpo": "none", "wdpo_surrogate": "none", "kldpo_penalized": "kl_tau", "kldpo_constrained": "kl",
           "chi2dpo": "chi2"}[objective]
    return f_divergence_sandwich(dpo_losses(theta, theta_ref, beta, dphi, y), grads, hess_sum, p, div, radius)


def rebel_objective_value_grad_hess(objective: str, theta, theta_anc, eta, dphi, dr, w, radius: float):
    """(value, grad, Hessian) of the REBEL-family objective named as in :func:`rebel_sandwich`.

    The objective whose minimiser the sandwich describes; used by tests and for population Hessians.

    Parameters
    ----------
    objective : {"rebel", "w2", "kl", "kl_tau", "chi2"}
        The objective.
    theta, theta_anc : (d,) array_like
        Parameter and anchor.
    eta : float
        REBEL step size.
    dphi : (A, d) array_like
        Feature differences.
    dr : (A,) array_like
        Observed reward differences.
    w : (A,) array_like
        Atom weights.
    radius : float
        Ball radius (tau for "kl_tau").

    Returns
    -------
    value : float
        The objective.
    grad : (d,) ndarray
        Its gradient.
    hess : (d, d) ndarray
        Its Hessian.
    """
    check_choice("objective", objective, REBEL_OBJECTIVES)
    if objective == "w2":
        return w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)
    if objective == "kl_tau":
        return kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[:3]
    if objective == "rebel" or radius == 0.0:
        e = rebel_residuals(theta, theta_anc, eta, dphi, dr)
        w = np.asarray(w, dtype=np.float64) / np.sum(w)
        return (float(w @ e**2), (2.0 / eta) * (w * e) @ dphi, (2.0 / eta**2) * (dphi.T * w) @ dphi)
    return f_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, objective, radius)[:3]


__all__ = ["DPO_OBJECTIVES", "F_DIVERGENCES", "REBEL_OBJECTIVES", "Sandwich", "dpo_sandwich",
           "f_divergence_sandwich", "rebel_objective_value_grad_hess", "rebel_sandwich"]
