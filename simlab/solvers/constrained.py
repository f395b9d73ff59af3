"""Solvers for constrained alignment (docs/theory/constrained.md §6.1, §6.4): lambda* by projected Newton on D, D*_p by projected
Newton on D_p (Danskin gradient, implicit curvature), direct primal solves V* (distribution space) and V*_p
(parameter space, multistart SLSQP + KKT Newton polish), CAID (exact or sampled dual gradients, exact or
truncated inner ascent), one-shot CAN (plug-in dual from pi_ref samples) and simultaneous gradient
descent-ascent. The CAID and GDA loops run whole in one numba call and record log-spaced checkpoints.
D_p(lambda) = max_theta L(theta, lambda) (:func:`parametrized_dual`, multistart saddle-free Newton ascent) and the
parametrization-gap proxies live here too. The Newton variants themselves (projected Newton on lambda >= 0, the
saddle-free Newton ascent in theta) live in ``simlab.solvers.exact`` with its one result type.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from simlab._jit import kernel
from simlab.env.gap import GapEnv
from simlab.env.sampling import AliasTable, multinomial_into, sample_atoms
from simlab.objectives.constrained import (
    constraint_theta,
    dual_value_grad_hess,
    kl_per_context,
    lagrangian_theta,
    lagrangian_theta_kernel,
    lagrangian_theta_logref_kernel,
    optimal_log_policy,
    regularized_reward,
)
from simlab.policy import log_policy, log_policy_kernel
from simlab.solvers.checkpoints import log_checkpoints
from simlab.solvers.exact import (
    DECREMENT_RTOL, NewtonResult, newton_ascent, newton_ascent_kernel, projected_gradient, projected_newton)
from simlab.validation import check_array, check_choice, check_float, check_int


# --------------------------------------------------------------------------- projected Newton on lambda >= 0

@dataclass(frozen=True)
class DualSolution:
    """Minimizer of a convex dual over lambda >= 0: lam, value, grad, hessian, projected-gradient norm,
    iterations, converged; theta is the inner maximizer (parametrized dual only)."""

    lam: np.ndarray
    value: float
    grad: np.ndarray
    hessian: np.ndarray
    pg_norm: float
    iterations: int
    converged: bool
    theta: np.ndarray | None = None


def _dual_newton(fgh, lam0, tol: float) -> DualSolution:
    """Projected Newton (``simlab.solvers.exact.projected_newton``) on a dual over lambda >= 0;
    ``fgh(lam) -> (value, grad, hessian, theta)``. The gradient and theta of the final iterate are those
    of the evaluation whose Hessian the Newton result carries (found by identity)."""
    evaluations = []

    def fgh3(lam):
        f, g, H, extra = fgh(lam)
        evaluations.append((H, g, extra))
        return f, g, H

    res = projected_newton(fgh3, lam0, gtol=tol)
    _, grad, theta = next(e for e in reversed(evaluations) if e[0] is res.hess)
    return DualSolution(lam=res.x, value=res.fun, grad=grad, hessian=res.hess, pg_norm=res.grad_norm,
                        iterations=res.iterations, converged=res.converged, theta=theta)


def solve_dual(env: GapEnv, lam0=None, linear_offset: float = 0.0, tol: float = 1e-11) -> DualSolution:
    """lambda* = argmin_{lambda >= 0} D(lambda) - linear_offset * ||lambda||_1 by projected Newton.
    linear_offset = 0 gives lambda*; linear_offset = M nu gives lambda*_nu of Theorem 1 (docs/theory/constrained.md §6.3).

    D(lambda) = beta E_x log Z(x; lambda) is convex and smooth with the exact gradient E_x E_{pi*(lambda)} c
    and Hessian E_x Cov_{pi*(lambda)}(g)/beta (docs/theory/constrained.md §6.1), so projected Newton
    (:func:`simlab.solvers.exact.projected_newton`) converges quadratically.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    lam0 : array_like, shape (m,), optional
        Start (>= 0; default 0).
    linear_offset : float, default 0.0
        The slope M nu >= 0 subtracted along ||lambda||_1.
    tol : float, default 1e-11
        Projected-gradient tolerance.

    Returns
    -------
    DualSolution
        lambda, the objective value, gradient and Hessian there, the projected-gradient norm, the
        iterations and whether ``tol`` was met (theta is None).
    """
    linear_offset = check_float("linear_offset", linear_offset, 0.0)
    lam0 = np.zeros(env.m) if lam0 is None else env.check_multipliers(lam0)

    def fgh(lam):
        D, g, H = dual_value_grad_hess(env, lam)
        return D - linear_offset * lam.sum(), g - linear_offset, H, None

    return _dual_newton(fgh, lam0, tol)


@dataclass(frozen=True)
class ParametrizedDual:
    """D_p(lambda) and its maximizer: value, theta (argmax), subgradient E_x E_theta c (Danskin),
    grad_norm at theta, the spread of the local maxima found (0 if all starts agree) and hessian =
    -J H^-1 J^T, the curvature of D_p where the maximizer is unique and non-degenerate."""

    value: float
    theta: np.ndarray
    subgradient: np.ndarray
    grad_norm: float
    local_spread: float
    hessian: np.ndarray


def maximize_lagrangian(env: GapEnv, lam, starts=(), n_random: int = 3, seed: int = 0,
                        gtol: float = 1e-11, max_iter: int = 200) -> tuple[NewtonResult, float]:
    """Multistart saddle-free Newton ascent of L(theta, lambda) over theta (``simlab.solvers.exact.newton_ascent``).
    Starts: the given ``starts``, theta_ref, the projected optimal logits (``env.realizable_theta``) and
    ``n_random`` Gaussian perturbations of it. Returns (the result of the best start, the spread max - min
    of the local maximum values found).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    lam : array_like, shape (m,)
        Multipliers (>= 0).
    starts : sequence of array_like, shape (d,)
        Extra starts.
    n_random : int, default 3
        Number of random starts (>= 0).
    seed : int, default 0
        Seed of the random starts.
    gtol : float, default 1e-11
        Gradient-norm tolerance of each ascent.
    max_iter : int, default 200
        Newton-step budget of each ascent.

    Returns
    -------
    best : simlab.solvers.exact.NewtonResult
        The ascent with the largest L (x = theta*(lambda), fun = D_p(lambda), hess = Hessian of L).
    spread : float
        max - min of the local maximum values over the starts (0 when all agree).
    """
    lam = env.check_multipliers(lam)
    n_random = check_int("n_random", n_random, 0)
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
    r_lam = np.ascontiguousarray(env.lagrangian_reward(lam), dtype=np.float64)
    guess = env.realizable_theta(lam)
    rng = np.random.default_rng(seed)
    cand = [check_array("starts", s, shape=(env.d,)) for s in starts] + [env.theta_ref, guess]
    scale = 1.0 + np.linalg.norm(guess - env.theta_ref)
    cand += [guess + scale * rng.standard_normal(env.d) for _ in range(n_random)]
    # the problem (the environment's arrays, checked when it was built, and r_lam) is the same for every
    # start: validated once here, not once per ascent (the check cost a third of a multishot cell)
    phi, p_x, theta_ref = (np.ascontiguousarray(a, dtype=np.float64) for a in (env.phi, env.p_x, env.theta_ref))
    best = None
    values = []
    for c in cand:
        res = newton_ascent(np.ascontiguousarray(c, dtype=np.float64), phi, p_x, r_lam, theta_ref, env.beta, gtol,
                            max_iter, check_input=False)
        values.append(res.fun)
        if best is None or res.fun > best.fun:
            best = res
    return best, float(max(values) - min(values))


def parametrized_dual(env: GapEnv, lam, starts=(), n_random: int = 3, seed: int = 0) -> ParametrizedDual:
    """D_p(lambda) = max_theta L(pi_theta, lambda) with a Danskin subgradient (docs/theory/constrained.md §6.1).

    The maximizer theta* comes from :func:`maximize_lagrangian`; the subgradient is E_x E_{theta*} c and the
    curvature -J H^-1 J^T, with J the Jacobian of theta -> E_x E_theta c and H the Hessian of L at theta*
    (implicit differentiation of grad_theta L = 0).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    lam : array_like, shape (m,)
        Multipliers (>= 0).
    starts : sequence of array_like, shape (d,)
        Extra starts of the inner maximization.
    n_random : int, default 3
        Number of random starts.
    seed : int, default 0
        Seed of the random starts.

    Returns
    -------
    ParametrizedDual
        Value, maximizer, subgradient, final gradient norm, spread of the local maxima and curvature
        (NaN where H is singular).
    """
    lam = env.check_multipliers(lam)
    best, spread = maximize_lagrangian(env, lam, starts, n_random, seed)
    sub, jac = constraint_theta(env, best.x)
    try:
        curvature = -jac @ np.linalg.solve(best.hess, jac.T)
    except np.linalg.LinAlgError:
        curvature = np.full((env.m, env.m), np.nan)
    return ParametrizedDual(value=best.fun, theta=best.x, subgradient=sub, grad_norm=best.grad_norm,
                            local_spread=spread, hessian=curvature)


def gap_proxy(env: GapEnv, lam_grid, n_random: int = 3, starts=()) -> dict[str, float]:
    """nu-hat = max over the lambda grid of max{max_x ||pi_theta*(lambda) - pi*(lambda)||_1,
    max_x |KL(pi*(lambda) || pi_ref) - KL(pi_theta*(lambda) || pi_ref)|}   (docs/theory/constrained.md §6.4).
    Returns nu_hat and its two parts nu_1, nu_kl (each maximized over the grid). ``starts`` are extra
    starts of every inner maximization.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    lam_grid : array_like, shape (n, m) or (m,)
        The multipliers lambda at which the errors are measured.
    n_random : int, default 3
        Random starts of each inner maximization.
    starts : sequence of array_like, shape (d,)
        Extra starts of each inner maximization.

    Returns
    -------
    dict of str to float
        ``nu_hat`` = max(nu_1, nu_kl), ``nu_1`` (the L1 part) and ``nu_kl`` (the KL part).
    """
    lam_grid = check_array("lam_grid", np.atleast_2d(lam_grid), ndim=2)
    if lam_grid.shape[1] != env.m:
        raise ValueError(f"lam_grid must have shape (n, m={env.m}), got {lam_grid.shape}")
    nu_1 = nu_kl = 0.0
    for lam in lam_grid:
        lp_star = optimal_log_policy(env, lam)
        lp = log_policy(maximize_lagrangian(env, lam, starts=starts, n_random=n_random)[0].x, env.phi)
        nu_1 = max(nu_1, float(np.abs(np.exp(lp) - np.exp(lp_star)).sum(axis=1).max()))
        nu_kl = max(nu_kl, float(np.abs(kl_per_context(lp_star, env.log_ref)
                                        - kl_per_context(lp, env.log_ref)).max()))
    return {"nu_hat": max(nu_1, nu_kl), "nu_1": nu_1, "nu_kl": nu_kl}


def global_gap_proxy(env: GapEnv, n_policies: int = 32, concentration: float = 1.0, seed: int = 0) -> dict[str, float]:
    """A global companion of nu-hat (docs/theory/constrained.md §6.4): the A3 errors of the I-projection pi_theta of random
    policies pi(.|x) ~ Dirichlet(concentration) (iid over x), maximized over ``n_policies`` draws.
    The I-projection argmin_theta E_x KL(pi_theta || pi) is the Lagrangian maximizer for the reward
    r = beta (log pi - log pi_ref) (then pi*(lambda) = pi), so it reuses the multistart Newton ascent.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    n_policies : int, default 32
        Number of random target policies (>= 1).
    concentration : float, default 1.0
        Symmetric Dirichlet concentration of each pi(.|x).
    seed : int, default 0
        Seed of the draws.

    Returns
    -------
    dict of str to float
        ``nu_global`` = max(nu_1, nu_kl), ``nu_1`` = max_x ||pi_theta - pi||_1 and
        ``nu_kl`` = max_x |KL(pi || pi_ref) - KL(pi_theta || pi_ref)|, each maximized over the draws.
    """
    n_policies = check_int("n_policies", n_policies, 1)
    rng = np.random.default_rng(seed)
    nu_1 = nu_kl = 0.0
    for _ in range(n_policies):
        pi = rng.dirichlet(np.full(env.log_ref.shape[1], concentration), size=env.log_ref.shape[0])
        log_pi = np.log(np.maximum(pi, 1e-300))
        r = np.ascontiguousarray(env.beta * (log_pi - env.log_ref))
        best = None
        for start in (env.theta_ref, np.zeros(env.d)):
            res = newton_ascent(start, env.phi, env.p_x, r, env.theta_ref, env.beta, 1e-11, 200)
            if best is None or res.fun > best.fun:
                best = res
        lp = log_policy(best.x, env.phi)
        nu_1 = max(nu_1, float(np.abs(np.exp(lp) - pi).sum(axis=1).max()))
        nu_kl = max(nu_kl, float(np.abs(kl_per_context(log_pi, env.log_ref) - kl_per_context(lp, env.log_ref)).max()))
    return {"nu_global": max(nu_1, nu_kl), "nu_1": nu_1, "nu_kl": nu_kl}


class MaximizerPool:
    """Local maximizers of L(., lambda) found so far (at any lambda), reused as starts: the local maxima
    move continuously with lambda, so a branch found at one lambda is found again nearby even where random
    starts miss it (D_p at small beta and large gap is strongly multimodal)."""

    def __init__(self, capacity: int = 32, min_distance: float = 1e-2):
        self.capacity = check_int("capacity", capacity, 1)
        self.min_distance = check_float("min_distance", min_distance, 0.0)
        self.thetas: list[np.ndarray] = []

    def add(self, theta) -> None:
        """Keep theta unless a pooled start lies within min_distance (the same branch, nearby lambda).

        The oldest entries are dropped beyond ``capacity``.

        Parameters
        ----------
        theta : array_like, shape (d,)
            A local maximizer of L(., lambda).
        """
        theta = np.asarray(theta, dtype=np.float64)
        if all(np.linalg.norm(theta - t) > self.min_distance for t in self.thetas):
            self.thetas.append(theta.copy())
            del self.thetas[: max(0, len(self.thetas) - self.capacity)]

    def evaluate(self, env: GapEnv, lam, n_random: int = 3):
        """parametrized_dual at lam with the pool as extra starts; the maximizer joins the pool.

        Parameters
        ----------
        env : simlab.env.gap.GapEnv
            The instance.
        lam : array_like, shape (m,)
            Multipliers (>= 0).
        n_random : int, default 3
            Random starts besides the pool.

        Returns
        -------
        ParametrizedDual
            As :func:`parametrized_dual`.
        """
        res = parametrized_dual(env, lam, starts=self.thetas, n_random=n_random)
        self.add(res.theta)
        return res

    def sweep(self, env: GapEnv, lam_grid, n_random: int = 3) -> None:
        """Seed the pool along a lambda grid, forward then backward (each pass continues every branch).

        Parameters
        ----------
        env : simlab.env.gap.GapEnv
            The instance.
        lam_grid : array_like, shape (n, m) or (m,)
            The multipliers, in order along the path.
        n_random : int, default 3
            Random starts of each evaluation.
        """
        grid = np.atleast_2d(np.asarray(lam_grid, dtype=np.float64))
        for lam in list(grid) + list(grid[::-1]):
            self.evaluate(env, lam, n_random)


def minimize_parametrized_dual(env: GapEnv, lam0=None, tol: float = 1e-10, n_random: int = 3,
                               method: str | None = None, pool: MaximizerPool | None = None) -> DualSolution:
    """D*_p = min_{lambda >= 0} D_p(lambda). ``method="bisection"`` (default for m = 1; robust to the kinks
    of D_p): bisection on the Danskin derivative. ``method="newton"`` (default for m >= 2): projected
    Newton with the Danskin gradient E_x E_{theta*} c and the implicit curvature -J H^-1 J^T, valid where
    the inner maximizer is unique (docs/theory/constrained.md §6.1). Every inner maximization also starts from ``pool``.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    lam0 : array_like, shape (m,), optional
        Start (default lambda* of :func:`solve_dual`); bisection searches [0, max(2 lam0, 1)], doubled
        as needed.
    tol : float, default 1e-10
        Projected-gradient tolerance of the Newton method.
    n_random : int, default 3
        Random starts of each inner maximization.
    method : {"bisection", "newton"} or None, default None
        The outer method (None: bisection for m = 1, Newton otherwise).
    pool : MaximizerPool, optional
        Pool of starts shared with the caller (a fresh one by default).

    Returns
    -------
    DualSolution
        lambda*_p, D*_p, the Danskin subgradient, the curvature, the projected-gradient norm,
        iterations (0 for bisection), converged and theta*(lambda*_p).
    """
    method = check_choice("method", method or ("bisection" if env.m == 1 else "newton"), ("bisection", "newton"))
    lam0 = solve_dual(env).lam if lam0 is None else env.check_multipliers(lam0)
    pool = MaximizerPool() if pool is None else pool
    if method == "bisection":
        lam = np.array([bisect_parametrized_dual(env, max(2.0 * float(lam0[0]), 1.0), n_random=n_random,
                                                 pool=pool)])
        res = pool.evaluate(env, lam, n_random)
        pg = projected_gradient(lam, res.subgradient)
        # at a kink of D_p the Danskin subgradient need not vanish: converged means the bracket closed
        return DualSolution(lam=lam, value=res.value, grad=res.subgradient, hessian=res.hessian,
                            pg_norm=float(np.linalg.norm(pg)), iterations=0, converged=True, theta=res.theta)

    def fgh(lam):
        res = pool.evaluate(env, lam, n_random)
        return res.value, res.subgradient, res.hessian, res.theta

    return _dual_newton(fgh, lam0, tol)


def bisect_parametrized_dual(env: GapEnv, hi: float, tol: float = 1e-12, n_random: int = 3,
                             pool: MaximizerPool | None = None) -> float:
    """m = 1: the root of the Danskin derivative of D_p on [0, hi] by bisection (0 if D_p'(0) >= 0).

    ``hi`` is doubled until the derivative is >= 0 there; the bracket is halved until its width is
    <= tol max(1, hi).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
        It must have m = 1.
    hi : float
        Initial upper end of the bracket (> 0).
    tol : float, default 1e-12
        Relative bracket width at which bisection stops.
    n_random : int, default 3
        Random starts of each inner maximization.
    pool : MaximizerPool, optional
        Pool of starts (a fresh one by default).

    Returns
    -------
    float
        lambda*_p, the midpoint of the final bracket (0 if D_p'(0) >= 0).
    """
    if env.m != 1:
        raise ValueError(f"bisect_parametrized_dual needs m = 1, got m = {env.m}")
    hi = check_float("hi", hi, 0.0, low_open=True)
    pool = MaximizerPool() if pool is None else pool

    def slope(lv):
        return float(pool.evaluate(env, [lv], n_random).subgradient[0])

    if slope(0.0) >= 0:
        return 0.0
    lo = 0.0
    while slope(hi) < 0:
        lo, hi = hi, 2 * hi
    while hi - lo > tol * max(1.0, hi):
        mid = 0.5 * (lo + hi)
        if slope(mid) < 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


# --------------------------------------------------------------------------- direct primal solves

def _polish_kkt(env: GapEnv, theta, tol=1e-12, max_iter=30):
    """Newton on the KKT system of max_theta J(theta) s.t. C_A(theta) = 0 on the active set A:
    grad_theta L(theta, mu) = 0, C_A(theta) = 0 (L is the Lagrangian with multipliers mu on A)."""
    m, d = env.m, env.d
    C, J = constraint_theta(env, theta)
    active = np.abs(C) < 1e-5
    _, gJ, _ = lagrangian_theta(env, theta, np.zeros(m), hessian=False)
    mu = np.zeros(m)
    if active.any():
        mu[active] = np.linalg.lstsq(J[active].T, -gJ, rcond=None)[0]
    if np.any(mu < 0):
        return theta, mu, False
    for _ in range(max_iter):
        _, g, H = lagrangian_theta(env, theta, mu)
        C, J = constraint_theta(env, theta)
        res = np.concatenate([g, C[active]])
        if np.linalg.norm(res) < tol:
            return theta, mu, True
        na = int(active.sum())
        K = np.zeros((d + na, d + na))
        K[:d, :d] = H
        K[:d, d:] = J[active].T
        K[d:, :d] = J[active]
        try:
            step = np.linalg.solve(K, -res)
        except np.linalg.LinAlgError:
            return theta, mu, False
        theta = theta + step[:d]
        mu[active] = mu[active] + step[d:]
        if np.any(mu < 0):
            return theta, mu, False
    _, g, _ = lagrangian_theta(env, theta, mu, hessian=False)
    C, _ = constraint_theta(env, theta)
    return theta, mu, bool(np.linalg.norm(np.concatenate([g, C[active]])) < 1e-9)


@dataclass(frozen=True)
class PrimalSolution:
    """A direct primal solve: value J_beta at the solution, the solution (log-policy table or theta),
    the constraint values E_x E_pi c, multipliers (KKT) and whether the polish converged."""

    value: float
    solution: np.ndarray
    constraint: np.ndarray
    multipliers: np.ndarray
    converged: bool


def solve_primal_theta(env: GapEnv, n_random: int = 4, seed: int = 0, starts=()) -> PrimalSolution:
    """V*_p = max_theta J_beta(pi_theta) s.t. E_x E_theta c >= 0: multistart SLSQP (theta_ref, the projected
    optimal logits at lambda*, random starts, extra ``starts``) then Newton on the KKT system
    (docs/theory/claims.md §7.3 duality_gap).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    n_random : int, default 4
        Number of Gaussian perturbations of the projected optimal logits used as starts.
    seed : int, default 0
        Seed of the random starts.
    starts : sequence of array_like, shape (d,)
        Extra starts.

    Returns
    -------
    PrimalSolution
        The best feasible point (constraints >= -1e-10): value J_beta(pi_theta), solution = theta,
        constraint values, KKT multipliers (NaN where the polish failed) and whether it converged.

    Raises
    ------
    RuntimeError
        No start reached a feasible point.
    """
    lam_star = solve_dual(env).lam
    rng = np.random.default_rng(seed)
    guess = env.realizable_theta(lam_star)
    starts = [guess, env.theta_ref] + [guess + rng.standard_normal(env.d) for _ in range(n_random)] + [
        np.asarray(s, dtype=np.float64) for s in starts]
    zero = np.zeros(env.m)

    def fun(th):
        v, g, _ = lagrangian_theta(env, th, zero, hessian=False)
        return -v, -g

    cons = [{"type": "ineq", "fun": lambda th: constraint_theta(env, th)[0],
             "jac": lambda th: constraint_theta(env, th)[1]}]
    best = None
    for s in starts:
        res = minimize(fun, s, jac=True, method="SLSQP", constraints=cons,
                       options={"ftol": 1e-15, "maxiter": 500})
        theta, mu, ok = _polish_kkt(env, res.x)
        if not ok:  # keep the SLSQP point (feasible within 1e-10 or skipped below)
            theta, mu = res.x, np.full(env.m, np.nan)
        if not np.all(np.isfinite(theta)):
            continue
        C = constraint_theta(env, theta)[0]
        if np.any(C < -1e-10):
            continue
        # J_beta from the log-policy table (stable for large theta, unlike the h-form of the Lagrangian)
        val = regularized_reward(env, log_policy(theta, env.phi))
        if best is None or val > best.value:
            best = PrimalSolution(value=float(val), solution=theta, constraint=C, multipliers=mu, converged=ok)
    if best is None:
        raise RuntimeError("solve_primal_theta: no start reached a feasible point")
    return best


def solve_primal_distribution(env: GapEnv, max_iter: int = 3000) -> PrimalSolution:
    """V* = max over all policies of J_beta(pi) s.t. E_x E_pi c >= 0, solved directly by SLSQP over the
    probability table (n_x n_y variables in [0, 1], one simplex equality per context, analytic gradients).
    Independent of the dual machinery; slow for small beta (optimal probabilities near 0), use for checks.
    (Softmax logits are not used: SLSQP stops early there when beta is small.)

    J_beta(pi) = E_x[E_pi r - beta KL(pi || pi_ref)] (docs/theory/constrained.md §6.1).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    max_iter : int, default 3000
        SLSQP iteration budget (>= 1).

    Returns
    -------
    PrimalSolution
        value = V*, solution = the log-policy table (n_x, n_y), the constraint values E_x E_pi c (m,),
        multipliers NaN (not computed) and converged = SLSQP's success flag.
    """
    n_x, n_y = env.log_ref.shape
    sums = np.kron(np.eye(n_x), np.ones(n_y))
    cons_jac = (env.p_x[:, None, None] * env.constraint).reshape(n_x * n_y, env.m).T

    def fun(p):
        pi = p.reshape(n_x, n_y)
        f = env.reward - env.beta * (np.log(np.maximum(pi, 1e-300)) - env.log_ref)
        return -float(env.p_x @ np.sum(pi * f, axis=1)), -(env.p_x[:, None] * (f - env.beta)).ravel()

    cons = [{"type": "eq", "fun": lambda p: sums @ p - 1.0, "jac": lambda p: sums},
            {"type": "ineq", "fun": lambda p: cons_jac @ p, "jac": lambda p: cons_jac}]
    res = minimize(fun, np.exp(env.log_ref).ravel(), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * (n_x * n_y),
                   constraints=cons, options={"ftol": 1e-16, "maxiter": check_int("max_iter", max_iter, 1)})
    pi = np.maximum(res.x.reshape(n_x, n_y), 0.0)
    log_pi = np.log(pi / pi.sum(axis=1, keepdims=True))
    return PrimalSolution(value=float(-fun(res.x)[0]), solution=log_pi, constraint=cons_jac @ res.x,
                          multipliers=np.full(env.m, np.nan), converged=bool(res.success))


# --------------------------------------------------------------------------- kernels of the loops

@kernel
def _constraint_kernel(theta, phi, p_x, c, out):
    """out = E_x E_theta c (m,)."""
    n_x, n_y, _ = phi.shape
    m = c.shape[2]
    log_pi = np.empty((n_x, n_y))
    log_policy_kernel(theta, phi, log_pi)
    out[:] = 0.0
    for x in range(n_x):
        for a in range(n_y):
            w = p_x[x] * np.exp(log_pi[x, a])
            for i in range(m):
                out[i] += w * c[x, a, i]


@kernel
def sampled_constraint_kernel(p_x, pi, c, n_prompts, n_responses, rng, out):
    """out = (1/(N K)) sum_n sum_k c(x_n, a_nk) with x_n ~ p_x and a_nk ~ pi(.|x_n), drawn through its
    sufficient counts: N_x ~ Multinomial(N, p_x), then counts ~ Multinomial(N_x K, pi(.|x)) per context
    (the same law as N K individual draws, at O(n_x n_y) binomial draws per call).

    An unbiased estimate of the CAID dual gradient u = E_x E_pi c (docs/theory/constrained.md §6.4).

    Parameters
    ----------
    p_x : numpy.ndarray, shape (n_x,)
        Prompt law.
    pi : numpy.ndarray, shape (n_x, n_y)
        Policy table pi(a|x).
    c : numpy.ndarray, shape (n_x, n_y, m)
        Constraint functions c(x, a).
    n_prompts : int
        N >= 1.
    n_responses : int
        K >= 1.
    rng : numpy.random.Generator
        Source of the draws.
    out : numpy.ndarray, shape (m,)
        Output: the sample mean.
    """
    n_x, n_y = pi.shape
    m = c.shape[2]
    prompts = np.empty(n_x, dtype=np.int64)
    counts = np.empty(n_y, dtype=np.int64)
    multinomial_into(n_prompts, p_x, rng, prompts)
    for i in range(m):
        out[i] = 0.0
    for x in range(n_x):
        if prompts[x] == 0:
            continue
        multinomial_into(prompts[x] * n_responses, pi[x], rng, counts)
        for a in range(n_y):
            if counts[a] > 0:
                for i in range(m):
                    out[i] += counts[a] * c[x, a, i]
    scale = 1.0 / (n_prompts * n_responses)
    for i in range(m):
        out[i] *= scale


GUESS_GAIN_RTOL = 1e-10  # the guess start beating the warm start by more than this (relative) is another maximizer


@kernel
def _exact_inner(theta_warm, guess, phi, p_x, r_lam, theta_ref, beta, use_guess):
    """Newton ascent from the warm start and (if ``use_guess``) from the projected optimal logits, the better of the
    two: the exact inner maximizer. Returns (theta, value, gain), gain = L(guess ascent) - L(warm ascent) (0.0 when
    the guess start is not run)."""
    t1, v1, _, _, _ = newton_ascent_kernel(theta_warm, phi, p_x, r_lam, theta_ref, beta, 1e-11, 200, DECREMENT_RTOL)
    if not use_guess:
        return t1, v1, 0.0
    t2, v2, _, _, _ = newton_ascent_kernel(guess, phi, p_x, r_lam, theta_ref, beta, 1e-11, 200, DECREMENT_RTOL)
    if v2 > v1:
        return t2, v2, v2 - v1
    return t1, v1, v2 - v1


@kernel
def _caid_kernel(phi, p_x, reward, c, theta_ref, beta, guess0, guess_lam, lam0, theta0, eta, T,
                 n_prompts, n_responses, eps_app, inner_step, max_inner, guess_every, checkpoints, rng,
                 lam_hist, dp_hist, best_hist, u_hist, inner_hist, lam_best, theta_best):
    """Projected dual descent lambda <- [lambda - eta u]_+ with u = E_x E_theta c (n_prompts = 0) or its
    N x K sample mean, then theta <- exact argmax (eps_app = 0) or gradient ascent from the previous theta
    until L(theta*(lambda)) - L(theta) <= eps_app. Checkpoint row j records the state after
    checkpoints[j] iterations (row 0 = the start). lam_best and theta_best receive the first iterate
    attaining min_s D_p(lambda_s) and its exact Lagrangian maximizer theta*(lambda_best). The projected-logits
    start of the inner maximization runs at t = 0 and every ``guess_every`` iterations; returns (final theta,
    the number of those iterations at which it found a larger maximum than the warm start)."""
    n_x, n_y, d = phi.shape
    m = c.shape[2]
    lam = lam0.copy()
    theta = theta0.copy()
    r_lam = np.empty((n_x, n_y))
    guess = np.empty(d)
    grad = np.empty(d)
    hess = np.empty((d, d))
    u = np.empty(m)
    log_pi = np.empty((n_x, n_y))
    log_ref = np.empty((n_x, n_y))
    log_policy_kernel(theta_ref, phi, log_ref)

    def dp_at(lam_v, theta_warm, use_guess):
        for x in range(n_x):
            for a in range(n_y):
                s = reward[x, a]
                for i in range(m):
                    s += lam_v[i] * c[x, a, i]
                r_lam[x, a] = s
        for k in range(d):
            s = guess0[k]
            for i in range(m):
                s += guess_lam[k, i] * lam_v[i]
            guess[k] = s
        return _exact_inner(theta_warm, guess, phi, p_x, r_lam, theta_ref, beta, use_guess)

    theta_star, dp, gain = dp_at(lam, theta, True)
    guess_gains = 1 if gain > GUESS_GAIN_RTOL * max(1.0, abs(dp)) else 0
    best = dp
    lam_best[:] = lam
    theta_best[:] = theta_star
    row = 0
    lam_hist[0, :] = lam
    dp_hist[0] = dp
    best_hist[0] = best
    _constraint_kernel(theta, phi, p_x, c, u)
    u_hist[0, :] = u
    inner_hist[0] = 0
    row = 1
    for t in range(1, T + 1):
        if n_prompts == 0:
            _constraint_kernel(theta, phi, p_x, c, u)
        else:
            log_policy_kernel(theta, phi, log_pi)
            sampled_constraint_kernel(p_x, np.exp(log_pi), c, n_prompts, n_responses, rng, u)
        for i in range(m):
            lam[i] = max(lam[i] - eta * u[i], 0.0)
        theta_star, dp, gain = dp_at(lam, theta_star, t % guess_every == 0)
        if gain > GUESS_GAIN_RTOL * max(1.0, abs(dp)):
            guess_gains += 1
        n_inner = 0
        if eps_app <= 0.0:
            theta[:] = theta_star
        else:
            val = lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, grad, hess, False)
            while dp - val > eps_app and n_inner < max_inner:
                for k in range(d):
                    theta[k] += inner_step * grad[k]
                val = lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, grad, hess, False)
                n_inner += 1
        if dp < best:
            best = dp
            lam_best[:] = lam
            theta_best[:] = theta_star
        if row < checkpoints.shape[0] + 1 and t == checkpoints[row - 1]:
            lam_hist[row, :] = lam
            dp_hist[row] = dp
            best_hist[row] = best
            _constraint_kernel(theta, phi, p_x, c, u)
            u_hist[row, :] = u
            inner_hist[row] = n_inner
            row += 1
    return theta, guess_gains


@dataclass(frozen=True)
class DualRun:
    """History of a dual algorithm at iterations ``t`` (0 = start): lam (k, m), dual_p = D_p(lam_t)
    (exact), best_dual_p = min_{s <= t} D_p(lam_s), constraint = E_x E_{theta_t} c, inner = inner ascent
    steps of that iteration; final theta; lam_best = the first iterate attaining min_s D_p(lambda_s) over
    the whole run and theta_best = theta*(lam_best), its exact Lagrangian maximizer; guess_gains = the number of
    iterations at which the projected-logits start of the inner maximization found a larger maximum than the
    warm start (CAID only; 0 when the warm start always found the maximizer)."""

    t: np.ndarray
    lam: np.ndarray
    dual_p: np.ndarray
    best_dual_p: np.ndarray
    constraint: np.ndarray
    inner: np.ndarray
    theta: np.ndarray
    lam_best: np.ndarray
    theta_best: np.ndarray
    guess_gains: int = 0


def caid(env: GapEnv, eta: float, T: int, lam0=None, theta0=None, n_prompts: int = 0, n_responses: int = 1,
         eps_app: float = 0.0, inner_step: float | None = None, max_inner: int = 100_000,
         rng: np.random.Generator | None = None, n_checkpoints: int = 64, guess_every: int = 1) -> DualRun:
    """CAID (docs/theory/constrained.md §6.4): projected dual descent with exact (n_prompts = 0) or sampled (N prompts x K
    responses from pi_theta(t)) dual gradients and exact (eps_app = 0) or eps_app-optimal (truncated
    gradient ascent, step ``inner_step``, default 1/(beta + 2)) Lagrangian maximization. D_p(lambda_t)
    is evaluated exactly at every iteration. theta0 defaults to theta*(lam0), so u_0 is in dD_p(lam0).

    One iteration: lambda <- [lambda - eta u]_+, u = E_x E_theta c (or its sample mean), then
    theta <- argmax_theta L(theta, lambda) (or an eps_app-optimal point).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    eta : float
        Dual step eta_lambda (> 0).
    T : int
        Number of iterations (>= 1).
    lam0 : array_like, shape (m,), optional
        Start (>= 0; default 0).
    theta0 : array_like, shape (d,), optional
        Start of theta (default theta*(lam0)).
    n_prompts : int, default 0
        N prompts per sampled dual gradient (0: exact gradients).
    n_responses : int, default 1
        K responses per prompt (>= 1).
    eps_app : float, default 0.0
        Inner optimality gap (>= 0; 0: exact maximization).
    inner_step : float or None, default None
        Step of the truncated inner ascent (> 0; default 1/(beta + 2)).
    max_inner : int, default 100000
        Inner-step budget per iteration (>= 1).
    rng : numpy.random.Generator, optional
        Source of the sampled gradients (default ``numpy.random.default_rng(0)``).
    n_checkpoints : int, default 64
        Maximum number of log-spaced checkpoints.
    guess_every : int, default 1
        The exact inner maximization (the D_p evaluation) runs Newton ascent from the previous maximizer (warm
        start) at every iteration and, at t = 0 and every ``guess_every`` iterations, also from the projected
        optimal logits, keeping the better (>= 1; 1: both starts at every iteration). Along a stochastic run the
        warm start tracks the maximizer and the second start only re-rounds it (it costs more Newton steps than
        the warm one); ``DualRun.guess_gains`` counts the iterations where it found a larger maximum (by more than
        ``GUESS_GAIN_RTOL`` relative), so a run that skipped a jump of the maximizer shows it.

    Returns
    -------
    DualRun
        The history at the start and the checkpoints, the final theta, lam_best and theta_best.
    """
    eta = check_float("eta", eta, 0.0, low_open=True)
    T = check_int("T", T, 1)
    n_prompts = check_int("n_prompts", n_prompts, 0)
    n_responses = check_int("n_responses", n_responses, 1)
    eps_app = check_float("eps_app", eps_app, 0.0)
    max_inner = check_int("max_inner", max_inner, 1)
    guess_every = check_int("guess_every", guess_every, 1)
    inner_step = 1.0 / (env.beta + 2.0) if inner_step is None else check_float("inner_step", inner_step, 0.0,
                                                                                 low_open=True)
    lam0 = np.zeros(env.m) if lam0 is None else env.check_multipliers(lam0).copy()
    if theta0 is None:
        theta0 = parametrized_dual(env, lam0).theta
    theta0 = check_array("theta0", theta0, ndim=1, shape=(env.d,)).copy()
    rng = np.random.default_rng(0) if rng is None else rng
    cps = log_checkpoints(T, n_checkpoints)
    k = cps.shape[0] + 1
    lam_hist = np.empty((k, env.m))
    dp_hist = np.empty(k)
    best_hist = np.empty(k)
    u_hist = np.empty((k, env.m))
    inner_hist = np.empty(k, dtype=np.int64)
    lam_best = np.empty(env.m)
    theta_best = np.empty(env.d)
    guess0 = env.U.T @ (env.v_ref + env.w_r / env.beta)
    guess_lam = np.ascontiguousarray(env.U.T @ env.W_g.T / env.beta)
    theta, guess_gains = _caid_kernel(env.phi, env.p_x, env.reward, env.constraint, env.theta_ref, env.beta,
                                      guess0, guess_lam, lam0, theta0, eta, T, n_prompts, n_responses, eps_app,
                                      inner_step, max_inner, guess_every, cps, rng, lam_hist, dp_hist, best_hist,
                                      u_hist, inner_hist, lam_best, theta_best)
    return DualRun(t=np.concatenate([[0], cps]), lam=lam_hist, dual_p=dp_hist, best_dual_p=best_hist,
                   constraint=u_hist, inner=inner_hist, theta=theta, lam_best=lam_best, theta_best=theta_best,
                   guess_gains=int(guess_gains))


@kernel
def _gda_kernel(phi, p_x, reward, c, theta_ref, beta, theta0, lam0, alpha_theta, alpha_lam, T,
                checkpoints, lam_hist, u_hist, theta_hist):
    """Simultaneous theta <- theta + alpha_theta grad_theta L(theta, lam), lam <- [lam - alpha_lam C(theta)]_+
    with exact expectations. Row j records the state after checkpoints[j] steps (row 0 = the start)."""
    n_x, n_y, d = phi.shape
    m = c.shape[2]
    theta = theta0.copy()
    lam = lam0.copy()
    r_lam = np.empty((n_x, n_y))
    grad = np.empty(d)
    hess = np.empty((d, d))
    u = np.empty(m)
    _constraint_kernel(theta, phi, p_x, c, u)
    lam_hist[0, :] = lam
    u_hist[0, :] = u
    theta_hist[0, :] = theta
    row = 1
    for t in range(1, T + 1):
        for x in range(n_x):
            for a in range(n_y):
                s = reward[x, a]
                for i in range(m):
                    s += lam[i] * c[x, a, i]
                r_lam[x, a] = s
        lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, False)
        _constraint_kernel(theta, phi, p_x, c, u)
        for k in range(d):
            theta[k] += alpha_theta * grad[k]
        for i in range(m):
            lam[i] = max(lam[i] - alpha_lam * u[i], 0.0)
        if row < checkpoints.shape[0] + 1 and t == checkpoints[row - 1]:
            _constraint_kernel(theta, phi, p_x, c, u)
            lam_hist[row, :] = lam
            u_hist[row, :] = u
            theta_hist[row, :] = theta
            row += 1


@dataclass(frozen=True)
class GdaRun:
    """Primal-dual history at steps ``t`` (0 = start): lam (k, m), constraint = E_x E_theta c (k, m), theta (k, d)."""

    t: np.ndarray
    lam: np.ndarray
    constraint: np.ndarray
    theta: np.ndarray


def gradient_descent_ascent(env: GapEnv, alpha_theta: float, alpha_lam: float, T: int, theta0=None, lam0=None,
                            n_checkpoints: int = 64) -> GdaRun:
    """The plain primal-dual baseline (docs/theory/constrained.md §6.4): simultaneous exact gradient ascent in theta and
    projected descent in lambda, from (theta_ref, 0) by default.

    theta <- theta + alpha_theta grad_theta L(theta, lambda), lambda <- [lambda - alpha_lam E_x E_theta c]_+,
    both from the same (theta, lambda), with exact expectations.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    alpha_theta : float
        Primal step (> 0).
    alpha_lam : float
        Dual step (> 0).
    T : int
        Number of steps (>= 1).
    theta0 : array_like, shape (d,), optional
        Start (default theta_ref).
    lam0 : array_like, shape (m,), optional
        Start (>= 0; default 0).
    n_checkpoints : int, default 64
        Maximum number of log-spaced checkpoints.

    Returns
    -------
    GdaRun
        lambda, constraint values and theta at the start and the checkpoints.
    """
    alpha_theta = check_float("alpha_theta", alpha_theta, 0.0, low_open=True)
    alpha_lam = check_float("alpha_lam", alpha_lam, 0.0, low_open=True)
    T = check_int("T", T, 1)
    theta0 = env.theta_ref if theta0 is None else theta0
    theta0 = check_array("theta0", theta0, ndim=1, shape=(env.d,)).copy()
    lam0 = np.zeros(env.m) if lam0 is None else env.check_multipliers(lam0).copy()
    cps = log_checkpoints(T, n_checkpoints)
    k = cps.shape[0] + 1
    lam_hist = np.empty((k, env.m))
    u_hist = np.empty((k, env.m))
    theta_hist = np.empty((k, env.d))
    _gda_kernel(env.phi, env.p_x, env.reward, env.constraint, env.theta_ref, env.beta, theta0, lam0,
                alpha_theta, alpha_lam, T, cps, lam_hist, u_hist, theta_hist)
    return GdaRun(t=np.concatenate([[0], cps]), lam=lam_hist, constraint=u_hist, theta=theta_hist)


def lagrangian_curvature_at_solution(env: GapEnv) -> float:
    """L-hat_theta: the largest |eigenvalue| of hess_theta L at (theta*(lambda*), lambda*), the scale of the
    GDA primal steps alpha_theta = {0.1, 0.3, 1}/L-hat_theta (docs/theory/claims.md §7.3 gda_oscillates).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).

    Returns
    -------
    float
        max |eigenvalue| of the Hessian of theta -> L(theta, lambda*) at theta*(lambda*).
    """
    lam = solve_dual(env).lam
    res = parametrized_dual(env, lam)
    _, _, H = lagrangian_theta(env, res.theta, lam)
    return float(np.abs(np.linalg.eigvalsh(H)).max())


# --------------------------------------------------------------------------- one-shot CAN

def sample_reference(env: GapEnv, n_prompts: int, n_responses: int, rng: np.random.Generator):
    """N prompts x K responses from p_x x pi_ref: rewards (N, K) and utilities (N, K, m). Prompts and
    responses are alias-table draws (``simlab.env.sampling``).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    n_prompts : int
        N >= 1.
    n_responses : int
        K >= 1.
    rng : numpy.random.Generator
        Source of the draws.

    Returns
    -------
    rewards : numpy.ndarray, shape (N, K)
        r(x_n, a_nk).
    utilities : numpy.ndarray, shape (N, K, m)
        g(x_n, a_nk).
    """
    n_prompts = check_int("n_prompts", n_prompts, 1)
    n_responses = check_int("n_responses", n_responses, 1)
    prompts = sample_atoms(AliasTable(env.p_x), n_prompts, rng)
    pi_ref = np.exp(env.log_ref)
    actions = np.empty((n_prompts, n_responses), dtype=np.int64)
    for x in np.unique(prompts):
        rows = prompts == x
        actions[rows] = sample_atoms(AliasTable(pi_ref[x]), int(rows.sum()) * n_responses, rng).reshape(-1, n_responses)
    return env.reward[prompts[:, None], actions], env.utility[prompts[:, None], actions]


def plugin_dual(lam, r_s, g_s, b_bar, beta) -> tuple[float, np.ndarray, np.ndarray]:
    """CAN's plug-in dual D-hat(lam) = beta (1/N) sum_n log((1/K) sum_k e^{z_nk}),
    z = (r + lam^T (g - b_bar))/beta, with its gradient and Hessian (docs/theory/constrained.md §6.4).

    The gradient is the mean over n of the softmax(z_n)-weighted c = g - b_bar, the Hessian the mean of
    their weighted covariances divided by beta.

    Parameters
    ----------
    lam : numpy.ndarray, shape (m,)
        Multipliers.
    r_s : numpy.ndarray, shape (N, K)
        Sampled rewards.
    g_s : numpy.ndarray, shape (N, K, m)
        Sampled utilities.
    b_bar : numpy.ndarray, shape (m,)
        Centring E-hat_ref g + b.
    beta : float
        KL temperature.

    Returns
    -------
    value : float
        D-hat(lam).
    grad : numpy.ndarray, shape (m,)
        Its gradient.
    hess : numpy.ndarray, shape (m, m)
        Its Hessian.
    """
    c = g_s - b_bar
    z = (r_s + c @ lam) / beta
    zm = z.max(axis=1, keepdims=True)
    w = np.exp(z - zm)
    tot = w.sum(axis=1, keepdims=True)
    w /= tot
    val = beta * float(np.mean(zm[:, 0] + np.log(tot[:, 0] / z.shape[1])))
    mean_c = np.einsum("nk,nki->ni", w, c)
    dev = c - mean_c[:, None, :]
    hess = np.einsum("nk,nki,nkj->ij", w, dev, dev) / (beta * z.shape[0])
    return val, mean_c.mean(axis=0), hess


@dataclass(frozen=True)
class OneShotResult:
    """CAN one-shot: the plug-in lambda-hat, its iterations, whether projected GD converged, and
    theta = argmax_theta L(theta, lambda-hat) (one Lagrangian maximization)."""

    lam: np.ndarray
    iterations: int
    converged: bool
    theta: np.ndarray


def can_projected_gd(r_s, g_s, b_bar, beta, lr=1.0, max_iter=200, window=5, move_tol=1e-5, max_restarts=30):
    """CAN's solver (``model_based.py``): projected GD from lambda = 1; converged when the last ``window``
    iterates move < move_tol, else halve lr and restart. Returns (lam, iterations, converged).

    One step: lambda <- max(lambda - lr grad D-hat(lambda), 0) (:func:`plugin_dual`).

    Parameters
    ----------
    r_s : numpy.ndarray, shape (N, K)
        Sampled rewards.
    g_s : numpy.ndarray, shape (N, K, m)
        Sampled utilities.
    b_bar : numpy.ndarray, shape (m,)
        Centring E-hat_ref g + b.
    beta : float
        KL temperature.
    lr : float, default 1.0
        Initial step.
    max_iter : int, default 200
        Steps per attempt.
    window : int, default 5
        Number of last moves tested.
    move_tol : float, default 1e-5
        Largest coordinate move counted as converged.
    max_restarts : int, default 30
        Number of attempts (lr halved each time).

    Returns
    -------
    lam : numpy.ndarray, shape (m,)
        The last iterate.
    iterations : int
        Steps over all attempts.
    converged : bool
        Whether the move test was met.
    """
    m = g_s.shape[2]
    total = 0
    for _ in range(max_restarts):
        lam = np.ones(m)
        hist = [lam.copy()]
        for _it in range(max_iter):
            _, g, _ = plugin_dual(lam, r_s, g_s, b_bar, beta)
            lam = np.maximum(lam - lr * g, 0.0)
            hist.append(lam.copy())
            total += 1
            if len(hist) > window and np.max(np.abs(np.diff(np.array(hist[-window - 1:]), axis=0))) < move_tol:
                return lam, total, True
        lr *= 0.5
    return lam, total, False


def one_shot_can(env: GapEnv, n_prompts: int, n_responses: int, rng: np.random.Generator,
                 lr: float = 1.0) -> OneShotResult:
    """One-shot CAN: plug-in dual from N prompts x K pi_ref responses with global centring
    b_bar = E-hat_ref g + b, projected GD, then one Lagrangian maximization at lambda-hat.

    See docs/theory/constrained.md §6.4 (one-shot CAN).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (preset E6, docs/theory/constrained.md §6.4).
    n_prompts : int
        N prompts drawn from p_x.
    n_responses : int
        K responses per prompt drawn from pi_ref.
    rng : numpy.random.Generator
        Source of the draws.
    lr : float, default 1.0
        Initial step of :func:`can_projected_gd`.

    Returns
    -------
    OneShotResult
        lambda-hat, the GD iterations, whether GD converged and theta = argmax_theta L(theta, lambda-hat).
    """
    r_s, g_s = sample_reference(env, n_prompts, n_responses, rng)
    b_bar = g_s.reshape(-1, env.m).mean(axis=0) + env.b
    lam, iters, ok = can_projected_gd(r_s, g_s, b_bar, env.beta, lr=lr)
    theta = parametrized_dual(env, lam).theta
    return OneShotResult(lam=lam, iterations=iters, converged=ok, theta=theta)

