"""REBEL exact solvers and the online loop (docs/theory/rebel.md §4.1, §4.9; identity 5 of docs/theory/identities.md §8)."""
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


def _near_threshold_instance():
    """Issue 12 defect 7: E2 with skewed noise sigma = 3, seed 3, ||theta_t|| = 1, n = 2^14."""
    from simlab.env.sampling import multinomial_counts
    from simlab.objectives.rebel import w2_rebel_threshold

    env = make_env(preset("E2", w_norm=2, sigma=3, noise="skewed"), 3)
    rng = np.random.default_rng(3)
    theta_t = rng.standard_normal(env.spec.d)
    theta_t /= np.linalg.norm(theta_t)
    atoms = env.atoms("online", theta_t)
    w = multinomial_counts(atoms.p0, 2**14, rng) / 2**14
    return atoms, w, theta_t, w2_rebel_threshold(atoms.dphi, atoms.dr, w)


@pytest.mark.parametrize("objective", ["w2", "w2_surrogate"])
def test_w2_fit_just_below_the_collapse_threshold_finds_the_minimiser(objective):
    """Defect 7: below the threshold a minimiser exists (u != 0); Newton from the OLS point fails there
    (the kink's curvature radius/||u||), the ridge-path start finds it to gtol, and BFGS agrees."""
    from scipy.optimize import minimize

    from simlab.objectives.rebel import w2_rebel_surrogate_value_grad_hess, w2_rebel_value_grad_hess
    from simlab.solvers.exact import NoMinimizerError, newton

    atoms, w, anc, thr = _near_threshold_instance()
    vgh = w2_rebel_value_grad_hess if objective == "w2" else w2_rebel_surrogate_value_grad_hess
    failures = 0
    for frac in (0.9, 0.93, 0.95, 0.97, 0.99, 0.999):
        radius = frac * thr
        fgh = lambda th: vgh(th, anc, 1.0, atoms.dphi, atoms.dr, w, radius)
        ols = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0).x
        try:
            newton(fgh, ols, max_iter=30)
        except NoMinimizerError:
            failures += 1
        res = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0, objective, radius)
        assert res.converged and res.grad_norm <= 1e-10 and np.linalg.norm(res.x - anc) > 0
        ref = minimize(lambda th: fgh(th)[:2], res.x + 1e-3, jac=True, method="BFGS", options={"gtol": 1e-11})
        assert res.fun <= ref.fun + 1e-14 * abs(ref.fun) and np.linalg.norm(res.x - ref.x) <= 1e-5
        assert res.fun < fgh(anc)[0]  # strictly better than the anchor
    if objective == "w2":
        assert failures > 0  # the instance exercises the fallback (Newton from OLS alone fails)


def test_w2_surrogate_kink_test_at_the_anchor():
    """The code's surrogate E e^2 + 2 rho0 ||u|| rms(e) has the collapse threshold of the exact W2
    objective (same subgradient condition at u = 0): at and above it fit_rebel returns theta_anc, which
    no direction improves; just below, the minimiser leaves theta_anc."""
    from simlab.objectives.rebel import w2_rebel_surrogate_value_grad_hess

    atoms, w, anc, thr = _near_threshold_instance()
    rng = np.random.default_rng(0)
    for radius in (thr, 1.01 * thr, 3.0 * thr):
        res = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0, "w2_surrogate", radius)
        assert np.array_equal(res.x, anc) and res.iterations == 0
        f0 = w2_rebel_surrogate_value_grad_hess(anc, anc, 1.0, atoms.dphi, atoms.dr, w, radius)[0]
        assert res.fun == pytest.approx(f0, rel=1e-14)
        for v in rng.standard_normal((20, anc.size)):
            for t in (1e-6, 1e-4, 1e-2):
                th = anc + t * v / np.linalg.norm(v)
                assert w2_rebel_surrogate_value_grad_hess(th, anc, 1.0, atoms.dphi, atoms.dr, w, radius)[0] >= f0 - 1e-15
    below = fit_rebel(atoms.dphi, atoms.dr, w, anc, 1.0, "w2_surrogate", 0.99 * thr)
    assert np.linalg.norm(below.x - anc) > 0


def test_fit_rebel_rejects_bad_weights_and_lengths():
    """Defect 9: dr of the wrong length and negative weights name the argument (no IndexError, no
    silent filtering that later blames a rank-deficient design)."""
    atoms, w, anc, _ = _near_threshold_instance()
    with pytest.raises(ValueError, match="dr must have shape"):
        fit_rebel(atoms.dphi, atoms.dr[:-1], w, anc, 1.0, "w2", 0.01)
    bad = w.copy()
    bad[np.argmax(bad)] = -0.1
    with pytest.raises(ValueError, match=r"w \(atom weights\) must be >= 0"):
        fit_rebel(atoms.dphi, atoms.dr, bad, anc, 1.0)
    with pytest.raises(ValueError, match="eta"):
        fit_rebel(atoms.dphi, atoms.dr, w, anc, 0.0)
