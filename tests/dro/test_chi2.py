"""chi^2 duals (docs/theory/dro.md §2.2; identities 12, 13, 14, 22 of docs/theory/identities.md §8)."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from simlab.dro import chi2_divergence, chi2_worst_case, worst_case
from simlab.dro.chi2 import CHI2_METHODS, _chi2_bisection_kernel
from tests.dro.brute_force import primal_worst_case


def _instance(seed, n=8, uniform=False):
    rng = np.random.default_rng(seed)
    l = rng.standard_normal(n) * rng.uniform(0.3, 3)
    p = np.full(n, 1.0 / n) if uniform else rng.dirichlet(np.ones(n))
    return l, p


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("radius", [0.01, 0.1, 0.5, 2.0, 10.0])
def test_dual_equals_primal_with_certificate(seed, radius):
    l, p = _instance(seed, uniform=seed == 0)
    res = chi2_worst_case(l, p, radius)
    assert res.value == pytest.approx(primal_worst_case(l, p, radius, "chi2"), abs=1e-8)
    assert res.q.sum() == pytest.approx(1.0, abs=1e-14) and np.all(res.q >= 0)
    assert res.q @ l == pytest.approx(res.value, abs=1e-12)
    if res.value < l.max():  # not saturated: the constraint is active
        assert chi2_divergence(res.q, p) == pytest.approx(radius, rel=1e-9)
    else:
        assert chi2_divergence(res.q, p) <= radius + 1e-12


@pytest.mark.parametrize("seed", range(5))
def test_unclipped_regime_closed_form(seed):
    rng = np.random.default_rng(seed)
    l = 5 + rng.uniform(-1, 1, 20)
    p = rng.dirichlet(np.ones(20))
    mean, var = p @ l, p @ (l - p @ l) ** 2
    radius = 0.01  # sqrt(Var/(2 eps)) >> spread: every atom stays active
    value, q = worst_case(l, p, "chi2", radius)
    assert value == pytest.approx(mean + np.sqrt(2 * radius * var), abs=1e-12)
    assert np.max(np.abs(q - p * (1 + (l - mean) * np.sqrt(2 * radius / var)))) <= 1e-12


def test_saturation():
    l, p = _instance(2, n=10, uniform=True)
    res = chi2_worst_case(l, p, (10 - 1) / 2)  # c^2 P_max = 1 exactly
    assert res.value == l.max() and res.q[np.argmax(l)] == 1.0
    assert chi2_worst_case(l, p, 4.4).value < l.max()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("radius", [1e-4, 0.05, 1.0])
def test_solvers_agree(seed, radius):
    l, p = _instance(seed, n=40, uniform=seed % 2 == 1)
    vals = [chi2_worst_case(l, p, radius, method=m) for m in CHI2_METHODS]
    c = np.sqrt(1 + 2 * radius)
    f = lambda z: z + c * np.sqrt(p @ np.maximum(l - z, 0) ** 2)
    zeta0 = p @ l - np.sqrt(p @ (l - p @ l) ** 2 / (2 * radius))
    scalar = minimize_scalar(f, bounds=(min(l.min(), zeta0) - 1, l.max()), method="bounded",
                             options={"xatol": 1e-12})
    for r in vals:
        assert r.value == pytest.approx(vals[0].value, abs=1e-10)
        assert r.zeta == pytest.approx(vals[0].zeta, abs=1e-8 * (1 + abs(vals[0].zeta)))
    assert scalar.fun == pytest.approx(vals[0].value, abs=1e-10)


def test_naive_bracket_fails_for_small_radius():
    """Regression (docs/theory/dro.md §2.2): the fixed bracket [l_min - 100, l_max] silently misses zeta* at eps = 1e-4."""
    l, p = _instance(7, n=50)
    l = 3.0 * l / np.std(l)
    radius = 1e-4
    c = np.sqrt(1 + 2 * radius)
    exact = chi2_worst_case(l, p, radius)
    zeta_naive, _ = _chi2_bisection_kernel(l, p, c, l.min() - 100, l.max(), 200)
    naive_value = zeta_naive + c * np.sqrt(p @ np.maximum(l - zeta_naive, 0) ** 2)
    assert exact.zeta < l.min() - 100
    assert naive_value - exact.value > 1e-6


def test_monotone_in_radius_and_limit():
    l, p = _instance(4, n=30)
    radii = np.geomspace(1e-8, 20.0, 50)
    vals = np.array([worst_case(l, p, "chi2", r)[0] for r in radii])
    assert np.all(np.diff(vals) >= -1e-12)
    mean = p @ l
    var = p @ (l - mean) ** 2
    assert worst_case(l, p, "chi2", 0.0)[0] == pytest.approx(mean, abs=1e-15)
    ratio = (vals - mean - np.sqrt(2 * radii * var)) / radii
    assert np.all(np.abs(ratio[radii < 1e-2]) < 1e3)


def test_losses_constant_up_to_round_off():
    """All-equal losses with round-off noise (e.g. every DPO margin 0 at theta = theta_ref)."""
    rng = np.random.default_rng(0)
    l = np.log(2.0) + rng.choice([0.0, 1.1e-16, -1.1e-16], 500)
    p = rng.dirichlet(np.ones(500))
    for div in ("kl", "chi2"):
        for radius in (1e-3, 0.05, 0.5):
            value, q = worst_case(l, p, div, radius)
            assert value == pytest.approx(np.log(2.0), abs=1e-15) and np.all(np.isfinite(q))


def test_numba_entry_point_matches_public_solve():
    """chi2_worst_case_kernel is callable from other kernels and is the public solve."""
    from numba import njit

    from simlab.dro import chi2_worst_case_kernel

    @njit
    def inside(l, p, radius):
        q = np.empty_like(l)
        value, zeta, _ = chi2_worst_case_kernel(l, p, radius, q)
        return value, zeta, q

    l, p = _instance(2, n=50)
    for radius in (0.0, 0.05, 100.0):
        value, zeta, q = inside(l, p, radius)
        ref = chi2_worst_case(l, p, radius)
        assert value == ref.value and zeta == ref.zeta and np.array_equal(q, ref.q)
