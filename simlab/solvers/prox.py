"""Moreau envelope of oracle-robust SAIL: exact prox by a prox-linear outer loop over a dual box-QP
inner solver (docs/theory/sail.md §5.4; identities 29–30 of docs/theory/identities.md §8).

env_gamma(theta) = min_{z in Theta} F(z) + ||z - theta||^2 / (2 gamma),  Theta = {||z - theta_ref|| <= B},
F = L^W_rho (clipped form, :mod:`simlab.objectives.sail`). For gamma < 1/omega the problem is strongly
convex, prox_gamma(theta) is unique and grad env_gamma(theta) = (theta - prox_gamma(theta)) / gamma.

**Outer prox-linear loop** (derived in docs/theory/sail.md): F = S + sum_k w_k pen_k with S = L_SAIL(.; P_obs),
w_k = 2 p_x pi_z(a) pi_z(b) and convex kinks pen_k. At z_i keep the kinks exact with frozen weights and
linearise the rest:

    M_i(z) = F(z_i) + <g_i, z - z_i> + sum_k w_k(z_i)[pen_k(z) - pen_k(z_i)],
    g_i = grad S(z_i) + sum_k pen_k(z_i) grad w_k(z_i),
    z_{i+1} = argmin_{z in Theta} M_i(z) + ||z - theta||^2/(2 gamma) (+ ||z - z_i||^2/(2 t_d)).

Its fixed point satisfies 0 in grad S + sum_k pen_k grad w_k + sum_k w_k d pen_k + (z - theta)/gamma + N_Theta,
the optimality condition of the prox, so the fixed point is the prox.

**Inner dual box-QP.** Each model step is min_z g^T z + sum_k max_{s_k in [-u-_k, u+_k]} s_k (A_k z - b_k)
+ (kappa/2)||z - zbar||^2. Its dual is max_s (g + A^T s)^T zbar - b^T s - ||g + A^T s||^2/(2 kappa) with
z(s) = zbar - (g + A^T s)/kappa; we run accelerated projected ascent (FISTA with adaptive restart) with
steps s <- clip(y + (A z(y) - b)/L_q), L_q = ||A||_2^2/kappa. The duality gap at z(s), t = A z(s) - b, is the sum of nonnegative terms

    gap(s) = sum_k (u+_k - s_k)[t_k]_+ + (u-_k + s_k)[-t_k]_+,

computed without cancellation; stop at gap <= delta. The dual is a strongly convex function of A^T s plus a
linear term over a box, so projected gradient (and restarted FISTA) converges linearly even when A is rank
deficient (Luo–Tseng error bound); the iteration count is O(log 1/delta). The ball is handled by a scalar multiplier
mu >= 0 (kappa -> kappa + mu, zbar -> (kappa zbar + mu theta_ref)/(kappa + mu)) found by bisection on
||z(mu) - theta_ref|| = B when the unconstrained step leaves the ball.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.objectives.sail import check_sail_problem, pair_weights_kernel, penalty_pairs, robust_sail_kernel
from simlab.validation import check_array, check_float, check_int

_BISECTION_STEPS = 200
_EPS = float(np.finfo(np.float64).eps)


@kernel(ordered=True)
def _primal_of_dual(g, A, b, kappa, zbar, s, z, t):
    """z = z(s) = zbar - (g + A^T s)/kappa and t = A z - b (the dual gradient)."""
    K, d = A.shape
    for j in range(d):
        z[j] = zbar[j] - g[j] / kappa
    for k in range(K):
        sk = s[k]
        if sk != 0.0:
            for j in range(d):
                z[j] -= A[k, j] * sk / kappa
    for k in range(K):
        tk = -b[k]
        for j in range(d):
            tk += A[k, j] * z[j]
        t[k] = tk


@kernel(ordered=True)
def _box_qp_dual_kernel(g, A, b, u_minus, u_plus, kappa, zbar, a_norm2, gap_tol, max_iter, s, z, t):
    """Accelerated projected dual ascent (FISTA with adaptive restart) for the box-QP.

    ``s`` (K,) is a warm start, updated in place. One iteration: s_new = clip(y + (A z(y) - b)/L_q) at
    the extrapolated point y; the momentum restarts whenever (y - s_new)^T (s_new - s) > 0
    (O'Donoghue–Candès), which keeps linear convergence under the Luo–Tseng error bound. Stops at
    gap(s) <= max(gap_tol, 4 eps sum_k (u+_k + u-_k)(sum_j |A_kj z_j| + |b_k|)) -- the rounding level of the
    gap, so gap_tol = 0 means "to machine precision" -- at a fixed point up to rounding
    (max |s_new - s| <= 4 eps max_k (u+_k + u-_k)), or at max_iter.

    On return ``z`` = z(s) and ``t`` = A z - b. Returns (gap, iterations).
    """
    K, d = A.shape
    step = kappa / a_norm2 if a_norm2 > 0.0 else 0.0
    umax = 0.0
    for k in range(K):
        umax = max(umax, u_plus[k] + u_minus[k])
    y = s.copy()
    s_new = np.empty(K)
    zy = np.empty(d)
    ty = np.empty(K)
    momentum = 1.0
    it = 0
    while True:
        _primal_of_dual(g, A, b, kappa, zbar, s, z, t)
        gap = 0.0
        floor = 0.0
        for k in range(K):
            tk = t[k]
            scale = abs(b[k])
            for j in range(d):
                scale += abs(A[k, j] * z[j])
            floor += (u_plus[k] + u_minus[k]) * scale
            if tk > 0.0:
                gap += (u_plus[k] - s[k]) * tk
            elif tk < 0.0:
                gap -= (u_minus[k] + s[k]) * tk
        if gap <= max(gap_tol, 4.0 * _EPS * floor) or it >= max_iter:
            return gap, it
        _primal_of_dual(g, A, b, kappa, zbar, y, zy, ty)
        change = 0.0
        restart = 0.0
        for k in range(K):
            s_new[k] = min(max(y[k] + step * ty[k], -u_minus[k]), u_plus[k])
            change = max(change, abs(s_new[k] - s[k]))
            restart += (y[k] - s_new[k]) * (s_new[k] - s[k])
        if restart > 0.0:
            momentum = 1.0
        m_next = 0.5 * (1.0 + math.sqrt(1.0 + 4.0 * momentum * momentum))
        c = (momentum - 1.0) / m_next
        momentum = m_next
        for k in range(K):
            y[k] = s_new[k] + c * (s_new[k] - s[k])
            s[k] = s_new[k]
        it += 1
        if change <= 4.0 * _EPS * umax:  # fixed point up to rounding: recompute z and the gap, then stop
            max_iter = it


@kernel(ordered=True)
def ball_box_qp_kernel(g, A, b, u_minus, u_plus, kappa, zbar, center, radius, a_norm2, gap_tol,
                        max_iter, s, z, t):
    """The box-QP restricted to ||z - center|| <= radius (bisection on the ball multiplier mu): the
    jitted entry point that the prox loop and the SAIL algorithms call (inputs unchecked; the public
    checked form is :func:`box_qp_dual`).

    Returns (gap, total inner iterations, mu); mu = 0 when the ball is not active.

    With the ball active, kappa -> kappa + mu and zbar -> (kappa zbar + mu center)/(kappa + mu), and mu is
    bisected (200 steps) on ||z(mu) - center|| = radius (docs/theory/sail.md §5.4).

    Parameters
    ----------
    g : numpy.ndarray, shape (d,)
        Linear term of the model.
    A : numpy.ndarray, shape (K, d)
        Kink rows a_k (= beta dphi_k for SAIL).
    b : numpy.ndarray, shape (K,)
        Kink offsets: kink k sits at A_k z = b_k.
    u_minus, u_plus : numpy.ndarray, shape (K,)
        Slopes (>= 0) of the kinks below and above b_k; the dual box is s_k in [-u_minus_k, u_plus_k].
    kappa : float
        Curvature of the quadratic (kappa/2)||z - zbar||^2 (> 0).
    zbar : numpy.ndarray, shape (d,)
        Centre of the quadratic.
    center : numpy.ndarray, shape (d,)
        Centre of the ball constraint.
    radius : float
        Radius of the ball constraint (> 0).
    a_norm2 : float
        ||A||_2^2 (the dual step is kappa / a_norm2).
    gap_tol : float
        Duality-gap target (0: to the rounding level of the gap).
    max_iter : int
        Iteration budget of each dual solve.
    s : numpy.ndarray, shape (K,)
        Dual warm start, overwritten with the final dual point.
    z : numpy.ndarray, shape (d,)
        Output: the primal solution z(s).
    t : numpy.ndarray, shape (K,)
        Output: A z - b.

    Returns
    -------
    gap : float
        Duality gap at the returned s.
    iterations : int
        Dual-ascent iterations summed over the bisection.
    mu : float
        Ball multiplier (0 when the ball is inactive).
    """
    K, d = A.shape
    gap, iters = _box_qp_dual_kernel(g, A, b, u_minus, u_plus, kappa, zbar, a_norm2, gap_tol, max_iter,
                                     s, z, t)
    dist2 = 0.0
    for j in range(d):
        dist2 += (z[j] - center[j]) ** 2
    if dist2 <= radius * radius:
        return gap, iters, 0.0
    # ||z(mu) - c|| <= (kappa ||zbar - c|| + ||g|| + sum_k ||A_k|| max u_k) / (kappa + mu)
    zb = 0.0
    gn = 0.0
    for j in range(d):
        zb += (zbar[j] - center[j]) ** 2
        gn += g[j] ** 2
    top = kappa * math.sqrt(zb) + math.sqrt(gn)
    for k in range(K):
        an = 0.0
        for j in range(d):
            an += A[k, j] ** 2
        top += math.sqrt(an) * max(u_plus[k], u_minus[k])
    mu_lo = 0.0
    mu_hi = max(top / radius - kappa, 0.0) * 1.01 + 1e-12
    zbar_mu = np.empty(d)
    for _ in range(_BISECTION_STEPS):
        mu = 0.5 * (mu_lo + mu_hi)
        if mu <= mu_lo or mu >= mu_hi:
            break
        kap = kappa + mu
        for j in range(d):
            zbar_mu[j] = (kappa * zbar[j] + mu * center[j]) / kap
        gap, it = _box_qp_dual_kernel(g, A, b, u_minus, u_plus, kap, zbar_mu, a_norm2, gap_tol,
                                      max_iter, s, z, t)
        iters += it
        dist2 = 0.0
        for j in range(d):
            dist2 += (z[j] - center[j]) ** 2
        if dist2 > radius * radius:
            mu_lo = mu
        else:
            mu_hi = mu
    kap = kappa + mu_hi
    for j in range(d):
        zbar_mu[j] = (kappa * zbar[j] + mu_hi * center[j]) / kap
    gap, it = _box_qp_dual_kernel(g, A, b, u_minus, u_plus, kap, zbar_mu, a_norm2, gap_tol, max_iter,
                                  s, z, t)
    return gap, iters + it, mu_hi


@dataclass(frozen=True)
class BoxQPResult:
    """Solution of the inner box-QP: primal z, dual s, duality gap, iterations, ball multiplier."""

    z: np.ndarray
    s: np.ndarray
    gap: float
    iterations: int
    ball_multiplier: float
    converged: bool


def box_qp_dual(g, A, b, u_minus, u_plus, kappa: float, zbar, gap_tol: float = 1e-14,
                max_iter: int = 100_000, center=None, radius: float | None = None) -> BoxQPResult:
    """Solve min_z g^T z + sum_k (u+_k [A_k z - b_k]_+ + u-_k [b_k - A_k z]_+) + (kappa/2)||z - zbar||^2
    (optionally over ||z - center|| <= radius) by projected dual ascent from s = 0 (module docstring).

    The dual is max_s (g + A^T s)^T zbar - b^T s - ||g + A^T s||^2/(2 kappa) over the box
    s_k in [-u-_k, u+_k], with z(s) = zbar - (g + A^T s)/kappa (docs/theory/sail.md §5.4).

    Parameters
    ----------
    g : array_like, shape (d,)
        Linear term.
    A : array_like, shape (K, d)
        Kink rows.
    b : array_like, shape (K,)
        Kink offsets.
    u_minus, u_plus : array_like, shape (K,)
        Kink slopes, both >= 0.
    kappa : float
        Curvature of the quadratic (> 0).
    zbar : array_like, shape (d,)
        Centre of the quadratic.
    gap_tol : float, default 1e-14
        Duality-gap target (>= 0; 0 means to the rounding level of the gap).
    max_iter : int, default 100000
        Iteration budget of each dual solve (>= 1).
    center : array_like, shape (d,), optional
        Centre of the ball constraint (required with ``radius``).
    radius : float or None, default None
        Radius of the ball constraint (> 0); None solves without the ball.

    Returns
    -------
    BoxQPResult
        z, s, gap, iterations, ball_multiplier (0 without the ball or when it is inactive) and
        converged = gap <= max(gap_tol, rounding level of the gap).
    """
    A = check_array("A", A, ndim=2)
    K, d = A.shape
    g = check_array("g", g, shape=(d,))
    b = check_array("b", b, shape=(K,))
    u_minus = check_array("u_minus", u_minus, shape=(K,))
    u_plus = check_array("u_plus", u_plus, shape=(K,))
    if np.any(u_minus < 0) or np.any(u_plus < 0):
        raise ValueError("u_minus and u_plus must be >= 0")
    kappa = check_float("kappa", kappa, low=0.0, low_open=True)
    zbar = check_array("zbar", zbar, shape=(d,))
    gap_tol = check_float("gap_tol", gap_tol, low=0.0)
    max_iter = check_int("max_iter", max_iter, low=1)
    a_norm2 = float(np.linalg.norm(A, 2) ** 2) if K else 0.0
    s, z, t = np.zeros(K), np.empty(d), np.empty(K)
    if radius is None:
        gap, iters = _box_qp_dual_kernel(g, A, b, u_minus, u_plus, kappa, zbar, a_norm2, gap_tol,
                                         max_iter, s, z, t)
        mu = 0.0
    else:
        center = check_array("center", center, shape=(d,))
        radius = check_float("radius", radius, low=0.0, low_open=True)
        gap, iters, mu = ball_box_qp_kernel(g, A, b, u_minus, u_plus, kappa, zbar, center, radius,
                                             a_norm2, gap_tol, max_iter, s, z, t)
    floor = 4.0 * _EPS * float((u_plus + u_minus) @ (np.abs(A) @ np.abs(z) + np.abs(b)))
    return BoxQPResult(z, s, float(gap), int(iters), float(mu), bool(gap <= max(gap_tol, floor)))


def prox_linear_model(z, phi, p_x, theta_ref, beta, P_obs, rho, pairs) -> tuple[np.ndarray, np.ndarray,
                                                                             np.ndarray]:
    """The prox-linear model of F at z_i = z (module docstring): (g_i, u-, u+) with
    g_i = grad S(z) + sum_k pen_k(z) grad w_k(z) and u+/-_k = w_k(z) c+/-_k for ``pairs`` (:func:`penalty_pairs`).

    Parameters
    ----------
    z : array_like, shape (d,)
        The linearisation point z_i.
    phi : array_like, shape (n_x, n_y, d)
        Features.
    p_x : array_like, shape (n_x,)
        Prompt law.
    theta_ref : array_like, shape (d,)
        Reference-policy parameter.
    beta : float
        DPO temperature (> 0).
    P_obs : array_like, shape (n_x, n_y, n_y)
        Observed oracle table P_obs[x, a, b] (docs/theory/sail.md §5.2).
    rho : float
        Box radius of the oracle uncertainty, in [0, 1].
    pairs : simlab.objectives.sail.PenaltyPairs
        The K unordered pairs of the same problem and ``rho``.

    Returns
    -------
    g : numpy.ndarray, shape (d,)
        The linear term g_i.
    u_minus : numpy.ndarray, shape (K,)
        w_k(z) c-_k.
    u_plus : numpy.ndarray, shape (K,)
        w_k(z) c+_k.
    """
    z, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(z, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    g = np.empty(phi.shape[2])
    robust_sail_kernel(z, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 0.0, g)
    w = np.empty(pairs.x.size)
    pair_weights_kernel(z, phi, p_x, pairs.x, pairs.a, pairs.b, w)
    return g, w * pairs.c_minus, w * pairs.c_plus


@kernel(ordered=True)
def _prox_linear_kernel(theta, gamma, z0, phi, p_x, theta_ref, beta, P_obs, rho, pair_x, pair_a, pair_b,
                        A, b, c_plus, c_minus, a_norm2, radius, damping_inv, tol, max_outer, gap_tol,
                        inner_max_iter, z):
    """Prox-linear outer loop from z0 (in the ball); writes the prox into ``z``.

    Returns (outer iterations, total inner iterations, last ||dz||, max ball multiplier seen).
    """
    K, d = A.shape
    g = np.empty(d)
    w = np.empty(K)
    u_plus = np.empty(K)
    u_minus = np.empty(K)
    zbar = np.empty(d)
    s = np.zeros(K)
    t = np.empty(K)
    z_new = np.empty(d)
    for j in range(d):
        z[j] = z0[j]
    kappa = 1.0 / gamma + damping_inv
    inner = 0
    step = np.inf
    mu_max = 0.0
    it = 0
    while it < max_outer:
        robust_sail_kernel(z, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 0.0, g)
        pair_weights_kernel(z, phi, p_x, pair_x, pair_a, pair_b, w)
        for k in range(K):
            u_plus[k] = w[k] * c_plus[k]
            u_minus[k] = w[k] * c_minus[k]
            s[k] = min(max(s[k], -u_minus[k]), u_plus[k])
        for j in range(d):
            zbar[j] = (theta[j] / gamma + damping_inv * z[j]) / kappa
        gap, n_in, mu = ball_box_qp_kernel(g, A, b, u_minus, u_plus, kappa, zbar, theta_ref, radius,
                                            a_norm2, gap_tol, inner_max_iter, s, z_new, t)
        inner += n_in
        if mu > mu_max:
            mu_max = mu
        step = 0.0
        for j in range(d):
            step += (z_new[j] - z[j]) ** 2
            z[j] = z_new[j]
        step = math.sqrt(step)
        it += 1
        if step < tol:
            break
    return it, inner, step, mu_max


@dataclass(frozen=True)
class ProxResult:
    """prox_gamma(theta) of F + indicator(Theta) and the Moreau envelope at theta (docs/theory/sail.md §5.4).

    prox : the minimiser z_hat; envelope : F(z_hat) + ||z_hat - theta||^2/(2 gamma);
    gradient : (theta - z_hat)/gamma; outer_iterations, inner_iterations : work done;
    last_step : final ||z_{i+1} - z_i||; ball_active : the ball constraint bound at some outer step;
    converged : last_step < tol.
    """

    prox: np.ndarray
    envelope: float
    gradient: np.ndarray
    outer_iterations: int
    inner_iterations: int
    last_step: float
    ball_active: bool
    converged: bool


class RobustSailProx:
    """Prox / Moreau-envelope evaluator of F = L^W_rho on one instance (pairs and ||A||_2 cached).

    Parameters: ``phi, p_x, theta_ref, beta, P_obs`` (the problem), ``rho`` (box radius), ``radius``
    (ball radius B of Theta around theta_ref), ``gamma`` (Moreau parameter, must be < 1/omega),
    ``tol`` (outer stop ||dz|| < tol), ``damping`` (1/t_d >= 0 of the optional proximal damping),
    ``gap_tol`` and ``inner_max_iter`` of the dual box-QP.
    """

    def __init__(self, phi, p_x, theta_ref, beta, P_obs, rho, radius, gamma, tol=1e-13, max_outer=500,
                 damping=0.0, gap_tol=1e-20, inner_max_iter=200_000):
        _, self.phi, self.p_x, self.theta_ref, self.beta, self.P_obs = check_sail_problem(
            theta_ref, phi, p_x, theta_ref, beta, P_obs)
        self.rho = check_float("rho", rho, low=0.0, high=1.0)
        self.radius = check_float("radius", radius, low=0.0, low_open=True)
        self.gamma = check_float("gamma", gamma, low=0.0, low_open=True)
        self.tol = check_float("tol", tol, low=0.0, low_open=True)
        self.max_outer = check_int("max_outer", max_outer, low=1)
        self.damping = check_float("damping", damping, low=0.0)
        self.gap_tol = check_float("gap_tol", gap_tol, low=0.0)
        self.inner_max_iter = check_int("inner_max_iter", inner_max_iter, low=1)
        self.pairs = penalty_pairs(self.phi, self.theta_ref, self.beta, self.P_obs, self.rho)
        self.a_norm2 = float(np.linalg.norm(self.pairs.rows, 2) ** 2)

    def objective(self, z) -> float:
        """F(z) = L^W_rho(z) (exact, clipped form).

        Parameters
        ----------
        z : array_like, shape (d,)
            The point.

        Returns
        -------
        float
            The oracle-robust SAIL objective at z (docs/theory/sail.md §5.2).
        """
        grad = np.empty(self.phi.shape[2])
        return float(robust_sail_kernel(np.ascontiguousarray(z, dtype=np.float64), self.phi, self.p_x,
                                         self.theta_ref, self.beta, self.P_obs, self.rho, 1.0, 1.0, grad))

    def prox(self, theta) -> ProxResult:
        """prox_gamma(theta), envelope value and gradient (theta - prox)/gamma.

        The prox-linear outer loop starts from the projection of theta onto the ball Theta
        (docs/theory/sail.md §5.4).

        Parameters
        ----------
        theta : array_like, shape (d,)
            The point at which the envelope is evaluated.

        Returns
        -------
        ProxResult
            prox, envelope, gradient and the solver's work and convergence flags.
        """
        theta = check_array("theta", theta, shape=self.theta_ref.shape)
        delta = theta - self.theta_ref
        norm = float(np.linalg.norm(delta))
        z0 = self.theta_ref + delta * min(1.0, self.radius / norm) if norm > 0 else theta.copy()
        z = np.empty_like(theta)
        pr = self.pairs
        outer, inner, step, mu = _prox_linear_kernel(
            theta, self.gamma, z0, self.phi, self.p_x, self.theta_ref, self.beta, self.P_obs, self.rho,
            pr.x, pr.a, pr.b, pr.rows, pr.offsets, pr.c_plus, pr.c_minus, self.a_norm2, self.radius,
            self.damping, self.tol, self.max_outer, self.gap_tol, self.inner_max_iter, z)
        env = self.objective(z) + float((z - theta) @ (z - theta)) / (2.0 * self.gamma)
        return ProxResult(z, env, (theta - z) / self.gamma, int(outer), int(inner), float(step), mu > 0.0,
                          bool(step < self.tol))

    def envelope_grad_norms2(self, thetas) -> np.ndarray:
        """||grad env_gamma(theta_i)||^2 for each row of ``thetas`` (raises if a prox did not converge).

        Parameters
        ----------
        thetas : array_like, shape (n, d) or (d,)
            The points theta_i (a single point is treated as one row).

        Returns
        -------
        numpy.ndarray, shape (n,)
            ||(theta_i - prox_gamma(theta_i))/gamma||^2 (docs/theory/sail.md §5.4).

        Raises
        ------
        RuntimeError
            A prox did not converge (last outer step >= ``tol``).
        """
        out = np.empty(len(thetas))
        for i, th in enumerate(np.atleast_2d(thetas)):
            res = self.prox(th)
            if not res.converged:
                raise RuntimeError(f"prox did not converge at theta={th} (last step {res.last_step:.2e})")
            out[i] = float(res.gradient @ res.gradient)
        return out
