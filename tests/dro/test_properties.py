"""Property-based tests (Hypothesis, profile "ci" of tests/conftest.py) of every public dual of simlab.dro
(docs/theory/dro.md §2.1-2.3, §2.5): random losses of any finite magnitude, laws with zeros, tiny and
near-degenerate weights and sums off 1 within the tolerance, radii from 0 to saturation.

* worst_case / kl_worst_case / chi2_worst_case: finite value between the mean and the max; monotone in
  the radius; translation and scale equivariant; certificate q >= 0, sum q = 1, q = 0 off the support,
  D(q || p / sum p) <= radius, <q, l> = value; the independent dual evaluated at the returned dual
  variable equals the value (so the certificate and weak duality pin it); the SLSQP primal agrees on
  small supports.
* kl_penalized: value = <q, l> - tau KL(q || p), between the mean and the max, decreasing in tau, no
  distribution beats it, equivariant in (l, tau).
* w2_margin_worst_case (logistic): between the nominal value and the Lipschitz bound, monotone in the
  radius, a function of slope_norm * radius only, and equal to the brute-force dual at extreme margins
  and radii.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from simlab.dro import (chi2_worst_case, kl_penalized, kl_radius_of_tau, kl_worst_case, w2_margin_worst_case,
                        worst_case)
from tests.dro.brute_force import brute_force_w2_logistic_dual, primal_worst_case

DIVERGENCES = ("kl", "chi2")


@st.composite
def laws(draw, n):
    """A weight vector of length n with at least one positive entry: zeros, tiny (1e-300), small and
    ordinary weights, normalised, then possibly off 1 by +-5e-10 (inside the validator's tolerance)."""
    raw = draw(st.lists(st.one_of(st.just(0.0), st.sampled_from([1e-300, 1e-12, 1e-6]), st.floats(1e-3, 1.0)),
                        min_size=n, max_size=n))
    if not any(w > 0 for w in raw):
        raw[draw(st.integers(0, n - 1))] = 1.0
    p = np.array(raw) / np.sum(raw)
    off = draw(st.sampled_from([0.0, 0.0, 5e-10, -5e-10]))
    return np.minimum(p * (1.0 + off), 1.0)


@st.composite
def instances(draw, max_atoms=8, magnitudes=True):
    """(l, p): unit-scale losses with ties, times a magnitude 10^e (e in [-300, 300]), and atoms of
    probability 0 at any finite value."""
    n = draw(st.integers(1, max_atoms))
    p = draw(laws(n))
    unit = draw(st.lists(st.one_of(st.integers(-3, 3).map(float), st.floats(-1.0, 1.0)), min_size=n, max_size=n))
    scale = 10.0 ** draw(st.floats(-300.0, 300.0)) if magnitudes and draw(st.booleans()) else 1.0
    l = np.array(unit) * scale
    wild = draw(st.lists(st.floats(-1e308, 1e308), min_size=n, max_size=n))
    l = np.where(p > 0, l, np.array(wild))
    return l, p


radii = st.one_of(st.just(0.0), st.sampled_from([5e-324, 1e-300, 1e-12]), st.floats(1e-6, 5.0),
                  st.floats(5.0, 1e3))


def _support_scale(l, p):
    return float(np.max(np.abs(l[p > 0])))


def _divergence(q, p, divergence):
    """D(q || p / sum p), computed here with NumPy."""
    pn = p / p.sum()
    if divergence == "kl":
        m = q > 0
        return float(np.sum(q[m] * np.log(q[m] / pn[m])))
    m = pn > 0
    return float(0.5 * np.sum((q[m] - pn[m]) ** 2 / pn[m]))


def _mean(l, p):
    m = p > 0
    return float(p[m] @ l[m] / p[m].sum())


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(inst=instances(), radius=radii)
def test_value_between_mean_and_max_with_certificate(divergence, inst, radius):
    l, p = inst
    value, q = worst_case(l, p, divergence, radius)
    scale = _support_scale(l, p)
    tol = 1e-12 * scale
    assert np.isfinite(value)
    assert _mean(l, p) - tol <= value <= l[p > 0].max()
    assert np.all(q >= 0) and np.all(q[p == 0] == 0) and abs(q.sum() - 1.0) <= 1e-13 * l.size
    assert _divergence(q, p, divergence) <= radius * (1 + 1e-9) + 1e-13
    ql = float(np.sum(q[p > 0] * (l[p > 0] / scale))) * scale if scale > 0 else 0.0
    assert abs(ql - value) <= 1e-12 * l.size * scale


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(inst=instances(), r1=radii, r2=radii)
def test_monotone_in_radius(divergence, inst, r1, r2):
    l, p = inst
    lo, hi = min(r1, r2), max(r1, r2)
    assert worst_case(l, p, divergence, lo)[0] <= worst_case(l, p, divergence, hi)[0] + 1e-13 * _support_scale(l, p)


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(inst=instances(), radius=radii, shift=st.floats(-1e3, 1e3))
def test_translation_equivariance(divergence, inst, radius, shift):
    l, p = inst
    scale = _support_scale(l, p)
    a = shift * scale
    with np.errstate(over="ignore"):
        shifted = np.where(p > 0, l + a, l)
    value = worst_case(shifted, p, divergence, radius)[0]
    assert abs(value - (worst_case(l, p, divergence, radius)[0] + a)) <= 1e-12 * (scale + abs(a))


@pytest.mark.parametrize("divergence", DIVERGENCES)
@given(inst=instances(), radius=radii, log_c=st.floats(-280.0, 280.0))
def test_scale_equivariance(divergence, inst, radius, log_c):
    l, p = inst
    scale = _support_scale(l, p)
    if not 1e-280 <= scale <= 1e280:  # the instances' own magnitude is tested at its extremes
        return
    c = 10.0 ** log_c
    if not 1e-290 <= c * scale <= 1e290:  # keep c l on the support finite and normal
        c = 1e-3 / scale if c * scale < 1e-290 else 1e3 / scale
    with np.errstate(over="ignore", under="ignore"):  # off the support c l may overflow: not used
        scaled = np.where(p > 0, c * l, l)
    value = worst_case(scaled, p, divergence, radius)[0]
    assert abs(value - c * worst_case(l, p, divergence, radius)[0]) <= 1e-12 * c * scale


def _kl_dual(l, pn, radius, tau):
    """tau radius + tau log E_p e^{l/tau} by SciPy's logsumexp (weak duality: >= the worst case)."""
    m = pn > 0
    return tau * radius + tau * logsumexp(l[m] / tau, b=pn[m])


def _chi2_dual(l, pn, radius, zeta):
    """zeta + sqrt(1 + 2 radius) ||(l - zeta)_+||_{L2(p)} (weak duality: >= the worst case)."""
    m = pn > 0
    return zeta + np.sqrt(1 + 2 * radius) * np.sqrt(pn[m] @ np.maximum(l[m] - zeta, 0.0) ** 2)


@given(inst=instances(max_atoms=6, magnitudes=False), radius=st.one_of(st.floats(1e-9, 1e-4), st.floats(1e-4, 3.0)))
def test_kl_dual_at_returned_tau_equals_value(inst, radius):
    """The certificate q attains the value (a primal lower bound); the dual at the returned tau, and at
    any other tau, is an upper bound, evaluated here independently: so the value is the optimum."""
    l, p = inst
    res = kl_worst_case(l, p, radius)
    pn = p / p.sum()
    if res.tau == 0.0 or not np.isfinite(res.tau):  # saturated or constant: closed forms
        assert res.value in (l[p > 0].max(), _mean(l, p)) or abs(res.value - _mean(l, p)) < 1e-14
        return
    if res.value >= l[p > 0].max() - 1e-13 * _support_scale(l, p):
        return  # saturated up to round-off (top atoms tied within it): tau is not determined
    assert _kl_dual(l, pn, radius, res.tau) == pytest.approx(res.value, abs=1e-11)
    for f in (0.5, 0.9, 1.1, 2.0):
        assert res.value <= _kl_dual(l, pn, radius, f * res.tau) + 1e-12
    assert kl_radius_of_tau(l, p, res.tau) == pytest.approx(radius, rel=1e-8, abs=1e-13)


@given(inst=instances(max_atoms=6, magnitudes=False), radius=st.floats(1e-4, 3.0))
def test_chi2_dual_at_returned_zeta_equals_value(inst, radius):
    l, p = inst
    res = chi2_worst_case(l, p, radius)
    pn = p / p.sum()
    if not np.isfinite(res.zeta) or res.value == l[p > 0].max():
        return
    assert _chi2_dual(l, pn, radius, res.zeta) == pytest.approx(res.value, abs=1e-11)
    for d in (-0.5, -1e-3, 1e-3, 0.5):
        assert res.value <= _chi2_dual(l, pn, radius, res.zeta + d) + 1e-12


@pytest.mark.parametrize("divergence", DIVERGENCES)
@settings(max_examples=15)
@given(data=st.data(), radius=st.floats(1e-3, 2.0))
def test_agrees_with_the_primal_on_small_supports(divergence, data, radius):
    n = data.draw(st.integers(2, 4))
    l = np.array(data.draw(st.lists(st.floats(-3.0, 3.0), min_size=n, max_size=n)))
    p = np.array(data.draw(st.lists(st.floats(0.05, 1.0), min_size=n, max_size=n)))
    p /= p.sum()
    value = worst_case(l, p, divergence, radius)[0]
    primal = primal_worst_case(l, p, radius, divergence)
    assert value >= primal - 1e-7  # the primal solve is feasible (to 1e-7 relative)
    assert value == pytest.approx(primal, abs=1e-6)


# --- penalised KL -------------------------------------------------------------------------------------

taus = st.one_of(st.sampled_from([1e-300, 1e-12]), st.floats(1e-4, 1e4))


@given(inst=instances(), tau_unit=taus)
def test_kl_penalized_properties(inst, tau_unit):
    l, p = inst
    scale = _support_scale(l, p) or 1.0
    tau = max(tau_unit * scale, 1e-300)
    value, q = kl_penalized(l, p, tau)
    tol = 1e-12 * scale
    assert np.isfinite(value) and np.all(q >= 0) and np.all(q[p == 0] == 0)
    assert abs(q.sum() - 1.0) <= 1e-13 * l.size
    assert _mean(l, p) - tol <= value <= l[p > 0].max() + tol
    # decreasing in tau, equivariant in (l, tau) and in shifts of l
    assert kl_penalized(l, p, 2.0 * tau)[0] <= value + tol
    assert kl_penalized(np.where(p > 0, 0.5 * l, l), p, 0.5 * tau)[0] == pytest.approx(0.5 * value, rel=1e-12, abs=tol)
    with np.errstate(over="ignore"):
        shifted = np.where(p > 0, l + scale, l)
    assert abs(kl_penalized(shifted, p, tau)[0] - (value + scale)) <= 4 * tol


@settings(max_examples=25)
@given(inst=instances(max_atoms=5, magnitudes=False), tau=st.floats(0.05, 20.0), data=st.data())
def test_kl_penalized_is_the_sup_over_distributions(inst, tau, data):
    """value = <q, l> - tau KL(q || p) at the returned q, and no other distribution r on the support
    does better (brute force over random r)."""
    l, p = inst
    value, q = kl_penalized(l, p, tau)
    m = p > 0
    assert value == pytest.approx(q[m] @ l[m] - tau * _divergence(q, p, "kl"), abs=1e-12)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    pn = (p / p.sum())[m]
    for r in rng.dirichlet(np.full(m.sum(), 0.5), size=200):
        kl = np.sum(np.where(r > 0, r * np.log(np.where(r > 0, r, 1.0) / pn), 0.0))
        assert r @ l[m] - tau * kl <= value + 1e-12


# --- W2, logistic margin loss --------------------------------------------------------------------------

@st.composite
def margin_instances(draw, max_atoms=4):
    n = draw(st.integers(1, max_atoms))
    m = draw(st.lists(st.one_of(st.floats(-8.0, 8.0), st.sampled_from([-800.0, -50.0, -38.0, 38.0, 50.0, 800.0]),
                                st.floats(-60.0, 60.0)), min_size=n, max_size=n))
    y = draw(st.lists(st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0)), min_size=n, max_size=n))
    return np.array(m), np.array(y), draw(laws(n))


