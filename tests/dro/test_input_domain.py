"""Regression tests for the edges of the duals' input domain (docs/theory/dro.md §2; README "Input domain
of the DRO duals"): probabilities within the tolerance, losses of any finite magnitude, zero-probability
atoms, and the W2 margin dual at strongly misranked atoms, tiny multipliers and zero gradients.
Every truth here is computed independently (closed forms, brentq on a one-dimensional primal, or the
brute-force W2 dual of ``tests/dro/brute_force.py``)."""
import numpy as np
import pytest
from scipy.optimize import brentq

from simlab.dro import chi2_worst_case, kl_penalized, kl_radius_of_tau, kl_worst_case, w2_margin_worst_case, worst_case
from simlab.dro.wasserstein import _logistic_inner, _logistic_residual
from tests.dro.brute_force import brute_force_w2_logistic_dual


def _two_atom_truth(p1: float, radius: float, divergence: str) -> float:
    """sup q1 over q = (1 - q1, q1) with D(q || (1 - p1, p1)) <= radius, i.e. the worst case of l = [0, 1]:
    the root of the binary divergence in delta = q1 - p1 (log1p keeps the tiny radius exact)."""
    p0 = 1.0 - p1
    if divergence == "chi2":
        return p1 + np.sqrt(2.0 * radius * p0 * p1)  # D = delta^2 (1/p0 + 1/p1) / 2
    kl = lambda d: (p1 + d) * np.log1p(d / p1) + (p0 - d) * np.log1p(-d / p0) - radius  # noqa: E731
    d0 = np.sqrt(2.0 * radius * p0 * p1)
    return p1 + brentq(kl, 0.5 * d0, min(2.0 * d0, p0), xtol=1e-22, rtol=1e-15)


# --- defect 1: probabilities the validator accepts are normalised --------------------------------------

@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_probs_below_one_by_the_tolerance_are_normalised(divergence):
    """l = [0, 1], p = [0.5, 0.5 - 5e-10], radius 1e-10 gave -4.4e116 (KL) and 1.0 (chi^2): the ball is
    built around p / sum p, so the value is the two-atom truth 0.5000071 of the normalised law."""
    p = np.array([0.5, 0.5 - 5e-10])
    value, q = worst_case([0.0, 1.0], p, divergence, 1e-10)
    truth = _two_atom_truth(p[1] / p.sum(), 1e-10, divergence)
    assert value == pytest.approx(truth, abs=1e-15) and round(value, 7) == 0.5000071
    assert q.sum() == pytest.approx(1.0, abs=1e-15) and q[1] == pytest.approx(truth, abs=1e-15)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
@pytest.mark.parametrize("radius", [1e-12, 1e-10, 1e-8, 1e-4])
def test_robust_premium_with_probs_summing_above_one(divergence, radius):
    """sum p = 1 + 5e-10 made the premium (value - mean) 2.4x (KL) / 1.9x (chi^2) too large at small
    radii; now it is the premium of the normalised law to round-off."""
    rng = np.random.default_rng(0)
    l = rng.standard_normal(50)
    p = rng.dirichlet(np.ones(50))
    p *= 1.0 + 5e-10 / p.sum()
    pn = p / p.sum()
    assert abs(p.sum() - 1.0 - 5e-10) < 1e-15
    mean = pn @ l
    premium = worst_case(l, p, divergence, radius)[0] - mean
    premium_normalised = worst_case(l, pn, divergence, radius)[0] - mean
    assert premium == pytest.approx(premium_normalised, rel=1e-9, abs=1e-15)
    assert premium == pytest.approx(np.sqrt(2.0 * radius * (pn @ (l - mean) ** 2)), rel=5e-2)


