"""REBEL / DRO-REBEL objectives (docs/theory/rebel.md §4; identities 4, 5, 17, 19-21 of docs/theory/identities.md §8)."""
import numpy as np
import pytest
from scipy.optimize import minimize, minimize_scalar

from simlab.dro import chi2_worst_case, w2_margin_worst_case
from simlab.env import make_env, preset
from simlab.objectives.dpo import dpo_population_minimizer
from simlab.dro.chi2_code import chi2_code_dual
from simlab.objectives.rebel import (chi2_rebel_code_loss_gradient,
                                     f_rebel_value_grad_hess, kl_rebel_non_detached_gradient,
                                     kl_rebel_penalized_value_grad_hess, rebel_fixed_point, rebel_losses,
                                     rebel_ols, rebel_value_grad_hess, w2_rebel_surrogate_value_grad_hess,
                                     w2_rebel_threshold, w2_rebel_value_grad_hess)
from simlab.solvers.rebel import fit_rebel
from tests.taylor import assert_taylor

SEEDS = range(5)


def _instance(seed, n=40, d=3, eta=0.7):
    rng = np.random.default_rng(seed)
    dphi = rng.standard_normal((n, d))
    dr = dphi @ rng.standard_normal(d) + 0.5 * rng.standard_normal(n) ** 2
    w = rng.dirichlet(np.ones(n))
    anc = rng.standard_normal(d)
    theta = anc + eta * rng.standard_normal(d)
    return dphi, dr, w, anc, theta, eta


def _fd_hessian(grad, x, h=1e-5):
    H = np.array([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(x.size)])
    return 0.5 * (H + H.T)


def _check_vgh(vgh, theta):
    assert_taylor(lambda t: vgh(t)[0], lambda t: vgh(t)[1], theta)
    H = vgh(theta)[2]
    H_fd = _fd_hessian(lambda t: vgh(t)[1], theta)
    assert np.max(np.abs(H - H_fd)) <= 1e-6 * (1 + np.max(np.abs(H)))


@pytest.mark.parametrize("seed", SEEDS)
def test_value_grad_hess_are_consistent(seed):
    dphi, dr, w, anc, theta, eta = _instance(seed)
    _check_vgh(lambda t: rebel_value_grad_hess(t, anc, eta, dphi, dr, w), theta)
    assert rebel_value_grad_hess(theta, anc, eta, dphi, dr, w)[0] == pytest.approx(
        w @ rebel_losses(theta, anc, eta, dphi, dr), rel=1e-13)
    _check_vgh(lambda t: w2_rebel_value_grad_hess(t, anc, eta, dphi, dr, w, 0.2), theta)
    _check_vgh(lambda t: w2_rebel_surrogate_value_grad_hess(t, anc, eta, dphi, dr, w, 0.2), theta)
    _check_vgh(lambda t: kl_rebel_penalized_value_grad_hess(t, anc, eta, dphi, dr, w, 2.0), theta)
    for div in ("kl", "chi2"):
        _check_vgh(lambda t: f_rebel_value_grad_hess(t, anc, eta, dphi, dr, w, div, 0.1), theta)