slope_norms = st.floats(1e-2, 30.0)
w2_radii = st.one_of(st.just(0.0), st.floats(1e-6, 1.0), st.floats(1.0, 30.0))


def _nominal_and_lipschitz(m, y, p):
    pn = p / p.sum()
    base = float(pn @ (np.logaddexp(0.0, m) - y * m))
    lip = float(np.max(np.maximum(y, 1.0 - y)[p > 0]))
    return base, lip


@given(inst=margin_instances(), s=slope_norms, r1=w2_radii, r2=w2_radii)
def test_w2_between_nominal_and_lipschitz_bound_and_monotone(inst, s, r1, r2):
    m, y, p = inst
    lo, hi = min(r1, r2), max(r1, r2)
    v_lo = w2_margin_worst_case(m, s, p, lo, targets=y).value
    v_hi = w2_margin_worst_case(m, s, p, hi, targets=y).value
    base, lip = _nominal_and_lipschitz(m, y, p)
    tol = 1e-12 * (1.0 + abs(base) + s * hi)
    assert np.isfinite(v_lo) and np.isfinite(v_hi)
    assert base - tol <= v_lo <= v_hi + tol
    assert v_hi <= base + s * hi * lip + tol  # the W2 ball lies in the W1 ball; Lip_z = s max(y, 1 - y)


@given(inst=margin_instances(), s=slope_norms, radius=st.floats(1e-3, 10.0), log_c=st.floats(-3.0, 3.0))
def test_w2_depends_on_slope_norm_times_radius(inst, s, radius, log_c):
    m, y, p = inst
    c = 10.0 ** log_c
    a = w2_margin_worst_case(m, s, p, radius, targets=y).value
    b = w2_margin_worst_case(m, c * s, p, radius / c, targets=y).value
    assert b == pytest.approx(a, rel=1e-11)


@settings(max_examples=20)
@given(inst=margin_instances(max_atoms=3), s=st.floats(0.1, 10.0), radius=st.one_of(st.floats(1e-3, 0.1), st.floats(0.1, 10.0)))
def test_w2_agrees_with_the_brute_force_dual(inst, s, radius):
    """At extreme margins (+-38, +-50, +-800), soft labels and s * radius up to 100."""
    m, y, p = inst
    value = w2_margin_worst_case(m, s, p, radius, targets=y).value
    truth = brute_force_w2_logistic_dual(m, y, p / p.sum(), s, radius)
    assert value == pytest.approx(truth, rel=1e-10, abs=1e-13)
