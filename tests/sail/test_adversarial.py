"""The oracle adversarial to the nominal solution (robust_sail.adversarial_benefit): exact population
losses checked against an independent enumeration, the worst-case identity, and the inequality chain
L_true(theta_rho) <= L^W(theta_rho) <= L^W(theta_nom) = L_true(theta_nom) on an unclipped instance."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.objectives import sail as S
from simlab.solvers.sail_algorithms import deterministic_prox_linear
from tests.sail.instances import problem, random_instance

RADIUS = 3.0


def _population_loss(theta, phi, p_x, theta_ref, beta, P) -> float:
    """sum_x p_x sum_{a,b} pi(a|x) pi(b|x) [log(1 + e^h) - P h], by explicit loops (independent of simlab)."""
    total = 0.0
    for x in range(phi.shape[0]):
        logits = phi[x] @ theta
        pi = np.exp(logits - logits.max())
        pi /= pi.sum()
        m = beta * (phi[x] @ (theta - theta_ref))
        for a in range(phi.shape[1]):
            for b in range(phi.shape[1]):
                h = m[a] - m[b]
                total += p_x[x] * pi[a] * pi[b] * (np.logaddexp(0.0, h) - P[x, a, b] * h)
    return float(total)


@pytest.mark.parametrize("seed", range(5))
def test_margins_and_population_loss_match_enumeration(seed):
    phi, p_x, tr, beta, P = problem(random_instance(seed))
    theta = np.random.default_rng(seed).standard_normal(3)
    H = S.pair_margins(theta, phi, tr, beta)
    for x in range(phi.shape[0]):
        for a in range(phi.shape[1]):
            for b in range(phi.shape[1]):
                assert abs(H[x, a, b] - beta * (theta - tr) @ (phi[x, a] - phi[x, b])) <= 1e-14
    assert abs(S.sail_value_grad(theta, phi, p_x, tr, beta, P)[0]
               - _population_loss(theta, phi, p_x, tr, beta, P)) <= 1e-13


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("rho", [0.03, 0.2, 0.7])
def test_shifted_oracle_is_an_oracle_and_gives_the_box_worst_case(seed, rho):
    """clip(P_obs - rho sign h_theta) is an oracle table in the box, and L_SAIL at it equals the robust
    objective (and the brute-force sup over the box) at theta."""
    phi, p_x, tr, beta, P_obs = problem(random_instance(seed))
    rng = np.random.default_rng(10 + seed)
    for theta in 1.5 * rng.standard_normal((4, 3)):
        H = S.pair_margins(theta, phi, tr, beta)
        worst = S.shifted_oracle(P_obs, -H, rho)
        S.check_oracle("worst", worst, *P_obs.shape[:2])
        assert np.max(np.abs(worst - P_obs)) <= rho + 1e-15
        value = _population_loss(theta, phi, p_x, tr, beta, worst)
        assert abs(value - S.robust_sail_value_grad(theta, phi, p_x, tr, beta, P_obs, rho)[0]) <= 1e-12
        assert abs(value - S.robust_sail_brute_force(theta, phi, p_x, tr, beta, P_obs, rho)) <= 1e-12


def _minimise(args, rho, starts=6):
    """Multistart deterministic prox-linear with alpha = 1/(2 omega_hat), as in the scenario."""
    rng = np.random.default_rng(0)
    omega = S.weak_convexity_estimate(*args, max(rho, 0.1), RADIUS, 400, np.random.default_rng(1))
    best = (None, np.inf)
    for th0 in np.vstack([args[2], S.sample_ball(args[2], RADIUS, starts - 1, rng)]):
        th = deterministic_prox_linear(th0, *args, rho, RADIUS, 600, 1.0 / (2.0 * omega))[-1]
        f = S.robust_sail_value_grad(th, *args, rho)[0]
        if f < best[1]:
            best = (th, f)
    return best


@pytest.mark.parametrize("seed", range(3))
def test_adversarial_oracle_chain(seed):
    """Unclipped instance (||w*|| = 1: P_true in [0.12, 0.88]): with P_obs = clip(P_true + rho_true sign h_nom)
    and theta_nom its own nominal minimiser (a sign fixed point), L^W_rho_true(theta_nom) = L_true(theta_nom)
    exactly, the minimiser agrees with an independent scipy solve, and the robust solution at
    rho = rho_true is no worse on the true oracle."""
    inst = random_instance(seed, w_norm=1.0, theta_ref_scale=0.0)
    phi, p_x, tr, beta, P_true = problem(inst, "P_true")
    rho_true = 0.08
    assert np.max(P_true) + rho_true < 1.0
    theta = _minimise((phi, p_x, tr, beta, P_true), 0.0)[0]
    for _ in range(4):
        P_obs = S.shifted_oracle(P_true, S.pair_margins(theta, phi, tr, beta), rho_true)
        args = (phi, p_x, tr, beta, P_obs)
        theta_nom, f_nom = _minimise(args, 0.0)
        same = np.array_equal(np.sign(S.pair_margins(theta_nom, phi, tr, beta)),
                              np.sign(S.pair_margins(theta, phi, tr, beta)))
        theta = theta_nom
        if same:
            break
    assert same, "no sign fixed point"
    true = lambda th: _population_loss(th, phi, p_x, tr, beta, P_true)
    assert abs(S.robust_sail_value_grad(theta_nom, *args, rho_true)[0] - true(theta_nom)) <= 1e-12
    theta_rob, f_rob = _minimise(args, rho_true)
    fun = lambda th: S.robust_sail_value_grad(th, *args, rho_true)[0] if np.linalg.norm(th - tr) <= RADIUS else np.inf
    ref = min(minimize(fun, x0, method="Nelder-Mead", options=dict(xatol=1e-10, fatol=1e-14, maxiter=5000)).fun
              for x0 in (theta_rob + 0.05, theta_nom, tr + 0.1))
    assert f_rob <= ref + 1e-9
    assert true(theta_rob) <= f_rob + 1e-12            # certificate (P_true is in the box)
    assert f_rob <= S.robust_sail_value_grad(theta_nom, *args, rho_true)[0] + 1e-12
    assert true(theta_rob) < true(theta_nom)


def test_shifted_oracle_rejects_bad_input():
    phi, p_x, tr, beta, P = problem(random_instance(0))
    H = S.pair_margins(tr + 1.0, phi, tr, beta)
    with pytest.raises(ValueError, match="H"):
        S.shifted_oracle(P, np.abs(H), 0.1)
    with pytest.raises(ValueError, match="rho"):
        S.shifted_oracle(P, H, 1.5)
