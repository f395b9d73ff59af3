"""Identities 31-34 and 36 of docs/theory/identities.md §8 for the constrained-alignment objectives."""
import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.env.gap import gap_preset, make_gap_env
from simlab.objectives import constrained as C
from simlab.objectives.dpo import dpo_value_grad_hess
from simlab.policy import log_policy
from simlab.solvers import constrained as S
from simlab.solvers.exact import newton, newton_ascent
from tests.taylor import assert_taylor

SEEDS = range(5)


def _env(seed, **kw):
    return make_gap_env(gap_preset(**kw), seed)


def _random_log_policy(rng, shape):
    z = rng.standard_normal(shape) * 1.5
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


@pytest.mark.parametrize("seed", SEEDS)
def test_identity31_lagrangian_equals_dual_minus_kl(seed):
    env = _env(seed, m=2, beta=0.1 if seed % 2 else 1.0)
    rng = np.random.default_rng(seed)
    for _ in range(5):
        lam = rng.uniform(0, 2, env.m)
        lp_star = C.optimal_log_policy(env, lam)
        lp = _random_log_policy(rng, env.log_ref.shape)
        lhs = C.lagrangian(env, lp, lam)
        rhs = C.dual_value(env, lam) - env.beta * env.p_x @ C.kl_per_context(lp, lp_star)
        assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))
        assert C.lagrangian(env, lp_star, lam) == pytest.approx(C.dual_value(env, lam), abs=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_identity32_dual_grad_hess_vs_finite_differences(seed):
    env = _env(seed, m=2, beta=0.1 if seed % 2 else 1.0)
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0.2, 1.5, env.m)
    _, g, H = C.dual_value_grad_hess(env, lam)
    h = 1e-6
    for i in range(env.m):
        e = np.zeros(env.m)
        e[i] = h
        fd_g = (C.dual_value(env, lam + e) - C.dual_value(env, lam - e)) / (2 * h)
        assert fd_g == pytest.approx(g[i], rel=1e-7, abs=1e-8)
        fd_H = (C.dual_value_grad_hess(env, lam + e)[1] - C.dual_value_grad_hess(env, lam - e)[1]) / (2 * h)
        assert np.allclose(fd_H, H[:, i], rtol=1e-7, atol=1e-8)
    assert_taylor(lambda v: C.dual_value(env, v), lambda v: C.dual_value_grad_hess(env, v)[1], lam)
    # L_D bound: the largest curvature anywhere is below (1/(4 beta)) sum range_i^2
    for _ in range(5):
        H = C.dual_value_grad_hess(env, rng.uniform(0, 5, env.m))[2]
        assert np.linalg.eigvalsh(H).max() <= C.dual_smoothness_bound(env) + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_lagrangian_theta_gradient_and_hessian(seed):
    env = _env(seed, t=0.5, m=2)
    rng = np.random.default_rng(seed)
    lam = rng.uniform(0, 2, env.m)
    theta = env.theta_ref + rng.standard_normal(env.d)
    f = lambda th: C.lagrangian_theta(env, th, lam, hessian=False)[0]
    g = lambda th: C.lagrangian_theta(env, th, lam, hessian=False)[1]
    assert_taylor(f, g, theta)
    # value agrees with the distribution-space Lagrangian of pi_theta
    assert f(theta) == pytest.approx(C.lagrangian(env, log_policy(theta, env.phi), lam), abs=1e-12)
    H = C.lagrangian_theta(env, theta, lam)[2]
    h = 1e-6
    fd = np.column_stack([(g(theta + h * e) - g(theta - h * e)) / (2 * h) for e in np.eye(env.d)])
    assert np.allclose(fd, H, atol=1e-7)
    # constraint Jacobian
    Cv, J = C.constraint_theta(env, theta)
    fdJ = np.column_stack([(C.constraint_theta(env, theta + h * e)[0] - C.constraint_theta(env, theta - h * e)[0])
                           / (2 * h) for e in np.eye(env.d)])
    assert np.allclose(fdJ, J, atol=1e-8)


def test_lagrangian_theta_logref_kernel_matches_bitwise():
    """The log-ref form (log pi_ref computed once by the caller, used by Newton ascent and the CAID inner
    ascent) returns the very numbers of lagrangian_theta_kernel, with and without the Hessian."""
    from simlab.policy import log_policy_kernel
    env = _env(3, t=0.3)
    rng = np.random.default_rng(3)
    log_ref = np.empty(env.log_ref.shape)
    log_policy_kernel(env.theta_ref, env.phi, log_ref)
    for want_hess in (True, False):
        theta = env.theta_ref + rng.standard_normal(env.d)
        r_lam = np.ascontiguousarray(env.lagrangian_reward(rng.uniform(0, 2, env.m)))
        g1, h1, g2, h2 = np.empty(env.d), np.empty((env.d, env.d)), np.empty(env.d), np.empty((env.d, env.d))
        v1 = C.lagrangian_theta_kernel(theta, env.phi, env.p_x, r_lam, env.theta_ref, env.beta, g1, h1, want_hess)
        v2 = C.lagrangian_theta_logref_kernel(theta, env.phi, env.p_x, r_lam, log_ref, env.beta, g2, h2, want_hess)
        assert v1 == v2 and np.array_equal(g1, g2) and np.array_equal(h1, h2)


