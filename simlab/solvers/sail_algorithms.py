"""Stochastic algorithms for oracle-robust SAIL (docs/theory/sail.md §5.5), each run as one jitted loop.

Every step draws N_b samples: x ~ p_x, then a, b ~ pi_{theta_t}(.|x) iid, then y ~ Bern(P_obs(x,a,b)).
With pen_i(theta) = c+_i [h_i(theta)]_+ + c-_i [-h_i(theta)]_+ (c from P_obs, not y):

    G_t = mean_i[(sigma(h_i) - y_i) beta dphi_i + (l_{y_i}(h_i) + pen_i(h_i))(s(a_i) + s(b_i))].

- **A, stochastic prox-linear** (Davis–Drusvyatskiy model-based; the paper's projected stochastic
  composite update): theta_{t+1} ~= argmin_{theta in Theta} <G_t, theta> + (1/N_b) sum_i pen_i(theta)
  + ||theta - theta_t||^2/(2 alpha), solved by the dual box-QP of :mod:`simlab.solvers.prox` to gap delta.
- **B, inexact stochastic proximal point**: z_t ~= prox_{gamma F}(theta_t) by K_in projected stochastic
  subgradient steps 1/(mu_in k) on the (1/gamma - omega)-strongly convex subproblem with suffix averaging
  (last half), then theta_{t+1} = Proj(theta_t - alpha (theta_t - z_t)/gamma). Inner solver "model":
  z_t = the prox (parameter gamma) of the N_b-sample prox-linear model at theta_t, solved by the dual
  box-QP from s = 0 to duality gap <= delta (the inner tolerance); a gap-delta solution of this
  1/gamma-strongly convex subproblem is within sqrt(2 gamma delta) of the exact model prox.
- **C, projected stochastic subgradient** (baseline): theta_{t+1} = Proj(theta_t - alpha G^full_t),
  G^full = G_t + (c+ 1[h > 0] - c- 1[h < 0]) beta dphi.

Output rule: theta_{t*} with t* uniform on {0, ..., T-1}; runs record the iterates at given indices
(:func:`random_iterate_indices` draws them iid, :func:`stratified_iterate_indices` per dyadic stratum
with weights), so E||grad env(theta_{t*})||^2 is estimated without bias.
The deterministic variant of A (exact expectations) is one prox-linear model step per iteration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.env.sampling import inverse_cdf_draw
from simlab.objectives.sail import (check_sail_problem, pair_weights_kernel, penalty_pairs, project_ball_kernel,
                                    robust_sail_kernel)
from simlab.solvers.prox import ball_box_qp_kernel
from simlab.special import sigmoid, softplus
from simlab.validation import check_choice, check_float, check_int

ALGORITHMS = ("A", "B", "C")
B_INNER_SOLVERS = ("sgd", "model")


# --------------------------------------------------------------------------------------------------
# unbiased single-sample stochastic gradients (numba): they live with the algorithms that draw them
# --------------------------------------------------------------------------------------------------
@kernel(ordered=True)
def _sample_pair_gradient(theta, phi, cdf_x, theta_ref, beta, P, rho, kink_slope, rng, g, row, work):
    """Draw x ~ p_x, a, b ~ pi_theta(.|x) iid, y ~ Bern(P(x,a,b)); add to ``g`` (d,)

        (sigma(h) - y + kink_slope * pen'(h)) beta dphi + (l_y(h) + pen(h)) (s(a) + s(b)),

    l_y(h) = softplus(-(2y - 1) h), pen with c+/- from P (not from y) (docs/theory/sail.md §5.5). Its mean is the gradient
    of F for kink_slope = 1 and the model part g_i for kink_slope = 0. Writes beta dphi into ``row`` and
    returns (h, c+, c-). ``work`` is scratch of length >= 2 n_y.
    """
    n_x, n_y, d = phi.shape
    x = inverse_cdf_draw(cdf_x, rng.random())
    logits = work[:n_y]
    cdf = work[n_y:2 * n_y]
    mx = -np.inf
    for a in range(n_y):
        la = 0.0
        for k in range(d):
            la += phi[x, a, k] * theta[k]
        logits[a] = la
        if la > mx:
            mx = la
    z = 0.0
    for a in range(n_y):
        z += math.exp(logits[a] - mx)
        cdf[a] = z
    for a in range(n_y):
        cdf[a] /= z
    a_ = inverse_cdf_draw(cdf, rng.random())
    b_ = inverse_cdf_draw(cdf, rng.random())
    h = 0.0
    for k in range(d):
        row[k] = beta * (phi[x, a_, k] - phi[x, b_, k])
        h += row[k] * (theta[k] - theta_ref[k])
    p = P[x, a_, b_]
    y = 1.0 if rng.random() < p else 0.0
    cp = min(rho, p)
    cm = min(rho, 1.0 - p)
    pen = cp * max(h, 0.0) + cm * max(-h, 0.0)
    kink = 0.0
    if h > 0.0:
        kink = cp
    elif h < 0.0:
        kink = -cm
    loss_y = softplus(-(2.0 * y - 1.0) * h)
    c_row = sigmoid(h) - y + kink_slope * kink
    c_s = loss_y + pen
    # s(a) + s(b) = phi(a) + phi(b) - 2 phibar(x); phibar(x) = sum_c pi_c phi(x, c)
    prev = 0.0
    for c in range(n_y):
        pc = cdf[c] - prev
        prev = cdf[c]
        for k in range(d):
            g[k] -= 2.0 * c_s * pc * phi[x, c, k]
    for k in range(d):
        g[k] += c_row * row[k] + c_s * (phi[x, a_, k] + phi[x, b_, k])
    return h, cp, cm


@kernel(ordered=True)
def _stochastic_gradients_kernel(theta, phi, cdf_x, theta_ref, beta, P, rho, kink_slope, rng, out):
    n_y, d = phi.shape[1], phi.shape[2]
    row = np.empty(d)
    work = np.empty(2 * n_y)
    for i in range(out.shape[0]):
        for k in range(d):
            out[i, k] = 0.0
        _sample_pair_gradient(theta, phi, cdf_x, theta_ref, beta, P, rho, kink_slope, rng, out[i], row,
                              work)


def stochastic_gradients(theta, phi, p_x, theta_ref, beta, P_obs, rho, n: int,
                         rng: np.random.Generator, kinks: bool = True) -> np.ndarray:
    """n iid single-sample gradient estimates, shape (n, d) (docs/theory/sail.md §5.1, §5.5).

    Each draws x ~ p_x, a, b ~ pi_theta(.|x) iid and a label y ~ Bern(P_obs(x,a,b)); with rho = 0 and
    ``kinks`` it is unbiased for grad L_SAIL(theta; P_obs), with rho > 0 for the Clarke subgradient of
    L^W_rho returned by :func:`robust_sail_value_grad`; ``kinks=False`` drops the pen'(h) beta dphi term
    (the part Algorithm A linearises; its kinks are kept exact in the prox-linear model).

    Parameters
    ----------
    theta : array_like, shape (d,)
        The point.
    phi : array_like, shape (n_x, n_y, d)
        Features.
    p_x : array_like, shape (n_x,)
        Prompt law.
    theta_ref : array_like, shape (d,)
        Reference-policy parameter (centre of Theta).
    beta : float
        DPO temperature (> 0).
    P_obs : array_like, shape (n_x, n_y, n_y)
        Observed oracle table, P_obs[x, a, b] + P_obs[x, b, a] = 1 (docs/theory/sail.md §5.2).
    rho : float
        Box radius of the oracle uncertainty, in [0, 1].
    n : int
        Number of estimates (>= 1).
    rng : numpy.random.Generator
        Source of the draws.
    kinks : bool, default True
        Include the kink term pen'(h) beta dphi.

    Returns
    -------
    numpy.ndarray, shape (n, d)
        Row i is the i-th single-sample estimate G (module docstring).
    """
    theta, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    n = check_int("n", n, low=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    out = np.empty((n, phi.shape[2]))
    _stochastic_gradients_kernel(theta, phi, np.cumsum(p_x), theta_ref, beta, P_obs, rho,
                                 1.0 if kinks else 0.0, rng, out)
    return out


@kernel(ordered=True)
def _record_iterate(record_at, r, t, theta, out) -> int:
    """Copy theta into out for every remaining recording index equal to t (record_at is sorted);
    returns the next unused position r."""
    while r < record_at.size and record_at[r] == t:
        out[r] = theta
        r += 1
    return r


@kernel(ordered=True)
def _model_prox_kernel(theta0, phi, cdf_x, theta_ref, beta, P, rho, radius, kappa, relax, T, batch, gap_tol,
                       inner_max_iter, rng, record_at, out):
    """Stochastic model-based proximal steps: z_t ~= argmin_{Theta} <G_t, z> + (1/N_b) sum_i pen_i(z)
    + (kappa/2)||z - theta_t||^2 by the dual box-QP to gap <= gap_tol (from s = 0), then
    theta_{t+1} = z_t if relax == 1, else theta_t + relax (z_t - theta_t) (a convex combination of two
    points of the ball, so it stays in the ball). Algorithm A: kappa = 1/alpha, relax = 1. Algorithm B
    with the model inner solve: kappa = 1/gamma, relax = alpha/gamma. Returns the total number of inner
    dual iterations."""
    n_y, d = phi.shape[1], phi.shape[2]
    theta = theta0.copy()
    g = np.zeros(d)
    rows = np.empty((batch, d))
    offs = np.empty(batch)
    u_plus = np.empty(batch)
    u_minus = np.empty(batch)
    s = np.zeros(batch)
    z = np.empty(d)
    tk = np.empty(batch)
    work = np.empty(2 * n_y)
    r = 0
    inner = 0
    for t in range(T):
        r = _record_iterate(record_at, r, t, theta, out)
        for j in range(d):
            g[j] = 0.0
        a_norm2 = 0.0
        for i in range(batch):
            h, cp, cm = _sample_pair_gradient(theta, phi, cdf_x, theta_ref, beta, P, rho, 0.0, rng, g,
                                              rows[i], work)
            u_plus[i] = cp / batch
            u_minus[i] = cm / batch
            o = 0.0
            for j in range(d):
                o += rows[i, j] * theta_ref[j]
                a_norm2 += rows[i, j] ** 2  # Frobenius^2 >= spectral^2: a valid dual step (exact if N_b = 1)
            offs[i] = o
            s[i] = 0.0
        for j in range(d):
            g[j] /= batch
        _, it, _ = ball_box_qp_kernel(g, rows, offs, u_minus, u_plus, kappa, theta, theta_ref, radius,
                                      a_norm2, gap_tol, inner_max_iter, s, z, tk)
        inner += it
        if relax == 1.0:
            for j in range(d):
                theta[j] = z[j]
        else:
            for j in range(d):
                theta[j] += relax * (z[j] - theta[j])
    _record_iterate(record_at, r, T, theta, out)
    return inner


@kernel(ordered=True)
def _algorithm_c_kernel(theta0, phi, cdf_x, theta_ref, beta, P, rho, radius, step, T, batch, rng,
                        record_at, out):
    n_y, d = phi.shape[1], phi.shape[2]
    theta = theta0.copy()
    g = np.zeros(d)
    row = np.empty(d)
    work = np.empty(2 * n_y)
    r = 0
    for t in range(T):
        r = _record_iterate(record_at, r, t, theta, out)
        for j in range(d):
            g[j] = 0.0
        for i in range(batch):
            _sample_pair_gradient(theta, phi, cdf_x, theta_ref, beta, P, rho, 1.0, rng, g, row, work)
        for j in range(d):
            theta[j] -= step * g[j] / batch
        project_ball_kernel(theta, theta_ref, radius)
    _record_iterate(record_at, r, T, theta, out)
    return 0


@kernel(ordered=True)
def _algorithm_b_kernel(theta0, phi, cdf_x, theta_ref, beta, P, rho, radius, step, T, gamma, inner_steps,
                        mu_in, rng, record_at, out):
    n_y, d = phi.shape[1], phi.shape[2]
    theta = theta0.copy()
    z = np.empty(d)
    avg = np.empty(d)
    g = np.zeros(d)
    row = np.empty(d)
    work = np.empty(2 * n_y)
    first_avg = inner_steps // 2 + 1
    r = 0
    for t in range(T):
        r = _record_iterate(record_at, r, t, theta, out)
        for j in range(d):
            z[j] = theta[j]
            avg[j] = 0.0
        for k in range(1, inner_steps + 1):
            for j in range(d):
                g[j] = 0.0
            _sample_pair_gradient(z, phi, cdf_x, theta_ref, beta, P, rho, 1.0, rng, g, row, work)
            lr = 1.0 / (mu_in * k)
            for j in range(d):
                z[j] -= lr * (g[j] + (z[j] - theta[j]) / gamma)
            project_ball_kernel(z, theta_ref, radius)
            if k >= first_avg:
                for j in range(d):
                    avg[j] += z[j]
        n_avg = inner_steps - first_avg + 1
        for j in range(d):
            theta[j] -= step * (theta[j] - avg[j] / n_avg) / gamma
        project_ball_kernel(theta, theta_ref, radius)
    _record_iterate(record_at, r, T, theta, out)
    return 0


@dataclass(frozen=True)
class AlgorithmRun:
    """Iterates theta_t recorded at ``record_at`` (sorted), the algorithm, samples drawn and (A) the
    total number of inner dual box-QP iterations."""

    algorithm: str
    record_at: np.ndarray
    iterates: np.ndarray
    samples: int
    inner_iterations: int


def random_iterate_indices(T: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """k iid uniform draws t* from {0, ..., T-1} (the output rule, docs/theory/sail.md §5.5/§5.6) as (unique sorted indices,
    inverse) so that ``values[inverse]`` are the k draws.

    Parameters
    ----------
    T : int
        Number of iterations (>= 1).
    k : int
        Number of draws (>= 1).
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    indices : numpy.ndarray, shape (m,), int
        The distinct drawn indices, sorted (m <= k).
    inverse : numpy.ndarray, shape (k,), int
        Position of each draw in ``indices``.
    """
    T = check_int("T", T, low=1)
    k = check_int("k", k, low=1)
    return np.unique(rng.integers(0, T, size=k), return_inverse=True)


def stratified_iterate_indices(T: int, per_stratum: int, rng: np.random.Generator,
                               proportional: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified draws of the output index t* ~ uniform{0, ..., T-1}: the dyadic strata {0}, [1, 2),
    [2, 4), ..., [2^(k-1), T) each get m_j = max(``per_stratum``, ceil(``proportional`` |stratum_j| / T))
    iid uniform draws with weight |stratum_j|/(T m_j) (docs/theory/sail.md §5.6).

    Returns (unique sorted indices, inverse, weights) so that ``weights @ values[inverse]`` is an
    unbiased estimate of (1/T) sum_t values_t = E_t* values: within each stratum it is the mean of m_j
    uniform draws, weighted by the stratum's share of [0, T). Unlike iid draws it always samples the
    early transient (weight ~ 1/T each, large values), whose hit-or-miss sampling dominates the variance
    of the iid estimator on long runs. ``proportional`` > 0 adds draws to the long late strata
    (proportional allocation on top of the floor ``per_stratum``): on a long run the last two strata
    hold 3/4 of the weight and, with equal allocation, most of the estimator's variance.

    Parameters
    ----------
    T : int
        Number of iterations (>= 1).
    per_stratum : int
        Minimum number of draws per dyadic stratum (>= 1).
    rng : numpy.random.Generator
        Source of the draws.
    proportional : int, default 0
        Total budget of the proportional allocation (>= 0): stratum j gets at least
        ceil(proportional |stratum_j| / T) draws. 0 gives ``per_stratum`` draws in every stratum.

    Returns
    -------
    indices : numpy.ndarray, shape (m,), int
        The distinct drawn indices, sorted.
    inverse : numpy.ndarray, shape (sum_j m_j,), int
        Position of each draw in ``indices``.
    weights : numpy.ndarray, shape (sum_j m_j,)
        Weight of each draw, |stratum_j|/(T m_j); they sum to 1.
    """
    T = check_int("T", T, low=1)
    per_stratum = check_int("per_stratum", per_stratum, low=1)
    proportional = check_int("proportional", proportional, low=0)
    edges = [0, 1]
    while edges[-1] < T:
        edges.append(min(2 * edges[-1], T))
    draws, weights = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = max(per_stratum, -(-proportional * (hi - lo) // T))
        draws.append(rng.integers(lo, hi, size=m))
        weights.append(np.full(m, (hi - lo) / (T * m)))
    idx, inverse = np.unique(np.concatenate(draws), return_inverse=True)
    return idx, inverse, np.concatenate(weights)


def run_algorithm(algorithm: str, theta0, phi, p_x, theta_ref, beta, P_obs, rho, radius, T: int,
                  step: float, rng: np.random.Generator, record_at, batch: int = 1,
                  gap_tol: float = 1e-10, inner_max_iter: int = 10_000, gamma: float = 0.1,
                  inner_steps: int = 16, mu_in: float | None = None, inner: str = "sgd") -> AlgorithmRun:
    """Run algorithm ``"A"``, ``"B"`` or ``"C"`` of docs/theory/sail.md §5.5 for T steps with constant
    step ``step`` = alpha.

    ``record_at``: iteration indices in [0, T] whose iterates theta_t are returned (theta_0 = theta0).
    A: ``batch`` = N_b samples per step and inner dual gap ``gap_tol`` (delta). B: ``gamma`` (Moreau
    parameter) and the inner solver of z_t ~= prox: ``inner="sgd"`` runs ``inner_steps`` = K_in
    projected stochastic subgradient steps 1/(mu_in k) (``mu_in`` defaults to 1/(2 gamma), the strong
    convexity 1/gamma - omega when gamma <= 1/(2 omega)); ``inner="model"`` solves the prox of the
    N_b-sample prox-linear model, argmin_Theta <G_t, z> + (1/N_b) sum_i pen_i(z) + ||z - theta_t||^2/(2 gamma),
    by the dual box-QP from s = 0 to duality gap <= ``gap_tol`` (the inner tolerance delta), then
    theta_{t+1} = theta_t - alpha (theta_t - z_t)/gamma. C: ``batch`` samples per subgradient.

    Parameters
    ----------
    algorithm : str
        "A", "B" or "C".
    theta0 : array_like, shape (d,)
        Start theta_0 (in Theta).
    phi : array_like, shape (n_x, n_y, d)
        Features.
    p_x : array_like, shape (n_x,)
        Prompt law.
    theta_ref : array_like, shape (d,)
        Reference-policy parameter (centre of Theta).
    beta : float
        DPO temperature (> 0).
    P_obs : array_like, shape (n_x, n_y, n_y)
        Observed oracle table, P_obs[x, a, b] + P_obs[x, b, a] = 1 (docs/theory/sail.md §5.2).
    rho : float
        Box radius of the oracle uncertainty, in [0, 1].
    radius : float
        Radius B of Theta = {||theta - theta_ref|| <= B} (> 0).
    T : int
        Number of steps (>= 1).
    step : float
        Constant step alpha (> 0; <= gamma for B).
    rng : numpy.random.Generator
        Source of the samples.
    record_at : array_like of int, shape (m,)
        Sorted indices in [0, T] of the iterates to record.
    batch : int, default 1
        Samples N_b per step (A, C, and B with ``inner="model"``).
    gap_tol : float, default 1e-10
        Duality-gap tolerance delta of the inner box-QP (A, B-model).
    inner_max_iter : int, default 10000
        Iteration budget of the inner box-QP (A, B-model).
    gamma : float, default 0.1
        Moreau parameter of B (> 0).
    inner_steps : int, default 16
        K_in inner subgradient steps of B-sgd (>= 1).
    mu_in : float or None, default None
        Inner step constant of B-sgd (> 0; default 1/(2 gamma)).
    inner : str, default "sgd"
        Inner solver of B: "sgd" or "model".

    Returns
    -------
    AlgorithmRun
        The iterates at ``record_at`` (shape (m, d)), the samples drawn and the inner dual iterations
        (0 for B-sgd and C).
    """
    check_choice("algorithm", algorithm, ALGORITHMS)
    theta0, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta0, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    radius = check_float("radius", radius, low=0.0, low_open=True)
    T = check_int("T", T, low=1)
    step = check_float("step", step, low=0.0, low_open=True)
    batch = check_int("batch", batch, low=1)
    if not isinstance(rng, np.random.Generator):
        raise ValueError("rng must be a numpy.random.Generator")
    record_at = np.ascontiguousarray(record_at, dtype=np.int64)
    if record_at.ndim != 1 or np.any(np.diff(record_at) < 0) or np.any(record_at < 0) or np.any(record_at > T):
        raise ValueError(f"record_at must be a sorted 1-D array of indices in [0, {T}]")
    theta0 = np.array(theta0)
    cdf_x = np.cumsum(p_x)
    out = np.empty((record_at.size, phi.shape[2]))
    if algorithm == "A":
        gap_tol = check_float("gap_tol", gap_tol, low=0.0)
        inner_max_iter = check_int("inner_max_iter", inner_max_iter, low=1)
        inner = _model_prox_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, 1.0 / step, 1.0, T,
                                   batch, gap_tol, inner_max_iter, rng, record_at, out)
        samples = T * batch
    elif algorithm == "B":
        gamma = check_float("gamma", gamma, low=0.0, low_open=True)
        check_choice("inner", inner, B_INNER_SOLVERS)
        if step > gamma:
            raise ValueError(f"step must be <= gamma={gamma} for algorithm B, got {step}")
        if inner == "model":
            gap_tol = check_float("gap_tol", gap_tol, low=0.0)
            inner_max_iter = check_int("inner_max_iter", inner_max_iter, low=1)
            inner = _model_prox_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, 1.0 / gamma,
                                       step / gamma, T, batch, gap_tol, inner_max_iter, rng, record_at, out)
            samples = T * batch
        else:
            inner_steps = check_int("inner_steps", inner_steps, low=1)
            mu_in = 1.0 / (2.0 * gamma) if mu_in is None else check_float("mu_in", mu_in, low=0.0, low_open=True)
            _algorithm_b_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, step, T, gamma,
                                inner_steps, mu_in, rng, record_at, out)
            samples = T * inner_steps
            inner = 0
    else:
        _algorithm_c_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, step, T, batch, rng,
                            record_at, out)
        samples = T * batch
        inner = 0
    return AlgorithmRun(algorithm, record_at, out, int(samples), int(inner))


