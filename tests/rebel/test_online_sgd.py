"""The numba online loop with SGD/Adam inner steps (docs/theory/rebel.md §4.9) and its batch gradients."""
import numpy as np
import pytest

from simlab.env import make_env, preset
from simlab.objectives.rebel import (chi2_rebel_code_loss_gradient, f_rebel_value_grad_hess,
                                     kl_rebel_non_detached_gradient, kl_rebel_penalized_value_grad_hess,
                                     rebel_value_grad_hess, w2_rebel_surrogate_value_grad_hess,
                                     w2_rebel_value_grad_hess)
from simlab.solvers.rebel import SGD_OBJECTIVES, batch_gradient_kernel, online_rebel_exact, online_rebel_sgd


def _batch(seed, n=64, d=4):
    rng = np.random.default_rng(seed)
    dphi = rng.standard_normal((n, d))
    dr = dphi @ rng.standard_normal(d) + rng.choice([-0.6, 0.0, 0.6], size=n) + 0.3 * rng.standard_normal(n) ** 2
    anc = rng.standard_normal(d)
    return dphi, dr, anc, anc + 0.5 * rng.standard_normal(d)


def _reference_gradient(name, theta, anc, eta, dphi, dr, radius, non_detached):
    w = np.full(dr.size, 1.0 / dr.size)
    if name == "rebel":
        return rebel_value_grad_hess(theta, anc, eta, dphi, dr, w)[1]
    if name == "w2":
        return w2_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, radius)[1]
    if name == "w2_surrogate":
        return w2_rebel_surrogate_value_grad_hess(theta, anc, eta, dphi, dr, w, radius)[1]
    if name == "kl_tau":
        if non_detached:
            return kl_rebel_non_detached_gradient(theta, anc, eta, dphi, dr, w, radius)
        return kl_rebel_penalized_value_grad_hess(theta, anc, eta, dphi, dr, w, radius)[1]
    if name in ("kl", "chi2"):
        return f_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, name, radius)[1]
    return chi2_rebel_code_loss_gradient(theta, anc, eta, dphi, dr, w, radius)[1]


RADII = {"rebel": 0.0, "w2": 0.1, "w2_surrogate": 0.1, "kl_tau": 3.0, "kl": 0.1, "chi2": 0.1,
         "chi2_code": 0.01}


@pytest.mark.parametrize("name", SGD_OBJECTIVES)
@pytest.mark.parametrize("seed", range(3))
def test_batch_gradient_kernel_matches_objective_gradients(name, seed):
    dphi, dr, anc, theta = _batch(seed)
    n, d = dphi.shape
    for non_detached in ((False, True) if name == "kl_tau" else (False,)):
        grad = np.empty(d)
        batch_gradient_kernel(theta, anc, 0.7, dphi, dr, SGD_OBJECTIVES.index(name), RADII[name],
                               non_detached, np.empty(n), np.empty(n), np.empty(n), np.full(n, 1.0 / n), grad)
        ref = _reference_gradient(name, theta, anc, 0.7, dphi, dr, RADII[name], non_detached)
        assert np.max(np.abs(grad - ref)) <= 1e-9 * (1 + np.max(np.abs(ref)))


def test_w2_min_norm_subgradient_at_the_anchor():
    dphi, dr, anc, _ = _batch(0)
    n, d = dphi.shape
    g0 = rebel_value_grad_hess(anc, anc, 1.0, dphi, dr, np.full(n, 1.0 / n))[1]
    rms = np.sqrt(np.mean(dr**2))
    for radius in (0.5 * np.linalg.norm(g0) / 2 / rms * 1.0, 10.0):
        grad = np.empty(d)
        batch_gradient_kernel(anc, anc, 1.0, dphi, dr, 1, radius, False, np.empty(n), np.empty(n),
                               np.empty(n), np.full(n, 1.0 / n), grad)
        g_r = g0 / (2 * rms)
        expected = g_r * max(0.0, 1 - radius / np.linalg.norm(g_r))
        assert np.allclose(grad, expected, atol=1e-12)


def test_many_inner_gd_steps_reach_the_exact_mirror_descent_iterates():
    """Noiseless: each batch's OLS is theta_t + eta w*, so converged inner GD reproduces identity 5."""
    env = make_env(preset("E2", noise="none", sigma=0.0, d=4, n_x=8), 0)
    log = online_rebel_sgd(env, 3, 256, 1.0, np.random.default_rng(1), inner_steps=3000,
                           optimizer="sgd", lr=0.3, sampler="online_mixed")
    assert np.max(np.abs(log.theta[-1] - (env.theta_ref + 3.0 * env.w_star))) <= 1e-8


def test_online_sgd_logs_agree_with_the_exact_loop_metrics():
    env = make_env(preset("E2", mixture=True, alpha_train=0.5), 2)
    alphas = np.linspace(0, 1, 3)
    for name in SGD_OBJECTIVES:
        log = online_rebel_sgd(env, 5, 128, 1.0, np.random.default_rng(0), name, RADII[name] or 0.0,
                               lr=0.05, alphas=alphas)
        assert log.theta.shape == (6, 8) and np.all(np.isfinite(log.theta))
        assert log.kl_ref[0] == pytest.approx(0.0, abs=1e-14)
    # logged lambda_min, rewards and KL equal the exact formulas at the logged iterates
    exact = online_rebel_exact(env, 1, 64, 1.0, np.random.default_rng(0), alphas=alphas, theta0=log.theta[2])
    assert log.lambda_min[2] == pytest.approx(exact.lambda_min[0], rel=1e-10)
    assert np.allclose(log.reward[2], exact.reward[0], atol=1e-12)


def test_bad_switches_name_the_field():
    env = make_env(preset("E2"), 0)
    with pytest.raises(ValueError, match="optimizer"):
        online_rebel_sgd(env, 2, 8, 1.0, np.random.default_rng(0), optimizer="lbfgs")
    with pytest.raises(ValueError, match="radius"):
        online_rebel_sgd(env, 2, 8, 1.0, np.random.default_rng(0), "kl_tau", 0.0)
    with pytest.raises(ValueError, match="anchor"):
        online_rebel_sgd(env, 2, 8, 1.0, np.random.default_rng(0), anchor="mid")


def test_same_seed_gives_identical_runs():
    env = make_env(preset("E2", mixture=True, alpha_train=0.5), 1)
    for sampler in ("online", "online_mixed"):
        runs = [online_rebel_sgd(env, 4, 64, 1.0, np.random.default_rng(7), "kl", 0.1, lr=0.05,
                                 sampler=sampler) for _ in range(2)]
        for field in ("theta", "lambda_min", "reward", "kl_ref"):
            assert np.array_equal(getattr(runs[0], field), getattr(runs[1], field))