@pytest.mark.parametrize("seed", SEEDS)
def test_multistart_newton_matches_scipy_bfgs(seed):
    env = _env(seed, t=0.6)
    lam = np.array([1.0 + 0.3 * seed])
    res = S.parametrized_dual(env, lam)
    f = lambda th: -C.lagrangian_theta(env, th, lam, hessian=False)[0]
    jac = lambda th: -C.lagrangian_theta(env, th, lam, hessian=False)[1]
    rng = np.random.default_rng(seed)
    best = min(minimize(f, env.theta_ref + 2 * rng.standard_normal(env.d), jac=jac, method="BFGS",
                        options={"gtol": 1e-10}).fun for _ in range(8))
    assert res.value >= -best - 1e-10
    assert res.grad_norm < 1e-9
    assert res.value <= C.dual_value(env, lam) + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_identity33_convexity_and_dp_below_d(seed):
    env = _env(seed, t=0.5, m=2)
    rng = np.random.default_rng(seed)
    for _ in range(4):
        a, b = rng.uniform(0, 3, (2, env.m))
        mid = 0.5 * (a + b)
        for fn in (lambda v: C.dual_value(env, v), lambda v: S.parametrized_dual(env, v).value):
            assert fn(mid) <= 0.5 * (fn(a) + fn(b)) + 1e-9
        assert S.parametrized_dual(env, a).value <= C.dual_value(env, a) + 1e-12


@pytest.mark.parametrize("seed", SEEDS)
def test_identity34_danskin_gradient_of_dp(seed):
    env = _env(seed, t=0.4, m=2)
    lam = np.array([0.8, 0.5]) + 0.1 * seed
    res = S.parametrized_dual(env, lam)
    assert res.local_spread < 1e-9  # the maximiser is unique here
    h = 1e-5
    for i in range(env.m):
        e = np.zeros(env.m)
        e[i] = h
        fd = (S.parametrized_dual(env, lam + e).value - S.parametrized_dual(env, lam - e).value) / (2 * h)
        assert fd == pytest.approx(res.subgradient[i], abs=1e-6)
        fdH = (S.parametrized_dual(env, lam + e).subgradient - S.parametrized_dual(env, lam - e).subgradient) / (2 * h)
        assert np.allclose(fdH, res.hessian[:, i], atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_identity36_realizable_dp_equals_d_and_pseudo_label_dpo(seed):
    env = _env(seed, t=0.0, m=2, beta=0.5)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        lam = rng.uniform(0, 2, env.m)
        res = S.parametrized_dual(env, lam)
        assert res.value == pytest.approx(C.dual_value(env, lam), abs=1e-10)
        theta_closed = env.theta_ref + env.U.T @ (env.w_r + env.W_g.T @ lam) / env.beta
        assert np.allclose(res.theta, theta_closed, atol=1e-8)
        # population DPO on pseudo-labels Bern(sigma(r_lam(a1) - r_lam(a0))), a0, a1 ~ pi_ref
        r_lam = env.lagrangian_reward(lam)
        pref = np.exp(env.log_ref)
        n_x, n_y = pref.shape
        x, a0, a1 = np.meshgrid(np.arange(n_x), np.arange(n_y), np.arange(n_y), indexing="ij")
        x, a0, a1 = x.ravel(), a0.ravel(), a1.ravel()
        w = env.p_x[x] * pref[x, a0] * pref[x, a1]
        dphi = env.phi[x, a1] - env.phi[x, a0]
        y = 1.0 / (1.0 + np.exp(-(r_lam[x, a1] - r_lam[x, a0])))
        fit = newton(lambda th: dpo_value_grad_hess(th, env.theta_ref, env.beta, dphi, y, w), env.theta_ref,
                     gtol=1e-13)
        assert np.allclose(fit.x, theta_closed, atol=1e-8)


def test_gap_proxy_zero_when_realizable_and_positive_otherwise():
    grid = np.linspace(0, 2, 5)[:, None]
    assert S.gap_proxy(_env(0, t=0.0), grid)["nu_hat"] < 1e-8
    small = S.gap_proxy(_env(0, t=0.01), grid)["nu_hat"]
    big = S.gap_proxy(_env(0, t=0.3), grid)["nu_hat"]
    assert 0 < small < big


def test_global_proxy_projects_policies_in_the_class_exactly():
    env = _env(2, t=0.3)
    # I-projection of a policy in the class is itself: check the machinery on pi_theta
    theta = env.theta_ref + np.random.default_rng(0).standard_normal(env.d)
    lp = log_policy(theta, env.phi)
    r = env.beta * (lp - env.log_ref)
    res = newton_ascent(env.theta_ref, env.phi, env.p_x, r, env.theta_ref, env.beta, 1e-11, 200)
    assert res.converged and np.allclose(log_policy(res.x, env.phi), lp, atol=1e-9)
    g = S.global_gap_proxy(env, n_policies=4)
    assert g["nu_global"] > 0 and g["nu_global"] == max(g["nu_1"], g["nu_kl"])


def test_metrics_vanish_at_the_target():
    env = _env(1, m=2)
    lp = C.optimal_log_policy(env, [0.5, 0.5])
    gaps = C.optimality_gaps(env, lp, lp)
    assert {k: gaps[k] for k in ("r_opt", "r_opt_signed", "u_opt_l2", "u_opt_linf")} == dict.fromkeys(
        ("r_opt", "r_opt_signed", "u_opt_l2", "u_opt_linf"), 0.0)
    assert gaps["violation"] == C.signed_violation(env, lp)
    with pytest.raises(ValueError, match="lam_grid"):
        S.gap_proxy(env, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="theta"):
        C.lagrangian_theta(env, np.zeros(3), [0.0, 0.0])
