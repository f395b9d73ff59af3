"""DPO: derivatives (FD and Taylor), constants, the population minimiser identity, exact and SGD solvers."""
import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.env import make_env, preset
from simlab.env.sampling import multinomial_counts
from simlab.objectives.dpo import dpo_fisher, dpo_losses, dpo_population_minimizer, dpo_value_grad_hess
from simlab.solvers.dpo import fit_dpo_exact, is_separable, sgd_dpo
from simlab.solvers.exact import NoMinimizerError
from tests.taylor import assert_taylor


def _instance(seed, n=40, d=5):
    rng = np.random.default_rng(seed)
    dphi = rng.standard_normal((n, d))
    y = rng.integers(0, 2, n).astype(float)
    w = rng.random(n)
    return dphi, y, w / w.sum(), rng.standard_normal(d), 0.1 * rng.standard_normal(d), 0.5 + rng.random()


@pytest.mark.parametrize("seed", range(5))
def test_gradient_and_hessian_match_finite_differences(seed):
    dphi, y, w, theta, theta_ref, beta = _instance(seed)
    f = lambda t: dpo_value_grad_hess(t, theta_ref, beta, dphi, y, w)[0]
    g = lambda t: dpo_value_grad_hess(t, theta_ref, beta, dphi, y, w)[1]
    H = dpo_value_grad_hess(theta, theta_ref, beta, dphi, y, w)[2]
    h = 1e-6
    fd_g = np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(5)])
    fd_H = np.array([(g(theta + h * e) - g(theta - h * e)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(g(theta), fd_g, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(H, fd_H, rtol=1e-6, atol=1e-8)
    assert_taylor(f, g, theta)


def test_feature_gradient_matches_finite_differences():
    # grad_dphi l = beta (sigma(h) - y)(theta - theta_ref)
    dphi, y, _, theta, theta_ref, beta = _instance(1, n=1)
    loss = lambda z: dpo_losses(theta, theta_ref, beta, z[None, :], y)[0]
    h = beta * (theta - theta_ref) @ dphi[0]
    analytic = beta * (1 / (1 + np.exp(-h)) - y[0]) * (theta - theta_ref)
    fd = np.array([(loss(dphi[0] + 1e-6 * e) - loss(dphi[0] - 1e-6 * e)) / 2e-6 for e in np.eye(5)])
    np.testing.assert_allclose(analytic, fd, rtol=1e-6, atol=1e-9)


def test_loss_bound_and_curvature_floor():
    # |h| <= 4 beta B  =>  l <= K_DPO and beta^2 sigma(1 - sigma) >= gamma_DPO  (docs/theory/dpo.md §3.1, identity 3)
    rng = np.random.default_rng(0)
    beta, B = 0.7, 2.0
    K = np.log1p(np.exp(4 * beta * B))
    gamma = beta**2 / (2 + np.exp(4 * beta * B) + np.exp(-4 * beta * B))
    for _ in range(200):
        theta, theta_ref = [B * v / max(1.0, np.linalg.norm(v)) for v in rng.standard_normal((2, 3))]
        dphi = rng.standard_normal((1, 3))
        dphi *= min(1.0, 2.0 / np.linalg.norm(dphi))  # ||phi|| <= 1 => ||dphi|| <= 2
        for y in (0.0, 1.0):
            assert dpo_losses(theta, theta_ref, beta, dphi, np.array([y]))[0] <= K + 1e-12
        curv = dpo_fisher(theta, theta_ref, beta, dphi, np.ones(1))
        u = dphi[0] / np.linalg.norm(dphi[0])
        assert u @ curv @ u / (dphi[0] @ dphi[0]) >= gamma - 1e-15


@pytest.mark.parametrize("seed", range(5))
def test_population_minimiser_is_theta_ref_plus_w_over_beta(seed):
    env = make_env(preset("E1", theta_ref_norm=0.5, beta=0.5 + seed * 0.3, w_norm=1.0), seed)
    atoms = env.atoms("offline")
    fit = fit_dpo_exact(atoms, atoms.p0, env.theta_ref, env.beta, gtol=1e-12)
    np.testing.assert_allclose(fit.x, dpo_population_minimizer(env.theta_ref, env.beta, env.w_star), atol=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_exact_empirical_solver_agrees_with_scipy(seed):
    env = make_env(preset("E1", d=6), seed)
    atoms = env.atoms("offline")
    counts = multinomial_counts(atoms.p0, 2000, np.random.default_rng(seed))
    w = counts / counts.sum()
    fit = fit_dpo_exact(atoms, w, env.theta_ref, env.beta)
    assert fit.converged and fit.grad_norm <= 1e-10
    dphi, y, _, ws = atoms.support(w)
    ref = minimize(lambda t: dpo_value_grad_hess(t, env.theta_ref, env.beta, dphi, y, ws)[:2],
                   np.zeros(6), jac=True, hess=lambda t: dpo_value_grad_hess(t, env.theta_ref, env.beta, dphi, y, ws)[2],
                   method="trust-exact", options={"gtol": 1e-12})
    np.testing.assert_allclose(fit.x, ref.x, atol=1e-8)


def test_separable_sample_raises_instead_of_returning_a_huge_theta():
    env = make_env(preset("E1"), 0)
    atoms = env.atoms("offline")
    counts = multinomial_counts(atoms.p0, 12, np.random.default_rng(0))
    dphi, y, _, w = atoms.support(counts / 12)
    assert is_separable(dphi, y, w)
    with pytest.raises(NoMinimizerError, match="separable"):
        fit_dpo_exact(atoms, counts / 12, env.theta_ref, env.beta)


def test_rank_deficient_sample_raises():
    env = make_env(preset("E1"), 0)
    atoms = env.atoms("offline")
    w = np.zeros(atoms.size)
    w[np.flatnonzero(np.linalg.norm(atoms.dphi, axis=1) > 0)[:2]] = 0.5
    with pytest.raises(NoMinimizerError, match="rank deficient"):
        fit_dpo_exact(atoms, w, env.theta_ref, env.beta)


def test_input_validation_names_the_field():
    dphi, y, w, theta, theta_ref, beta = _instance(0)
    with pytest.raises(ValueError, match="beta"):
        dpo_value_grad_hess(theta, theta_ref, -1.0, dphi, y, w)
    with pytest.raises(ValueError, match="theta"):
        dpo_value_grad_hess(theta[:2], theta_ref, beta, dphi, y, w)
    with pytest.raises(ValueError, match="y"):
        dpo_value_grad_hess(theta, theta_ref, beta, dphi, y + 2, w)
    with pytest.raises(ValueError, match="w"):
        dpo_value_grad_hess(theta, theta_ref, beta, dphi, y, -w)


def test_sgd_converges_and_is_reproducible():
    env = make_env(preset("E1", w_norm=1.0), 0)
    atoms = env.atoms("offline")
    theta_star = dpo_population_minimizer(env.theta_ref, env.beta, env.w_star)
    cps, hist = sgd_dpo(atoms, env.theta_ref, env.beta, 20000, 2.0, np.random.default_rng(5), batch=4)
    _, hist2 = sgd_dpo(atoms, env.theta_ref, env.beta, 20000, 2.0, np.random.default_rng(5), batch=4)
    np.testing.assert_array_equal(hist, hist2)
    errs = np.linalg.norm(hist - theta_star, axis=1)
    assert cps[-1] == 20000 and errs[-1] < 0.25 * errs[0]
    _, proj = sgd_dpo(atoms, env.theta_ref, env.beta, 500, 5.0, np.random.default_rng(1),
                      schedule="constant", radius=0.5)
    assert np.all(np.linalg.norm(proj, axis=1) <= 0.5 + 1e-12)
    with pytest.raises(ValueError, match="schedule"):
        sgd_dpo(atoms, env.theta_ref, env.beta, 10, 1.0, np.random.default_rng(0), schedule="adam")


@pytest.mark.parametrize("seed", range(5))
def test_soft_label_rows_are_an_exact_rewrite(seed):
    from simlab.solvers.dpo import soft_label_rows

    env = make_env(preset("E1", theta_ref_norm=0.3), seed)
    atoms = env.atoms("offline")
    w = multinomial_counts(atoms.p0, 500 * (seed + 1), np.random.default_rng(seed)) / (500 * (seed + 1))
    theta = np.random.default_rng(seed + 10).standard_normal(8)
    dphi, ybar, W, const = soft_label_rows(atoms, w)[:4]
    full = dpo_value_grad_hess(theta, env.theta_ref, env.beta, atoms.dphi, atoms.y, w)
    comp = dpo_value_grad_hess(theta, env.theta_ref, env.beta, dphi, ybar, W)
    assert abs(full[0] - comp[0] - const) < 1e-13
    np.testing.assert_allclose(full[1], comp[1], atol=1e-14)
    np.testing.assert_allclose(full[2], comp[2], atol=1e-14)
    assert W.size <= env.spec.n_x * env.spec.n_y * (env.spec.n_y - 1) // 2


def test_tiny_beta_error_says_max_norm_was_exceeded():
    """Defect 8: at beta = 1e-8 the population minimiser theta_ref + w*/beta has norm 3e8 > max_norm = 1e6;
    the error names max_norm (not "separable data"), and a larger max_norm finds it."""
    from simlab.solvers.exact import NormLimitError

    env = make_env(preset("E1"), 0)
    atoms = env.atoms("offline")
    with pytest.raises(NormLimitError, match=r"max_norm = 1e\+06") as info:
        fit_dpo_exact(atoms, atoms.p0, env.theta_ref, 1e-8)
    assert "separable" not in str(info.value).split("although")[0] and info.value.max_norm == 1e6
    # the gradient scales like beta: a tolerance relative to beta gives the minimiser to ~1e-8 relative
    fit = fit_dpo_exact(atoms, atoms.p0, env.theta_ref, 1e-8, gtol=1e-18, max_norm=1e10)
    target = dpo_population_minimizer(env.theta_ref, 1e-8, env.w_star)
    assert np.linalg.norm(fit.x - target) <= 1e-6 * np.linalg.norm(target)
    with pytest.raises(ValueError, match="max_norm"):
        fit_dpo_exact(atoms, atoms.p0, env.theta_ref, 1.0, max_norm=0.0)


def test_solver_arguments_are_validated_by_name():
    """Defect 9 for the DPO solvers: rng=0, NaN theta0, n_checkpoints=0, negative weights, huge steps."""
    env = make_env(preset("E1"), 0)
    atoms = env.atoms("offline")
    args = (atoms, env.theta_ref, env.beta, 10, 0.1)
    with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
        sgd_dpo(*args, 0)
    with pytest.raises(ValueError, match="theta0 contains NaN"):
        sgd_dpo(*args, np.random.default_rng(0), theta0=np.full(env.spec.d, np.nan))
    with pytest.raises(ValueError, match="n_checkpoints must be >= 1"):
        sgd_dpo(*args, np.random.default_rng(0), n_checkpoints=0)
    with pytest.raises(ValueError, match="batch must be <="):
        sgd_dpo(*args, np.random.default_rng(0), batch=2**40)
    w = atoms.p0.copy()
    w[0] = -w[0]
    with pytest.raises(ValueError, match=r"weights \(atom weights\) must be >= 0"):
        fit_dpo_exact(atoms, w, env.theta_ref, env.beta)
    with pytest.raises(ValueError, match="atoms must be a PairAtoms"):
        fit_dpo_exact(atoms.p0, atoms.p0, env.theta_ref, env.beta)
