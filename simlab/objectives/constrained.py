"""Constrained alignment by Lagrangian duality: exact population objects (docs/theory/constrained.md §6.1, §6.3, §6.4).

Distribution space (all policies):
    r_lambda = r + lambda^T c,   pi*(a|x; lambda) = pi_ref e^{r_lambda/beta} / Z(x; lambda),
    D(lambda) = beta E_x log Z(x; lambda),   grad D = E_x E_{pi*} c,   hess D = beta^-1 E_x Cov_{pi*}(c),
    L(pi, lambda) = E_x[E_pi r_lambda - beta KL(pi || pi_ref)] = D(lambda) - beta E_x KL(pi || pi*(lambda)).

Parameter space (log-linear pi_theta on phi):
    L(theta, lambda) = E_x[E_theta h + beta (log Z_theta - log Z_ref)],  h = r_lambda - beta (theta - theta_ref)^T phi,
    grad_theta L = E_x Cov_theta(phi, h),   hess_theta L = E_x[E_theta s s^T (h - hbar)] - beta E_x Cov_theta(phi),
    D_p(lambda) = max_theta L(theta, lambda) <= D(lambda); Danskin: E_x E_{theta*(lambda)} c in dD_p(lambda).
The theta-problem is non-concave (an I-projection of pi*(lambda)), so D_p uses a multistart Newton ascent.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.env.gap import GapEnv
from simlab.policy import log_policy, log_policy_kernel
from simlab.validation import check_array, check_int


# --------------------------------------------------------------------------- distribution space

def _log_normalise(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mx = logits.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
    return logits - lse[:, None], lse


def optimal_log_policy(env: GapEnv, lam) -> np.ndarray:
    """log pi*(a|x; lambda) = log pi_ref + r_lambda/beta - log Z(x; lambda), shape (n_x, n_y)."""
    return _log_normalise(env.log_ref + env.lagrangian_reward(lam) / env.beta)[0]


def dual_value(env: GapEnv, lam) -> float:
    """D(lambda) = beta E_x log E_{pi_ref} e^{r_lambda/beta}   (docs/theory/constrained.md §6.1)."""
    _, lse = _log_normalise(env.log_ref + env.lagrangian_reward(lam) / env.beta)
    return float(env.beta * (env.p_x @ lse))


def dual_value_grad_hess(env: GapEnv, lam) -> tuple[float, np.ndarray, np.ndarray]:
    """(D, grad D = E_x E_{pi*(lambda)} c, hess D = beta^-1 E_x Cov_{pi*(lambda)}(c))."""
    logp, lse = _log_normalise(env.log_ref + env.lagrangian_reward(lam) / env.beta)
    pi = np.exp(logp)
    mean_c = np.einsum("xa,xai->xi", pi, env.constraint)
    dev = env.constraint - mean_c[:, None, :]
    cov = np.einsum("x,xa,xai,xaj->ij", env.p_x, pi, dev, dev)
    return float(env.beta * (env.p_x @ lse)), env.p_x @ mean_c, cov / env.beta


def dual_smoothness_bound(env: GapEnv) -> float:
    """L_D <= (1/(4 beta)) sum_i range_i^2   (docs/theory/constrained.md §6.1, derived here)."""
    return float(np.sum(env.utility_ranges ** 2) / (4.0 * env.beta))


def constraint_value(env: GapEnv, log_pi: np.ndarray) -> np.ndarray:
    """E_x E_pi c, shape (m,) (>= 0 componentwise iff pi is feasible)."""
    return env.p_x @ np.einsum("xa,xai->xi", np.exp(log_pi), env.constraint)


def kl_per_context(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p(.|x) || q(.|x)) for each x, shape (n_x,)."""
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=1)


def regularised_reward(env: GapEnv, log_pi: np.ndarray) -> float:
    """J_beta(pi) = E_x[E_pi r - beta KL(pi || pi_ref)]."""
    per_x = np.sum(np.exp(log_pi) * env.reward, axis=1) - env.beta * kl_per_context(log_pi, env.log_ref)
    return float(env.p_x @ per_x)


def lagrangian(env: GapEnv, log_pi: np.ndarray, lam) -> float:
    """L(pi, lambda) = E_x[E_pi r_lambda - beta KL(pi || pi_ref)] for any table of log-probabilities."""
    return regularised_reward(env, log_pi) + float(constraint_value(env, log_pi) @ env.check_multipliers(lam))


