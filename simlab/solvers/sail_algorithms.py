"""Stochastic algorithms for oracle-robust SAIL (spec §5.5), each run as one jitted loop.

Every step draws N_b samples: x ~ p_x, then a, b ~ pi_{theta_t}(.|x) iid, then y ~ Bern(P_obs(x,a,b)).
With pen_i(theta) = c+_i [h_i(theta)]_+ + c-_i [-h_i(theta)]_+ (c from P_obs, not y):

    G_t = mean_i[(sigma(h_i) - y_i) beta dphi_i + (l_{y_i}(h_i) + pen_i(h_i))(s(a_i) + s(b_i))].

- **A, stochastic prox-linear** (Davis–Drusvyatskiy model-based; the paper's projected stochastic
  composite update): theta_{t+1} ~= argmin_{theta in Theta} <G_t, theta> + (1/N_b) sum_i pen_i(theta)
  + ||theta - theta_t||^2/(2 alpha), solved by the dual box-QP of :mod:`simlab.solvers.prox` to gap delta.
- **B, inexact stochastic proximal point**: z_t ~= prox_{gamma F}(theta_t) by K_in projected stochastic
  subgradient steps 1/(mu_in k) on the (1/gamma - omega)-strongly convex subproblem with suffix averaging
  (last half), then theta_{t+1} = Proj(theta_t - alpha (theta_t - z_t)/gamma).
- **C, projected stochastic subgradient** (baseline): theta_{t+1} = Proj(theta_t - alpha G^full_t),
  G^full = G_t + (c+ 1[h > 0] - c- 1[h < 0]) beta dphi.

Output rule: theta_{t*} with t* uniform on {0, ..., T-1}; runs record the iterates at given indices
(:func:`random_iterate_indices` draws them), so E||grad env(theta_{t*})||^2 is estimated without bias.
The deterministic variant of A (exact expectations) is one prox-linear model step per iteration.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.objectives.sail import (_check_problem, _pair_weights_kernel, _robust_sail_kernel,
                                    _sample_pair_gradient, penalty_pairs)
from simlab.solvers.prox import _ball_box_qp_kernel
from simlab.validation import check_choice, check_float, check_int

ALGORITHMS = ("A", "B", "C")


@kernel(ordered=True)
def _project_ball(theta, center, radius):
    """In-place Euclidean projection onto ||theta - center|| <= radius."""
    n2 = 0.0
    for j in range(theta.size):
        n2 += (theta[j] - center[j]) ** 2
    if n2 > radius * radius:
        f = radius / math.sqrt(n2)
        for j in range(theta.size):
            theta[j] = center[j] + f * (theta[j] - center[j])


@kernel(ordered=True)
def _record_iterate(record_at, r, t, theta, out) -> int:
    """Copy theta into out for every remaining recording index equal to t (record_at is sorted);
    returns the next unused position r."""
    while r < record_at.size and record_at[r] == t:
        out[r] = theta
        r += 1
    return r


@kernel(ordered=True)
def _algorithm_a_kernel(theta0, phi, cdf_x, theta_ref, beta, P, rho, radius, step, T, batch, gap_tol,
                        inner_max_iter, rng, record_at, out):
    """Algorithm A; returns the total number of inner dual iterations."""
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
    kappa = 1.0 / step
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
        _, it, _ = _ball_box_qp_kernel(g, rows, offs, u_minus, u_plus, kappa, theta, theta_ref, radius,
                                       a_norm2, gap_tol, inner_max_iter, s, z, tk)
        inner += it
        for j in range(d):
            theta[j] = z[j]
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
        _project_ball(theta, theta_ref, radius)
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
            _project_ball(z, theta_ref, radius)
            if k >= first_avg:
                for j in range(d):
                    avg[j] += z[j]
        n_avg = inner_steps - first_avg + 1
        for j in range(d):
            theta[j] -= step * (theta[j] - avg[j] / n_avg) / gamma
        _project_ball(theta, theta_ref, radius)
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
    """k iid uniform draws t* from {0, ..., T-1} (the output rule, §5.5/§5.6) as (unique sorted indices,
    inverse) so that ``values[inverse]`` are the k draws."""
    T = check_int("T", T, low=1)
    k = check_int("k", k, low=1)
    return np.unique(rng.integers(0, T, size=k), return_inverse=True)


def run_algorithm(algorithm: str, theta0, phi, p_x, theta_ref, beta, P_obs, rho, radius, T: int,
                  step: float, rng: np.random.Generator, record_at, batch: int = 1,
                  gap_tol: float = 1e-10, inner_max_iter: int = 10_000, gamma: float = 0.1,
                  inner_steps: int = 16, mu_in: float | None = None) -> AlgorithmRun:
    """Run algorithm ``"A"``, ``"B"`` or ``"C"`` of §5.5 for T steps with constant step ``step`` = alpha.

    ``record_at``: iteration indices in [0, T] whose iterates theta_t are returned (theta_0 = theta0).
    A: ``batch`` = N_b samples per step and inner dual gap ``gap_tol`` (delta). B: ``gamma`` (Moreau
    parameter), ``inner_steps`` = K_in samples per step and ``mu_in`` (default 1/(2 gamma), the strong
    convexity 1/gamma - omega when gamma <= 1/(2 omega)). C: ``batch`` samples per subgradient.
    """
    check_choice("algorithm", algorithm, ALGORITHMS)
    theta0, phi, p_x, theta_ref, beta, P_obs = _check_problem(theta0, phi, p_x, theta_ref, beta, P_obs)
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
    inner = 0
    if algorithm == "A":
        gap_tol = check_float("gap_tol", gap_tol, low=0.0)
        inner_max_iter = check_int("inner_max_iter", inner_max_iter, low=1)
        inner = _algorithm_a_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, step, T, batch,
                                    gap_tol, inner_max_iter, rng, record_at, out)
        samples = T * batch
    elif algorithm == "B":
        gamma = check_float("gamma", gamma, low=0.0, low_open=True)
        inner_steps = check_int("inner_steps", inner_steps, low=1)
        mu_in = 1.0 / (2.0 * gamma) if mu_in is None else check_float("mu_in", mu_in, low=0.0, low_open=True)
        if step > gamma:
            raise ValueError(f"step must be <= gamma={gamma} for algorithm B, got {step}")
        _algorithm_b_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, step, T, gamma,
                            inner_steps, mu_in, rng, record_at, out)
        samples = T * inner_steps
    else:
        _algorithm_c_kernel(theta0, phi, cdf_x, theta_ref, beta, P_obs, rho, radius, step, T, batch, rng,
                            record_at, out)
        samples = T * batch
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
        _robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P, rho, 1.0, 0.0, g)
        _pair_weights_kernel(theta, phi, p_x, pair_x, pair_a, pair_b, w)
        for k in range(K):
            u_plus[k] = w[k] * c_plus[k]
            u_minus[k] = w[k] * c_minus[k]
            s[k] = min(max(s[k], -u_minus[k]), u_plus[k])
        _ball_box_qp_kernel(g, A, b, u_minus, u_plus, 1.0 / step, theta, theta_ref, radius, a_norm2,
                            gap_tol, inner_max_iter, s, z, tk)
        for j in range(d):
            theta[j] = z[j]
        out[t + 1] = theta


def deterministic_prox_linear(theta0, phi, p_x, theta_ref, beta, P_obs, rho, radius, T: int, step: float,
                              gap_tol: float = 1e-20, inner_max_iter: int = 200_000) -> np.ndarray:
    """Algorithm A with exact expectations: theta_{t+1} = argmin_{Theta} M_t(theta) + ||theta - theta_t||^2/(2 alpha),
    M_t the prox-linear model of F at theta_t (§5.4). Returns the iterates theta_0..theta_T, shape (T+1, d)."""
    theta0, phi, p_x, theta_ref, beta, P_obs = _check_problem(theta0, phi, p_x, theta_ref, beta, P_obs)
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
