"""Identities 33, 35, 37 of docs/theory/identities.md §8 and the dual algorithms (CAID, one-shot CAN, GDA)."""
import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.special import logsumexp

from simlab.env.gap import gap_preset, make_gap_env
from simlab.objectives import constrained as C
from simlab.policy import policy
from simlab.solvers import constrained as S
from simlab.solvers.exact import newton_ascent, projected_newton


def _env(seed, **kw):
    return make_gap_env(gap_preset(**kw), seed)


@pytest.mark.parametrize("seed,m,beta", [(0, 1, 1.0), (1, 2, 1.0), (2, 1, 1.0), (3, 2, 0.3), (0, 1, 0.1)])
def test_identity35_strong_duality_and_complementary_slackness(seed, m, beta):
    env = _env(seed, m=m, beta=beta)
    ds = S.solve_dual(env)
    assert ds.converged
    primal = S.solve_primal_distribution(env)
    assert primal.value == pytest.approx(ds.value, abs=1e-8)
    assert np.all(primal.constraint >= -1e-8)
    assert abs(ds.lam @ ds.grad) <= 1e-8
    assert np.all(ds.grad >= -1e-8)
    assert np.all(ds.lam >= 0)
    # pi*(lambda*) solves U-CA: it is feasible and attains V*
    lp = C.optimal_log_policy(env, ds.lam)
    assert C.regularized_reward(env, lp) == pytest.approx(ds.value, abs=1e-8)


@pytest.mark.parametrize("seed,m", [(0, 1), (1, 2), (5, 1), (6, 2), (7, 1)])
def test_identity33_duality_ordering(seed, m):
    env = _env(seed, m=m, t=0.5)
    v_star = S.solve_dual(env).value
    dp = S.minimize_parametrized_dual(env)
    vp = S.solve_primal_theta(env)
    assert dp.converged and vp.converged
    assert vp.value <= dp.value + 1e-9          # weak duality over theta
    assert dp.value <= v_star + 1e-9            # D_p <= D
    assert np.all(vp.constraint >= -1e-10)


def test_dp_minimisers_agree_bisection_vs_newton_and_realizable_lambda():
    env = _env(0, t=0.3)
    dp = S.minimize_parametrized_dual(env, method="newton")
    assert dp.converged
    assert S.minimize_parametrized_dual(env).value == pytest.approx(dp.value, abs=1e-12)
    assert S.bisect_parametrized_dual(env, 2.0) == pytest.approx(dp.lam[0], abs=1e-9)
    real = _env(0, t=0.0)
    assert np.allclose(S.minimize_parametrized_dual(real, method="newton").lam, S.solve_dual(real).lam, atol=1e-8)
    with pytest.raises(ValueError, match="m = 1"):
        S.bisect_parametrized_dual(_env(0, m=2), 1.0)


def test_lambda_nu_offset_and_projected_newton_at_the_bound():
    env = _env(2)  # the constraint is inactive at lambda = 0 for this draw
    ds = S.solve_dual(env)
    if ds.grad[0] > 0:
        assert ds.lam[0] == 0.0
    env = _env(0)
    lam_star = S.solve_dual(env).lam
    lam_nu = S.solve_dual(env, linear_offset=0.05).lam
    assert np.all(lam_nu >= lam_star)  # subtracting M nu ||lambda||_1 pushes the minimiser out
    g = C.dual_value_grad_hess(env, lam_nu)[1]
    assert np.allclose(g, 0.05, atol=1e-9)


@pytest.mark.parametrize("m", [1, 2])
def test_caid_exact_converges_to_dp_star(m):
    env = _env(1, m=m, t=0.3)
    target = S.minimize_parametrized_dual(env)
    run = S.caid(env, eta=1.0 / C.dual_smoothness_bound(env), T=200)
    gap = run.dual_p - target.value
    assert np.all(gap >= -1e-10)
    assert gap[-1] < 1e-9
    assert np.allclose(run.lam[-1], target.lam, atol=1e-4)
    # the in-kernel exact D_p matches the multistart evaluation at a checkpoint
    j = len(run.t) // 2
    assert run.dual_p[j] == pytest.approx(S.parametrized_dual(env, run.lam[j]).value, abs=1e-10)