def test_kl_penalized_is_tau_log_of_the_normalised_expectation():
    """Defect 3: kl_penalized gave tau log sum p e^{l/tau} for unnormalised p; the documented value is
    tau log E_p e^{l/tau} with E_p over p / sum p, and q is its softmax."""
    l = np.array([0.0, 1.0, -2.0])
    p = np.array([0.2, 0.3, 0.5 + 8e-10])
    for tau in (1e-3, 0.3, 1.0, 50.0):
        value, q = kl_penalized(l, p, tau)
        pn = p / p.sum()
        truth = l.max() + tau * np.log(pn @ np.exp((l - l.max()) / tau))
        assert value == pytest.approx(truth, rel=1e-14, abs=1e-15)
        tilt = pn * np.exp((l - l.max()) / tau)
        assert np.allclose(q, tilt / tilt.sum(), rtol=1e-13, atol=0)
        # the same law's radius: KL(q || p / sum p)
        kl = float(np.sum(np.where(q > 0, q * np.log(np.where(q > 0, q, 1.0) / pn), 0.0)))
        assert kl_radius_of_tau(l, p, tau) == pytest.approx(kl, rel=1e-9, abs=1e-15)


# --- defect 2: scale equivariance over all finite magnitudes, zero-probability atoms ------------------

E1 = np.r_[1.0, np.zeros(49)]
UNIFORM50 = np.full(50, 1.0 / 50)


def _assert_scaled(divergence, c, radius=0.5):
    value, q = worst_case(c * E1, UNIFORM50, divergence, radius)
    base, q_base = worst_case(E1, UNIFORM50, divergence, radius)
    assert np.isfinite(value) and value == pytest.approx(c * base, rel=1e-13)
    assert q.sum() == pytest.approx(1.0, abs=1e-14) and np.allclose(q, q_base, rtol=1e-12, atol=1e-300)


def test_kl_scale_equivariance_at_1e110():
    """KL at c = 1e110 returned inf with sum q = 0 (the 8th moments overflowed)."""
    _assert_scaled("kl", 1e110)


def test_chi2_scale_equivariance_at_1e160():
    """chi^2 at c = 1e160 returned the plain mean (the variance overflowed)."""
    _assert_scaled("chi2", 1e160)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_scale_equivariance_at_1e_minus_15(divergence):
    """KL at c = 1e-15 returned the plain mean (an absolute variance floor took it for constant)."""
    _assert_scaled(divergence, 1e-15)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
