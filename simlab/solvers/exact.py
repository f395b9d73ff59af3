"""Deterministic minimisation of smooth convex objectives over atoms (spec §1.2, §3.1).

``newton`` is a damped Newton method with Armijo backtracking for a callable returning
(value, gradient, Hessian); it stops at ||grad|| <= gtol (default 1e-10). It never returns a silent
huge iterate: if the iterate leaves the ball ||x|| <= max_norm or the iteration budget runs out,
it raises :class:`NoMinimizerError` (e.g. a separable DPO sample at tiny n has no minimiser).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from simlab.validation import check_array, check_float, check_int


F_NOISE_RTOL = 1e-12  # relative round-off allowed in f when the step reduces ||grad|| (near a minimiser)


class NoMinimizerError(RuntimeError):
    """The objective has no (finite, unique) minimiser, or Newton failed to find it."""


@dataclass(frozen=True)
class NewtonResult:
    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    converged: bool
    hess: np.ndarray  # Hessian at x (for H-norm errors and rank checks)


def newton(fgh: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]], x0,
           gtol: float = 1e-10, max_iter: int = 200, max_norm: float = 1e6) -> NewtonResult:
    """Minimise f from x0 by Newton steps -H^{-1} g with backtracking (Armijo constant 1e-4).

    A Hessian that is not positive definite is shifted by a multiple of the identity until a
    Cholesky factorisation succeeds (Levenberg-style), so the step is always a descent direction.
    """
    x = check_array("x0", x0, ndim=1).copy()
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    max_iter = check_int("max_iter", max_iter, 1)
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
        if np.linalg.norm(x) > max_norm:
            raise NoMinimizerError(
                f"iterate norm exceeded {max_norm:g} after {it + 1} Newton steps: "
                "the objective has no finite minimiser (e.g. separable data)")
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