def signed_violation(env: GapEnv, log_pi: np.ndarray) -> float:
    """max_i -E_x E_pi c_i: positive iff pi violates some constraint (by that much), <= 0 iff pi is feasible
    (then minus its smallest slack)."""
    return float(-constraint_value(env, log_pi).min())


def optimality_gaps(env: GapEnv, log_pi: np.ndarray, log_pi_star: np.ndarray) -> dict[str, float]:
    """R-OPT = |J_beta(pi*) - J_beta(pi)| and U-OPT = ||E_x[E_{pi*} c - E_pi c]|| in l2 and l_inf
    (docs/theory/constrained.md §6.3 metrics; the U-OPT norm is not confirmed, so both are reported), the
    signed R-OPT J_beta(pi*) - J_beta(pi) (negative when pi earns more regularised reward than pi*, which a
    feasible pi cannot) and the signed violation of pi (:func:`signed_violation`)."""
    du = constraint_value(env, log_pi_star) - constraint_value(env, log_pi)
    r_signed = regularised_reward(env, log_pi_star) - regularised_reward(env, log_pi)
    return {"r_opt": abs(r_signed), "r_opt_signed": float(r_signed),
            "u_opt_l2": float(np.linalg.norm(du)), "u_opt_linf": float(np.abs(du).max()),
            "violation": signed_violation(env, log_pi)}


# --------------------------------------------------------------------------- parameter space kernels

VALUE_NOISE_RTOL = 1e-12  # relative round-off of L accepted by the Newton ascent when the gradient falls

@kernel
def lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, want_hess):
    """L(theta, lambda) = E_x E_theta[h], h = r_lambda - beta (log pi_theta - log pi_ref), filling grad and
    (if want_hess) hess in place; see the module docstring (h there differs from this one by a constant
    per context, which the centred gradient and Hessian do not see)."""
    n_x, n_y, d = phi.shape
    value = 0.0
    grad[:] = 0.0
    hess[:, :] = 0.0
    log_pi = np.empty((n_x, n_y))
    log_ref = np.empty((n_x, n_y))
    log_policy_kernel(theta, phi, log_pi)
    log_policy_kernel(theta_ref, phi, log_ref)
    pi = np.empty(n_y)
    h = np.empty(n_y)
    mean = np.empty(d)
    s = np.empty(d)
    for x in range(n_x):
        mean[:] = 0.0
        hbar = 0.0
        for a in range(n_y):
            pi[a] = np.exp(log_pi[x, a])
            h[a] = r_lam[x, a] - beta * (log_pi[x, a] - log_ref[x, a])
            hbar += pi[a] * h[a]
            for k in range(d):
                mean[k] += pi[a] * phi[x, a, k]
        w = p_x[x]
        value += w * hbar
        for a in range(n_y):
            dh = h[a] - hbar
            for k in range(d):
                s[k] = phi[x, a, k] - mean[k]
                grad[k] += w * pi[a] * s[k] * dh
            if want_hess:
                coef = w * pi[a] * (dh - beta)
                for k in range(d):
                    for j in range(k + 1):
                        hess[k, j] += coef * s[k] * s[j]
    if want_hess:
        for k in range(d):
            for j in range(k):
                hess[j, k] = hess[k, j]
    return value


@kernel
def newton_ascent_kernel(theta0, phi, p_x, r_lam, theta_ref, beta, gtol, max_iter):
    """Maximise L(., lambda) from theta0: Newton on |eigenvalue|-regularised curvature (saddle-free
    Newton, so a non-concave region still gives an ascent direction) with Armijo backtracking.
    Returns (theta, value, grad_norm, iterations)."""
    d = theta0.shape[0]
    theta = theta0.copy()
    grad = np.empty(d)
    hess = np.empty((d, d))
    trial = np.empty(d)
    g2 = np.empty(d)
    h2 = np.empty((d, d))
    value = lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, True)
    it = 0
    gnorm = np.sqrt(np.sum(grad * grad))
    while it < max_iter and gnorm > gtol:
        evals, evecs = np.linalg.eigh(-hess)
        floor = 1e-10 * max(1.0, np.max(np.abs(evals)))
        coords = evecs.T @ grad
        for k in range(d):
            coords[k] /= max(abs(evals[k]), floor)
        step = evecs @ coords
        slope = np.sum(grad * step)
        alpha = 1.0
        accepted = False
        for _ in range(60):
            for k in range(d):
                trial[k] = theta[k] + alpha * step[k]
            v = lagrangian_theta_kernel(trial, phi, p_x, r_lam, theta_ref, beta, g2, h2, False)
            if v >= value + 1e-4 * alpha * slope or (alpha * np.sqrt(np.sum(step * step)) < 1e-15):
                accepted = True
                break
            # near the maximiser the increase falls below the rounding of L (at large |theta| L is a sum
            # of O(|theta|) terms): accept a full step that keeps L within that rounding and reduces the
            # gradient, as Newton does quadratically there
            if alpha == 1.0 and v >= value - VALUE_NOISE_RTOL * max(1.0, abs(value)) \
                    and np.sqrt(np.sum(g2 * g2)) < gnorm:
                accepted = True
                break
            alpha *= 0.5
        it += 1
        if not accepted:
            break
        for k in range(d):
            theta[k] = trial[k]
        value = lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, True)
        gnorm = np.sqrt(np.sum(grad * grad))
    return theta, value, gnorm, it