@pytest.mark.parametrize("c", [2.0 ** -1070, 1e-300, 1e-200, 1e200, 1e300, 1.7e308])
def test_scale_equivariance_across_the_float_range(divergence, c):
    """From subnormal to the largest floats (c E1 is exact for all these c)."""
    _assert_scaled(divergence, c)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_zero_probability_atom_at_1e200_is_ignored(divergence):
    """l = [1e200, randn(49)], p = [0, 1/49, ...], KL radius 0.5 returned NaN: the atom has no mass, so
    the value is that of the other 49 atoms and q puts nothing on it."""
    rng = np.random.default_rng(0)
    rest = rng.standard_normal(49)
    l = np.r_[1e200, rest]
    p = np.r_[0.0, np.full(49, 1.0 / 49)]
    value, q = worst_case(l, p, divergence, 0.5)
    value_rest, q_rest = worst_case(rest, np.full(49, 1.0 / 49), divergence, 0.5)
    assert value == pytest.approx(value_rest, rel=1e-13) and q[0] == 0.0
    assert np.allclose(q[1:], q_rest, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_losses_plus_minus_1e160(divergence):
    """l = [-1e160, 1e160, 0, ...] raised ZeroDivisionError (KL) and returned NaN (chi^2)."""
    unit = np.r_[-1.0, 1.0, np.zeros(48)]
    value, q = worst_case(1e160 * unit, UNIFORM50, divergence, 0.5)
    assert value == pytest.approx(1e160 * worst_case(unit, UNIFORM50, divergence, 0.5)[0], rel=1e-13)
    assert q.sum() == pytest.approx(1.0, abs=1e-14)


@pytest.mark.parametrize("divergence", ["kl", "chi2"])
def test_extreme_losses_of_both_signs_and_tiny_radius(divergence):
    """Losses at the ends of the float range (their differences overflow) and radii down to the
    smallest subnormal: finite, between the mean and the max, the first-order premium."""
    l = np.array([-1.7e308, 1.7e308, 0.0, 1e308])
    p = np.full(4, 0.25)
    value, q = worst_case(l, p, divergence, 0.5)
    assert np.isfinite(value) and q.sum() == pytest.approx(1.0, abs=1e-14)
    assert value == pytest.approx(1.7e308 * worst_case(l / 1.7e308, p, divergence, 0.5)[0], rel=1e-13)
    for radius in (5e-324, 1e-300, 1e-40):
        unit = np.array([0.0, 1.0, 3.0])
        v = worst_case(unit, np.full(3, 1 / 3), divergence, radius)[0]
        mean, var = 4 / 3, np.var(unit)
        assert v == pytest.approx(mean + np.sqrt(2 * radius * var), rel=1e-15, abs=4e-16)


def test_tau_and_zeta_scale_with_the_losses():
    """The dual variables are returned in the losses' units on the standardised path as well."""
    l = np.random.default_rng(1).standard_normal(30)
    p = np.full(30, 1 / 30)
    for c in (1e-200, 1e200):
        assert kl_worst_case(c * l, p, 0.2).tau == pytest.approx(c * kl_worst_case(l, p, 0.2).tau, rel=1e-12)
        assert chi2_worst_case(c * l, p, 0.2).zeta == pytest.approx(c * chi2_worst_case(l, p, 0.2).zeta, rel=1e-12)


# --- defects 4-6: the exact W2 dual of the logistic margin loss ---------------------------------------

@pytest.mark.parametrize("margin", [-38.0, -50.0])
@pytest.mark.parametrize("second", [(0.0, 1.0, 1.0), (0.0, 0.5, 1.0), (2.0, 0.5, 1.0), (5.5, 1.0, 0.5), (-5.0, 0.0, 10.0)])
def test_w2_strongly_misranked_atom(margin, second):
    """An atom at margin -38 or -50 with label 1 (sigma(m + lo) below one ulp of y) next to an ordinary
    atom, radius 0.5: the bracket choice used the rounding noise of sigma(m + t) - y - 2 mu t at the ends
    (e.g. 19.5957 for the truth 19.7489 of [-38, 0], labels [1, 1], slope norm 1); the ends' signs are
    now analytic.  Truth: the independent brute-force dual (agreement to ~1e-15)."""
    m2, y2, s = second
    res = w2_margin_worst_case([margin, m2], s, [0.5, 0.5], 0.5, targets=[1.0, y2])
    truth = brute_force_w2_logistic_dual([margin, m2], [1.0, y2], [0.5, 0.5], s, 0.5)
    assert res.value == pytest.approx(truth, rel=1e-12)


def test_w2_residual_has_the_analytic_end_signs():
    """r(lo) = sigma(m + lo) >= 0 and r(hi) = sigma(m + hi) - 1 <= 0 exactly, at any margin and mu."""
    for m in (-800.0, -50.0, -38.0, 0.0, 38.0, 50.0, 800.0):
        for y in (0.0, 0.3, 0.5, 1.0):
            for mu in (1e-17, 0.01, 0.125, 3.0):
                lo, hi = -y / (2 * mu), (1 - y) / (2 * mu)
                assert _logistic_residual(m, mu, lo, hi, lo) >= 0.0
                assert _logistic_residual(m, mu, lo, hi, hi) <= 0.0


def test_w2_large_radius_tiny_mu_no_zero_division():
    """One atom, m = 0, y = 1, slope norm 1, radius 30 raised ZeroDivisionError (mu ~ 1e-17 made
    sqrt(1 - 8 mu) == 1); the value is 30 + softplus(-30) (shift -30) and the inner problem is solved
    at any mu > 0."""
    res = w2_margin_worst_case([0.0], 1.0, [1.0], 30.0, targets=[1.0])
    assert res.value == pytest.approx(30.0 + np.log1p(np.exp(-30.0)), rel=1e-15)
    assert res.shift[0] == pytest.approx(-30.0, rel=1e-12)
    for mu in (1e-300, 1e-17, 1e-9):
        t = _logistic_inner(0.0, 1.0, mu, 0.0)
        assert np.isfinite(t) and t == pytest.approx(-1.0 / (2 * mu), rel=1e-12)
    for radius in (1e3, 1e8, 1e150):
        assert w2_margin_worst_case([0.0], 1.0, [1.0], radius, targets=[1.0]).value == pytest.approx(radius, rel=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_w2_soft_labels_at_slope_norm_times_radius_30(seed):
    """Soft labels at s * radius = 30 (0.3% low before): against the brute-force dual."""
    rng = np.random.default_rng(seed)
    m = rng.standard_normal(3) * 3.0
    y = rng.uniform(size=3)
    p = rng.dirichlet(np.ones(3))
    s = [1.0, 3.0, 10.0, 30.0][seed]
    res = w2_margin_worst_case(m, s, p, 30.0 / s, targets=y)
    assert res.value == pytest.approx(brute_force_w2_logistic_dual(m, y, p, s, 30.0 / s), rel=1e-12)


def test_w2_zero_gradient_atoms_still_move():
    """Defect 6: every l' = 0 returned the nominal value, but the logistic loss is strictly convex:
    margin 0, label 1/2, radius 1 gives log(2 cosh(1/2)) = 0.81326 (shift +-1)."""
    res = w2_margin_worst_case([0.0], 1.0, [1.0], 1.0, targets=[0.5])
    assert res.value == pytest.approx(np.log(2.0 * np.cosh(0.5)), rel=1e-14)
    assert abs(res.shift[0]) == pytest.approx(1.0, rel=1e-10)
    two = w2_margin_worst_case([0.0, np.log(3.0)], 2.0, [0.5, 0.5], 0.25, targets=[0.5, 0.75])
    assert two.value == pytest.approx(brute_force_w2_logistic_dual([0.0, np.log(3.0)], [0.5, 0.75], [0.5, 0.5], 2.0, 0.25),
                                      rel=1e-12)


def test_w2_probs_are_normalised():
    """The W2 duals use p / sum p as well."""
    m, y = np.array([-1.0, 0.5, 2.0]), np.array([1.0, 0.0, 0.7])
    p = np.array([0.2, 0.3, 0.5 + 9e-10])
    a = w2_margin_worst_case(m, 1.5, p, 0.4, targets=y).value
    b = w2_margin_worst_case(m, 1.5, p / p.sum(), 0.4, targets=y).value
    assert a == pytest.approx(b, rel=1e-15)


def test_w2_targets_are_required():
    with pytest.raises(ValueError, match="targets is required"):
        w2_margin_worst_case([0.0], 1.0, [1.0], 0.1)


def test_residual_and_sigmoid_from_one_exponential():
    """``logistic_residual_and_sigmoid`` returns _logistic_residual and simlab.special.sigmoid to the bit
    (the W_2 inner root solve takes both from it), on both sides of m + t = 0 and at it."""
    from simlab.dro.wasserstein import logistic_residual_and_sigmoid
    from simlab.special import sigmoid

    rng = np.random.default_rng(3)
    for _ in range(4000):
        m, mu, y = 4.0 * rng.standard_normal(), float(np.exp(2.0 * rng.standard_normal())), rng.random()
        lo, hi = -y / (2.0 * mu), (1.0 - y) / (2.0 * mu)
        for t in (rng.uniform(lo, hi), -m, lo, hi):
            r, s = logistic_residual_and_sigmoid(m, mu, lo, hi, t)
            assert r == _logistic_residual(m, mu, lo, hi, t) and s == sigmoid(m + t), (m, mu, y, t)
