"""SAIL / oracle-robust SAIL objective: identities 7, 24-28 of docs/theory/identities.md §8."""
from __future__ import annotations

import math

import numpy as np
import pytest

from simlab.objectives import sail as S
from simlab.solvers.sail_algorithms import stochastic_gradients
from tests.sail.instances import problem, random_instance
from tests.taylor import assert_taylor

SEEDS = range(6)


def test_soft_label_loss_forms():
    """Identity 7: softplus(h) - P h = -log sigma(-h) - P h; log sigma(h) - log sigma(-h) = h."""
    rng = np.random.default_rng(0)
    h, P = 8 * rng.standard_normal(1000), rng.random(1000)
    log_sig = lambda t: -np.logaddexp(0.0, -t)
    np.testing.assert_allclose(S.soft_label_loss(h, P), -log_sig(-h) - P * h, rtol=0, atol=1e-12)
    np.testing.assert_allclose(log_sig(h) - log_sig(-h), h, rtol=0, atol=1e-12)
    assert S.soft_label_loss(0.0, 0.3) == pytest.approx(math.log(2.0), abs=1e-15)


@pytest.mark.parametrize("seed", SEEDS)
def test_sail_gradient_matches_finite_differences(seed):
    """Identity 24: the SAIL gradient with its score term equals central FD (and passes Taylor)."""
    inst = random_instance(seed)
    args = problem(inst)
    rng = np.random.default_rng(100 + seed)
    theta = rng.standard_normal(3)
    f = lambda t: S.sail_value_grad(t, *args)[0]
    _, g = S.sail_value_grad(theta, *args)
    fd = np.array([(f(theta + 1e-6 * e) - f(theta - 1e-6 * e)) / 2e-6 for e in np.eye(3)])
    np.testing.assert_allclose(g, fd, rtol=1e-8, atol=1e-8)
    assert_taylor(f, lambda t: S.sail_value_grad(t, *args)[1], theta, rng=rng)


def test_score_term_switch_matters():
    """c_score = 0 (on-policy DPO) drops the score term, which is not negligible here."""
    args = problem(random_instance(0))
    theta = np.array([0.5, -1.0, 0.7])
    g1 = S.sail_value_grad(theta, *args)[1]
    g0 = S.sail_value_grad(theta, *args, c_score=0.0)[1]
    assert np.linalg.norm(g1 - g0) > 1e-2 * np.linalg.norm(g1)


@pytest.mark.parametrize("seed", SEEDS)
def test_robust_subgradient_taylor_off_kinks(seed):
    """The Clarke subgradient is the gradient of F away from the kink hyperplanes."""
    args = problem(random_instance(seed))
    rng = np.random.default_rng(200 + seed)
    theta = rng.standard_normal(3)
    f = lambda t: S.robust_sail_value_grad(t, *args, 0.1)[0]
    assert_taylor(f, lambda t: S.robust_sail_value_grad(t, *args, 0.1)[1], theta,
                  steps=2.0 ** -np.arange(13, 21), rng=rng)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rho", [0.0, 0.01, 0.05, 0.2, 0.6])
def test_decomposition_equals_brute_force(seed, rho):
    """Identity 25: clipped form = brute-force sup over the box endpoints; interior form where valid,
    and an overestimate where clipping is active."""
    args = problem(random_instance(seed))
    rng = np.random.default_rng(300 + seed)
    for theta in 2.0 * rng.standard_normal((20, 3)):
        dec = S.robust_sail_decomposition(theta, *args, rho)
        brute = S.robust_sail_brute_force(theta, *args, rho)
        kernel_value = S.robust_sail_value_grad(theta, *args, rho)[0]
        assert abs(dec.value - brute) <= 1e-10
        assert abs(kernel_value - brute) <= 1e-10
        assert dec.interior_value >= dec.value - 1e-12
        if dec.regime == "interior":
            assert abs(dec.interior_value - brute) <= 1e-10


def test_both_regimes_occur_and_interior_overestimates():
    args = problem(random_instance(0))
    radius = S.interior_radius(args[4])
    assert S.robust_regime(args[4], 0.5 * radius) == "interior"
    assert S.robust_regime(args[4], radius + 0.05) == "clipped"
    theta = np.array([1.0, -2.0, 0.5])
    gaps = [S.robust_sail_decomposition(theta, *args, rho).interior_value
            - S.robust_sail_brute_force(theta, *args, rho) for rho in (0.3, 0.45)]
    assert max(gaps) > 1e-3


