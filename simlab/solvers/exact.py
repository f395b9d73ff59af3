"""Deterministic Newton solvers over atoms (docs/theory/environment.md §1.2, docs/theory/dpo.md §3.1):
the one home of Newton's method in the solvers, with one result type, :class:`NewtonResult`.

``newton`` is a damped Newton method with Armijo backtracking for a callable returning
(value, gradient, Hessian); it stops at ||grad|| <= gtol (default 1e-10). It never returns a silent
huge iterate: if the iterate leaves the ball ||x|| <= max_norm it raises :class:`NormLimitError`
(e.g. a separable DPO sample at tiny n has no minimiser, or the minimiser lies beyond max_norm), and
if the iteration budget runs out :class:`NoMinimizerError`.

The constants below are the one definition of its stopping rule, Armijo line search, round-off
acceptance rule and Levenberg shifts; the whole-fit numba loops that specialise ``newton`` to one
objective (the DPO fit, :func:`simlab.solvers.dpo.fit_dpo_exact`) use them and take their Newton step
from ``newton_direction_kernel`` (Cholesky in a numba loop where ``newton`` calls LAPACK, so the two may
differ in the last bits). A generic numba loop taking the objective as a jitted function was measured
and not kept: numba types a function argument on every call from Python (~4-6 us, 3-12% of a DPO fit)
and keys its disk cache on a per-process identity of the function, so every process would compile it
again.

``newton_root`` is Newton's method for equations F(x) = 0 with an analytic Jacobian (not necessarily
symmetric: F need not be a gradient), halving the step until ||F|| decreases.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.validation import check_array, check_float, check_int


F_NOISE_RTOL = 1e-12  # relative round-off allowed in f when the step reduces ||grad|| (near a minimiser)
NEWTON_GTOL = 1e-10  # default stopping rule ||grad|| <= gtol
NEWTON_MAX_ITER = 200  # default Newton-step budget
ARMIJO_C = 1e-4  # sufficient decrease f(x + t s) <= f(x) + ARMIJO_C t g^T s
STEP_MIN = 1e-12  # the line search halves t from 1 and gives up once t < STEP_MIN
SHIFT_START = 1e-12  # first Levenberg shift of a Hessian that is not positive definite, times max |H_ii|
SHIFT_TRIES = 60  # Cholesky attempts (the shift doubles each time) before the step falls back to -g


class NoMinimizerError(RuntimeError):
    """The objective has no (finite, unique) minimiser, or Newton failed to find it."""


class NormLimitError(NoMinimizerError):
    """Newton's iterate left the ball ||x|| <= max_norm (``norm`` is ||x|| when it did): either there
    is no finite minimiser or it lies beyond ``max_norm``; the caller decides which."""

    def __init__(self, message: str, max_norm: float, norm: float):
        super().__init__(message)
        self.max_norm = max_norm
        self.norm = norm


@dataclass(frozen=True)
class NewtonResult:
    """The result of every exact solve: the point x, the objective value there (NaN where a solver has
    no objective value, e.g. a closed form it does not evaluate), the final gradient (or residual)
    norm, the Newton iterations (0 for a closed form, -1 for a point certified by a kink test), whether
    the stopping test was met, and the Hessian (or Jacobian) at x (for H-norm errors and rank checks)."""

    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    converged: bool
    hess: np.ndarray


def newton(fgh: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]], x0,
           gtol: float = NEWTON_GTOL, max_iter: int = NEWTON_MAX_ITER, max_norm: float = 1e6) -> NewtonResult:
    """Minimise f from x0 by Newton steps -H^{-1} g with backtracking (Armijo constant ``ARMIJO_C`` =
    1e-4, step halved from 1 until it is accepted or below ``STEP_MIN``).

    A Hessian that is not positive definite is shifted by a multiple of the identity until a
    Cholesky factorisation succeeds (Levenberg-style: ``SHIFT_START`` max |H_ii|, doubled, at most
    ``SHIFT_TRIES`` attempts), so the step is always a descent direction.

    Parameters
    ----------
    fgh : callable
        ``fgh(x) -> (f, g, H)``: the objective value (float), its gradient (d,) and Hessian (d, d) at
        a point x of shape (d,).
    x0 : array_like, shape (d,)
        Starting point (copied).
    gtol : float, default 1e-10
        Stop at ||grad f(x)|| <= gtol (> 0).
    max_iter : int, default 200
        Newton-step budget (>= 1).
    max_norm : float, default 1e6
        Largest admissible iterate norm ||x|| (> 0).

    Returns
    -------
    NewtonResult
        x = the minimiser, fun = f(x), grad_norm = ||grad f(x)||, iterations = Newton steps taken,
        converged = True, hess = the H that ``fgh`` returned at x.

    Raises
    ------
    NormLimitError
        An iterate left the ball ||x|| <= max_norm.
    NoMinimizerError
        f or its gradient is not finite, the line search failed, or ``max_iter`` steps did not reach
        ``gtol``.
    """
    x = check_array("x0", x0, ndim=1).copy()
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
    max_norm = check_float("max_norm", max_norm, 0.0, low_open=True)
    f, g, H = fgh(x)
    for it in range(max_iter + 1):
        gnorm = math.sqrt(g @ g)  # = np.linalg.norm(g), bit for bit, without its overhead
        if not math.isfinite(f) or not math.isfinite(gnorm):
            raise NoMinimizerError(f"objective is not finite at iteration {it} (f={f}, |g|={gnorm})")
        if gnorm <= gtol:
            return NewtonResult(x, float(f), gnorm, it, True, H)
        if it == max_iter:
            break
        step = _newton_direction(H, g)
        t, slope = 1.0, float(g @ step)
        while True:
            x_new = x + t * step
            f_new, g_new, H_new = fgh(x_new)
            if f_new <= f + ARMIJO_C * t * slope:
                break
            # Near the minimiser the decrease falls below the rounding of f (dual values, e.g. KL or
            # chi^2 worst cases, carry ~1e-14 relative noise): accept a step that keeps f within
            # F_NOISE_RTOL of rounding and reduces the gradient (the Newton step does, quadratically).
            if f_new <= f + F_NOISE_RTOL * max(abs(f), 1.0) and math.sqrt(g_new @ g_new) < gnorm:
                break
            if t < STEP_MIN:
                raise NoMinimizerError(f"line search failed at |grad| = {gnorm:.3e}")
            t *= 0.5
        x, f, g, H = x_new, f_new, g_new, H_new
        norm = math.sqrt(x @ x)
        if norm > max_norm:
            raise NormLimitError(
                f"the iterate norm {norm:.3g} exceeded max_norm = {max_norm:g} after {it + 1} Newton "
                "steps: the objective has no finite minimiser (e.g. separable data) or its minimiser "
                "lies beyond max_norm", max_norm, norm)
    raise NoMinimizerError(f"Newton did not reach |grad| <= {gtol:g} in {max_iter} steps "
                           f"(|grad| = {gnorm:.3e}); the minimiser may not exist")


def _newton_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    from scipy.linalg.lapack import dpotrf, dpotrs

    shift = 0.0
    for _ in range(SHIFT_TRIES):
        # LAPACK directly: Cholesky H + shift I = L L^T, then the two triangular solves
        L, info = dpotrf(H if shift == 0.0 else H + shift * np.eye(H.shape[0]), lower=1, clean=0)
        if info == 0:
            step, _ = dpotrs(L, g, lower=1)
            return -step
        shift = max(2.0 * shift, SHIFT_START * max(float(np.max(np.abs(np.diag(H)))), 1e-300))
    return -g


@kernel(ordered=True)  # small arrays, loops that store and sum: no reassociation
def newton_direction_kernel(H: np.ndarray, g: np.ndarray, L: np.ndarray, step: np.ndarray) -> None:
    """The Newton step of the numba Newton loops: step = -(H + shift I)^{-1} g with the smallest shift in
    0, SHIFT_START s, 2 SHIFT_START s, ... (s = max |H_ii|) whose Cholesky factorisation succeeds (the
    rule of :func:`newton`); -g after SHIFT_TRIES failures.

    Parameters
    ----------
    H : ndarray of float64, shape (d, d)
        Symmetric Hessian (its lower triangle is read).
    g : ndarray of float64, shape (d,)
        Gradient.
    L : ndarray of float64, shape (d, d)
        Work array: the Cholesky factor.
    step : ndarray of float64, shape (d,)
        Output: the step.
    """
    d = g.size
    scale = 1e-300
    for i in range(d):
        scale = max(scale, abs(H[i, i]))
    shift = 0.0
    for _ in range(SHIFT_TRIES):
        ok = True
        for i in range(d):
            for j in range(i + 1):
                acc = H[i, j] + (shift if i == j else 0.0)
                for k in range(j):
                    acc -= L[i, k] * L[j, k]
                if i == j:
                    if not acc > 0.0:
                        ok = False
                        break
                    L[i, i] = np.sqrt(acc)
                else:
                    L[i, j] = acc / L[j, j]
            if not ok:
                break
        if ok:
            for i in range(d):  # L z = -g
                acc = -g[i]
                for k in range(i):
                    acc -= L[i, k] * step[k]
                step[i] = acc / L[i, i]
            for i in range(d - 1, -1, -1):  # L^T step = z
                acc = step[i]
                for k in range(i + 1, d):
                    acc -= L[k, i] * step[k]
                step[i] = acc / L[i, i]
            return
        shift = max(2.0 * shift, SHIFT_START * scale)
    for i in range(d):
        step[i] = -g[i]


def newton_root(residual: Callable[[np.ndarray], np.ndarray], jacobian: Callable[[np.ndarray], np.ndarray],
                x0, gtol: float = 1e-10, max_iter: int = 100,
                value: Callable[[np.ndarray], float] | None = None) -> NewtonResult:
    """A zero of F = ``residual`` by Newton's method for equations: x <- x + t s with J(x) s = -F(x)
    (J = ``jacobian``, any square matrix), t halved from 1 until ||F|| decreases (or t < 1e-10).

    Stops at ||F|| <= gtol; returns ``NewtonResult`` with grad_norm = ||F||, hess = J at x and fun =
    ``value(x)`` (NaN without ``value``). Raises :class:`NoMinimizerError` after ``max_iter`` steps.

    Parameters
    ----------
    residual : callable
        ``residual(x) -> F(x)``, shape (d,) for x of shape (d,).
    jacobian : callable
        ``jacobian(x) -> J(x)``, the (d, d) Jacobian of F (any nonsingular square matrix).
    x0 : array_like, shape (d,)
        Starting point.
    gtol : float, default 1e-10
        Stop at ||F(x)|| <= gtol (> 0).
    max_iter : int, default 100
        Newton-step budget (>= 1).
    value : callable or None, default None
        Optional ``value(x) -> float`` stored as ``fun`` of the result (e.g. the objective whose
        stationarity F expresses).

    Returns
    -------
    NewtonResult
        x = the zero, fun = ``value(x)`` or NaN, grad_norm = ||F(x)||, iterations = steps taken,
        converged = True, hess = J(x).
    """
    x = check_array("x0", x0, ndim=1)
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
    F = residual(x)
    for it in range(max_iter):
        fnorm = float(np.linalg.norm(F))
        J = jacobian(x)
        if fnorm <= gtol:
            fun = float(value(x)) if value is not None else float("nan")
            return NewtonResult(x=x, fun=fun, grad_norm=fnorm, iterations=it, converged=True, hess=J)
        step = np.linalg.solve(J, -F)
        t = 1.0
        while True:
            F_new = residual(x + t * step)
            if np.linalg.norm(F_new) < fnorm or t < 1e-10:
                break
            t *= 0.5
        x, F = x + t * step, F_new
    raise NoMinimizerError(f"Newton for F(x) = 0 did not reach |F| <= {gtol:g} in {max_iter} steps "
                           f"(|F| = {np.linalg.norm(F):.3e})")


# --------------------------------------------------------------------------- Newton on the orthant, Newton ascent
# The constrained study's Newton variants (docs/theory/constrained.md §6.1, §6.4), in the one home of Newton.

from simlab._jit import kernel  # noqa: E402  (appended section: the imports of the variants below)
from simlab.objectives.constrained import lagrangian_theta_kernel, lagrangian_theta_logref_kernel  # noqa: E402
from simlab.policy import log_policy_kernel  # noqa: E402

BOUND_TOL = 1e-13  # a coordinate of the orthant at or below this counts as at its bound 0


def projected_gradient(x: np.ndarray, g: np.ndarray, bound_tol: float = BOUND_TOL) -> np.ndarray:
    """The projected gradient of f on the orthant x >= 0: g_i where x_i > bound_tol, min(g_i, 0) at the
    bound (it vanishes iff x satisfies the KKT conditions of min_{x >= 0} f).

    Parameters
    ----------
    x : numpy.ndarray, shape (d,)
        A point of the orthant x >= 0.
    g : numpy.ndarray, shape (d,)
        The gradient of f at x.
    bound_tol : float, default ``BOUND_TOL`` (1e-13)
        A coordinate x_i <= bound_tol counts as at its bound 0.

    Returns
    -------
    numpy.ndarray, shape (d,)
        The projected gradient.
    """
    return np.where(x > bound_tol, g, np.minimum(g, 0.0))


def projected_newton(fgh: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]], x0,
                     gtol: float = 1e-11, max_iter: int = 100) -> NewtonResult:
    """Minimize f over the orthant x >= 0 by Bertsekas' projected Newton method.

    Coordinates at the bound with a positive gradient are held; on the others a Newton step
    -H_ff^{-1} g_f is taken (H_ff shifted to eigenvalues >= 1e-12 if it is not positive definite) and
    the projected path max(x + t s, 0) is searched with Armijo backtracking (constant 1e-4, from t = 1
    down to t < 1e-12). Near the minimizer, where the decrease falls below the rounding of f, a full step
    that keeps f within ``F_NOISE_RTOL`` of it and halves the projected gradient is accepted (the
    quadratic regime of Newton). ``fgh(x) -> (f, g, H)``.

    Returns :class:`NewtonResult` with grad_norm = ||projected gradient|| at x, converged = grad_norm <=
    gtol and hess = the H that ``fgh`` returned at x (the same object: a caller that needs more of that
    evaluation finds it by identity).

    Parameters
    ----------
    fgh : callable
        ``fgh(x) -> (f, g, H)``: value, gradient (d,) and Hessian (d, d) at x of shape (d,).
    x0 : array_like, shape (d,)
        Starting point; projected onto the orthant by max(x0, 0).
    gtol : float, default 1e-11
        Stop at ||projected gradient|| <= gtol (> 0).
    max_iter : int, default 100
        Newton-step budget (>= 1).

    Returns
    -------
    NewtonResult
        As described above; ``converged`` is False when ``max_iter`` ran out or the search stalled
        (no exception is raised).
    """
    x = np.maximum(check_array("x0", x0, ndim=1), 0.0)
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
    f, g, H = fgh(x)
    it = 0
    pg = projected_gradient(x, g)
    while np.linalg.norm(pg) > gtol and it < max_iter:
        held = (x <= BOUND_TOL) & (g > 0)
        free = ~held
        step = np.zeros_like(x)
        if free.any():
            Hf = H[np.ix_(free, free)]
            try:
                evals = np.linalg.eigvalsh(Hf)
                reg = max(0.0, 1e-12 - evals.min())
                step[free] = -np.linalg.solve(Hf + reg * np.eye(free.sum()), g[free])
            except np.linalg.LinAlgError:
                step[free] = -g[free]
        alpha = 1.0
        pg_now = np.linalg.norm(pg)
        while True:
            trial = np.maximum(x + alpha * step, 0.0)
            ft, gt, Ht = fgh(trial)
            if ft <= f + 1e-4 * float(g @ (trial - x)) or alpha < 1e-12:
                break
            if (alpha == 1.0 and abs(ft - f) <= F_NOISE_RTOL * max(1.0, abs(f))
                    and np.linalg.norm(projected_gradient(trial, gt)) <= 0.5 * pg_now):
                break
            alpha *= 0.5
        it += 1
        if np.array_equal(trial, x):
            break
        x, f, g, H = trial, ft, gt, Ht
        pg = projected_gradient(x, g)
    pgn = float(np.linalg.norm(pg))
    return NewtonResult(x=x, fun=float(f), grad_norm=pgn, iterations=it, converged=pgn <= gtol, hess=H)


CURVATURE_FLOOR_RTOL = 1e-13  # |eigenvalues| of the Hessian below this fraction of the largest are floored there
DECREMENT_RTOL = 1e-12  # Newton ascent stops when the predicted remaining increase is <= this times max(1, |L|)


@kernel
def newton_ascent_kernel(theta0, phi, p_x, r_lam, theta_ref, beta, gtol, max_iter, decrement_rtol):
    """Maximise the Lagrangian L(., lambda) of ``lagrangian_theta_kernel`` from theta0 by saddle-free
    Newton: the step s = |H|^{-1} g uses the eigenvalues of the Hessian H in absolute value (floored at
    ``CURVATURE_FLOOR_RTOL`` times the largest, about the resolution of the eigendecomposition, so the floor
    scales with H and the step and decrement do not depend on the units of theta; H = 0 gives a gradient
    step), so a non-concave region still gives an ascent direction;
    Armijo backtracking (constant ``ARMIJO_C`` = 1e-4, 60 halvings). Near the maximizer, where the increase falls below the
    rounding of L (at large |theta| L is a sum of O(|theta|) terms), a full step that keeps L within
    ``F_NOISE_RTOL`` of it and reduces the gradient is accepted. Returns (theta, value, grad_norm,
    decrement2, iterations).

    Stopping rule: ||g|| <= gtol **and** lambda^2 / 2 <= decrement_rtol max(1, |L|), with the Newton decrement
    lambda(theta)^2 = g^T |H|^{-1} g = g^T s (the slope of L along the step). Where -H > 0 (near a
    maximizer) the quadratic model L(theta) + g^T u + u^T H u / 2 rises by at most max_u = g^T (-H)^{-1} g / 2
    = lambda^2 / 2, the increase the Newton step predicts; for a self-concordant objective the remaining
    increase is <= lambda^2 once lambda <= 0.68 (the standard rule of convex optimisation; the maximisation
    is docs/theory/constrained.md §6.1). A gradient test alone is not scale-free: along a flat direction of
    curvature h a gradient component g_h leaves g_h^2 / (2 h) to gain, which a tiny h makes large while
    ||g|| <= gtol (E6 at beta = 0.1: ||g|| = 9.6e-12 with h = 5.9e-14 left 1.5e-9 of D_p unclaimed). A
    curvature below the floor cannot be resolved by the eigendecomposition; there the decrement is that
    of the floor. The search also ends, unconverged, when no step is accepted.

    The jitted core of :func:`newton_ascent` (inputs unchecked).

    Parameters
    ----------
    theta0 : numpy.ndarray, shape (d,)
        Starting point (copied).
    phi : numpy.ndarray, shape (n_x, n_y, d)
        Features of every (prompt, response).
    p_x : numpy.ndarray, shape (n_x,)
        Prompt law.
    r_lam : numpy.ndarray, shape (n_x, n_y)
        The Lagrangian reward table r_lambda (docs/theory/constrained.md §6.1).
    theta_ref : numpy.ndarray, shape (d,)
        Reference-policy parameter.
    beta : float
        KL strength (> 0).
    gtol : float
        Gradient part of the stopping rule: ||grad L|| <= gtol.
    max_iter : int
        Newton-step budget.
    decrement_rtol : float
        Decrement part of the stopping rule: lambda^2 / 2 <= decrement_rtol max(1, |L|).

    Returns
    -------
    theta : numpy.ndarray, shape (d,)
        The last iterate.
    value : float
        L(theta, lambda).
    grad_norm : float
        ||grad L(theta, lambda)||.
    decrement2 : float
        The squared Newton decrement lambda(theta)^2 = g^T |H|^{-1} g at theta.
    iterations : int
        Newton steps taken.
    """
    d = theta0.shape[0]
    theta = theta0.copy()
    grad = np.empty(d)
    hess = np.empty((d, d))
    trial = np.empty(d)
    g2 = np.empty(d)
    h2 = np.empty((d, d))
    log_ref = np.empty((phi.shape[0], phi.shape[1]))
    log_policy_kernel(theta_ref, phi, log_ref)  # once per ascent (the same table at every evaluation)
    value = lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, grad, hess, True)
    it = 0
    gnorm = np.sqrt(np.sum(grad * grad))
    while True:
        evals, evecs = np.linalg.eigh(-hess)
        floor = CURVATURE_FLOOR_RTOL * np.max(np.abs(evals))
        if floor == 0.0:  # H = 0: a gradient step
            floor = 1.0
        coords = evecs.T @ grad
        for k in range(d):
            coords[k] /= max(abs(evals[k]), floor)
        step = evecs @ coords
        slope = np.sum(grad * step)  # the squared Newton decrement lambda^2
        if gnorm <= gtol and 0.5 * slope <= decrement_rtol * max(1.0, abs(value)):
            break
        if it >= max_iter:
            break
        alpha = 1.0
        accepted = False
        for _ in range(60):
            for k in range(d):
                trial[k] = theta[k] + alpha * step[k]
            # with the Hessian, so that an accepted trial needs no second evaluation at the same point
            v = lagrangian_theta_logref_kernel(trial, phi, p_x, r_lam, log_ref, beta, g2, h2, True)
            if v >= value + ARMIJO_C * alpha * slope:
                accepted = True
                break
            if alpha == 1.0 and v >= value - F_NOISE_RTOL * max(1.0, abs(value)) \
                    and np.sqrt(np.sum(g2 * g2)) < gnorm:
                accepted = True
                break
            if alpha * np.sqrt(np.sum(step * step)) < 1e-15:
                break
            alpha *= 0.5
        if not accepted:
            break
        it += 1
        for k in range(d):
            theta[k] = trial[k]
            grad[k] = g2[k]
            for j in range(d):
                hess[k, j] = h2[k, j]
        value = v
        gnorm = np.sqrt(np.sum(grad * grad))
    return theta, value, gnorm, slope, it


def newton_ascent(theta0, phi, p_x, r_lam, theta_ref, beta: float, gtol: float = 1e-11,
                  max_iter: int = NEWTON_MAX_ITER, decrement_rtol: float = DECREMENT_RTOL, check_input: bool = True) -> NewtonResult:
    """max_theta L(theta, lambda) from theta0 by saddle-free Newton ascent (:func:`newton_ascent_kernel`;
    L = E_x E_theta[r_lambda - beta (log pi_theta - log pi_ref)] over the table ``r_lam`` = r_lambda,
    docs/theory/constrained.md §6.1). Stops when ||grad L|| <= gtol and the Newton decrement lambda^2 =
    g^T |H|^{-1} g predicts a remaining increase lambda^2 / 2 <= decrement_rtol max(1, |L|) (the rule and
    its derivation: :func:`newton_ascent_kernel`). Returns :class:`NewtonResult` with fun = the maximized L,
    the final gradient norm, converged = both parts of the rule met and hess = the Hessian of L at x.

    Parameters
    ----------
    theta0 : array_like, shape (d,)
        Starting point.
    phi : array_like, shape (n_x, n_y, d)
        Features of every (prompt, response).
    p_x : array_like, shape (n_x,)
        Prompt law.
    r_lam : array_like, shape (n_x, n_y)
        The Lagrangian reward table r_lambda = r + lambda^T c (docs/theory/constrained.md §6.1).
    theta_ref : array_like, shape (d,)
        Reference-policy parameter.
    beta : float
        KL strength (> 0).
    gtol : float, default 1e-11
        Gradient part of the stopping rule: ||grad L|| <= gtol (> 0).
    max_iter : int, default 200
        Newton-step budget (>= 1).
    decrement_rtol : float, default ``DECREMENT_RTOL`` (1e-12)
        Decrement part of the stopping rule: lambda^2 / 2 <= decrement_rtol max(1, |L|) (> 0).
    check_input : bool, default True
        Validate the arguments. A caller that has validated them once and runs many ascents on the
        same problem (multistart searches: thousands of calls per cell) passes False and must then
        pass C-contiguous float64 arrays of the shapes above and valid scalars.

    Returns
    -------
    NewtonResult
        x = the maximizer theta, fun = L(theta, lambda), grad_norm, iterations, converged and hess as
        described above (no exception when the budget runs out: check ``converged``).
    """
    if check_input:
        theta0 = check_array("theta0", theta0, ndim=1)
        phi = check_array("phi", phi, ndim=3, shape=(None, None, theta0.shape[0]))
        p_x = check_array("p_x", p_x, shape=(phi.shape[0],))
        r_lam = check_array("r_lam", r_lam, shape=phi.shape[:2])
        theta_ref = check_array("theta_ref", theta_ref, shape=theta0.shape)
        beta = check_float("beta", beta, 0.0, low_open=True)
        gtol = check_float("gtol", gtol, 0.0, low_open=True)
        max_iter = check_int("max_iter", max_iter, 1)
        decrement_rtol = check_float("decrement_rtol", decrement_rtol, 0.0, low_open=True)
    theta, value, gnorm, decrement2, it = newton_ascent_kernel(theta0, phi, p_x, r_lam, theta_ref, beta, gtol,
                                                               max_iter, decrement_rtol)
    # the Hessian at the result by a call of its own (the one inside the loop is compiled inline with the
    # ascent and may round differently in the last bits)
    grad = np.empty(theta.shape[0])
    hess = np.empty((theta.shape[0], theta.shape[0]))
    lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, True)
    converged = gnorm <= gtol and 0.5 * decrement2 <= decrement_rtol * max(1.0, abs(value))
    return NewtonResult(x=theta, fun=float(value), grad_norm=float(gnorm), iterations=int(it),
                        converged=bool(converged), hess=hess)
