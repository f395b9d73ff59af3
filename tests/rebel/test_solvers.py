"""REBEL exact solvers and the online loop (spec §4.1, §4.9; identity 5 of §8)."""
import numpy as np
import pytest

from simlab.env import make_env, preset
from simlab.policy import log_policy
from simlab.solvers.rebel import fit_rebel, online_rebel_exact


@pytest.mark.parametrize("seed", range(5))
def test_exact_rebel_iterates_are_mirror_descent(seed):
    """Identity 5: noiseless REBEL (anchor prev) gives theta_T = theta_0 + eta T w*, so
    pi_T ∝ pi_0 e^{eta T r*}, and max_a r* - E_{pi_T} r* <= -log pi_0(a*|x)/(eta T) per context."""
    env = make_env(preset("E2", noise="none", sigma=0.0, theta_ref_norm=0.5), seed)
    eta, T = 0.3, 6
    log = online_rebel_exact(env, T, 256, eta, np.random.default_rng(seed), sampler="online_mixed")
    assert np.max(np.abs(log.theta[-1] - (env.theta_ref + eta * T * env.w_star))) <= 1e-10
    lp0, lpT = log_policy(log.theta[0], env.phi), log_policy(log.theta[-1], env.phi)
    md = lp0 + eta * T * env.reward
    md -= np.log(np.sum(np.exp(md), axis=1, keepdims=True))
    assert np.max(np.abs(lpT - md)) <= 1e-10
    subopt = env.reward.max(axis=1) - np.sum(np.exp(lpT) * env.reward, axis=1)
    best = np.argmax(env.reward, axis=1)
    assert np.all(subopt <= -lp0[np.arange(env.spec.n_x), best] / (eta * T) + 1e-12)


def test_online_log_shapes_and_reference_anchor():
    env = make_env(preset("E2", mixture=True, alpha_train=0.5), 1)
    log = online_rebel_exact(env, 4, 512, 1.0, np.random.default_rng(0), "kl", 0.05, anchor="ref",
                             alphas=np.linspace(0, 1, 5))
    assert log.theta.shape == (5, env.spec.d) and log.lambda_min.shape == (4,)
    assert log.reward.shape == (5, 5) and log.kl_ref.shape == (5,)
    assert log.kl_ref[0] == pytest.approx(0.0, abs=1e-14) and np.all(log.lambda_min > 0)
    # the reward at alpha is linear in alpha (J is linear in w)
    assert np.allclose(np.diff(log.reward, 2, axis=1), 0.0, atol=1e-12)


def test_empirical_robust_fit_converges_to_tolerance():
    env = make_env(preset("E3"), 2)
    anc = np.full(env.spec.d, 0.3)
    atoms = env.atoms("online", anc)
    w = np.random.default_rng(0).multinomial(2048, atoms.p0) / 2048
    for obj, r in (("kl", 0.05), ("chi2", 0.05), ("w2", 0.1), ("w2_surrogate", 0.1), ("kl_tau", 1.0)):
        res = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0, obj, r, gtol=1e-12)
        assert res.converged and res.grad_norm <= 1e-12


def _objective_value(obj, radius, theta, anc, atoms, w):
    from simlab.objectives.rebel import (f_rebel_value_grad_hess, rebel_value_grad_hess,
                                         w2_rebel_value_grad_hess)
    if obj == "rebel":
        return rebel_value_grad_hess(theta, anc, 1.0, atoms.dphi, atoms.dr, w)[0]
    if obj == "w2":
        return w2_rebel_value_grad_hess(theta, anc, 1.0, atoms.dphi, atoms.dr, w, radius)[0]
    return f_rebel_value_grad_hess(theta, anc, 1.0, atoms.dphi, atoms.dr, w, obj, radius)[0]


@pytest.mark.parametrize("seed", range(5))
def test_excess_risk_sandwich(seed):
    """Identity 23: (kappa/2)||theta_n - theta*||^2 <= R(theta_n) - R(theta*) <= [R - R_n](theta_n) +
    [R_n - R](theta*), kappa = 2 lambda_Sigma/eta^2 (left side for the nominal loss, whose kappa is exact)."""
    env = make_env(preset("E3"), seed)
    anc = np.random.default_rng(seed).standard_normal(env.spec.d) * 0.5
    atoms = env.atoms("online", anc)
    w = np.random.default_rng(seed + 10).multinomial(4096, atoms.p0) / 4096
    lam = atoms.coverage()[0]
    for obj, radius in (("rebel", 0.0), ("kl", 0.05), ("chi2", 0.05), ("w2", 0.1)):
        star = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0, obj, radius, gtol=1e-12).x
        hat = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0, obj, radius, gtol=1e-12).x
        R = lambda t: _objective_value(obj, radius, t, anc, atoms, atoms.p0)
        Rn = lambda t: _objective_value(obj, radius, t, anc, atoms, w)
        excess = R(hat) - R(star)
        assert excess <= (R(hat) - Rn(hat)) + (Rn(star) - R(star)) + 1e-12
        if obj == "rebel":
            assert lam * np.sum((hat - star) ** 2) <= excess + 1e-12


def test_robust_value_monotone_in_radius():
    """Identity 22: the robust value is nondecreasing in the radius and equals the nominal value at 0."""
    env = make_env(preset("E3"), 0)
    anc = np.zeros(env.spec.d)
    atoms = env.atoms("online", anc)
    theta = anc + env.w_star
    nominal = _objective_value("rebel", 0.0, theta, anc, atoms, atoms.p0)
    for obj in ("kl", "chi2"):
        vals = [_objective_value(obj, r, theta, anc, atoms, atoms.p0) for r in (0.0, 1e-3, 1e-2, 0.1, 1.0)]
        assert vals[0] == pytest.approx(nominal, rel=1e-12)
        assert np.all(np.diff(vals) >= -1e-12)
    w2 = [_objective_value("w2", r, theta, anc, atoms, atoms.p0) ** 2 for r in (0.0, 0.01, 0.1)]
    assert w2[0] == pytest.approx(nominal, rel=1e-12) and np.all(np.diff(w2) > 0)
