"""Dual box-QP and the Moreau envelope of oracle-robust SAIL: identities 29-30 of docs/theory/identities.md §8."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.objectives import sail as S
from simlab.solvers.prox import RobustSailProx, box_qp_dual
from tests.sail.instances import problem, random_instance

SEEDS = range(5)


def _random_qp(seed, K=12, d=3):
    rng = np.random.default_rng(seed)
    return dict(g=0.5 * rng.standard_normal(d), A=rng.standard_normal((K, d)), b=0.3 * rng.standard_normal(K),
                u_minus=rng.uniform(0, 0.2, K), u_plus=rng.uniform(0, 0.2, K), kappa=2.0,
                zbar=rng.standard_normal(d))


def _primal(qp, z):
    t = qp["A"] @ z - qp["b"]
    return (qp["g"] @ z + np.sum(qp["u_plus"] * np.maximum(t, 0) + qp["u_minus"] * np.maximum(-t, 0))
            + 0.5 * qp["kappa"] * np.sum((z - qp["zbar"]) ** 2))


@pytest.mark.parametrize("seed", SEEDS)
def test_box_qp_gap_to_zero_kkt_and_solver(seed):
    """Identity 29: gap <= 1e-12 with the KKT sign pattern; the primal matches an independent solve."""
    qp = _random_qp(seed)
    gaps = [box_qp_dual(**qp, gap_tol=tol).gap for tol in (1e-2, 1e-4, 1e-8, 1e-12)]
    assert gaps[-1] <= 1e-12 and all(g2 <= g1 + 1e-15 for g1, g2 in zip(gaps, gaps[1:]) if g1 > 0)
    res = box_qp_dual(**qp, gap_tol=1e-14)
    t = qp["A"] @ res.z - qp["b"]
    on = np.abs(t) > 1e-9
    np.testing.assert_allclose(res.s[on & (t > 0)], qp["u_plus"][on & (t > 0)], atol=1e-12)
    np.testing.assert_allclose(res.s[on & (t < 0)], -qp["u_minus"][on & (t < 0)], atol=1e-12)
    assert np.all(res.s >= -qp["u_minus"] - 1e-15) and np.all(res.s <= qp["u_plus"] + 1e-15)
    rng = np.random.default_rng(seed)
    best = min((minimize(lambda z: _primal(qp, z), res.z + 0.1 * rng.standard_normal(3), method="Nelder-Mead",
                         options=dict(xatol=1e-12, fatol=1e-15, maxiter=20000)) for _ in range(3)),
               key=lambda o: o.fun)
    assert _primal(qp, res.z) <= best.fun + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_box_qp_ball_matches_slsqp(seed):
    qp = _random_qp(seed)
    res = box_qp_dual(**qp, center=np.zeros(3), radius=0.3)
    assert res.ball_multiplier > 0 and np.linalg.norm(res.z) <= 0.3 + 1e-12
    o = minimize(lambda z: _primal(qp, z), np.zeros(3), method="SLSQP",
                 constraints=[{"type": "ineq", "fun": lambda z: 0.09 - z @ z}],
                 options=dict(ftol=1e-15, maxiter=1000))
    assert _primal(qp, res.z) <= o.fun + 1e-10


def _prox(inst, rho=0.1, gamma=0.1, radius=3.0):
    return RobustSailProx(*problem(inst), rho, radius, gamma)


@pytest.mark.parametrize("seed", SEEDS)
def test_envelope_gradient_matches_finite_differences(seed):
    """Identity 29: env <= F, grad env = (theta - prox)/gamma = FD of env; prox minimises the model."""
    inst = random_instance(seed)
    pr = _prox(inst)
    rng = np.random.default_rng(700 + seed)
    for theta in S.sample_ball(inst["theta_ref"], 3.5, 4, rng):
        res = pr.prox(theta)
        assert res.converged and res.outer_iterations < 200
        p = S.project_ball(theta, inst["theta_ref"], 3.0)  # env <= F on Theta; outside, <= F(p) + dist^2/2g
        assert res.envelope <= pr.objective(p) + float((p - theta) @ (p - theta)) / (2 * pr.gamma) + 1e-12
        env = lambda t: pr.prox(t).envelope
        fd = np.array([(env(theta + 1e-5 * e) - env(theta - 1e-5 * e)) / 2e-5 for e in np.eye(3)])
        np.testing.assert_allclose(res.gradient, fd, rtol=1e-6, atol=1e-6)
        # the prox attains the envelope: no point of the ball does better
        for z in S.sample_ball(inst["theta_ref"], 3.0, 200, rng):
            assert res.envelope <= pr.objective(z) + float((z - theta) @ (z - theta)) / (2 * pr.gamma) + 1e-12


def test_prox_agrees_with_scipy_on_smooth_part():
    """rho = 0 (no kinks): the prox-linear loop equals a scipy L-BFGS-B solve of the smooth prox."""
    inst = random_instance(3)
    args = problem(inst)
    pr = _prox(inst, rho=0.0, radius=50.0)
    theta = np.array([0.4, -0.8, 1.2])
    res = pr.prox(theta)
    fun = lambda z: S.sail_value_grad(z, *args)[0] + float((z - theta) @ (z - theta)) / (2 * pr.gamma)
    jac = lambda z: S.sail_value_grad(z, *args)[1] + (z - theta) / pr.gamma
    o = minimize(fun, theta, jac=jac, method="BFGS", options=dict(gtol=1e-13))
    np.testing.assert_allclose(res.prox, o.x, atol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
def test_shrinkage_threshold_makes_reference_stationary(seed):
    """Identity 30: rho >= rho_bar = max|P_obs - 1/2| => ||grad env(theta_ref)|| <= 1e-12; not below."""
    inst = random_instance(seed, rho_true=0.05, w_norm=1.0)
    rho_bar = S.shrinkage_threshold(inst["P_obs"])
    above = _prox(inst, rho=min(1.0, rho_bar * 1.001)).prox(inst["theta_ref"])
    below = _prox(inst, rho=0.5 * rho_bar).prox(inst["theta_ref"])
    assert np.linalg.norm(above.gradient) <= 1e-12
    assert np.linalg.norm(below.gradient) > 1e-6


def test_bad_input_names_the_field():
    inst = random_instance(0)
    with pytest.raises(ValueError, match="gamma"):
        RobustSailProx(*problem(inst), 0.1, 3.0, -1.0)
    with pytest.raises(ValueError, match="radius"):
        RobustSailProx(*problem(inst), 0.1, 0.0, 0.1)
    with pytest.raises(ValueError, match="u_minus"):
        qp = _random_qp(0)
        qp["u_minus"] = -qp["u_minus"]
        box_qp_dual(**qp)


@pytest.mark.parametrize("seed", SEEDS)
def test_envelope_gradient_is_path_independent_to_1e10(seed):
    """The prox is the unique fixed point: undamped and damped prox-linear loops agree to 1e-10."""
    inst = random_instance(seed)
    plain = _prox(inst)
    damped = RobustSailProx(*problem(inst), 0.1, 3.0, 0.1, damping=5.0)
    for theta in S.sample_ball(inst["theta_ref"], 3.5, 4, np.random.default_rng(800 + seed)):
        a, b = plain.prox(theta), damped.prox(theta)
        assert a.converged and b.converged
        np.testing.assert_allclose(a.gradient, b.gradient, rtol=0, atol=1e-10)
        assert abs(a.envelope - b.envelope) <= 1e-12