def lagrangian_theta(env: GapEnv, theta, lam, hessian: bool = True):
    """(L(pi_theta, lambda), grad_theta L, hess_theta L) (the Hessian is None unless ``hessian``)."""
    theta = check_array("theta", theta, ndim=1, shape=(env.d,))
    r_lam = np.ascontiguousarray(env.lagrangian_reward(lam))
    grad = np.empty(env.d)
    hess = np.empty((env.d, env.d))
    value = lagrangian_theta_kernel(theta, env.phi, env.p_x, r_lam, env.theta_ref, env.beta, grad, hess, hessian)
    return value, grad, (hess if hessian else None)


def constraint_theta(env: GapEnv, theta) -> tuple[np.ndarray, np.ndarray]:
    """(C(theta) = E_x E_theta c, shape (m,); Jacobian dC/dtheta = E_x Cov_theta(c, phi), shape (m, d))."""
    theta = check_array("theta", theta, ndim=1, shape=(env.d,))
    lp = log_policy(theta, env.phi)
    pi = np.exp(lp)
    mean_phi = np.einsum("xa,xak->xk", pi, env.phi)
    mean_c = np.einsum("xa,xai->xi", pi, env.constraint)
    jac = np.einsum("x,xa,xai,xak->ik", env.p_x, pi, env.constraint - mean_c[:, None, :],
                    env.phi - mean_phi[:, None, :])
    return env.p_x @ mean_c, jac


@dataclass(frozen=True)
class ParametrisedDual:
    """D_p(lambda) and its maximiser: value, theta (argmax), subgradient E_x E_theta c (Danskin),
    grad_norm at theta, the spread of the local maxima found (0 if all starts agree) and hessian =
    -J H^-1 J^T, the curvature of D_p where the maximiser is unique and non-degenerate."""

    value: float
    theta: np.ndarray
    subgradient: np.ndarray
    grad_norm: float
    local_spread: float
    hessian: np.ndarray


def maximise_lagrangian(env: GapEnv, lam, starts=(), n_random: int = 3, seed: int = 0,
                        gtol: float = 1e-11, max_iter: int = 200) -> tuple[np.ndarray, float, float, float]:
    """Multistart Newton ascent of L(theta, lambda) over theta. Starts: the given ``starts``, theta_ref,
    the projected optimal logits (``env.realizable_theta``) and ``n_random`` Gaussian perturbations of it.
    Returns (theta, value, grad_norm, spread of local maximum values)."""
    lam = env.check_multipliers(lam)
    n_random = check_int("n_random", n_random, 0)
    r_lam = np.ascontiguousarray(env.lagrangian_reward(lam))
    guess = env.realizable_theta(lam)
    rng = np.random.default_rng(seed)
    cand = [np.asarray(s, dtype=np.float64) for s in starts] + [env.theta_ref, guess]
    scale = 1.0 + np.linalg.norm(guess - env.theta_ref)
    cand += [guess + scale * rng.standard_normal(env.d) for _ in range(n_random)]
    best = None
    values = []
    for c in cand:
        th, val, gn, _ = newton_ascent_kernel(np.ascontiguousarray(c), env.phi, env.p_x, r_lam,
                                               env.theta_ref, env.beta, gtol, max_iter)
        values.append(val)
        if best is None or val > best[1]:
            best = (th, val, gn)
    return best[0], best[1], best[2], float(max(values) - min(values))


