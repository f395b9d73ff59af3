"""Worst-case coverage of an ambiguity ball: min over unit v and Q in the ball of E_Q (v^T dphi)^2.

The DRO theorems assume coverage for every law of the ball, lambda_min(E_Q dphi dphi^T) >= lambda for all Q
(docs/theory/rebel.md §4.7, condition C4). Per direction v this is a 1-D dual of the toolbox:
inf_{D(Q||p) <= eps} E_Q X = -sup_{D(Q||p) <= eps} E_Q(-X), X = (v^T dphi)^2 (docs/theory/dro.md §2.1-§2.2);
the outer minimum over the unit sphere uses SLSQP from several starts with the Danskin gradient
2 E_q[(v^T dphi) dphi]. KL and chi^2 balls only reweight atoms: once they can put all their mass on atoms
with dphi = 0 (pairs with a = b, p-mass P_0) the worst-case coverage is exactly 0, i.e. for
eps >= log(1/P_0) (KL) and eps >= (1/P_0 - 1)/2 (chi^2).
"""
from __future__ import annotations

import numpy as np

from simlab.dro import worst_case
from simlab.validation import check_array, check_choice, check_float, check_int

DIVERGENCES = ("kl", "chi2")


def directional_worst_coverage(v, dphi, p, divergence: str, radius: float) -> tuple[float, np.ndarray]:
    """inf over D(Q||p) <= radius of E_Q (v^T dphi)^2, and its gradient in v, for a unit direction ``v``.

    Computed by the 1-D dual of :func:`simlab.dro.worst_case` (docs/theory/dro.md §2.1-§2.2); the gradient
    is the Danskin gradient 2 E_q[(v^T dphi) dphi] at the worst-case law q.

    Parameters
    ----------
    v : (d,) array_like
        Unit direction.
    dphi : (A, d) array_like
        Feature differences of the atoms.
    p : (A,) array_like
        Atom weights of the nominal law (normalised here).
    divergence : {"kl", "chi2"}
        The ball's divergence.
    radius : float
        Ball radius (>= 0).

    Returns
    -------
    value : float
        The directional worst-case coverage.
    grad : (d,) ndarray
        Its gradient in v.
    """
    check_choice("divergence", divergence, DIVERGENCES)
    dphi = check_array("dphi", dphi, ndim=2)
    p = check_array("p", p, shape=(dphi.shape[0],))
    radius = check_float("radius", radius, 0.0)
    return _directional_worst_coverage(check_array("v", v, shape=(dphi.shape[1],)), dphi, p / p.sum(),
                                       divergence, radius)


def _directional_worst_coverage(v, dphi, p, divergence, radius):
    """:func:`directional_worst_coverage` on validated inputs (``p`` normalised)."""
    t = dphi @ v
    value, q = worst_case(-(t * t), p, divergence, radius)
    return -float(value), 2.0 * (q * t) @ dphi


def worst_case_coverage(dphi, p, divergence: str, radius: float, starts: int = 6,
                        seed: int = 0) -> tuple[float, np.ndarray]:
    """Min over unit v of the directional worst-case coverage, and the minimising v (see the module docstring).

    SLSQP on the unit sphere from the smallest eigenvector of Sigma and ``starts - 1`` random starts,
    with the objective c(v / ||v||) and its gradient (I - u u^T) grad c(u) / ||v||, u = v / ||v||, from
    the Danskin gradient of :func:`directional_worst_coverage`.

    Parameters
    ----------
    dphi : (A, d) array_like
        Feature differences of the atoms.
    p : (A,) array_like
        Atom weights of the nominal law (normalised here).
    divergence : {"kl", "chi2"}
        The ball's divergence.
    radius : float
        Ball radius (>= 0).
    starts : int, default 6
        Number of SLSQP starts.
    seed : int, default 0
        Seed of the random starts.

    Returns
    -------
    value : float
        The worst-case coverage, clipped at 0.
    v : (d,) ndarray
        The minimising unit direction.
    """
    from scipy.optimize import minimize

    check_choice("divergence", divergence, DIVERGENCES)
    dphi = check_array("dphi", dphi, ndim=2)
    d = dphi.shape[1]
    p = check_array("p", p, shape=(dphi.shape[0],))
    p = p / p.sum()
    radius = check_float("radius", radius, 0.0)
    starts = check_int("starts", starts, 1)
    sigma = (dphi.T * p) @ dphi

    def objective(v):
        norm = np.linalg.norm(v)
        u = v / norm
        value, grad = _directional_worst_coverage(u, dphi, p, divergence, radius)
        return value, (grad - (grad @ u) * u) / norm

    v0s = [np.linalg.eigh(sigma)[1][:, 0]] + list(np.random.default_rng(seed).standard_normal((starts - 1, d)))
    best, best_v = np.inf, v0s[0]
    for v0 in v0s:
        v0 = v0 / np.linalg.norm(v0)
        res = minimize(objective, v0, jac=True, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda v: v @ v - 1.0, "jac": lambda v: 2 * v}],
                       options={"ftol": 1e-13, "maxiter": 300})
        v = res.x / np.linalg.norm(res.x)
        val = _directional_worst_coverage(v, dphi, p, divergence, radius)[0]
        if val < best:
            best, best_v = val, v
    return float(max(best, 0.0)), best_v


def coverage_collapse_radius(dphi, p, divergence: str) -> float:
    """Smallest radius whose ball contains a law supported on the atoms with dphi = 0 (coverage 0).

    Parameters
    ----------
    dphi : (A, d) array_like
        Feature differences of the atoms.
    p : (A,) array_like
        Atom weights of the nominal law (normalised here).
    divergence : {"kl", "chi2"}
        The ball's divergence.

    Returns
    -------
    float
        log(1/P_0) for KL, (1/P_0 - 1)/2 for chi^2, with P_0 the p-mass of the atoms with dphi = 0; inf if
        there is no such atom.
    """
    check_choice("divergence", divergence, DIVERGENCES)
    dphi = check_array("dphi", dphi, ndim=2)
    p = check_array("p", p, shape=(dphi.shape[0],))
    P0 = float(p[np.all(dphi == 0.0, axis=1)].sum() / p.sum())
    if P0 == 0.0:
        return float("inf")
    return float(np.log(1.0 / P0)) if divergence == "kl" else 0.5 * (1.0 / P0 - 1.0)


__all__ = ["DIVERGENCES", "coverage_collapse_radius", "directional_worst_coverage", "worst_case_coverage"]
