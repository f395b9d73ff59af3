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