def parametrised_dual(env: GapEnv, lam, starts=(), n_random: int = 3, seed: int = 0) -> ParametrisedDual:
    """D_p(lambda) = max_theta L(pi_theta, lambda) with a Danskin subgradient (docs/theory/constrained.md §6.1)."""
    lam = env.check_multipliers(lam)
    theta, value, gnorm, spread = maximise_lagrangian(env, lam, starts, n_random, seed)
    _, _, hess = lagrangian_theta(env, theta, lam)
    sub, jac = constraint_theta(env, theta)
    try:
        curvature = -jac @ np.linalg.solve(hess, jac.T)
    except np.linalg.LinAlgError:
        curvature = np.full((env.m, env.m), np.nan)
    return ParametrisedDual(value=float(value), theta=theta, subgradient=sub, grad_norm=float(gnorm),
                            local_spread=spread, hessian=curvature)


def gap_proxy(env: GapEnv, lam_grid, n_random: int = 3, starts=()) -> dict[str, float]:
    """nu-hat = max over the lambda grid of max{max_x ||pi_theta*(lambda) - pi*(lambda)||_1,
    max_x |KL(pi*(lambda) || pi_ref) - KL(pi_theta*(lambda) || pi_ref)|}   (docs/theory/constrained.md §6.4).
    Returns nu_hat and its two parts nu_1, nu_kl (each maximised over the grid). ``starts`` are extra
    starts of every inner maximisation."""
    lam_grid = check_array("lam_grid", np.atleast_2d(lam_grid), ndim=2)
    if lam_grid.shape[1] != env.m:
        raise ValueError(f"lam_grid must have shape (n, m={env.m}), got {lam_grid.shape}")
    nu_1 = nu_kl = 0.0
    for lam in lam_grid:
        lp_star = optimal_log_policy(env, lam)
        theta = maximise_lagrangian(env, lam, starts=starts, n_random=n_random)[0]
        lp = log_policy(theta, env.phi)
        nu_1 = max(nu_1, float(np.abs(np.exp(lp) - np.exp(lp_star)).sum(axis=1).max()))
        nu_kl = max(nu_kl, float(np.abs(kl_per_context(lp_star, env.log_ref)
                                        - kl_per_context(lp, env.log_ref)).max()))
    return {"nu_hat": max(nu_1, nu_kl), "nu_1": nu_1, "nu_kl": nu_kl}


def global_gap_proxy(env: GapEnv, n_policies: int = 32, concentration: float = 1.0, seed: int = 0) -> dict[str, float]:
    """A global companion of nu-hat (docs/theory/constrained.md §6.4): the A3 errors of the I-projection pi_theta of random
    policies pi(.|x) ~ Dirichlet(concentration) (iid over x), maximised over ``n_policies`` draws.
    The I-projection argmin_theta E_x KL(pi_theta || pi) is the Lagrangian maximiser for the reward
    r = beta (log pi - log pi_ref) (then pi*(lambda) = pi), so it reuses the multistart Newton ascent."""
    n_policies = check_int("n_policies", n_policies, 1)
    rng = np.random.default_rng(seed)
    nu_1 = nu_kl = 0.0
    for _ in range(n_policies):
        pi = rng.dirichlet(np.full(env.log_ref.shape[1], concentration), size=env.log_ref.shape[0])
        log_pi = np.log(np.maximum(pi, 1e-300))
        r = np.ascontiguousarray(env.beta * (log_pi - env.log_ref))
        best = None
        for start in (env.theta_ref, np.zeros(env.d)):
            th, val, _, _ = newton_ascent_kernel(np.ascontiguousarray(start, dtype=np.float64), env.phi, env.p_x, r,
                                                  env.theta_ref, env.beta, 1e-11, 200)
            if best is None or val > best[1]:
                best = (th, val)
        lp = log_policy(best[0], env.phi)
        nu_1 = max(nu_1, float(np.abs(np.exp(lp) - pi).sum(axis=1).max()))
        nu_kl = max(nu_kl, float(np.abs(kl_per_context(log_pi, env.log_ref) - kl_per_context(lp, env.log_ref)).max()))
    return {"nu_global": max(nu_1, nu_kl), "nu_1": nu_1, "nu_kl": nu_kl}


def duality_constant(env: GapEnv, lam) -> float:
    """C(lambda) = M + beta + M ||lambda||_1   (docs/theory/constrained.md §6.3)."""
    lam = env.check_multipliers(lam)
    return env.bound_M + env.beta + env.bound_M * float(np.sum(lam))

