"""REBEL / DRO-REBEL solvers: exact per-iteration minimisers and the online loop (docs/theory/rebel.md §4.1-4.5, §4.9).

``fit_rebel`` minimises one iteration's objective over weighted atoms exactly (w = p0: the population
robust minimiser; w = N/n: the empirical one):

* ``"rebel"``: the OLS closed form;
* ``"w2"``: exact W2, square-root regression with an update-size penalty (the anchor if the radius is
  above the threshold ||E[dr dphi]||/rms(dr), else Newton from the OLS point);
* ``"w2_surrogate"``: the code's gradient-norm surrogate (Newton from the OLS point);
* ``"kl"`` (constrained ball), ``"kl_tau"`` (fixed temperature), ``"chi2"`` (exact dual): Newton with the
  toolbox's Danskin gradients and exact Hessians, from the OLS point, to ||grad|| <= gtol.

``online_rebel_exact`` runs the online loop of docs/theory/rebel.md §4.9 with an exact inner solve; ``online_rebel_sgd``
runs the same loop with SGD/Adam inner steps on each fresh batch, the whole loop in one numba call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.dro.chi2 import chi2_worst_case_kernel
from simlab.dro.chi2_code import chi2_code_coefficients_kernel
from simlab.dro.danskin import non_detached_coefficients_kernel
from simlab.dro.kl import kl_penalized_kernel, kl_worst_case_kernel
from simlab.env.environment import Env
from simlab.env.sampling import guide_table, guided_draw, inverse_cdf_draw, multinomial_counts
from simlab.linalg import symmetric_lambda_min_kernel
from simlab.objectives.rebel import (ROBUST_OBJECTIVES, check_anchor, f_rebel_value_grad_hess,
                                     kl_rebel_penalized_value_grad_hess, rebel_ols, robust_rebel_vgh_kernel,
                                     w2_rebel_surrogate_value_grad_hess, w2_rebel_threshold,
                                     w2_rebel_value_grad_hess)
from simlab.policy import kl_to, log_policy_kernel, policy
from simlab.solvers.exact import NewtonResult, NoMinimizerError, newton
from simlab.validation import (check_array, check_choice, check_float, check_generator, check_int,
                               check_weights)

OBJECTIVES = ("rebel", "w2", "w2_surrogate", "kl", "kl_tau", "chi2")


def fit_rebel(dphi, dr, w, theta_anc, eta, objective: str = "rebel", radius: float = 0.0,
              gtol: float = 1e-10, max_iter: int = 30) -> NewtonResult:
    """argmin_theta of one REBEL/DRO-REBEL iteration's objective over atoms with weights ``w``.

    ``radius`` is eps for w2/kl/chi2, rho0 for w2_surrogate and tau for kl_tau (docs/theory/rebel.md
    §4.3-4.5). Returns a :class:`NewtonResult` (iterations 0 and fun NaN for the OLS closed form, whose
    ``hess`` is the REBEL Hessian 2 E_w[dphi dphi^T]/eta^2; iterations 0 at a W2 collapse, whose
    ``hess`` is the smooth part at theta_anc).

    Both W2 objectives have a kink at theta_anc and collapse onto it iff radius >= ||E_w[dr dphi]|| /
    rms_w(dr) (:func:`simlab.objectives.rebel.w2_rebel_threshold`; the subgradient condition at u = 0
    is the same for the exact objective and the code's surrogate). Below the threshold the minimiser
    u* = (theta* - theta_anc)/eta != 0 lies on the ridge path u(lam) = (E dphi dphi^T + lam I)^{-1}
    E[dr dphi]; Newton starts from the OLS point, and if it fails (near the threshold ||u*|| is small and
    the kink's curvature radius/||u|| defeats the step), from the point of that path where the
    stationarity condition holds (a 1-D root in lam, :func:`_w2_ridge_path_update` below).

    Raises :class:`NoMinimizerError` on a rank-deficient weighted design or when Newton does not reach
    gtol in ``max_iter`` steps (observed for KL/chi^2 at large radii, eps ~ 1, where the empirical robust
    objective is pinned at the theta-independent loss (xi_a - xi_b)^2 of a = a' pairs and is not smooth).

    Parameters
    ----------
    dphi : array_like, shape (A, d)
        Feature differences phi(x, a) - phi(x, b) of the atoms.
    dr : array_like, shape (A,)
        Observed reward differences of the atoms.
    w : array_like, shape (A,)
        Atom weights (>= 0, positive sum; normalised here, zero-weight atoms dropped).
    theta_anc : array_like, shape (d,)
        The regression anchor (theta_t or theta_ref, docs/theory/rebel.md §4.1).
    eta : float
        REBEL step size (> 0); the residual is e = dphi^T (theta - theta_anc)/eta - dr.
    objective : str, default "rebel"
        One of ``OBJECTIVES``: "rebel", "w2", "w2_surrogate", "kl", "kl_tau", "chi2".
    radius : float, default 0.0
        Robustness radius (>= 0; > 0 for "kl_tau"); 0 gives the REBEL closed form for every other
        objective.
    gtol : float, default 1e-10
        Gradient-norm tolerance of Newton.
    max_iter : int, default 30
        Newton-step budget.

    Returns
    -------
    NewtonResult
        The minimiser ``x`` with value, gradient norm, Hessian and iteration count (see above).

    Raises
    ------
    NoMinimizerError
        Rank-deficient weighted design, or Newton did not converge.
    ValueError
        An argument out of range (e.g. radius 0 with "kl_tau").
    """
    check_choice("objective", objective, OBJECTIVES)
    dphi = check_array("dphi", dphi, ndim=2)
    n_atoms, d = dphi.shape
    dr = check_array("dr", dr, shape=(n_atoms,))
    w = check_weights("w", w, n_atoms)
    theta_anc = check_array("theta_anc", theta_anc, shape=(d,))
    eta = check_float("eta", eta, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0)
    keep = np.flatnonzero(w > 0)
    dphi, dr, w = dphi[keep], dr[keep], w[keep] / w[keep].sum()
    gram = (dphi * w[:, None]).T @ dphi
    ev = np.linalg.eigvalsh(gram)
    if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
        raise NoMinimizerError(f"the weighted pair design is rank deficient (lambda_min = {ev[0]:.2e})")
    theta_ols = rebel_ols(theta_anc, eta, dphi, dr, w, check_input=False)  # validated above
    if objective == "rebel" or (radius == 0.0 and objective != "kl_tau"):
        return NewtonResult(theta_ols, float("nan"), 0.0, 0, True, 2.0 * gram / eta**2)
    if objective == "kl_tau":
        if radius == 0.0:
            raise ValueError("radius (tau) must be > 0 for objective 'kl_tau'")
        fgh = lambda th: kl_rebel_penalized_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)[:3]
    elif objective in ROBUST_OBJECTIVES:
        fgh = _robust_fgh(ROBUST_OBJECTIVES.index(objective), theta_anc, eta, dphi, dr, w, radius)
    else:
        fgh = lambda th: w2_rebel_surrogate_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    if objective in ("w2", "w2_surrogate"):
        if radius >= w2_rebel_threshold(dphi, dr, w):
            ms = w @ dr**2  # the objective at theta_anc: rms_w(dr) (exact W2) or E_w dr^2 (surrogate)
            value = ms if objective == "w2_surrogate" else np.sqrt(ms)
            return NewtonResult(theta_anc.copy(), float(value), 0.0, 0, True, fgh(theta_anc)[2])
    try:
        return newton(fgh, theta_ols, gtol=gtol, max_iter=max_iter)
    except NoMinimizerError:
        if objective not in ("w2", "w2_surrogate"):
            raise
    start = theta_anc + eta * _w2_ridge_path_update(dphi, dr, w, radius, surrogate=objective == "w2_surrogate")
    return newton(fgh, start, gtol=gtol, max_iter=max_iter)


def _robust_fgh(code: int, theta_anc, eta, dphi, dr, w, radius):
    """theta -> (value, grad, hess) of a validated W2 / KL / chi^2 objective (``w`` a law on its
    support) by one :func:`simlab.objectives.rebel.robust_rebel_vgh_kernel` call per point."""
    dphi, dr, w = np.ascontiguousarray(dphi), np.ascontiguousarray(dr), np.ascontiguousarray(w)
    n, d = dphi.shape
    e, q = np.empty(n), np.empty(n)

    def fgh(theta):
        grad, hess = np.empty(d), np.empty((d, d))
        value = robust_rebel_vgh_kernel(code, (theta - theta_anc) / eta, eta, dphi, dr, w, radius, e, q,
                                        grad, hess)
        return float(value), grad, hess

    return fgh


def _w2_ridge_path_update(dphi, dr, w, radius: float, surrogate: bool = False) -> np.ndarray:
    """The stationary point u* != 0 of a W2-REBEL objective on the ridge path (derived here).

    With A = E_w[dphi dphi^T], b = E_w[dr dphi] and rms(u) = sqrt(E_w (dphi^T u - dr)^2), stationarity of
    rms(u) + eps ||u|| (exact W2) reads (A + lam I) u = b with lam = eps rms/||u||, and of the code's
    surrogate E_w e^2 + 2 rho0 ||u|| rms(u) it reads the same with lam = rho0 rms^2/(||u|| (rms +
    rho0 ||u||)). So u* = u(lam*) on the path u(lam) = (A + lam I)^{-1} b, where lam* is the root of
    phi(lam) = lam ||u|| - eps rms (exact) or lam ||u|| (rms + rho0 ||u||) - rho0 rms^2 (surrogate);
    phi(0+) = -radius rms_OLS (times rms_OLS) < 0 and phi(inf) = ||b|| - radius sqrt(E dr^2) (times
    sqrt(E dr^2)) > 0 exactly below the collapse threshold, so the root is bracketed. Solved by Brent's
    method in log lam (one eigendecomposition of A). Raises :class:`NoMinimizerError` if no bracket is
    found (radius at or above the threshold, or a perfect OLS fit).
    """
    from scipy.optimize import brentq

    A = (dphi * w[:, None]).T @ dphi
    b = dphi.T @ (w * dr)
    a, Q = np.linalg.eigh(A)
    bt = Q.T @ b

    def phi(log_lam):
        lam = np.exp(log_lam)
        u = Q @ (bt / (a + lam))
        e = dphi @ u - dr
        rms = np.sqrt(w @ e**2)
        nu = np.linalg.norm(u)
        if surrogate:
            return lam * nu * (rms + radius * nu) - radius * rms**2
        return lam * nu - radius * rms

    scale = max(a[-1], 1e-300)
    lo, hi = np.log(scale) - 2.0, np.log(scale) + 2.0
    for _ in range(200):
        if phi(lo) < 0.0:
            break
        lo -= 2.0
    for _ in range(200):
        if phi(hi) > 0.0:
            break
        hi += 2.0
    if not (phi(lo) < 0.0 < phi(hi)):
        raise NoMinimizerError("the W2 stationarity condition has no root on the ridge path "
                               "(radius at or above the collapse threshold, or a perfect OLS fit)")
    log_lam = brentq(phi, lo, hi, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500)
    return Q @ (bt / (a + np.exp(log_lam)))


def population_hessian(dphi, dr, w, theta, theta_anc, eta, objective: str, radius: float) -> np.ndarray:
    """Exact Hessian of the population objective at ``theta`` (the H of the H-norm, docs/theory/claims.md §7.1).

    Parameters
    ----------
    dphi : numpy.ndarray, shape (A, d)
        Feature differences of the atoms.
    dr : numpy.ndarray, shape (A,)
        Observed reward differences.
    w : array_like, shape (A,)
        Atom weights (a law: not renormalised here).
    theta : numpy.ndarray, shape (d,)
        The point (typically the population minimiser).
    theta_anc : numpy.ndarray, shape (d,)
        The regression anchor.
    eta : float
        REBEL step size.
    objective : str
        One of ``OBJECTIVES``.
    radius : float
        Robustness radius (0 gives the REBEL Hessian).

    Returns
    -------
    numpy.ndarray, shape (d, d)
        The Hessian; 2 E_w[dphi dphi^T]/eta^2 for "rebel" or radius 0.
    """
    check_choice("objective", objective, OBJECTIVES)
    w = np.asarray(w, dtype=np.float64)
    if objective == "rebel" or radius == 0.0:
        return 2.0 * (dphi * w[:, None]).T @ dphi / eta**2
    if objective == "w2":
        return w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "w2_surrogate":
        return w2_rebel_surrogate_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "kl_tau":
        return kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    return f_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, objective, radius)[2]


# the online loops allocate (T + 1) x d histories and O(n) batch work: bounded before allocation
MAX_ITERATIONS = 2**24
MAX_BATCH = 2**24


def _check_env(env) -> None:
    if not isinstance(env, Env):
        raise ValueError(f"env must be an Env (simlab.env.make_env), got {type(env).__name__}")


def _check_alphas(alphas) -> np.ndarray:
    alphas = check_array("alphas", alphas, ndim=1)
    if alphas.size == 0 or np.any((alphas < 0.0) | (alphas > 1.0)):
        raise ValueError("alphas must be a non-empty 1-D array of mixture weights in [0, 1]")
    return alphas


@dataclass(frozen=True)
class OnlineLog:
    """Per-iteration record of an online run (docs/theory/rebel.md §4.9): iterates theta_0..theta_T (T+1, d);
    lambda_min of the pair second moment under the sampler at theta_t (T,); expected reward
    J(theta_t; w(alpha)) for every alpha of the grid (T+1, n_alpha); E_x KL(pi_theta_t || pi_ref) (T+1,);
    the number of iterations whose exact update failed (theta kept; 0 for the SGD loop)."""

    theta: np.ndarray
    lambda_min: np.ndarray
    alphas: np.ndarray
    reward: np.ndarray
    kl_ref: np.ndarray
    failures: int = 0


def policy_metrics(env: Env, theta: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, float]:
    """(J(theta; w(alpha)) for each alpha (linear reward, docs/theory/environment.md §1.7), E_x KL(pi_theta || pi_ref)).

    J(theta; w) = w^T E_x E_{a ~ pi_theta} phi(x, a) with w(alpha) = alpha w_a + (1 - alpha) w_b.

    Parameters
    ----------
    env : simlab.env.environment.Env
        The environment (features, prompt law, reference policy, reward mixture).
    theta : numpy.ndarray, shape (d,)
        Policy parameter.
    alphas : numpy.ndarray, shape (n_alpha,)
        Mixture weights in [0, 1].

    Returns
    -------
    reward : numpy.ndarray, shape (n_alpha,)
        J(theta; w(alpha)) for each alpha.
    kl_ref : float
        E_x KL(pi_theta(.|x) || pi_ref(.|x)).
    """
    pi = policy(theta, env.phi)
    mean_phi = np.einsum("x,xa,xad->d", env.p_x, pi, env.phi)
    ws = np.array([env.mixture_reward(float(a)) for a in alphas])
    return ws @ mean_phi, kl_to(theta, env.theta_ref, env.phi, env.p_x)


def online_rebel_exact(env: Env, T: int, n: int, eta: float, rng: np.random.Generator,
                       objective: str = "rebel", radius: float = 0.0, anchor: str = "prev",
                       sampler: str = "online", mix: float = 0.5, alphas=(0.0, 0.5, 1.0),
                       theta0: np.ndarray | None = None) -> OnlineLog:
    """The online loop of docs/theory/rebel.md §4.9 with the exact per-iteration minimiser (``fit_rebel``).

    Each iteration draws N ~ Multinomial(n, p0(theta_t)) over the atoms of ``sampler`` ("online" or
    "online_mixed") and sets theta_{t+1} = argmin of the empirical objective with anchor theta_t (prev) or
    theta_ref (ref). A failed update (rank-deficient batch or Newton failure) keeps theta_{t+1} = theta_t
    and is counted in ``failures``.

    Parameters
    ----------
    env : simlab.env.environment.Env
        The environment.
    T : int
        Number of iterations, in [1, 2**24].
    n : int
        Pairs per iteration (>= 1).
    eta : float
        REBEL step size (> 0).
    rng : numpy.random.Generator
        Source of the multinomial batch counts.
    objective : str, default "rebel"
        One of ``OBJECTIVES`` (as :func:`fit_rebel`).
    radius : float, default 0.0
        Robustness radius (>= 0).
    anchor : str, default "prev"
        "prev" (anchor theta_t) or "ref" (anchor theta_ref).
    sampler : str, default "online"
        "online" (a, b ~ pi_theta) or "online_mixed" (b from the mixture with uniform).
    mix : float, default 0.5
        Uniform share of the second response under "online_mixed", in [0, 1].
    alphas : array_like, default (0.0, 0.5, 1.0)
        Reward-mixture weights in [0, 1] at which J is logged.
    theta0 : numpy.ndarray, shape (d,), optional
        Start (default theta_ref).

    Returns
    -------
    OnlineLog
        Iterates, per-iteration coverage lambda_min, logged rewards and KL, and the failure count.
    """
    _check_env(env)
    T = check_int("T", T, 1, MAX_ITERATIONS)
    n = check_int("n", n, 1)
    eta = check_float("eta", eta, 0.0, low_open=True)
    rng = check_generator("rng", rng)
    check_choice("objective", objective, OBJECTIVES)
    radius = check_float("radius", radius, 0.0)
    check_anchor(anchor)
    check_choice("sampler", sampler, ("online", "online_mixed"))
    mix = check_float("mix", mix, 0.0, 1.0)
    alphas = _check_alphas(alphas)
    theta = env.theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(env.spec.d,)).copy()
    thetas, lam, rew, kls, failures = [theta.copy()], [], [], [], 0
    r0, k0 = policy_metrics(env, theta, alphas)
    rew.append(r0)
    kls.append(k0)
    for _ in range(T):
        atoms = env.atoms(sampler, theta, mix)
        lam.append(atoms.coverage()[0])
        counts = multinomial_counts(atoms.p0, n, rng)
        anc = theta if anchor == "prev" else env.theta_ref
        try:
            theta = fit_rebel(atoms.dphi, atoms.dr, counts / n, anc, eta, objective, radius).x
        except NoMinimizerError:
            theta = theta.copy()
            failures += 1
        thetas.append(theta.copy())
        r, k = policy_metrics(env, theta, alphas)
        rew.append(r)
        kls.append(k)
    return OnlineLog(np.array(thetas), np.array(lam), alphas, np.array(rew), np.array(kls), failures)


# ---------------------------------------------------------------- numba online loop with SGD/Adam inner steps

SGD_OBJECTIVES = ("rebel", "w2", "w2_surrogate", "kl_tau", "kl", "chi2", "chi2_code")
OPTIMIZERS = ("sgd", "adam")
WEIGHTS = ("detached", "non_detached")
_SGD_CODE = {name: k for k, name in enumerate(SGD_OBJECTIVES)}


@kernel
def _policy_pass(theta: np.ndarray, phi: np.ndarray, p_x: np.ndarray, mix: float, logpi_ref: np.ndarray,
                 reward_weights: np.ndarray, logpi: np.ndarray, pi: np.ndarray, cdf_a: np.ndarray,
                 cdf_b: np.ndarray, mean_phi: np.ndarray, J: np.ndarray) -> float:
    """One pass over the atoms at theta: log pi_theta, pi_theta, the per-context CDFs of a ~ pi and
    b ~ (1 - mix) pi + mix uniform, and the logged metrics J[i] = w_i . E_x E_{a ~ pi} phi(x, a) for each
    linear reward w_i (rows of ``reward_weights``, docs/theory/environment.md §1.7; the formula of ``policy_metrics``).
    Returns E_x KL(pi_theta || pi_ref). mean_phi: (d,) work."""
    log_policy_kernel(theta, phi, logpi)
    n_x, n_y, d = phi.shape
    mean_phi[:] = 0.0
    kl = 0.0
    for x in range(n_x):
        acc = 0.0
        for a in range(n_y):
            pi[x, a] = np.exp(logpi[x, a])
            acc += pi[x, a]
            cdf_a[x, a] = acc
            cdf_b[x, a] = (1.0 - mix) * acc + mix * (a + 1.0) / n_y
            w = p_x[x] * pi[x, a]
            kl += w * (logpi[x, a] - logpi_ref[x, a])
            for k in range(d):
                mean_phi[k] += w * phi[x, a, k]
    for i in range(reward_weights.shape[0]):
        J[i] = 0.0
        for k in range(d):
            J[i] += reward_weights[i, k] * mean_phi[k]
    return kl


@kernel
def _pair_lambda_min(pi: np.ndarray, phi: np.ndarray, p_x: np.ndarray, mix: float, X: np.ndarray,
                     M: np.ndarray, S: np.ndarray, C: np.ndarray, diag: np.ndarray, off: np.ndarray,
                     v: np.ndarray, p: np.ndarray) -> float:
    """lambda_min of E[dphi dphi^T] for a ~ pi, b ~ (1 - mix) pi + mix uniform (mix = 0: online):
    sum_x p_x [E_a phi phi^T + E_b phi phi^T - m_a m_b^T - m_b m_a^T] = X^T X - C - C^T with the rows
    X[x, a] = sqrt(p_x (pi_a + pi_b)) phi(x, a) and C = sum_x p_x m_a(x) m_b(x)^T (two BLAS products).
    Work arrays: X (n_x n_y, d), M (2 n_x, d), S and C (d, d), diag, off, v, p (d,)."""
    n_x, n_y, d = phi.shape
    for x in range(n_x):
        M[x, :] = 0.0
        M[n_x + x, :] = 0.0
        for a in range(n_y):
            pa = pi[x, a]
            pb = (1.0 - mix) * pa + mix / n_y
            w = np.sqrt(p_x[x] * (pa + pb))
            for k in range(d):
                f = phi[x, a, k]
                M[x, k] += p_x[x] * pa * f
                M[n_x + x, k] += pb * f
                X[x * n_y + a, k] = w * f
    np.dot(X.T, X, S)
    np.dot(M[:n_x].T, M[n_x:], C)
    for k in range(d):
        for l in range(d):
            S[k, l] -= C[k, l] + C[l, k]
    return symmetric_lambda_min_kernel(S, diag, off, v, p)


@kernel
def batch_gradient_kernel(theta: np.ndarray, anc: np.ndarray, eta: float, dphi: np.ndarray,
                           dr: np.ndarray, code: int, radius: float, non_detached: bool, e: np.ndarray,
                           l: np.ndarray, coef: np.ndarray, unif: np.ndarray, grad: np.ndarray) -> None:
    """Gradient of one batch objective (uniform weights) at theta into ``grad``; ``code`` indexes
    SGD_OBJECTIVES. e, l, coef are work arrays (residuals, losses, per-pair gradient weights).

    With e_i = dphi_i^T (theta - anc)/eta - dr_i the gradient is sum_i c_i (2/eta) e_i dphi_i with c_i the
    uniform weights (rebel, w2, w2_surrogate) or the worst-case weights of the losses e_i^2 (kl_tau,
    kl, chi2, chi2_code), plus the update-size terms of the W2 objectives (docs/theory/rebel.md §4.3-4.5).

    Parameters
    ----------
    theta : numpy.ndarray, shape (d,)
        The point.
    anc : numpy.ndarray, shape (d,)
        The regression anchor.
    eta : float
        REBEL step size.
    dphi : numpy.ndarray, shape (n, d)
        Feature differences of the batch.
    dr : numpy.ndarray, shape (n,)
        Observed reward differences of the batch.
    code : int
        Index of the objective in ``SGD_OBJECTIVES``.
    radius : float
        eps, rho0, tau or rho_chi as in :func:`online_rebel_sgd`.
    non_detached : bool
        Differentiate the kl_tau weights (switch ``dro.weights``).
    e, l, coef : numpy.ndarray, shape (n,)
        Work arrays: residuals, losses, per-pair weights.
    unif : numpy.ndarray, shape (n,)
        The uniform law 1/n.
    grad : numpy.ndarray, shape (d,)
        Output: the batch gradient.
    """
    n, d = dphi.shape
    # residuals, losses and the mean gradient pieces
    sq = 0.0
    un = 0.0
    for k in range(d):
        un += (theta[k] - anc[k]) ** 2
    un = np.sqrt(un) / eta
    for i in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[i, k] * (theta[k] - anc[k])
        e[i] = h / eta - dr[i]
        l[i] = e[i] * e[i]
        sq += l[i] / n
    rms = np.sqrt(sq)
    # per-atom weights c_i so that grad = sum_i c_i (2/eta) e_i dphi_i (+ norm terms)
    if code == 0 or code == 1 or code == 2:
        coef[:] = 1.0 / n
    elif code == 3:
        kl_penalized_kernel(l, unif, radius, coef)
        if non_detached:
            non_detached_coefficients_kernel(l, coef, radius, coef)
    elif code == 4:
        kl_worst_case_kernel(l, unif, radius, coef)
    elif code == 5:
        chi2_worst_case_kernel(l, unif, radius, coef)
    else:
        chi2_code_coefficients_kernel(l, unif, radius, coef)
    for k in range(d):
        grad[k] = 0.0
    for i in range(n):
        c = coef[i] * 2.0 * e[i] / eta
        for k in range(d):
            grad[k] += c * dphi[i, k]
    if code == 1 or code == 2:
        # grad holds (2/eta) E[e dphi]; add the update-size terms (min-norm subgradient at u = 0)
        if code == 1:
            for k in range(d):
                grad[k] /= 2.0 * rms if rms > 0.0 else 1.0
            pen = radius / eta
        else:
            for k in range(d):
                grad[k] *= 1.0 + (radius * un / rms if rms > 0.0 else 0.0)
            pen = 2.0 * radius * rms / eta
        if un > 0.0:
            for k in range(d):
                grad[k] += pen * (theta[k] - anc[k]) / (eta * un)
        else:
            gn = 0.0
            for k in range(d):
                gn += grad[k] * grad[k]
            gn = np.sqrt(gn)
            shrink = max(0.0, 1.0 - pen / gn) if gn > 0.0 else 0.0
            for k in range(d):
                grad[k] *= shrink


@kernel
def _online_sgd_kernel(phi: np.ndarray, p_x: np.ndarray, reward: np.ndarray, noise_values: np.ndarray,
                       noise_cdf: np.ndarray, theta_ref: np.ndarray, theta0: np.ndarray, eta: float,
                       T: int, n: int, k_in: int, lr: float, adam: bool, beta1: float, beta2: float,
                       adam_eps: float, weight_decay: float, code: int, radius: float,
                       non_detached: bool, anchor_ref: bool, mix: float, reward_weights: np.ndarray,
                       log_coverage: bool, rng: np.random.Generator, theta_hist: np.ndarray, lam_hist: np.ndarray,
                       J_hist: np.ndarray, kl_hist: np.ndarray) -> None:
    n_x, n_y, d = phi.shape
    theta = theta0.copy()
    anc = np.empty(d)
    logpi = np.empty((n_x, n_y))
    logpi_ref = np.empty((n_x, n_y))
    log_policy_kernel(theta_ref, phi, logpi_ref)
    x_cdf = np.cumsum(p_x)
    x_guide = guide_table(x_cdf)
    pi = np.empty((n_x, n_y))
    cdf_a = np.empty((n_x, n_y))
    cdf_b = np.empty((n_x, n_y))
    dphi = np.empty((n, d))
    dr = np.empty(n)
    e = np.empty(n)
    l = np.empty(n)
    coef = np.empty(n)
    unif = np.full(n, 1.0 / n)
    u = np.empty(5 * n)
    grad = np.empty(d)
    X = np.empty((n_x * n_y, d))
    M = np.empty((2 * n_x, d))
    S = np.empty((d, d))
    C = np.empty((d, d))
    diag = np.empty(d)
    off = np.empty(d)
    v = np.empty(d)
    p = np.empty(d)
    m_adam = np.zeros(d)
    v_adam = np.zeros(d)
    step = 0
    J = np.empty(reward_weights.shape[0])
    mean_phi = np.empty(d)
    kl_hist[0] = _policy_pass(theta, phi, p_x, mix, logpi_ref, reward_weights, logpi, pi, cdf_a, cdf_b,
                              mean_phi, J)
    J_hist[0, :] = J
    theta_hist[0, :] = theta
    for t in range(T):
        if log_coverage:
            lam_hist[t] = _pair_lambda_min(pi, phi, p_x, mix, X, M, S, C, diag, off, v, p)
        else:
            lam_hist[t] = np.nan
        # fresh pairs from the current policy (a ~ pi_t, b ~ (1 - mix) pi_t + mix uniform)
        for j in range(5 * n):
            u[j] = rng.random()
        for i in range(n):
            x = guided_draw(x_cdf, x_guide, u[5 * i])
            a = inverse_cdf_draw(cdf_a[x], u[5 * i + 1] * cdf_a[x, n_y - 1])
            b = inverse_cdf_draw(cdf_b[x], u[5 * i + 2] * cdf_b[x, n_y - 1])
            xi_a = noise_values[inverse_cdf_draw(noise_cdf, u[5 * i + 3])]
            xi_b = noise_values[inverse_cdf_draw(noise_cdf, u[5 * i + 4])]
            dr[i] = reward[x, a] + xi_a - reward[x, b] - xi_b
            for k in range(d):
                dphi[i, k] = phi[x, a, k] - phi[x, b, k]
        for k in range(d):
            anc[k] = theta_ref[k] if anchor_ref else theta[k]
        for _ in range(k_in):
            batch_gradient_kernel(theta, anc, eta, dphi, dr, code, radius, non_detached, e, l, coef,
                                   unif, grad)
            step += 1
            if adam:
                b1c = 1.0 - beta1**step
                b2c = 1.0 - beta2**step
                for k in range(d):
                    m_adam[k] = beta1 * m_adam[k] + (1.0 - beta1) * grad[k]
                    v_adam[k] = beta2 * v_adam[k] + (1.0 - beta2) * grad[k] * grad[k]
                    theta[k] -= lr * (weight_decay * theta[k]
                                      + (m_adam[k] / b1c) / (np.sqrt(v_adam[k] / b2c) + adam_eps))
            else:
                for k in range(d):
                    theta[k] -= lr * (grad[k] + weight_decay * theta[k])
        kl_hist[t + 1] = _policy_pass(theta, phi, p_x, mix, logpi_ref, reward_weights, logpi, pi, cdf_a,
                                      cdf_b, mean_phi, J)
        J_hist[t + 1, :] = J
        theta_hist[t + 1, :] = theta


def online_rebel_sgd(env: Env, T: int, n: int, eta: float, rng: np.random.Generator,
                     objective: str = "rebel", radius: float = 0.0, anchor: str = "prev",
                     sampler: str = "online", mix: float = 0.5, inner_steps: int = 1,
                     optimizer: str = "adam", lr: float = 1e-2, weights: str = "detached",
                     weight_decay: float = 0.0, betas: tuple = (0.9, 0.999), adam_eps: float = 1e-8,
                     alphas=(0.0, 0.5, 1.0), theta0: np.ndarray | None = None,
                     log_coverage: bool = True) -> OnlineLog:
    """The online loop of docs/theory/rebel.md §4.9 with ``inner_steps`` SGD or Adam(W) steps per fresh batch, all in one
    numba call (switch ``rebel.inner``; the DRO-REBEL code takes one AdamW step per batch of 128).

    ``objective`` in {rebel, w2, w2_surrogate, kl_tau, kl, chi2, chi2_code}; ``radius`` is eps (w2, kl,
    chi2), rho0 (w2_surrogate), tau (kl_tau) or rho_chi (chi2_code). Batch objectives and gradients:
    rebel (2/eta) mean e dphi; w2 the exact sqrt-regression gradient (min-norm subgradient at u = 0);
    w2_surrogate the code's F_W; kl_tau softmax(l/tau) weights, detached or not (``weights``, switch
    ``dro.weights``); kl / chi2 the toolbox's exact worst-case weights (Danskin); chi2_code the
    ``Chi2REBELOptimizer`` gradient. Adam state persists across iterations (one optimizer, as in a
    trainer); weight_decay is decoupled (AdamW) for Adam and L2 for SGD. ``log_coverage=False`` skips the
    per-iteration lambda_min (a d x d second moment over the atoms and its smallest eigenvalue, about a
    third of an iteration at d = 16; NaN logged). Pairs are drawn by inverse CDF: x from p_x (guide
    table), a from pi_theta(.|x), b from the sampler's mixture, one noise index per response.

    Parameters
    ----------
    env : simlab.env.environment.Env
        The environment.
    T : int
        Number of iterations (fresh batches), in [1, 2**24].
    n : int
        Pairs per batch, in [2, 2**24].
    eta : float
        REBEL step size (> 0).
    rng : numpy.random.Generator
        Source of the pair and noise draws.
    objective : str, default "rebel"
        One of ``SGD_OBJECTIVES``.
    radius : float, default 0.0
        Robustness radius (>= 0; > 0 for kl_tau and chi2_code).
    anchor : str, default "prev"
        "prev" or "ref".
    sampler : str, default "online"
        "online" or "online_mixed".
    mix : float, default 0.5
        Uniform share of the second response under "online_mixed", in [0, 1] (ignored for "online").
    inner_steps : int, default 1
        Optimizer steps per batch (>= 1).
    optimizer : str, default "adam"
        "sgd" or "adam".
    lr : float, default 1e-2
        Learning rate (> 0).
    weights : str, default "detached"
        "detached" or "non_detached" kl_tau weights.
    weight_decay : float, default 0.0
        Decoupled (Adam) or L2 (SGD) weight decay (>= 0).
    betas : tuple of float, default (0.9, 0.999)
        Adam's (beta1, beta2), each in [0, 1).
    adam_eps : float, default 1e-8
        Adam's denominator epsilon (> 0 for Adam).
    alphas : array_like, default (0.0, 0.5, 1.0)
        Reward-mixture weights in [0, 1] at which J is logged.
    theta0 : numpy.ndarray, shape (d,), optional
        Start (default theta_ref).
    log_coverage : bool, default True
        Log lambda_min of the pair second moment each iteration.

    Returns
    -------
    OnlineLog
        Iterates, coverage (NaN when not logged), logged rewards and KL; ``failures`` = 0.
    """
    check_choice("objective", objective, SGD_OBJECTIVES)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("weights", weights, WEIGHTS)
    check_anchor(anchor)
    check_choice("sampler", sampler, ("online", "online_mixed"))
    _check_env(env)
    T = check_int("T", T, 1, MAX_ITERATIONS)
    n = check_int("n", n, 2, MAX_BATCH)
    rng = check_generator("rng", rng)
    inner_steps = check_int("inner_steps", inner_steps, 1)
    eta = check_float("eta", eta, 0.0, low_open=True)
    lr = check_float("lr", lr, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0)
    mix = check_float("mix", mix, 0.0, 1.0) if sampler == "online_mixed" else 0.0
    weight_decay = check_float("weight_decay", weight_decay, 0.0)
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
        raise ValueError(f"betas must be a pair (beta1, beta2) in [0, 1), got {betas!r}")
    beta1 = check_float("betas[0]", betas[0], 0.0, 1.0)
    beta2 = check_float("betas[1]", betas[1], 0.0, 1.0)
    if optimizer == "adam" and (beta1 == 1.0 or beta2 == 1.0):
        raise ValueError(f"betas must lie in [0, 1) for Adam (bias corrections 1 - beta^t), got {betas!r}")
    adam_eps = check_float("adam_eps", adam_eps, 0.0, low_open=optimizer == "adam")
    if not isinstance(log_coverage, (bool, np.bool_)):
        raise ValueError(f"log_coverage must be True or False, got {log_coverage!r}")
    if objective in ("kl_tau", "chi2_code") and radius == 0.0:
        raise ValueError(f"radius must be > 0 for objective {objective!r} (tau or rho_chi)")
    alphas = _check_alphas(alphas)
    reward_weights = np.array([env.mixture_reward(float(a)) for a in alphas])
    d = env.spec.d
    theta0 = env.theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(d,)).copy()
    theta_hist = np.empty((T + 1, d))
    lam = np.empty(T)
    J = np.empty((T + 1, alphas.size))
    kls = np.empty(T + 1)
    _online_sgd_kernel(env.phi, env.p_x, env.reward, env.noise_values, np.cumsum(env.noise_probs),
                       np.ascontiguousarray(env.theta_ref), theta0, eta, T, n, inner_steps, lr,
                       optimizer == "adam", beta1, beta2, float(adam_eps), weight_decay,
                       _SGD_CODE[objective], radius, weights == "non_detached", anchor == "ref", mix,
                       reward_weights, bool(log_coverage), rng, theta_hist, lam, J, kls)
    return OnlineLog(theta_hist, lam, alphas, J, kls)
