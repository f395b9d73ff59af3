"""Robust DPO solvers: exact minimisers over weighted atoms and the papers' minibatch SGD (docs/theory/dpo.md §3.2).

``fit_robust_dpo_exact`` minimises a robust DPO objective of :mod:`simlab.objectives.robust_dpo` over
the ball around the given atom weights: p0 gives the exact population robust minimiser, N/n the
exact empirical one (cost independent of n).  Damped Newton with the exact Hessians (Danskin plus
implicit differentiation of the dual) to ||grad|| <= gtol (default 1e-10).

``fit_kldpo_code`` finds a zero of the official KLDPO full-batch direction (detached, clipped,
unnormalised weights) by iteratively reweighted Newton: theta_{k+1} = argmin sum_j w_j c_j(theta_k)
l_j(theta), stopped when the direction's norm is <= gtol.

``sgd_robust_dpo`` runs the papers' minibatch algorithms in one numba call: WDPO Algorithm 1
(gradient of the batch surrogate E_B l + rho0 sqrt(E_B ||grad_z l||^2)), KLDPO Algorithm 2
(batch softmax weights softmax((l_i - l_bar)/tau), detached) and chi^2-DPO (batch dual solve,
Danskin weights).
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.dro.chi2 import chi2_worst_case_kernel
from simlab.dro.kl import kl_penalized_kernel
from simlab.env.atoms import PairAtoms, check_pair_atoms
from simlab.env.sampling import AliasTable, alias_draw
from simlab.objectives.robust_dpo import OBJECTIVES, kldpo_code_direction, robust_dpo_value_grad_hess
from simlab.solvers.checkpoints import log_checkpoints
from simlab.solvers.dpo import MAX_SGD_BATCH, MAX_STEPS, STEP_SCHEDULES, check_finite_iterates, fit_dpo_exact
from simlab.solvers.exact import NewtonResult, NoMinimizerError, newton, newton_root
from simlab.special import sigmoid, softplus
from simlab.validation import check_array, check_choice, check_float, check_generator, check_int, check_weights

SGD_ALGORITHMS = ("wdpo", "kldpo", "chi2dpo")


KINK_OBJECTIVES = ("wdpo_exact", "wdpo_surrogate", "kldpo_constrained", "chi2dpo")


def fit_robust_dpo_exact(objective: str, atoms: PairAtoms, weights: np.ndarray, theta_ref: np.ndarray,
                         beta: float, radius: float, theta0: np.ndarray | None = None,
                         gtol: float = 1e-10) -> NewtonResult:
    """argmin_theta of the named robust DPO objective around the law ``weights`` on ``atoms``.

    Starts from ``theta0`` or the nominal DPO minimiser for the same weights.  The W_2 and
    constrained-ball objectives have a kink at theta_ref (they grow like |t| along theta_ref + t v),
    where damped Newton can stall.  For W_2 (closed-form kink test) the start is the better of the
    nominal minimiser and the minimiser on the steepest-descent ray from theta_ref.  If Newton fails,
    the steepest-descent direction v* at theta_ref decides
    (``reference_optimality_margin``): margin >= 0 certifies theta_ref as the minimiser (returned with
    grad_norm 0 and iterations -1), otherwise Newton restarts from the best point on the ray
    theta_ref + t v*.  Raises :class:`NoMinimizerError` if that fails too.

    Parameters
    ----------
    objective : str
        One of ``simlab.objectives.robust_dpo.OBJECTIVES``: "dpo", "wdpo_exact", "wdpo_surrogate",
        "wdpo_code", "kldpo_penalized", "kldpo_constrained", "chi2dpo" (docs/theory/dpo.md §3.2).
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms.
    weights : numpy.ndarray, shape (A,)
        Nominal law on the atoms (>= 0, positive sum; normalised here): ``atoms.p0`` for the
        population minimiser, counts N/n for the empirical one.
    theta_ref : numpy.ndarray, shape (d,)
        Reference-policy parameter.
    beta : float
        DPO temperature (> 0).
    radius : float
        Radius of the ambiguity set (rho0 for W_2, the KL/chi^2 ball radius, tau for
        "kldpo_penalized"); > 0, or >= 0 except for "kldpo_penalized".
    theta0 : numpy.ndarray, shape (d,), optional
        Newton's start (default: the nominal DPO minimiser, see above).
    gtol : float, default 1e-10
        Gradient-norm tolerance of Newton.

    Returns
    -------
    NewtonResult
        The robust minimiser ``x`` with its value, gradient norm, Hessian and iteration count;
        iterations = -1 when theta_ref is certified by the kink test.

    Raises
    ------
    NoMinimizerError
        Newton failed and the kink test does not certify theta_ref (or the objective is smooth).
    """
    from scipy.optimize import minimize_scalar

    check_choice("objective", objective, OBJECTIVES)
    check_pair_atoms("atoms", atoms, labels=True)
    weights = check_weights("weights", weights, atoms.size)
    theta_ref = check_array("theta_ref", theta_ref, shape=(atoms.dim,))
    beta = check_float("beta", beta, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0, low_open=objective == "kldpo_penalized")
    if theta0 is not None:
        theta0 = check_array("theta0", theta0, shape=(atoms.dim,))
    dphi, y, _, w = atoms.support(weights)
    w = w / w.sum()

    def fgh(th):
        # inputs validated above; Newton's iterates are float64 (d,) arrays
        return robust_dpo_value_grad_hess(objective, th, theta_ref, beta, dphi, y, w, radius, check_input=False)

    def collapsed():
        f, _, H = fgh(theta_ref)
        return NewtonResult(x=theta_ref.copy(), fun=float(f), grad_norm=0.0, iterations=-1, converged=True,
                            hess=H)

    def ray_start(v, reach):
        t = minimize_scalar(lambda s: fgh(theta_ref + s * v)[0], bounds=(0.0, reach), method="bounded",
                            options={"xatol": 1e-6}).x
        return theta_ref + t * v

    kink = objective in KINK_OBJECTIVES
    if theta0 is None:
        try:
            theta0 = fit_dpo_exact(atoms, weights, theta_ref, beta, gtol=1e-8).x
        except NoMinimizerError:
            theta0 = theta_ref + 1e-3
        if objective in ("wdpo_exact", "wdpo_surrogate"):
            # the W_2 kink test is closed-form: decide it first, then start from the better of the
            # nominal and the ray minimiser (from the nominal alone Newton can stall at the kink)
            margin, v = _reference_descent(objective, dphi, y, w, beta, radius)
            if margin >= 0.0:
                return collapsed()
            x_ray = ray_start(v, float(np.linalg.norm(theta0 - theta_ref)) + 1.0)
            if fgh(x_ray)[0] < fgh(theta0)[0]:
                theta0 = x_ray
    try:
        return newton(fgh, theta0, gtol=gtol)
    except NoMinimizerError:
        if not kink:
            raise
    margin, v = _reference_descent(objective, dphi, y, w, beta, radius)
    if margin >= 0.0:
        return collapsed()
    return newton(fgh, ray_start(v, float(np.linalg.norm(np.asarray(theta0) - theta_ref)) + 1.0), gtol=gtol)


def reference_optimality_margin(objective: str, atoms: PairAtoms, weights: np.ndarray,
                                theta_ref: np.ndarray, beta: float, radius: float) -> float:
    """min over unit v of the directional derivative R'(theta_ref; v) (derived here).

    At theta_ref every margin is 0 and l_j = log 2 + t beta (1/2 - y_j) dphi_j^T v + O(t^2) along
    theta_ref + t v, so R'(theta_ref; v) = sup_{q in ball} sum_j q_j c_j^T v with
    c_j = beta (1/2 - y_j) dphi_j (KL/chi^2 balls; a convex, positively homogeneous function of v,
    minimised over the unit sphere by SLSQP from several starts), and
    beta (E_w[(1/2 - y) dphi]^T v + radius rms_w(1/2 - y)) for both W_2 objectives.  A margin >= 0 means
    theta_ref is the robust minimiser (the objective has a kink there and Newton cannot reach it): the
    minimiser collapses to theta_ref beyond a threshold radius.  Smooth objectives return -inf
    unless the nominal gradient vanishes.

    Parameters
    ----------
    objective : str
        A robust DPO objective name (as :func:`fit_robust_dpo_exact`).
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms.
    weights : numpy.ndarray, shape (A,)
        Nominal law on the atoms (normalised here).
    theta_ref : numpy.ndarray, shape (d,)
        Reference-policy parameter (the margin does not depend on its value: every margin vanishes
        there).
    beta : float
        DPO temperature.
    radius : float
        Radius of the ambiguity set.

    Returns
    -------
    float
        min_{||v|| = 1} R'(theta_ref; v): >= 0 iff theta_ref is the robust minimiser; 0 or -inf for a
        smooth objective (0 only when the nominal gradient vanishes).
    """
    dphi, y, _, w = atoms.support(np.asarray(weights, dtype=np.float64))
    return _reference_descent(objective, dphi, y, w / w.sum(), beta, radius)[0]


def _reference_descent(objective, dphi, y, w, beta, radius) -> tuple[float, np.ndarray]:
    """(min_{|v| = 1} R'(theta_ref; v), the minimising v); see ``reference_optimality_margin``."""
    from scipy.optimize import minimize

    from simlab.dro import worst_case

    C = (beta * (0.5 - y))[:, None] * dphi
    mean_c = w @ C
    norm_c = float(np.linalg.norm(mean_c))
    v_nom = -mean_c / norm_c if norm_c > 0 else np.eye(dphi.shape[1])[0]
    if objective in ("wdpo_exact", "wdpo_surrogate"):
        return float(radius * beta * np.sqrt(w @ (0.5 - y) ** 2) - norm_c), v_nom
    if objective not in ("kldpo_constrained", "chi2dpo"):
        return (0.0 if norm_c == 0.0 else -np.inf), v_nom
    div = "kl" if objective == "kldpo_constrained" else "chi2"

    def directional(v):
        value, q = worst_case(C @ v, w, div, radius)
        return value, C.T @ q

    best, best_v = np.inf, v_nom
    rng = np.random.default_rng(0)
    for v0 in [v_nom] + list(rng.standard_normal((4, C.shape[1]))):
        v0 = v0 / np.linalg.norm(v0)
        res = minimize(directional, v0, jac=True, method="SLSQP",
                       constraints=[{"type": "eq", "fun": lambda v: v @ v - 1.0, "jac": lambda v: 2 * v}],
                       options={"ftol": 1e-12, "maxiter": 500})
        v = res.x / np.linalg.norm(res.x)
        val = directional(v)[0]
        if val < best:
            best, best_v = val, v
    return float(best), best_v


def fit_kldpo_code(atoms: PairAtoms, weights: np.ndarray, theta_ref: np.ndarray, beta: float,
                   tau: float, clip: float = 10.0, theta0: np.ndarray | None = None,
                   gtol: float = 1e-10, max_iter: int = 100) -> NewtonResult:
    """Zero of the official KLDPO full-batch direction F (docs/theory/dpo.md §3.2, switch ``kldpo.weights``).

    F(theta) = sum_j w_j c_j grad l_j with c_j = min(e^{(l_j - l_bar)/tau}, clip) is not a gradient,
    so its zero is found by Newton's method for equations with the analytic Jacobian
    sum_j w_j c_j H_j + sum_j w_j grad l_j dc_j^T, dc_j = c_j (grad l_j - sum_k w_k grad l_k)/tau
    (0 where clipped), halving the step until ||F|| decreases.  ``fun`` is the nominal loss there;
    ``grad_norm`` is ||F|| and ``hess`` the Jacobian of F (not symmetric).

    Parameters
    ----------
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms.
    weights : numpy.ndarray, shape (A,)
        Nominal law on the atoms (normalised here).
    theta_ref : numpy.ndarray, shape (d,)
        Reference-policy parameter.
    beta : float
        DPO temperature (> 0).
    tau : float
        KL temperature of the weights e^{(l_j - l_bar)/tau} (> 0).
    clip : float, default 10.0
        Upper clip of the weights (> 0, or ``numpy.inf`` for none).
    theta0 : numpy.ndarray, shape (d,), optional
        Start (default: the nominal DPO minimiser).
    gtol : float, default 1e-10
        Stop at ||F|| <= gtol.
    max_iter : int, default 100
        Newton-step budget.

    Returns
    -------
    NewtonResult
        x = the zero of F, fun = the nominal DPO loss sum_j w_j l_j(x), grad_norm = ||F(x)||,
        hess = the Jacobian of F at x.

    Raises
    ------
    NoMinimizerError
        The zero was not reached within ``max_iter`` steps.
    """
    check_pair_atoms("atoms", atoms, labels=True)
    weights = check_weights("weights", weights, atoms.size)
    theta_ref = check_array("theta_ref", theta_ref, shape=(atoms.dim,))
    beta = check_float("beta", beta, 0.0, low_open=True)
    tau = check_float("tau", tau, 0.0, low_open=True)
    clip = check_float("clip", clip, 0.0, low_open=True) if clip != np.inf else clip
    dphi, y, _, w = atoms.support(weights)
    w = w / w.sum()
    theta = (fit_dpo_exact(atoms, weights, theta_ref, beta, gtol=1e-8).x if theta0 is None
             else check_array("theta0", theta0, shape=(atoms.dim,)))

    def residual(th):
        return kldpo_code_direction(th, theta_ref, beta, dphi, y, w, tau, clip)

    try:
        return newton_root(residual, lambda th: _code_jacobian(th, theta_ref, beta, dphi, y, w, tau, clip),
                           theta, gtol=gtol, max_iter=max_iter,
                           value=lambda th: w @ _losses(th, theta_ref, beta, dphi, y))
    except NoMinimizerError as exc:
        raise NoMinimizerError(f"KLDPO code zero not reached: {exc}") from None


def _code_jacobian(theta, theta_ref, beta, dphi, y, w, tau, clip):
    """Jacobian of the KLDPO code direction (weights differentiated where not clipped)."""
    h = beta * (dphi @ (theta - theta_ref))
    s = 1.0 / (1.0 + np.exp(-h))
    l = np.logaddexp(0.0, h) - y * h
    grads = (beta * (s - y))[:, None] * dphi
    raw = np.exp((l - w @ l) / tau)
    c = np.minimum(raw, clip)
    dc = np.where(raw < clip, c, 0.0)[:, None] * (grads - w @ grads) / tau
    return (dphi.T * (w * c * beta * beta * s * (1 - s))) @ dphi + (grads.T * w) @ dc


def _losses(theta, theta_ref, beta, dphi, y):
    h = beta * (dphi @ (theta - theta_ref))
    return np.logaddexp(0.0, h) - y * h


@kernel
def _sgd_robust_dpo_kernel(algo: int, theta0: np.ndarray, theta_ref: np.ndarray, beta: float,
                           dphi: np.ndarray, y: np.ndarray, prob: np.ndarray, alias: np.ndarray,
                           T: int, batch: int, step: float, inv_sqrt: bool, radius: float,
                           checkpoints: np.ndarray, rng: np.random.Generator,
                           history: np.ndarray) -> None:
    d = theta0.size
    theta = theta0.copy()
    grad = np.zeros(d)
    idx = np.empty(batch, dtype=np.int64)
    l = np.empty(batch)
    l1 = np.empty(batch)
    l2 = np.empty(batch)
    wts = np.empty(batch)
    uni = np.full(batch, 1.0 / batch)
    delta = np.empty(d)
    c = 0
    for t in range(T):
        for k in range(d):
            delta[k] = theta[k] - theta_ref[k]
        for i in range(batch):
            j = alias_draw(prob, alias, rng)
            idx[i] = j
            h = 0.0
            for k in range(d):
                h += dphi[j, k] * delta[k]
            h *= beta
            s = sigmoid(h)
            l[i] = softplus(h) - y[j] * h
            l1[i] = s - y[j]
            l2[i] = s * (1.0 - s)
        grad[:] = 0.0
        if algo == 0:  # WDPO Alg. 1: grad of E_B l + rho0 beta ||delta|| sqrt(E_B l'^2)
            q = 0.0
            for i in range(batch):
                q += l1[i] * l1[i] / batch
            rms = np.sqrt(q)
            nd = 0.0
            for k in range(d):
                nd += delta[k] * delta[k]
            nd = np.sqrt(nd)
            for i in range(batch):
                j = idx[i]
                coef = beta * l1[i] / batch
                if rms > 0.0:
                    coef += radius * beta * nd * l1[i] * l2[i] * beta / (batch * rms)
                for k in range(d):
                    grad[k] += coef * dphi[j, k]
            if nd > 0.0:
                for k in range(d):
                    grad[k] += radius * beta * rms * delta[k] / nd
        else:
            if algo == 1:  # KLDPO Alg. 2: softmax((l - l_bar)/tau), detached
                kl_penalized_kernel(l, uni, radius, wts)
            else:  # chi2: batch dual solve, Danskin weights
                chi2_worst_case_kernel(l, uni, radius, wts)
            for i in range(batch):
                j = idx[i]
                coef = wts[i] * beta * l1[i]
                for k in range(d):
                    grad[k] += coef * dphi[j, k]
        lr = step / np.sqrt(t + 1.0) if inv_sqrt else step
        for k in range(d):
            theta[k] -= lr * grad[k]
        while c < checkpoints.size and checkpoints[c] == t + 1:
            history[c, :] = theta
            c += 1


def sgd_robust_dpo(algorithm: str, atoms: PairAtoms, theta_ref: np.ndarray, beta: float, radius: float,
                   T: int, step: float, rng: np.random.Generator, batch: int = 64,
                   schedule: str = "inv_sqrt", theta0: np.ndarray | None = None,
                   n_checkpoints: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Minibatch SGD of the papers' robust DPO algorithms with pairs drawn afresh from ``atoms.p0``.

    ``algorithm``: "wdpo" (radius = rho0), "kldpo" (radius = tau), "chi2dpo" (radius = eps).
    Step a_t = step (constant) or step/sqrt(t+1) (inv_sqrt).  The whole loop is one numba call.
    Returns (checkpoints, history) with history[i] the iterate after checkpoints[i] steps.

    Per step, ``batch`` atoms are drawn iid from ``atoms.p0`` and theta <- theta - a_t G_B with G_B the
    gradient of the batch objective (module docstring; docs/theory/dpo.md §3.2): for "wdpo" the gradient
    of E_B l + rho0 beta ||theta - theta_ref|| sqrt(E_B l'^2), for "kldpo" and "chi2dpo" the detached
    worst-case weights of the batch losses times the per-pair DPO gradients.

    Parameters
    ----------
    algorithm : str
        "wdpo", "kldpo" or "chi2dpo".
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms; pairs are drawn from ``atoms.p0``.
    theta_ref : numpy.ndarray, shape (d,)
        Reference-policy parameter.
    beta : float
        DPO temperature (> 0).
    radius : float
        rho0 (wdpo, >= 0), tau (kldpo, > 0) or eps (chi2dpo, >= 0).
    T : int
        Number of SGD steps, in [1, 2**40].
    step : float
        Base step size (> 0).
    rng : numpy.random.Generator
        Source of the pair draws.
    batch : int, default 64
        Minibatch size, in [1, 2**24].
    schedule : str, default "inv_sqrt"
        "constant" or "inv_sqrt".
    theta0 : numpy.ndarray, shape (d,), optional
        Start (default theta_ref + 1e-3).
    n_checkpoints : int, default 20
        Maximum number of log-spaced checkpoints (:func:`simlab.solvers.checkpoints.log_checkpoints`).

    Returns
    -------
    checkpoints : numpy.ndarray, shape (k,), int
        Iteration counts in [1, T], always including 1 and T.
    history : numpy.ndarray, shape (k, d)
        history[i] = the iterate after checkpoints[i] steps.
    """
    check_choice("algorithm", algorithm, SGD_ALGORITHMS)
    check_choice("schedule", schedule, STEP_SCHEDULES)
    check_pair_atoms("atoms", atoms, labels=True)
    T = check_int("T", T, 1, MAX_STEPS)
    batch = check_int("batch", batch, 1, MAX_SGD_BATCH)
    step = check_float("step", step, 0.0, low_open=True)
    beta = check_float("beta", beta, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0, low_open=algorithm == "kldpo")
    rng = check_generator("rng", rng)
    theta_ref = check_array("theta_ref", theta_ref, shape=(atoms.dim,))
    x0 = theta_ref + 1e-3 if theta0 is None else check_array("theta0", theta0, shape=(atoms.dim,)).copy()
    table = AliasTable(atoms.p0)
    cps = log_checkpoints(T, n_checkpoints, "n_checkpoints")
    history = np.empty((cps.size, atoms.dim))
    _sgd_robust_dpo_kernel(SGD_ALGORITHMS.index(algorithm), x0, theta_ref, beta, atoms.dphi, atoms.y,
                           table.prob, table.alias, T, batch, step, schedule == "inv_sqrt", radius,
                           cps, rng, history)
    check_finite_iterates(history, cps, step)
    return cps, history