@pytest.mark.parametrize("seed", SEEDS)
def test_w2_closed_form_equals_dual_and_brute_force(seed):
    """Identity 17: (rms e + eps ||u||)^2 = 1-D dual = brute-force perturbation; exact - surrogate = eps^2||u||^2."""
    dphi, dr, w, anc, theta, eta = _instance(seed, n=6, d=2)
    eps = 0.3
    u = (theta - anc) / eta
    s = np.linalg.norm(u)
    e = dphi @ u - dr
    exact = w2_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, eps)[0] ** 2
    # 1-D dual inf_{lam > s^2} lam eps^2 + sum p e^2 lam/(lam - s^2), solved independently
    dual = minimize_scalar(lambda t: (s**2 + np.exp(t)) * eps**2 + w @ e**2 * (s**2 + np.exp(t)) / np.exp(t),
                           bounds=(-20, 20), method="bounded", options={"xatol": 1e-12})
    assert exact == pytest.approx(dual.fun, rel=1e-9)
    assert exact == pytest.approx(w2_margin_worst_case(dphi @ u, s, w, eps, "squared", dr).value, rel=1e-12)
    # brute force over all feature moves D (A, d) with sum_j w_j ||D_j||^2 <= eps^2
    best = -np.inf
    rng = np.random.default_rng(seed)
    for _ in range(6):
        x0 = rng.standard_normal(dphi.size)
        x0 *= eps / np.sqrt(w @ np.sum(x0.reshape(dphi.shape) ** 2, axis=1))
        res = minimize(lambda D: -(w @ (e + D.reshape(dphi.shape) @ u) ** 2), x0, method="SLSQP",
                       constraints=[{"type": "ineq", "fun": lambda D: eps**2 - w @ np.sum(D.reshape(dphi.shape) ** 2, axis=1)}],
                       options={"ftol": 1e-14, "maxiter": 500})
        best = max(best, -res.fun)
    assert best == pytest.approx(exact, rel=1e-8)
    surrogate = w2_rebel_surrogate_value_grad_hess(theta, anc, eta, dphi, dr, w, eps)[0]
    assert exact - surrogate == pytest.approx(eps**2 * s**2, rel=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_noiseless_ols_recovers_mirror_descent_target(seed):
    """Identity 5 (first part): noiseless realizable REBEL = theta_anc + eta w* (docs/theory/rebel.md §4.1)."""
    env = make_env(preset("E2", noise="none", sigma=0.0), seed)
    theta_t = np.random.default_rng(seed).standard_normal(env.spec.d)
    atoms = env.atoms("online", theta_t)
    for w in (atoms.p0, np.random.default_rng(seed).multinomial(200, atoms.p0) / 200):
        got = rebel_ols(theta_t, 0.5, atoms.dphi, atoms.dr, w)
        assert np.max(np.abs(got - rebel_fixed_point(theta_t, 0.5, env.w_star))) <= 1e-10


def test_anchor_ref_fixed_point_matches_dpo_iff_eta_is_inverse_beta():
    """Identity 4: anchor=ref fixed point theta_ref + eta w*; equals the DPO minimiser iff eta = 1/beta."""
    env = make_env(preset("E2", noise="none", sigma=0.0, theta_ref_norm=0.5, beta=2.0), 3)
    atoms = env.atoms("online", env.theta_ref + 0.3)
    dpo = dpo_population_minimizer(env.theta_ref, env.beta, env.w_star)
    for eta, equal in ((0.5, True), (0.1, False)):
        fixed = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, env.theta_ref, eta).x
        assert np.max(np.abs(fixed - rebel_fixed_point(env.theta_ref, eta, env.w_star))) <= 1e-10
        assert (np.max(np.abs(fixed - dpo)) <= 1e-10) == equal


def test_w2_threshold_all_or_nothing():
    """Identity 19: theta* = theta_anc at 1.1 x threshold, != theta_anc at 0.9 x threshold."""
    for seed in SEEDS:
        env = make_env(preset("E3"), seed)
        anc = np.random.default_rng(seed).standard_normal(env.spec.d)
        atoms = env.atoms("online", anc)
        thr = w2_rebel_threshold(atoms.dphi, atoms.dr, atoms.p0)
        above = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0, "w2", 1.1 * thr).x
        below = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0, "w2", 0.9 * thr).x
        assert np.max(np.abs(above - anc)) <= 1e-8
        assert np.linalg.norm(below - anc) > 1e-3
        if seed < 2:  # the Newton solution is a genuine minimiser of the non-smooth objective (scipy check)
            f = lambda t: w2_rebel_value_grad_hess(t, anc, 1.0, atoms.dphi, atoms.dr, atoms.p0, 0.9 * thr)[0]
            ref = minimize(f, below + 0.01, method="Nelder-Mead",
                           options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 20000})
            assert f(below) <= ref.fun + 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_symmetry_identity_holds_on_e2_and_fails_on_e3(seed):
    """Identity 20: KL/chi^2 robust population minimisers equal theta° under iid pairs with symmetric
    noise (E2) for every radius; misspecification (E3) breaks it; W2 shrinks toward the anchor."""
    for name in ("E2", "E3"):
        env = make_env(preset(name), seed)
        anc = np.random.default_rng(seed).standard_normal(env.spec.d)
        anc /= np.linalg.norm(anc)
        atoms = env.atoms("online", anc)
        nominal = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0).x
        if name == "E2":
            assert np.max(np.abs(nominal - (anc + env.w_star))) <= 1e-10
        for div in ("kl", "chi2"):
            for eps in (0.01, 0.1):
                robust = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0, div, eps, gtol=1e-12).x
                gap = np.linalg.norm(robust - nominal)
                assert gap <= 1e-10 if name == "E2" else gap**2 > 1e-4
        thr = w2_rebel_threshold(atoms.dphi, atoms.dr, atoms.p0)
        w2 = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, anc, 1.0, "w2", 0.5 * thr).x
        assert np.linalg.norm(w2 - anc) < np.linalg.norm(nominal - anc)


def test_strong_convexity_midpoint():
    """Identity 21: R(mid) <= (R1 + R2)/2 - (kappa/8)||theta1 - theta2||^2 with kappa = 2 lambda_Sigma/eta^2
    (robust objectives are suprema of kappa-strongly convex E_Q e^2 when Q keeps lambda_min >= lambda_Sigma;
    checked for the nominal loss and for the W2 square, whose ball moves only the features)."""
    rng = np.random.default_rng(0)
    dphi, dr, w, anc, _, eta = _instance(1)
    lam = np.linalg.eigvalsh((dphi * w[:, None]).T @ dphi)[0]
    kappa = 2 * lam / eta**2
    for _ in range(20):
        t1, t2 = anc + rng.standard_normal(3), anc + rng.standard_normal(3)
        R = lambda t: rebel_value_grad_hess(t, anc, eta, dphi, dr, w)[0]
        assert R(0.5 * (t1 + t2)) <= 0.5 * (R(t1) + R(t2)) - kappa / 8 * np.sum((t1 - t2) ** 2) + 1e-12