@kernel(ordered=True)
def _deterministic_prox_linear_kernel(theta0, phi, p_x, theta_ref, beta, P, rho, pair_x, pair_a, pair_b,
                                      A, b, c_plus, c_minus, a_norm2, radius, step, T, gap_tol,
                                      inner_max_iter, out):
    K, d = A.shape
    g = np.empty(d)
    w = np.empty(K)
    u_plus = np.empty(K)
    u_minus = np.empty(K)
    s = np.zeros(K)
    tk = np.empty(K)
    z = np.empty(d)
    theta = theta0.copy()
    out[0] = theta
    for t in range(T):
        robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P, rho, 1.0, 0.0, g)
        pair_weights_kernel(theta, phi, p_x, pair_x, pair_a, pair_b, w)
        for k in range(K):
            u_plus[k] = w[k] * c_plus[k]
            u_minus[k] = w[k] * c_minus[k]
            s[k] = min(max(s[k], -u_minus[k]), u_plus[k])
        ball_box_qp_kernel(g, A, b, u_minus, u_plus, 1.0 / step, theta, theta_ref, radius, a_norm2,
                            gap_tol, inner_max_iter, s, z, tk)
        for j in range(d):
            theta[j] = z[j]
        out[t + 1] = theta


def deterministic_prox_linear(theta0, phi, p_x, theta_ref, beta, P_obs, rho, radius, T: int, step: float,
                              gap_tol: float = 1e-20, inner_max_iter: int = 200_000) -> np.ndarray:
    """Algorithm A with exact expectations: theta_{t+1} = argmin_{Theta} M_t(theta) + ||theta - theta_t||^2/(2 alpha),
    M_t the prox-linear model of F at theta_t (docs/theory/sail.md §5.4). Returns the iterates theta_0..theta_T, shape (T+1, d).

    With a constant alpha <= 1/(2 omega) the mean squared envelope gradient decays like 1/T
    (docs/theory/sail.md §5.6).

    Parameters
    ----------
    theta0 : array_like, shape (d,)
        Start theta_0 (in Theta).
    phi : array_like, shape (n_x, n_y, d)
        Features.
    p_x : array_like, shape (n_x,)
        Prompt law.
    theta_ref : array_like, shape (d,)
        Reference-policy parameter (centre of Theta).
    beta : float
        DPO temperature (> 0).
    P_obs : array_like, shape (n_x, n_y, n_y)
        Observed oracle table, P_obs[x, a, b] + P_obs[x, b, a] = 1 (docs/theory/sail.md §5.2).
    rho : float
        Box radius of the oracle uncertainty, in [0, 1].
    radius : float
        Radius B of Theta (> 0).
    T : int
        Number of steps (>= 1).
    step : float
        Constant step alpha (> 0).
    gap_tol : float, default 1e-20
        Duality-gap tolerance of the inner box-QP.
    inner_max_iter : int, default 200000
        Iteration budget of the inner box-QP.

    Returns
    -------
    numpy.ndarray, shape (T + 1, d)
        The iterates theta_0, ..., theta_T.
    """
    theta0, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta0, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    radius = check_float("radius", radius, low=0.0, low_open=True)
    T = check_int("T", T, low=1)
    step = check_float("step", step, low=0.0, low_open=True)
    pr = penalty_pairs(phi, theta_ref, beta, P_obs, rho)
    out = np.empty((T + 1, phi.shape[2]))
    _deterministic_prox_linear_kernel(theta0, phi, p_x, theta_ref, beta, P_obs, rho, pr.x, pr.a, pr.b,
                                      pr.rows, pr.offsets, pr.c_plus, pr.c_minus,
                                      float(np.linalg.norm(pr.rows, 2) ** 2), radius, step, T, gap_tol,
                                      inner_max_iter, out)
    return out