def test_stochastic_dual_gradient_is_unbiased_with_the_right_variance():
    env = _env(0, m=2, t=0.3)
    theta = env.theta_ref + 0.3
    pi = policy(theta, env.phi)
    assert np.allclose(pi.sum(axis=1), 1.0, atol=1e-14)
    rng = np.random.default_rng(11)
    N, K = 20, 4
    reps = np.empty((4000, env.m))
    out = np.empty(env.m)
    for r in range(reps.shape[0]):
        S.sampled_constraint_kernel(env.p_x, pi, env.constraint, N, K, rng, out)
        reps[r] = out
    exact = C.constraint_theta(env, theta)[0]
    se = reps.std(axis=0, ddof=1) / np.sqrt(reps.shape[0])
    assert np.all(np.abs(reps.mean(axis=0) - exact) <= 4 * se)
    # variance of N x K individual draws: (Var_x m(x) + E_x Var(c | x) / K) / N per coordinate
    m_x = np.einsum("xa,xai->xi", pi, env.constraint)
    var_in = np.einsum("xa,xai->xi", pi, (env.constraint - m_x[:, None, :]) ** 2)
    var = (env.p_x @ (m_x - exact) ** 2 + (env.p_x @ var_in) / K) / N
    assert np.allclose(reps.var(axis=0, ddof=1), var, rtol=0.1)


def test_sampled_caid_and_inexact_inner_run():
    env = _env(0, t=0.3)
    target = S.minimize_parametrized_dual(env).value
    run = S.caid(env, eta=0.1, T=300, n_prompts=30, n_responses=4, rng=np.random.default_rng(0))
    assert run.best_dual_p[-1] - target < 1e-3
    assert np.all(np.diff(run.best_dual_p) <= 0)
    inexact = S.caid(env, eta=0.1, T=100, eps_app=1e-3)
    assert inexact.inner.max() > 0
    with pytest.raises(ValueError, match="eta"):
        S.caid(env, eta=0.0, T=10)
    with pytest.raises(ValueError, match="n_prompts"):
        S.caid(env, eta=0.1, T=10, n_prompts=-1)
    with pytest.raises(ValueError, match="guess_every"):
        S.caid(env, eta=0.1, T=10, guess_every=0)


def test_caid_guess_start_every_k_steps_only_rerounds_dp():
    """guess_every > 1 runs the projected-logits start of the D_p evaluation only every k steps: along an exact-gradient
    run (deterministic) the D_p values match the every-step run within the Newton ascent's stopping rule (remaining
    increase <= DECREMENT_RTOL max(1, |L|) = 1e-12 here; observed 2.4e-13) and no check finds another maximizer;
    guess_every = 1 is the default."""
    env = _env(1, t=0.3)
    eta = 0.5 / C.dual_smoothness_bound(env)
    every = S.caid(env, eta=eta, T=300)
    sparse = S.caid(env, eta=eta, T=300, guess_every=8)
    assert every.guess_gains == 0 and sparse.guess_gains == 0
    assert np.allclose(sparse.dual_p, every.dual_p, rtol=0, atol=S.DECREMENT_RTOL)
    assert np.allclose(sparse.lam, every.lam, rtol=0, atol=1e-9)
    one = S.caid(env, eta=eta, T=300, guess_every=1)
    assert np.array_equal(one.dual_p, every.dual_p) and np.array_equal(one.theta_best, every.theta_best)


def test_identity37_can_plugin_dual_gd_matches_newton_and_population():
    env = _env(0)
    rng = np.random.default_rng(3)
    r_s, g_s = S.sample_reference(env, 600, 128, rng)
    b_bar = g_s.reshape(-1, env.m).mean(axis=0) + env.b
    lam_gd, _, ok = S.can_projected_gd(r_s, g_s, b_bar, env.beta)
    assert ok
    newton = projected_newton(lambda l: S.plugin_dual(l, r_s, g_s, b_bar, env.beta), np.ones(1))
    assert newton.converged and lam_gd == pytest.approx(newton.x, abs=1e-4)  # GD stops when iterates move < 1e-5
    # plug-in gradient and Hessian vs finite differences
    lam = np.array([0.7])
    _, g, H = S.plugin_dual(lam, r_s, g_s, b_bar, env.beta)
    h = 1e-6
    fd = (S.plugin_dual(lam + h, r_s, g_s, b_bar, env.beta)[0] - S.plugin_dual(lam - h, r_s, g_s, b_bar, env.beta)[0]) / (2 * h)
    assert fd == pytest.approx(g[0], abs=1e-7)
    fdH = (S.plugin_dual(lam + h, r_s, g_s, b_bar, env.beta)[1] - S.plugin_dual(lam - h, r_s, g_s, b_bar, env.beta)[1]) / (2 * h)
    assert fdH == pytest.approx(H[0, 0], abs=1e-6)
    # the plug-in lambda-hat is close to lambda* at N K = 76800
    assert abs(newton.x[0] - S.solve_dual(env).lam[0]) < 0.1
    one = S.one_shot_can(env, 600, 128, np.random.default_rng(3))
    assert one.converged and one.theta.shape == (env.d,)


