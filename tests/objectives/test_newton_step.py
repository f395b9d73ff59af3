"""The Newton step and constants of simlab.solvers.exact, shared by ``newton`` (LAPACK) and the numba loop of
the DPO fit (``newton_direction_kernel``).

* Hypothesis: on random positive definite H the kernel's step solves H s = -g (against numpy.linalg.solve);
  on indefinite H it is a descent direction solving (H + shift I) s = -g with the smallest shift of the
  Levenberg sequence SHIFT_START max|H_ii| 2^k that makes H + shift I positive definite (the rule of
  ``newton``).
* The DPO fit (numba loop) and ``newton`` on the same rows (Python loop) reach the same minimiser with the
  same number of steps.
"""
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.env import make_env, preset
from simlab.env.sampling import multinomial_counts
from simlab.objectives.dpo import dpo_vgh_unchecked
from simlab.solvers.dpo import fit_dpo_exact, soft_label_rows
from simlab.solvers.exact import NEWTON_GTOL, SHIFT_START, newton, newton_direction_kernel


def _kernel_step(H, g):
    step = np.empty(g.size)
    newton_direction_kernel(H, g, np.zeros_like(H), step)
    return step


@st.composite
def symmetric(draw, definite):
    d = draw(st.integers(1, 7))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    scale = draw(st.sampled_from([1e-6, 1.0, 1e4]))
    ev = scale * rng.uniform(0.1, 10.0, size=d)
    if not definite:
        ev[rng.integers(0, d)] *= -1.0
    H = (q * ev) @ q.T
    H = 0.5 * (H + H.T)
    return H, rng.standard_normal(d)


@settings(deadline=None)
@given(symmetric(definite=True))
def test_step_solves_positive_definite_systems(problem):
    H, g = problem
    step = _kernel_step(H, g)
    ref = np.linalg.solve(H, -g)
    cond = np.linalg.cond(H)
    assert np.linalg.norm(step - ref) <= 1e-12 * cond * np.linalg.norm(ref)


@settings(deadline=None)
@given(symmetric(definite=False))
def test_indefinite_hessian_gives_a_shifted_descent_step(problem):
    H, g = problem
    step = _kernel_step(H, g)
    assert g @ step < 0.0
    # (H + shift I) s = -g: the shift is the same scalar in every coordinate
    shift = -(g + H @ step) / step
    assert np.all(shift >= 0.0)
    assert np.ptp(shift) <= 1e-6 * (np.max(np.abs(shift)) + np.max(np.abs(np.diag(H))))
    # the smallest shift of the Levenberg sequence SHIFT_START s, 2 SHIFT_START s, ... that makes H + shift I
    # positive definite (s = max |H_ii|)
    s = float(np.mean(shift))
    first = SHIFT_START * max(np.max(np.abs(np.diag(H))), 1e-300)
    k = np.log2(s / first)
    assert abs(k - round(k)) <= 1e-6
    assert np.linalg.eigvalsh(H + s * np.eye(H.shape[0]))[0] > 0.0
    if round(k) > 0:
        assert np.linalg.eigvalsh(H + 0.5 * s * np.eye(H.shape[0]))[0] <= 1e-9 * s
    assert np.linalg.norm(step - np.linalg.solve(H + s * np.eye(H.shape[0]), -g)) <= 1e-6 * np.linalg.norm(step)


def test_dpo_numba_loop_and_python_newton_agree():
    env = make_env(preset("E1", d=4), 0)
    atoms = env.atoms("offline")
    w = multinomial_counts(atoms.p0, 2000, np.random.default_rng(5)) / 2000
    dphi, y, wk, const = soft_label_rows(atoms, w)

    def fgh(theta):
        value, grad, hess = dpo_vgh_unchecked(theta - env.theta_ref, env.beta, dphi, y, wk)
        return value + const, grad, hess

    fit = fit_dpo_exact(atoms, w, env.theta_ref, env.beta)
    ref = newton(fgh, env.theta_ref.copy())
    assert fit.converged and fit.grad_norm <= NEWTON_GTOL
    assert fit.iterations == ref.iterations
    assert np.max(np.abs(fit.x - ref.x)) <= 1e-10 * (1.0 + np.max(np.abs(ref.x)))
    assert abs(fit.fun - ref.fun) <= 1e-12 * (1.0 + abs(ref.fun))
