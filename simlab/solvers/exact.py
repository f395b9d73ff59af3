"""Deterministic Newton solvers over atoms (docs/theory/environment.md §1.2, docs/theory/dpo.md §3.1):
the one home of Newton's method in the solvers, with one result type, :class:`NewtonResult`.

``newton`` is a damped Newton method with Armijo backtracking for a callable returning
(value, gradient, Hessian); it stops at ||grad|| <= gtol (default 1e-10). It never returns a silent
huge iterate: if the iterate leaves the ball ||x|| <= max_norm it raises :class:`NormLimitError`
(e.g. a separable DPO sample at tiny n has no minimiser, or the minimiser lies beyond max_norm), and
if the iteration budget runs out :class:`NoMinimizerError`.

``newton_root`` is Newton's method for equations F(x) = 0 with an analytic Jacobian (not necessarily
symmetric: F need not be a gradient), halving the step until ||F|| decreases.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simlab.validation import check_array, check_float, check_int


F_NOISE_RTOL = 1e-12  # relative round-off allowed in f when the step reduces ||grad|| (near a minimiser)


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
           gtol: float = 1e-10, max_iter: int = 200, max_norm: float = 1e6) -> NewtonResult:
    """Minimise f from x0 by Newton steps -H^{-1} g with backtracking (Armijo constant 1e-4).

    A Hessian that is not positive definite is shifted by a multiple of the identity until a
    Cholesky factorisation succeeds (Levenberg-style), so the step is always a descent direction.
    """
    x = check_array("x0", x0, ndim=1).copy()
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
    max_norm = check_float("max_norm", max_norm, 0.0, low_open=True)
    f, g, H = fgh(x)
    for it in range(max_iter + 1):
        gnorm = float(np.linalg.norm(g))
        if not np.isfinite(f) or not np.isfinite(gnorm):
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
            if f_new <= f + 1e-4 * t * slope:
                break
            # Near the minimiser the decrease falls below the rounding of f (dual values, e.g. KL or
            # chi^2 worst cases, carry ~1e-14 relative noise): accept a step that keeps f within
            # F_NOISE_RTOL of rounding and reduces the gradient (the Newton step does, quadratically).
            if f_new <= f + F_NOISE_RTOL * max(abs(f), 1.0) and np.linalg.norm(g_new) < gnorm:
                break
            if t < 1e-12:
                raise NoMinimizerError(f"line search failed at |grad| = {gnorm:.3e}")
            t *= 0.5
        x, f, g, H = x_new, f_new, g_new, H_new
        norm = float(np.linalg.norm(x))
        if norm > max_norm:
            raise NormLimitError(
                f"the iterate norm {norm:.3g} exceeded max_norm = {max_norm:g} after {it + 1} Newton "
                "steps: the objective has no finite minimiser (e.g. separable data) or its minimiser "
                "lies beyond max_norm", max_norm, norm)
    raise NoMinimizerError(f"Newton did not reach |grad| <= {gtol:g} in {max_iter} steps "
                           f"(|grad| = {gnorm:.3e}); the minimiser may not exist")


def _newton_direction(H: np.ndarray, g: np.ndarray) -> np.ndarray:
    shift = 0.0
    scale = max(float(np.max(np.abs(np.diag(H)))), 1e-300)
    for _ in range(60):
        try:
            L = np.linalg.cholesky(H + shift * np.eye(H.shape[0]))
            z = np.linalg.solve(L, -g)
            return np.linalg.solve(L.T, z)
        except np.linalg.LinAlgError:
            shift = max(2.0 * shift, 1e-12 * scale)
    return -g


def newton_root(residual: Callable[[np.ndarray], np.ndarray], jacobian: Callable[[np.ndarray], np.ndarray],
                x0, gtol: float = 1e-10, max_iter: int = 100,
                value: Callable[[np.ndarray], float] | None = None) -> NewtonResult:
    """A zero of F = ``residual`` by Newton's method for equations: x <- x + t s with J(x) s = -F(x)
    (J = ``jacobian``, any square matrix), t halved from 1 until ||F|| decreases (or t < 1e-10).

    Stops at ||F|| <= gtol; returns ``NewtonResult`` with grad_norm = ||F||, hess = J at x and fun =
    ``value(x)`` (NaN without ``value``). Raises :class:`NoMinimizerError` after ``max_iter`` steps.
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