def test_gda_small_steps_follow_the_saddle_and_record():
    env = _env(0, t=0.3)
    L = S.lagrangian_curvature_at_solution(env)
    run = S.gradient_descent_ascent(env, alpha_theta=0.3 / L, alpha_lam=0.3 / L, T=4000)
    target = S.minimize_parametrized_dual(env)
    assert run.lam.shape == (len(run.t), 1)
    assert abs(run.lam[-1, 0] - target.lam[0]) < 1e-3
    with pytest.raises(ValueError, match="alpha_lam"):
        S.gradient_descent_ascent(env, 0.1, -1.0, 10)


def test_lemma3_lower_bound_reported():
    """Lemma 3 with nu-hat: D - C(lambda) nu-hat <= D_p (soft: the proxy is local, so only report)."""
    env = _env(0, t=0.3)
    lam = S.solve_dual(env).lam
    nu = S.gap_proxy(env, np.linspace(0, lam[0] + 1, 5)[:, None])["nu_hat"]
    slack = S.parametrized_dual(env, lam).value - (C.dual_value(env, lam) - C.duality_constant(env, lam) * nu)
    assert np.isfinite(slack)


def test_maximizer_pool_never_lowers_the_inner_maximum():
    env = _env(1, t=1.0, beta=0.1)
    pool = S.MaximizerPool(capacity=8)
    pool.sweep(env, np.linspace(0.0, 3.0, 7)[:, None])
    assert 1 <= len(pool.thetas) <= 8
    for lam in (0.5, 1.2, 2.0):
        assert pool.evaluate(env, [lam]).value >= S.parametrized_dual(env, [lam]).value - 1e-12
    with pytest.raises(ValueError, match="capacity"):
        S.MaximizerPool(capacity=0)


def test_newton_ascent_converges_where_the_armijo_test_sees_only_rounding():
    """The beta = 0.1, t = 1 instance of constrained_gap at master 20262149 (calibration master 26): at the
    multi-shot lambda*_p the maximiser has |theta| ~ 160, L carries ~1e-14 rounding and the predicted increase
    of a Newton step is ~1e-17, so an Armijo-only line search stopped at |grad| = 9e-10 (30x gtol) from this
    theta, leaving E_x E_theta c off by ~1e-8. The full step that keeps L within rounding and reduces the
    gradient is accepted now."""
    env = make_gap_env(gap_preset(t=1.0, m=1, beta=0.1),
                       np.random.SeedSequence(20262149, spawn_key=(3622820671849490511, 0, 0)))
    lam = np.array([1.2623388018979327])
    theta0 = np.array([83.07673190417005, 46.84629888259052, 72.98852749692328, 43.89594121669945,
                       -98.34286655797094])
    r_lam = env.lagrangian_reward(lam)
    start_value, start_grad, _ = C.lagrangian_theta(env, theta0, lam, hessian=False)
    assert np.linalg.norm(start_grad) > 1e-10  # where the Armijo-only ascent stopped
    res = newton_ascent(theta0, env.phi, env.p_x, r_lam, env.theta_ref, env.beta, 1e-11, 200)
    assert res.converged and res.grad_norm <= 1e-11
    assert res.fun >= start_value - 1e-12 * max(1.0, abs(start_value))
    shift = abs(C.constraint_theta(env, res.x)[0][0] - C.constraint_theta(env, theta0)[0][0])
    assert 1e-10 < shift < 1e-7  # the constraint error the residual gradient carried (1.2e-8 here)