def test_sensitivity_zero_at_reference_and_homogeneous_only_with_frozen_weights():
    """Identity 26: R(theta_ref) = 0; R(theta_ref + s v) = |s| R(theta_ref + v) holds with frozen
    weights and fails with theta-dependent weights."""
    phi, p_x, tr, beta, P = problem(random_instance(1))
    assert S.robust_sail_decomposition(tr, phi, p_x, tr, beta, P, 0.1).sensitivity == 0.0
    v = np.array([0.8, -0.4, 1.1])
    R = lambda th: S.robust_sail_decomposition(th, phi, p_x, tr, beta, P, 0.1).sensitivity
    pi = S.policy(tr + v, phi)
    W = p_x[:, None, None] * pi[:, :, None] * pi[:, None, :]
    m = phi @ v
    frozen = lambda s: float(np.sum(W * np.abs(beta * s * (m[:, :, None] - m[:, None, :]))))
    for s in (-2.0, 0.5, 3.0):
        assert abs(frozen(s) - abs(s) * frozen(1.0)) <= 1e-12
        assert abs(R(tr + s * v) - abs(s) * R(tr + v)) > 1e-3


@pytest.mark.parametrize("seed", SEEDS)
def test_radius_monotone_concave_affine_interior_and_certificate(seed):
    """Identity 27: rho -> L^W_rho nondecreasing, concave, affine in the interior; certificate."""
    inst = random_instance(seed)
    args = problem(inst)
    rng = np.random.default_rng(400 + seed)
    rhos = np.linspace(0.0, 1.0, 41)
    rho_true = float(np.max(np.abs(inst["P_obs"] - inst["P_true"])))
    inner = S.interior_radius(inst["P_obs"])
    for theta in 2.0 * rng.standard_normal((10, 3)):
        vals = np.array([S.robust_sail_value_grad(theta, *args, r)[0] for r in rhos])
        assert np.all(np.diff(vals) >= -1e-12)
        assert np.all(np.diff(vals, 2) <= 1e-12)
        R = S.robust_sail_decomposition(theta, *args, 0.0).sensitivity
        in_int = rhos <= inner
        np.testing.assert_allclose(vals[in_int], vals[0] + rhos[in_int] * R, rtol=0, atol=1e-12)
        truth = S.sail_value_grad(theta, *problem(inst, "P_true"))[0]
        for r in (rho_true, 1.5 * rho_true):
            assert truth <= S.robust_sail_value_grad(theta, *args, r)[0] + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_stochastic_gradient_is_unbiased(seed):
    """Identity 24: mean of single-sample gradients within 4 SE of the exact (sub)gradient (h != 0)."""
    args = problem(random_instance(seed))
    rng = np.random.default_rng(500 + seed)
    theta = args[2] + rng.standard_normal(3)
    n = 200_000
    for rho, kinks in ((0.0, True), (0.1, True), (0.1, False)):
        G = stochastic_gradients(theta, *args, rho, n, rng, kinks=kinks)
        if kinks:
            exact = S.robust_sail_value_grad(theta, *args, rho)[1]
        else:  # the prox-linear model part g = grad S + sum_k pen_k grad w_k
            exact = np.empty(3)
            S.robust_sail_kernel(theta, *(np.ascontiguousarray(a) if isinstance(a, np.ndarray) else a
                                           for a in args), rho, 1.0, 0.0, exact)
        se = G.std(axis=0) / math.sqrt(n)
        assert np.all(np.abs(G.mean(axis=0) - exact) <= 4 * se), (rho, kinks)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("rho", [0.05, 0.1, 0.3])
def test_weak_convexity_with_derived_constant(seed, rho):
    """Identity 28: subgradient and midpoint forms hold with omega of docs/theory/sail.md §5.3; omega_hat <= omega."""
    inst = random_instance(seed)
    args = problem(inst)
    B = 3.0
    omega = S.weak_convexity_bound(args[3], S.feature_bound(args[0]), B, rho).omega
    rng = np.random.default_rng(600 + seed)
    t1 = S.sample_ball(args[2], B, 200, rng)
    t2 = S.sample_ball(args[2], B, 200, rng)
    gaps = S.weak_convexity_gaps(t1, t2, *args, rho)
    assert np.all(gaps <= omega + 1e-12)
    F = lambda t: S.robust_sail_value_grad(t, *args, rho)[0]
    for a, b in zip(t1[:50], t2[:50]):
        mid = F(0.5 * (a + b))
        assert mid <= 0.5 * (F(a) + F(b)) + omega / 8 * float((a - b) @ (a - b)) + 1e-12
    omega_hat = S.weak_convexity_estimate(*args, rho, B, 200, rng)
    assert 0.0 < omega_hat <= omega


