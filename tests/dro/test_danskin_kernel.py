"""The in-numba Danskin value/gradient/Hessian, ``worst_case_value_grad_hess_kernel`` (docs/theory/dro.md §2.4):
the one home of the formulas behind ``worst_case_value_grad_hess`` and the DRO-REBEL Newton kernel.

* bit for bit: the checked NumPy entry is the kernel plus sum_j omega_j H_j;
* Hypothesis properties over random losses, gradients, laws with zeros and radii up to saturation:
  the value and q of the worst-case solvers, grad = sum q grad l, exactly symmetric Hessian, omega >= 0
  and 0 off the support, omega = q outside the chi^2 interior, and for losses linear in theta (H_j = 0,
  so R is convex) a positive semi-definite Hessian;
* Taylor and finite differences of the kernel itself on linear losses (the NumPy entry's Taylor tests
  are in test_danskin.py).
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.dro import worst_case, worst_case_value_grad_hess, worst_case_value_grad_hess_kernel
from simlab.dro.danskin import DIVERGENCES
from tests.taylor import assert_taylor


def _kernel(l, grads, p, divergence, radius):
    n, d = grads.shape
    q, grad, hess, omega = np.empty(n), np.empty(d), np.empty((d, d)), np.empty(n)
    value = worst_case_value_grad_hess_kernel(l, grads, p, float(p.sum()), DIVERGENCES.index(divergence),
                                              float(radius), q, grad, hess, omega)
    return value, grad, hess, q, omega


@st.composite
def problems(draw):
    n = draw(st.integers(1, 12))
    d = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    l = scale * rng.standard_normal(n)
    if draw(st.booleans()):  # ties, including the max
        l[rng.integers(0, n, size=n // 2)] = l[0]
    grads = rng.standard_normal((n, d))
    raw = rng.uniform(size=n) * (rng.uniform(size=n) > draw(st.sampled_from([0.0, 0.3])))
    raw[rng.integers(0, n)] += 0.5
    p = raw / raw.sum()
    divergence = draw(st.sampled_from(DIVERGENCES))
    radius = draw(st.sampled_from([0.0, 1e-6, 0.01, 0.2, 1.0, 5.0]))
    return l, grads, p, divergence, radius


@settings(deadline=None)
@given(problems())
def test_kernel_properties(problem):
    l, grads, p, divergence, radius = problem
    value, grad, hess, q, omega = _kernel(l, grads, p, divergence, radius)
    ref_value, ref_q = worst_case(l, p, divergence, radius)
    spread = np.max(np.abs(l)) + 1e-300
    assert abs(value - ref_value) <= 1e-12 * spread
    assert np.max(np.abs(q - ref_q)) <= 1e-12
    assert np.max(np.abs(grad - q @ grads)) <= 1e-12 * (1.0 + np.max(np.abs(grads)))
    assert np.array_equal(hess, hess.T)
    assert np.all(omega >= 0.0) and np.all(omega[p == 0.0] == 0.0)
    if divergence == "kl":  # the per-atom Hessians carry the worst-case weights
        assert np.array_equal(omega, q)
    # linear losses l + theta^T grads: R is a sup of linear functions, so its Hessian (no per-atom part)
    # is positive semi-definite
    ev = np.linalg.eigvalsh(hess)
    assert ev[0] >= -1e-8 * (1.0 + abs(ev[-1]))


@settings(deadline=None)
@given(problems())
def test_numpy_entry_is_the_kernel_bit_for_bit(problem):
    l, grads, p, divergence, radius = problem
    per_atom = np.einsum("jk,jm->jkm", grads, grads) + np.eye(grads.shape[1])  # H_j, an (A, d, d) array
    value, grad, hess, q, omega = _kernel(l, grads, p, divergence, radius)
    got = worst_case_value_grad_hess(l, grads, per_atom, p, divergence, radius)
    assert got[0] == value
    assert np.array_equal(got[1], grad)
    assert np.array_equal(got[2], hess + np.einsum("j,jkl->kl", omega, per_atom))
    assert np.array_equal(got[3], q)


@pytest.mark.parametrize("divergence,radius", [("kl", 0.05), ("kl", 0.5), ("chi2", 0.05), ("chi2", 0.2)])
def test_kernel_taylor_and_hessian_on_linear_losses(divergence, radius):
    """R(theta) = sup_q <q, a + G theta>: the kernel's gradient passes the Taylor test against the
    worst-case value, and its Hessian (no per-atom part: H_j = 0) matches finite differences."""
    rng = np.random.default_rng(3)
    a, G, p = rng.standard_normal(12), rng.standard_normal((12, 3)), rng.dirichlet(np.ones(12))
    theta = rng.standard_normal(3)
    assert worst_case(a + G @ theta, p, divergence, radius)[0] < np.max(a + G @ theta)  # not saturated
    f = lambda th: worst_case(a + G @ th, p, divergence, radius)[0]
    grad = lambda th: _kernel(a + G @ th, G, p, divergence, radius)[1]
    assert_taylor(f, grad, theta)
    hess = _kernel(a + G @ theta, G, p, divergence, radius)[2]
    h = 1e-5
    fd = np.array([(grad(theta + h * e) - grad(theta - h * e)) / (2 * h) for e in np.eye(3)])
    assert np.max(np.abs(hess - fd)) <= 1e-6 * (1.0 + np.max(np.abs(hess)))
