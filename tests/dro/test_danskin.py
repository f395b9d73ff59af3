"""Danskin gradients and exact Hessians of robust objectives (docs/theory/dro.md §2.4; identities 10, 21 of docs/theory/identities.md §8)."""
import numpy as np
import pytest
from scipy.special import expit, log1p

from simlab.dro import (danskin_gradient, kl_penalized, kl_penalized_value_grad_hess,
                        non_detached_softmax_gradient, worst_case, worst_case_value_grad_hess)
from tests.taylor import assert_taylor


def _family(seed, n=15, d=3):
    """Logistic losses l_j(theta) = softplus(h_j) - y_j h_j, h_j = theta^T z_j."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    y = (rng.uniform(size=n) < 0.5).astype(float)
    p = rng.dirichlet(np.ones(n))
    theta = rng.standard_normal(d)

    def lgh(th):
        h = z @ th
        s = expit(h)
        l = np.maximum(h, 0) + log1p(np.exp(-np.abs(h))) - y * h
        return l, (s - y)[:, None] * z, lambda w: (z.T * (w * s * (1 - s))) @ z

    return lgh, p, theta


def _fd_hessian(grad, x, h=1e-5):
    return np.array([(grad(x + h * e) - grad(x - h * e)) / (2 * h) for e in np.eye(x.size)])


CASES = [("kl", 0.05), ("kl", 0.5), ("chi2", 0.05), ("chi2", 1.0)]


@pytest.mark.parametrize("divergence,radius", CASES)
@pytest.mark.parametrize("seed", range(3))
def test_robust_gradient_and_hessian(divergence, radius, seed):
    lgh, p, theta = _family(seed)

    def f(th):
        return worst_case(lgh(th)[0], p, divergence, radius)[0]

    def grad(th):
        l, gr, hs = lgh(th)
        return worst_case_value_grad_hess(l, gr, hs, p, divergence, radius)[1]

    assert_taylor(f, grad, theta)
    l, gr, hs = lgh(theta)
    v, g, H, q = worst_case_value_grad_hess(l, gr, hs, p, divergence, radius)
    assert v == pytest.approx(f(theta), abs=1e-14)
    assert np.allclose(g, danskin_gradient(q, gr), atol=1e-15)
    H_fd = _fd_hessian(grad, theta)
    assert np.max(np.abs(H - H_fd)) <= 1e-6 * (1 + np.max(np.abs(H)))


def test_hessian_array_form_matches_callable():
    lgh, p, theta = _family(7)
    l, gr, hs = lgh(theta)
    per_atom = np.stack([hs(np.eye(l.size)[j]) for j in range(l.size)])
    for div in ("kl", "chi2"):
        a = worst_case_value_grad_hess(l, gr, hs, p, div, 0.2)[2]
        b = worst_case_value_grad_hess(l, gr, per_atom, p, div, 0.2)[2]
        assert np.max(np.abs(a - b)) <= 1e-13


@pytest.mark.parametrize("tau", [0.3, 1.0, 5.0])
def test_penalized_kl_gradient_hessian(tau):
    lgh, p, theta = _family(1)
    f = lambda th: kl_penalized(lgh(th)[0], p, tau)[0]
    grad = lambda th: kl_penalized_value_grad_hess(*lgh(th), p, tau)[1]
    assert_taylor(f, grad, theta)
    H = kl_penalized_value_grad_hess(*lgh(theta), p, tau)[2]
    assert np.max(np.abs(H - _fd_hessian(grad, theta))) <= 1e-6 * (1 + np.max(np.abs(H)))


def test_non_detached_gradient_is_fd_of_softmax_weighted_loss_and_not_envelope():
    lgh, p, theta = _family(2)
    l0 = lgh(theta)[0]
    tau = float(np.std(l0))  # tau comparable to the loss spread

    def G(th):
        l = lgh(th)[0]
        return kl_penalized(l, p, tau)[1] @ l

    nd = lambda th: non_detached_softmax_gradient(lgh(th)[0], lgh(th)[1], p, tau)
    h = 1e-6
    fd = np.array([(G(theta + h * e) - G(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    assert np.max(np.abs(nd(theta) - fd)) <= 1e-7 * (1 + np.max(np.abs(fd)))
    envelope = kl_penalized_value_grad_hess(*lgh(theta), p, tau)[1]
    assert np.linalg.norm(nd(theta) - envelope) > 1e-2 * np.linalg.norm(envelope)
    # and they agree as tau -> inf
    big = 1e6
    env_big = kl_penalized_value_grad_hess(*lgh(theta), p, big)[1]
    assert np.linalg.norm(non_detached_softmax_gradient(l0, lgh(theta)[1], p, big) - env_big) < 1e-5


@pytest.mark.parametrize("divergence,radius", CASES)
def test_strong_convexity_midpoint(divergence, radius):
    """sup of kappa-strongly convex objectives is kappa-strongly convex (docs/theory/dro.md §2.5)."""
    rng = np.random.default_rng(4)
    z = rng.standard_normal((20, 3))
    p = rng.dirichlet(np.ones(20))
    b = rng.standard_normal(20)
    kappa = 0.7
    R = lambda th: worst_case((z @ th - b) ** 2 + 0.5 * kappa * th @ th, p, divergence, radius)[0]
    for _ in range(20):
        t1, t2 = rng.standard_normal(3), rng.standard_normal(3)
        gap = 0.5 * R(t1) + 0.5 * R(t2) - R(0.5 * (t1 + t2)) - kappa / 8 * np.sum((t1 - t2) ** 2)
        assert gap >= -1e-12


@pytest.mark.parametrize("divergence,radius", CASES)
def test_unnormalised_accepted_law_is_its_normalised_law(divergence, radius):
    """probs summing to 1 within the accepted 1e-9 define the ball around p / sum p: value, gradient
    and Hessian equal those of the normalised law (the chi^2 Hessian once used the raw p, off by a
    factor ~ sqrt(sum p))."""
    lgh, p, theta = _family(11)
    l, gr, hs = lgh(theta)
    p_off = p * (1.0 + 9e-10)
    ref = worst_case_value_grad_hess(l, gr, hs, p / p.sum(), divergence, radius)
    got = worst_case_value_grad_hess(l, gr, hs, p_off, divergence, radius)
    for a, b in zip(got[:3], ref[:3]):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= 1e-12 * (1.0 + np.max(np.abs(b)))