def _two_action_lagrangian(theta):
    """L(theta) = E_theta r - KL(pi_theta || uniform) for two actions of logits (0, 0.01 theta), r = (0, 25)."""
    z = np.array([0.0, 0.01 * theta])
    log_pi = z - logsumexp(z)
    return float(np.exp(log_pi) @ (np.array([0.0, 25.0]) - log_pi + np.log(0.5)))


def test_newton_ascent_stops_on_the_decrement_not_on_a_small_gradient():
    """A flat direction: two actions, logit difference 0.01 theta, reward gap 25, beta = 1, so the maximiser
    is theta* = 2500 and max L = log((1 + e^25) / 2). At theta = 2200 the gradient is 8.4e-12 (below gtol =
    1e-11: a gradient test stops there) but the curvature is 1.1e-13, so the Newton decrement predicts
    g^2 / (2 h) = 3.1e-10 still to gain (5.7e-10 really). The decrement rule continues to within its tolerance
    1e-12 max(1, |L|); the value matches the closed form and scipy's bounded scalar search. From theta = 2000
    a curvature floor that is absolute (1e-10, as before) made the steps ~100x too short: 200 steps without
    converging."""
    phi, p_x, r, ref = np.array([[[0.0], [0.01]]]), np.array([1.0]), np.array([[0.0, 25.0]]), np.zeros(1)
    best = float(logsumexp(r[0]) - np.log(2.0))
    scipy_best = -minimize_scalar(lambda t: -_two_action_lagrangian(t), bounds=(0.0, 5000.0), method="bounded",
                                  options={"xatol": 1e-9}).fun
    assert scipy_best == pytest.approx(best, abs=1e-13)
    grad, hess = np.empty(1), np.empty((1, 1))
    value = C.lagrangian_theta_kernel(np.array([2200.0]), phi, p_x, r, ref, 1.0, grad, hess, True)
    assert value == pytest.approx(_two_action_lagrangian(2200.0), abs=1e-13)
    assert abs(grad[0]) < 1e-11 and 0.0 < -hess[0, 0] < 1e-12  # a gradient test stops here ...
    assert best - value > 5e-10  # ... 5.7e-10 below the maximum
    tol = 1e-12 * best  # the decrement rule's remaining-increase tolerance at |L| = 24.3
    for theta0 in (2200.0, 2000.0):
        res = newton_ascent(np.array([theta0]), phi, p_x, r, ref, 1.0, 1e-11, 200)
        assert res.converged and 1 <= res.iterations <= 10 and res.grad_norm <= 1e-11
        assert best - res.fun <= tol and scipy_best - res.fun <= tol
    with pytest.raises(ValueError, match="decrement_rtol"):
        newton_ascent(np.array([2200.0]), phi, p_x, r, ref, 1.0, decrement_rtol=0.0)
    # check_input=False (validated once by a multistart caller) runs the same ascent bit for bit
    checked = newton_ascent(np.array([2000.0]), phi, p_x, r, ref, 1.0, 1e-11, 200)
    unchecked = newton_ascent(np.array([2000.0]), phi, p_x, r, ref, 1.0, 1e-11, 200, check_input=False)
    assert np.array_equal(checked.x, unchecked.x) and checked.fun == unchecked.fun
    assert checked.iterations == unchecked.iterations and np.array_equal(checked.hess, unchecked.hess)


def test_projected_newton_matches_scipy_on_a_box_constrained_quadratic():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 4))
    H = A @ A.T + 0.5 * np.eye(4)
    b = np.array([1.0, -2.0, 0.5, -0.3])
    fgh = lambda x: (0.5 * x @ H @ x - b @ x, H @ x - b, H)  # noqa: E731
    res = projected_newton(fgh, np.ones(4), gtol=1e-12)
    ref = minimize(lambda x: fgh(x)[:2], np.ones(4), jac=True, method="L-BFGS-B", bounds=[(0, None)] * 4,
                   options={"ftol": 1e-15, "gtol": 1e-12})
    assert res.converged and np.allclose(res.x, ref.x, atol=1e-7) and (res.x == 0).any()
    assert res.hess is H and res.fun == pytest.approx(ref.fun, abs=1e-12)
    with pytest.raises(ValueError, match="gtol"):
        projected_newton(fgh, np.ones(4), gtol=0.0)
    with pytest.raises(ValueError, match="x0"):
        projected_newton(fgh, [np.nan, 1.0, 1.0, 1.0])