def test_weak_convexity_gaps_are_the_subgradient_gaps_of_the_public_value_grad():
    """The batched gaps (problem validated once, kernel per point) equal, bit for bit, the definition
    2 [F(t1) + <g(t1), t2 - t1> - F(t2)] / ||t2 - t1||^2 evaluated with the checked public function."""
    args = problem(random_instance(3))
    rng = np.random.default_rng(7)
    t1 = S.sample_ball(args[2], 2.0, 40, rng)
    t2 = S.sample_ball(args[2], 2.0, 40, rng)
    gaps = S.weak_convexity_gaps(t1, t2, *args, 0.2)
    for i, (a, b) in enumerate(zip(t1, t2)):
        fa, ga = S.robust_sail_value_grad(a, *args, 0.2)
        fb = S.robust_sail_value_grad(b, *args, 0.2)[0]
        assert gaps[i] == 2.0 * (fa + ga @ (b - a) - fb) / float((b - a) @ (b - a))
    assert S.weak_convexity_gaps(t1[0], t2[0], *args, 0.2)[0] == gaps[0]
    with pytest.raises(ValueError, match="theta2"):
        S.weak_convexity_gaps(t1, t2[:3], *args, 0.2)
    with pytest.raises(ValueError, match="rho"):
        S.weak_convexity_gaps(t1, t2, *args, -0.1)


def test_bad_input_names_the_field():
    phi, p_x, tr, beta, P = problem(random_instance(0))
    with pytest.raises(ValueError, match="rho"):
        S.robust_sail_value_grad(tr, phi, p_x, tr, beta, P, 1.5)
    with pytest.raises(ValueError, match="P"):
        S.sail_value_grad(tr, phi, p_x, tr, beta, P + 0.1)
    with pytest.raises(ValueError, match="beta"):
        S.sail_value_grad(tr, phi, p_x, tr, 0.0, P)
    with pytest.raises(ValueError, match="theta"):
        S.sail_value_grad(np.zeros(4), phi, p_x, tr, beta, P)
    with pytest.raises(ValueError, match="p_x"):
        S.sail_value_grad(tr, phi, np.array([0.2, 0.2]), tr, beta, P)


def test_project_ball_is_the_nearest_point_of_the_ball():
    """project_ball (the one home of the SAIL algorithms' projection) against scipy's constrained minimiser of
    ||z - theta||^2 over the ball; points inside are returned unchanged; bad input names the field."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(7)
    center = rng.standard_normal(3)
    for scale in (0.3, 1.0, 5.0):
        theta = center + scale * rng.standard_normal(3)
        p = S.project_ball(theta, center, 2.0)
        if np.linalg.norm(theta - center) <= 2.0:
            assert np.array_equal(p, theta)
            continue
        ref = minimize(lambda z: float((z - theta) @ (z - theta)), center, jac=lambda z: 2.0 * (z - theta),
                       constraints=[{"type": "ineq", "fun": lambda z: 4.0 - float((z - center) @ (z - center))}],
                       method="SLSQP", options={"ftol": 1e-14, "maxiter": 200})
        np.testing.assert_allclose(p, ref.x, atol=1e-6)
        assert abs(np.linalg.norm(p - center) - 2.0) < 1e-12
    with pytest.raises(ValueError, match="radius"):
        S.project_ball(center, center, -1.0)
    with pytest.raises(ValueError, match="center"):
        S.project_ball(center, center[:2], 1.0)


@pytest.mark.parametrize("seed", [0, 3])
def test_kink_slack_is_the_smaller_one_sided_slope(seed):
    """At a minimiser of F on a kink (seed 0: one active kink, seed 3: two), the multipliers solve the
    stationarity system and each slack equals min(F'(theta; d), F'(theta; -d)) ||a_k|| / (a_k^T d), with
    d the unit part of the kink's normal orthogonal to the other active normals; the one-sided slopes
    come from finite differences of the value alone (Richardson-extrapolated)."""
    from simlab.solvers.sail_algorithms import deterministic_prox_linear

    args = problem(random_instance(seed))
    rho = 0.1
    theta = deterministic_prox_linear(args[2], *args, rho, 3.0, 1500, 0.5)[-1]
    ks = S.kink_structure(theta, *args, rho)
    assert ks.active.size == (1 if seed == 0 else 2) and ks.residual <= 1e-10
    assert np.all(ks.slack > 0) and ks.nearest_inactive > 1e-3
    rows = S.penalty_pairs(args[0], args[2], args[3], args[4], rho).rows
    F = lambda th: S.robust_sail_value_grad(th, *args, rho)[0]
    for j, k in enumerate(ks.active):
        others = rows[np.delete(ks.active, j)]
        d = rows[k].copy()
        if others.size:
            q, _ = np.linalg.qr(others.T)
            d -= q @ (q.T @ d)
        d /= np.linalg.norm(d)

        def slope(direction, eps=1e-5):
            D = lambda e: (F(theta + e * direction) - F(theta)) / e
            return 2.0 * D(eps / 2) - D(eps)

        one_sided = min(slope(d), slope(-d))
        assert abs(one_sided * np.linalg.norm(rows[k]) / (rows[k] @ d) - ks.slack[j]) <= 1e-7 + 1e-4 * ks.slack[j]
    with pytest.raises(ValueError, match="active_tol"):
        S.kink_structure(theta, *args, rho, active_tol=-1.0)
