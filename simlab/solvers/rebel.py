"""REBEL / DRO-REBEL solvers: exact per-iteration minimisers and the online loop (spec §4.1-§4.5, §4.9).

``fit_rebel`` minimises one iteration's objective over weighted atoms exactly (w = p0: the population
robust minimiser; w = N/n: the empirical one):

* ``"rebel"``: the OLS closed form;
* ``"w2"``: exact W2, square-root regression with an update-size penalty (the anchor if the radius is
  above the threshold ||E[dr dphi]||/rms(dr), else Newton from the OLS point);
* ``"w2_surrogate"``: the code's gradient-norm surrogate (Newton from the OLS point);
* ``"kl"`` (constrained ball), ``"kl_tau"`` (fixed temperature), ``"chi2"`` (exact dual): Newton with the
  toolbox's Danskin gradients and exact Hessians, from the OLS point, to ||grad|| <= gtol.

``online_rebel_exact`` runs the online loop of spec §4.9 with an exact inner solve; the numba loop with
SGD/Adam inner steps lives in :mod:`simlab.solvers.rebel_online`.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.env.environment import Env
from simlab.env.sampling import multinomial_counts
from simlab.objectives.rebel import (check_anchor, f_rebel_value_grad_hess,
                                     kl_rebel_penalized_value_grad_hess, rebel_ols,
                                     w2_rebel_surrogate_value_grad_hess, w2_rebel_threshold,
                                     w2_rebel_value_grad_hess)
from simlab.policy import kl_to
from simlab.solvers.exact import NoMinimizerError, newton
from simlab.validation import check_array, check_choice, check_float, check_int

OBJECTIVES = ("rebel", "w2", "w2_surrogate", "kl", "kl_tau", "chi2")


@dataclass(frozen=True)
class RebelFit:
    """An exact per-iteration minimiser: x, objective value, final gradient norm, Newton iterations
    (0 for a closed form) and whether the stopping test was met."""

    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    converged: bool


def fit_rebel(dphi, dr, w, theta_anc, eta, objective: str = "rebel", radius: float = 0.0,
              gtol: float = 1e-10) -> RebelFit:
    """argmin_theta of one REBEL/DRO-REBEL iteration's objective over atoms with weights ``w``.

    ``radius`` is eps for w2/kl/chi2, rho0 for w2_surrogate and tau for kl_tau (spec §4.3-§4.5).
    Raises :class:`NoMinimizerError` on a rank-deficient weighted design.
    """
    check_choice("objective", objective, OBJECTIVES)
    dphi = check_array("dphi", dphi, ndim=2)
    w = check_array("w", w, shape=(dphi.shape[0],))
    keep = np.flatnonzero(w > 0)
    dphi, dr, w = dphi[keep], np.asarray(dr, dtype=np.float64)[keep], w[keep] / w[keep].sum()
    radius = check_float("radius", radius, 0.0)
    gram = (dphi * w[:, None]).T @ dphi
    ev = np.linalg.eigvalsh(gram)
    if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
        raise NoMinimizerError(f"the weighted pair design is rank deficient (lambda_min = {ev[0]:.2e})")
    theta_ols = rebel_ols(theta_anc, eta, dphi, dr, w)
    theta_anc = np.asarray(theta_anc, dtype=np.float64)
    if objective == "rebel" or (radius == 0.0 and objective != "kl_tau"):
        return RebelFit(theta_ols, float("nan"), 0.0, 0, True)
    if objective == "kl_tau":
        if radius == 0.0:
            raise ValueError("radius (tau) must be > 0 for objective 'kl_tau'")
        fgh = lambda th: kl_rebel_penalized_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)[:3]
    elif objective in ("kl", "chi2"):
        fgh = lambda th: f_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, objective, radius)[:3]
    elif objective == "w2_surrogate":
        fgh = lambda th: w2_rebel_surrogate_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    else:
        if radius >= w2_rebel_threshold(dphi, dr, w):
            return RebelFit(theta_anc.copy(), float(np.sqrt(w @ dr**2)), 0.0, 0, True)
        fgh = lambda th: w2_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    res = newton(fgh, theta_ols, gtol=gtol)
    return RebelFit(res.x, res.fun, res.grad_norm, res.iterations, res.converged)


def population_hessian(dphi, dr, w, theta, theta_anc, eta, objective: str, radius: float) -> np.ndarray:
    """Exact Hessian of the population objective at ``theta`` (the H of the H-norm, spec §7.1)."""
    check_choice("objective", objective, OBJECTIVES)
    w = np.asarray(w, dtype=np.float64)
    if objective == "rebel" or radius == 0.0:
        return 2.0 * (dphi * w[:, None]).T @ dphi / eta**2
    if objective == "w2":
        return w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "w2_surrogate":
        return w2_rebel_surrogate_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "kl_tau":
        return kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    return f_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, objective, radius)[2]


@dataclass(frozen=True)
class OnlineLog:
    """Per-iteration record of an online run (spec §4.9): iterates theta_0..theta_T (T+1, d);
    lambda_min of the pair second moment under the sampler at theta_t (T,); expected reward
    J(theta_t; w(alpha)) for every alpha of the grid (T+1, n_alpha); E_x KL(pi_theta_t || pi_ref) (T+1,)."""

    theta: np.ndarray
    lambda_min: np.ndarray
    alphas: np.ndarray
    reward: np.ndarray
    kl_ref: np.ndarray


def policy_metrics(env: Env, theta: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, float]:
    """(J(theta; w(alpha)) for each alpha (linear reward, spec §1.7), E_x KL(pi_theta || pi_ref))."""
    from simlab.policy import policy

    pi = policy(theta, env.phi)
    mean_phi = np.einsum("x,xa,xad->d", env.p_x, pi, env.phi)
    ws = np.array([env.mixture_reward(float(a)) for a in alphas])
    return ws @ mean_phi, kl_to(theta, env.theta_ref, env.phi, env.p_x)


def online_rebel_exact(env: Env, T: int, n: int, eta: float, rng: np.random.Generator,
                       objective: str = "rebel", radius: float = 0.0, anchor: str = "prev",
                       sampler: str = "online", mix: float = 0.5, alphas=(0.0, 0.5, 1.0),
                       theta0: np.ndarray | None = None) -> OnlineLog:
    """The online loop of spec §4.9 with the exact per-iteration minimiser (``fit_rebel``).

    Each iteration draws N ~ Multinomial(n, p0(theta_t)) over the atoms of ``sampler`` ("online" or
    "online_mixed") and sets theta_{t+1} = argmin of the empirical objective with anchor theta_t (prev) or
    theta_ref (ref). A rank-deficient batch (no unique minimiser) keeps theta_{t+1} = theta_t.
    """
    T = check_int("T", T, 1)
    n = check_int("n", n, 1)
    check_anchor(anchor)
    check_choice("sampler", sampler, ("online", "online_mixed"))
    alphas = np.asarray(alphas, dtype=np.float64)
    theta = env.theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(env.spec.d,)).copy()
    thetas, lam, rew, kls = [theta.copy()], [], [], []
    r0, k0 = policy_metrics(env, theta, alphas)
    rew.append(r0)
    kls.append(k0)
    for _ in range(T):
        atoms = env.atoms(sampler, theta, mix)
        lam.append(atoms.coverage()[0])
        counts = multinomial_counts(atoms.p0, n, rng)
        anc = theta if anchor == "prev" else env.theta_ref
        try:
            theta = fit_rebel(atoms.dphi, atoms.dr, counts / n, anc, eta, objective, radius).x
        except NoMinimizerError:
            theta = theta.copy()
        thetas.append(theta.copy())
        r, k = policy_metrics(env, theta, alphas)
        rew.append(r)
        kls.append(k)
    return OnlineLog(np.array(thetas), np.array(lam), alphas, np.array(rew), np.array(kls))
