"""Wasserstein worst cases (docs/theory/dro.md §2.3; identities 16, 17, 18 of docs/theory/identities.md §8)."""
import numpy as np
import pytest
from scipy.special import log1p

from simlab.dro import (w2_margin_surrogate, w2_margin_value_grad_hess, w2_margin_worst_case,
                        w2_surrogate_value_grad_hess, w_linear_worst_case)
from simlab.dro.wasserstein import _inner_sweep
from tests.dro.brute_force import brute_force_w2_margin
from tests.taylor import assert_taylor


def softplus(h):
    return np.maximum(h, 0) + log1p(np.exp(-np.abs(h)))


def _atoms(seed, n=12, d=3):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, d))
    p = rng.dirichlet(np.ones(n))
    g = rng.standard_normal(d)
    y = (rng.uniform(size=n) < 0.6).astype(float)
    r = rng.standard_normal(n)
    return z, p, g, y, r


@pytest.mark.parametrize("seed", range(5))
def test_linear_loss_shift_attains_closed_form(seed):
    z, p, g, _, r = _atoms(seed)
    value, moved = w_linear_worst_case(g, z, p, 0.3, b=r)
    assert value == pytest.approx(p @ (moved @ g + r), abs=1e-12)
    assert np.all(np.abs(np.linalg.norm(moved - z, axis=1) - 0.3) <= 1e-12)
    # margin dual of a "linear" loss: logistic with y=1 at hugely negative margins is ~ -h (slope -1)
    assert value == pytest.approx(p @ (z @ g + r) + 0.3 * np.linalg.norm(g), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_squared_loss_closed_form_equals_dual_and_brute_force(seed):
    z, p, g, _, r = _atoms(seed)
    m, s, eps = z @ g, np.linalg.norm(g), 0.2
    res = w2_margin_worst_case(m, s, p, eps, loss="squared", targets=r)
    rms = np.sqrt(p @ (m - r) ** 2)
    assert res.value == pytest.approx((rms + eps * s) ** 2, abs=1e-9)
    # the shifts attain it and are feasible
    assert p @ res.shift**2 == pytest.approx((s * eps) ** 2, rel=1e-12)
    assert p @ (m + res.shift - r) ** 2 == pytest.approx(res.value, abs=1e-9)
    bf = brute_force_w2_margin(m, s, p, eps, lambda h: (h - r) ** 2)
    assert res.value == pytest.approx(bf, abs=1e-7)
    # exact - surrogate = eps^2 s^2
    surr = w2_margin_surrogate(m, s, p, eps, loss="squared", targets=r)
    assert res.value - surr == pytest.approx((eps * s) ** 2, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("eps", [0.05, 0.3, 2.0])
def test_logistic_dual_equals_brute_force(seed, eps):
    z, p, g, y, _ = _atoms(seed)
    m, s = z @ g, np.linalg.norm(g)
    res = w2_margin_worst_case(m, s, p, eps, loss="logistic", targets=y)
    ell = lambda h: softplus(h) - y * h
    bf = brute_force_w2_margin(m, s, p, eps, ell)
    assert res.value == pytest.approx(bf, abs=1e-7)
    assert res.value >= bf - 1e-9  # the dual is an upper bound
    # primal certificate: feasible and attains the dual value
    assert p @ res.shift**2 == pytest.approx((s * eps) ** 2, rel=1e-10)
    assert p @ ell(m + res.shift) == pytest.approx(res.value, abs=1e-9)


@pytest.mark.parametrize("seed", range(5))
def test_logistic_sandwich_and_second_order_gap(seed):
    z, p, g, y, _ = _atoms(seed)
    m, s = z @ g, np.linalg.norm(g)
    base = p @ (softplus(m) - y * m)
    eps_grid = np.geomspace(0.01, 0.2, 8)
    gaps = []
    for eps in eps_grid:
        exact = w2_margin_worst_case(m, s, p, eps, loss="logistic", targets=y).value
        surr = w2_margin_surrogate(m, s, p, eps, loss="logistic", targets=y)
        assert base <= surr + 1e-12
        assert surr <= exact + 1e-12
        assert exact <= base + eps * s * 1.0 + 1e-12  # Lip_z = s sup|ell'| = s
        gaps.append(exact - surr)
    slope = np.polyfit(np.log(eps_grid), np.log(gaps), 1)[0]
    assert abs(slope - 2.0) <= 0.2


def test_nonconcave_inner_regime_kantorovich_certificate():
    """Large radius drives mu below 1/8: the inner problems are nonconcave, T(mu) jumps at mu*, and the
    worst case splits one atom between its two maximisers (a Kantorovich, not a Monge, coupling).
    That split primal attains the dual value; local primal solves stay below it."""
    z, p, g, y, _ = _atoms(11, n=6)
    g = 4 * g
    m, s = z @ g, np.linalg.norm(g)
    kappa = (1.5 * s) ** 2
    res = w2_margin_worst_case(m, s, p, 1.5, loss="logistic", targets=y)
    assert res.mu < 0.125
    ell = lambda h: softplus(h) - y * h
    t_lo, t_hi = np.zeros(6), np.zeros(6)
    _inner_sweep(0, m, y, p, res.mu * (1 - 1e-9), t_lo)
    _inner_sweep(0, m, y, p, res.mu * (1 + 1e-9), t_hi)
    T_lo, T_hi = p @ t_lo**2, p @ t_hi**2
    assert T_lo > kappa > T_hi  # the jump
    w = (kappa - T_hi) / (T_lo - T_hi)
    split_primal = w * (p @ ell(m + t_lo)) + (1 - w) * (p @ ell(m + t_hi))
    assert split_primal == pytest.approx(res.value, abs=1e-8)
    assert res.value >= brute_force_w2_margin(m, s, p, 1.5, ell, split=True) - 1e-9


def test_squared_loss_needs_p_at_least_two():
    """W_1 ball, squared loss: moving mass w far away by distance D costs w D <= eps but gains w D^2 s^2."""
    z, p, g, _, r = _atoms(0)
    s, eps = np.linalg.norm(g), 0.1
    gains = [eps / D * (D * s) ** 2 for D in (1e2, 1e4, 1e6)]
    assert gains[-1] > 1e3 * gains[0]  # unbounded: the W_1 value is +inf


@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("seed", range(3))
def test_exact_gradient_and_hessian(loss, seed):
    z, p, g, y, r = _atoms(seed)
    tgt = y if loss == "logistic" else r
    f = lambda x: w2_margin_value_grad_hess(x, z, tgt, p, 0.3, loss)[0]
    gr = lambda x: w2_margin_value_grad_hess(x, z, tgt, p, 0.3, loss)[1]
    assert_taylor(f, gr, g)
    H = w2_margin_value_grad_hess(g, z, tgt, p, 0.3, loss)[2]
    h = 1e-5
    H_fd = np.array([(gr(g + h * e) - gr(g - h * e)) / (2 * h) for e in np.eye(g.size)])
    assert np.max(np.abs(H - H_fd)) <= 1e-6 * (1 + np.max(np.abs(H)))


@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_surrogate_gradient_and_hessian(loss):
    z, p, g, y, r = _atoms(3)
    tgt = y if loss == "logistic" else r
    f = lambda x: w2_surrogate_value_grad_hess(x, z, tgt, p, 0.4, loss)[0]
    gr = lambda x: w2_surrogate_value_grad_hess(x, z, tgt, p, 0.4, loss)[1]
    assert_taylor(f, gr, g)
    H = w2_surrogate_value_grad_hess(g, z, tgt, p, 0.4, loss)[2]
    h = 1e-5
    H_fd = np.array([(gr(g + h * e) - gr(g - h * e)) / (2 * h) for e in np.eye(g.size)])
    assert np.max(np.abs(H - H_fd)) <= 1e-6 * (1 + np.max(np.abs(H)))


def test_monotone_in_radius_and_zero_limit():
    z, p, g, y, _ = _atoms(5)
    m, s = z @ g, np.linalg.norm(g)
    vals = [w2_margin_worst_case(m, s, p, e, loss="logistic", targets=y).value
            for e in np.r_[0.0, np.geomspace(1e-6, 3, 30)]]
    assert vals[0] == pytest.approx(p @ (softplus(m) - y * m), abs=1e-15)
    assert np.all(np.diff(vals) >= -1e-12)


def test_bad_input():
    z, p, g, y, _ = _atoms(0)
    with pytest.raises(ValueError, match="radius"):
        w2_margin_worst_case(z @ g, 1.0, p, -1.0, targets=y)
    with pytest.raises(ValueError, match="targets"):
        w2_margin_worst_case(z @ g, 1.0, p, 0.1, targets=y[:-1])
    with pytest.raises(ValueError, match="loss"):
        w2_margin_worst_case(z @ g, 1.0, p, 0.1, loss="hinge", targets=y)
    with pytest.raises(ValueError, match="margins"):
        w2_margin_worst_case(np.r_[np.nan, (z @ g)[1:]], 1.0, p, 0.1, targets=y)
