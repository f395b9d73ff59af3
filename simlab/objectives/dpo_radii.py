"""Radii at which robust DPO collapses to the reference policy (theta_ref becomes the robust minimiser).

At theta_ref every margin is 0 and the DPO loss along theta_ref + t v is log 2 + t c_j^T v + O(t^2) with
c_j = beta (1/2 - y_j) dphi_j, so the robust objective's directional derivative is sup_{q in ball} <q, c^T v>
(docs/theory/dpo.md §3.2). For the chi^2 ball in its unclipped regime this is m^T v + sqrt(2 eps v^T S v) with
m = E_p c and S = Cov_p c, which is >= 0 for every v iff ||S^-1/2 m||^2 <= 2 eps: theta_ref is the chi^2-DPO
minimiser iff eps >= eps_bar = 1/2 m^T S^-1 m (the KL ball has the same first-order expansion, so eps_bar is
also KLDPO's collapse radius to first order). For the W2 objectives (exact and paper surrogate) the
derivative is beta (E[(1/2 - y) dphi]^T v + rho0 rms(1/2 - y)) and, with binary labels, theta_ref is optimal iff
rho0 >= rho_bar = 2 ||E_p[(y - 1/2) dphi]||.
"""
from __future__ import annotations

import numpy as np

from simlab.validation import check_array, check_float


def _inputs(dphi, y, p):
    dphi = check_array("dphi", dphi, ndim=2)
    y = check_array("y", y, shape=(dphi.shape[0],))
    p = check_array("p", p, shape=(dphi.shape[0],))
    if not p.sum() > 0:
        raise ValueError("p (atom weights) must have a positive sum")
    return dphi, y, p / p.sum()


def chi2_dpo_collapse_radius(dphi, y, p, beta: float = 1.0) -> float:
    """eps_bar = 1/2 m^T S^-1 m, m = E_p c, S = Cov_p c, c_j = beta (1/2 - y_j) dphi_j (module doc).

    Exact for chi^2-DPO while the worst case at theta_ref is unclipped; scale-free in beta.

    Parameters
    ----------
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    y : array_like of float, shape (A,)
        Labels of the atoms (binary for the exact threshold statements).
    p : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum); normalised to the law p / sum p.
    beta : float, default 1.0
        KL temperature (> 0); m and S scale as beta and beta^2, so the radius does not depend on it.

    Returns
    -------
    float
        eps_bar = 1/2 m^T S^-1 m: theta_ref is the chi^2-DPO minimiser iff the radius eps >= eps_bar
        (derivation in the module docstring, from the first-order expansion of docs/theory/dpo.md §3.2).
    """
    dphi, y, p = _inputs(dphi, y, p)
    beta = check_float("beta", beta, 0.0, low_open=True)
    c = (beta * (0.5 - y))[:, None] * dphi
    m = p @ c
    S = (c.T * p) @ c - np.outer(m, m)
    return float(0.5 * m @ np.linalg.solve(S, m))


def wdpo_reference_threshold(dphi, y, p) -> float:
    """rho_bar = 2 ||E_p[(y - 1/2) dphi]||: theta_ref is the WDPO (surrogate or exact W2) minimiser iff the
    radius rho0 >= rho_bar (binary labels).

    Parameters
    ----------
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    y : array_like of float, shape (A,)
        Labels of the atoms (binary for the exact threshold statements).
    p : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum); normalised to the law p / sum p.

    Returns
    -------
    float
        rho_bar = 2 ||E_p[(y - 1/2) dphi]||, the stationarity condition of theta_ref for the WDPO
        surrogate derived in docs/theory/dpo.md §3.2 (the subdifferential of the penalty at theta_ref is
        the ball of radius rho0 beta / 2).
    """
    dphi, y, p = _inputs(dphi, y, p)
    return float(2.0 * np.linalg.norm(p @ ((y - 0.5)[:, None] * dphi)))


__all__ = ["chi2_dpo_collapse_radius", "wdpo_reference_threshold"]