@pytest.mark.parametrize("seed", range(3))
def test_non_detached_kl_gradient_is_autograd_of_softmax_weighted_loss(seed):
    dphi, dr, w, anc, theta, eta = _instance(seed)
    l0 = rebel_losses(theta, anc, eta, dphi, dr)
    tau = float(np.sqrt(w @ (l0 - w @ l0) ** 2))  # tau ~ the loss spread: the gap is O(1) (docs/theory/dro.md §2.4)

    def G(t):
        l = rebel_losses(t, anc, eta, dphi, dr)
        P = w * np.exp((l - l.max()) / tau)
        return (P / P.sum()) @ l

    g = kl_rebel_non_detached_gradient(theta, anc, eta, dphi, dr, w, tau)
    assert_taylor(G, lambda t: kl_rebel_non_detached_gradient(t, anc, eta, dphi, dr, w, tau), theta)
    envelope = kl_rebel_penalized_value_grad_hess(theta, anc, eta, dphi, dr, w, tau)[1]
    assert np.linalg.norm(g - envelope) > 1e-2 * np.linalg.norm(envelope)


@pytest.mark.parametrize("seed", range(3))
def test_chi2_code_variant(seed):
    """Identity 15: rho_chi > 1/2 gives the exact chi^2 value at eps = rho_chi - 1/2; rho_chi < 1/2 gives
    zeta* = min l - 1 and weights summing far from 1."""
    dphi, dr, w, anc, theta, eta = _instance(seed)
    l = rebel_losses(theta, anc, eta, dphi, dr)
    for rho in (0.6, 1.0, 3.0):
        exact = chi2_worst_case(l, w, rho - 0.5)
        g = lambda z: z + np.sqrt(2 * rho * (w @ np.maximum(l - z, 0) ** 2))
        cont = minimize_scalar(g, bounds=(exact.zeta - 10, l.max()), method="bounded",
                               options={"xatol": 1e-12})
        assert cont.fun == pytest.approx(exact.value, abs=1e-8 * (1 + abs(exact.value)))
        # the code scans only the candidate set, so its value is an upper bound of the exact one
        assert chi2_code_dual(l, w, rho).value >= exact.value - 1e-12
    # brute force of the code's O(n^2) scan
    for rho in (0.01, 0.6, 2.0):
        cands = np.concatenate([[l.min() - 1], np.unique(l), [l.max() + 1]])
        g = [z + np.sqrt(2 * rho * (w @ np.maximum(l - z, 0) ** 2)) for z in cands]
        assert chi2_code_dual(l, w, rho).value == pytest.approx(min(g), rel=1e-12)
    small = chi2_code_dual(l, w, 0.01)
    assert small.zeta == pytest.approx(l.min() - 1.0, abs=1e-14)
    assert abs(small.weights.sum() - 1.0) > 0.1


@pytest.mark.parametrize("rho", [0.01, 1.0])
def test_chi2_code_gradient_is_autograd_with_frozen_zeta(rho):
    dphi, dr, w, anc, theta, eta = _instance(4)
    zeta = chi2_code_dual(rebel_losses(theta, anc, eta, dphi, dr), w, rho).zeta

    def L(t):  # the code's loss with zeta frozen, lambda and w recomputed
        l = rebel_losses(t, anc, eta, dphi, dr)
        a = np.maximum(l - zeta, 0)
        lam = max(np.sqrt(2 * rho * (w @ a**2)), 1e-6)
        return (w * a / lam) @ l

    value, grad = chi2_rebel_code_loss_gradient(theta, anc, eta, dphi, dr, w, rho)
    assert value == pytest.approx(L(theta), rel=1e-12)
    h = 1e-6
    fd = np.array([(L(theta + h * e) - L(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    assert np.max(np.abs(fd - grad)) <= 1e-6 * (1 + np.max(np.abs(grad)))


def test_bad_input_names_the_field():
    dphi, dr, w, anc, theta, eta = _instance(0)
    with pytest.raises(ValueError, match="eta"):
        rebel_value_grad_hess(theta, anc, -1.0, dphi, dr, w)
    with pytest.raises(ValueError, match="objective"):
        fit_rebel(dphi, dr, w, anc, eta, "ipo")
    with pytest.raises(ValueError, match="radius"):
        fit_rebel(dphi, dr, w, anc, eta, "kl", -0.1)
    with pytest.raises(ValueError, match="rho_chi"):
        chi2_code_dual(np.ones(3), np.ones(3) / 3, 0.0)
    with pytest.raises(ValueError, match="dr"):
        rebel_ols(anc, eta, dphi, dr[:-1], w)
