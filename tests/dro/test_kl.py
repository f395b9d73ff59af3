"""KL duals (docs/theory/dro.md §2.1; identities 8, 9, 11, 22 of docs/theory/identities.md §8)."""
import numpy as np
import pytest

from simlab.dro import kl_divergence, kl_penalized, kl_radius_of_tau, kl_worst_case, worst_case
from tests.dro.brute_force import primal_worst_case


def _instance(seed, n=8, uniform=False):
    rng = np.random.default_rng(seed)
    l = rng.standard_normal(n) * rng.uniform(0.3, 3)
    p = np.full(n, 1.0 / n) if uniform else rng.dirichlet(np.ones(n))
    return l, p


@pytest.mark.parametrize("seed", range(5))
def test_penalized_value_is_sup_over_q(seed):
    l, p = _instance(seed)
    tau = [0.1, 0.5, 1.0, 3.0, 10.0][seed]
    value, q = kl_penalized(l, p, tau)
    assert value == pytest.approx(q @ l - tau * kl_divergence(q, p), abs=1e-12)
    rng = np.random.default_rng(100 + seed)
    for _ in range(200):
        r = rng.dirichlet(np.ones(l.size) * 0.5)
        assert r @ l - tau * kl_divergence(r, p) <= value + 1e-12


def test_penalized_stable_for_tiny_tau():
    l, p = _instance(0)
    value, q = kl_penalized(l, p, 1e-8)
    assert np.isfinite(value) and value == pytest.approx(l.max() + 1e-8 * np.log(p[np.argmax(l)]), abs=1e-12)
    assert q[np.argmax(l)] == pytest.approx(1.0)


def test_softmax_shift_invariance():
    l, p = _instance(1)
    for c in (-1e3, 0.0, 7.5, 1e3):
        assert np.max(np.abs(kl_penalized(l - c, p, 0.7)[1] - kl_penalized(l, p, 0.7)[1])) <= 1e-14


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [0.01, 0.1, 0.5])
def test_constrained_dual_equals_primal(seed, radius):
    l, p = _instance(seed, uniform=seed % 2 == 0)
    res = kl_worst_case(l, p, radius)
    primal = primal_worst_case(l, p, radius, "kl")
    assert res.value == pytest.approx(primal, abs=1e-7)
    # certificate: feasible, on the boundary, attains the value
    assert res.q.sum() == pytest.approx(1.0, abs=1e-14)
    assert kl_divergence(res.q, p) == pytest.approx(radius, rel=1e-9)
    assert res.q @ l == pytest.approx(res.value, abs=1e-12)
    assert kl_radius_of_tau(l, p, res.tau) == pytest.approx(radius, rel=1e-9)


def test_saturation():
    l, p = _instance(3)
    pmax = p[np.argmax(l)]
    for radius in (np.log(1 / pmax), np.log(1 / pmax) + 1.0):
        value, q = worst_case(l, p, "kl", radius)
        assert value == l.max() and q[np.argmax(l)] == 1.0
    just_below = kl_worst_case(l, p, 0.999 * np.log(1 / pmax))
    assert just_below.value < l.max() and just_below.value > l.max() - 0.1


def test_monotone_in_radius_and_small_radius_expansion():
    l, p = _instance(4, n=30)
    radii = np.geomspace(1e-8, 1.0, 40)
    vals = np.array([worst_case(l, p, "kl", r)[0] for r in radii])
    assert np.all(np.diff(vals) >= -1e-12)
    mean = p @ l
    var = p @ (l - mean) ** 2
    assert worst_case(l, p, "kl", 0.0)[0] == pytest.approx(mean, abs=1e-15)
    ratio = (vals - mean - np.sqrt(2 * radii * var)) / radii
    assert np.all(np.abs(ratio[radii < 1e-2]) < 10 * (1 + np.max(np.abs(l)))**2)


def test_zero_weight_atoms_carry_no_mass():
    l, p = _instance(5)
    p2 = np.append(p, 0.0)
    l2 = np.append(l, 100.0)
    a = kl_worst_case(l, p, 0.2)
    b = kl_worst_case(l2, p2, 0.2)
    assert b.value == pytest.approx(a.value, abs=1e-12) and b.q[-1] == 0.0


@pytest.mark.parametrize("bad,field", [
    (dict(radius=-0.1), "radius"),
    (dict(probs=np.full(8, 0.13)), "probs"),
    (dict(losses=np.r_[np.nan, np.zeros(7)]), "losses"),
    (dict(probs=np.full(7, 1 / 7)), "probs"),
    (dict(tau=0.0), "tau"),
])
def test_bad_input_names_the_argument(bad, field):
    args = dict(losses=np.zeros(8), probs=np.full(8, 1 / 8), radius=0.1, tau=1.0)
    args.update(bad)
    with pytest.raises(ValueError, match=field):
        if "tau" in bad:
            kl_penalized(args["losses"], args["probs"], args["tau"])
        else:
            worst_case(args["losses"], args["probs"], "kl", args["radius"])
    if "tau" not in bad:
        with pytest.raises(ValueError, match=field):
            worst_case(args["losses"], args["probs"], "chi2", args["radius"])


def test_numba_entry_point_matches_public_solve():
    """kl_worst_case_kernel is callable from other kernels and is the public solve."""
    from numba import njit

    from simlab.dro import kl_worst_case_kernel

    @njit
    def inside(l, p, radius):
        q = np.empty_like(l)
        value, tau, _ = kl_worst_case_kernel(l, p, radius, q)
        return value, tau, q

    l, p = _instance(2, n=50)
    for radius in (0.0, 0.05, 10.0):
        value, tau, q = inside(l, p, radius)
        ref = kl_worst_case(l, p, radius)
        assert value == ref.value and tau == ref.tau and np.array_equal(q, ref.q)


@pytest.mark.parametrize("uniform", [False, True])
def test_penalized_kernel_is_the_public_penalized_solve(uniform):
    """kl_penalized_kernel (whole-loop solvers) is kl_penalized to round-off on well-scaled losses with
    tau below the series regime (a few ulp: one primitive, compiled in two contexts), also for an
    accepted unnormalised law; its weights do not depend on where the arrays lie in memory."""
    from numba import njit

    from simlab.dro import kl_penalized_kernel

    @njit
    def inside(l, p, tau):
        q = np.empty_like(l)
        return kl_penalized_kernel(l, p, tau, q), q

    for seed, n in ((3, 7), (4, 64), (5, 1000)):
        l, p = _instance(seed, n=n, uniform=uniform)
        for tau in (0.05, 0.7, 4.0):
            value, q = inside(l, p, tau)
            ref_value, ref_q = kl_penalized(l, p, tau)
            assert np.max(np.abs(q - ref_q) / ref_q) <= 2e-15  # _instance: no weight underflows
            assert value == pytest.approx(ref_value, rel=1e-15, abs=1e-15)
            # an accepted unnormalised law is the normalised one: the value carries - tau log sum p
            p_off = p * (1.0 + 5e-10)
            assert inside(l, p_off, tau)[0] == pytest.approx(value, abs=1e-15 * (1.0 + abs(value)))
            rng = np.random.default_rng(seed)
            for _ in range(8):  # other addresses: arrays placed after padding of random length
                pad = np.empty(int(rng.integers(1, 40)))
                l2, p2 = l.copy(), p.copy()
                assert np.array_equal(inside(l2, p2, tau)[1], q)
                del pad


def test_vectorised_exp_matches_libm():
    """exp_nonpositive (the KL kernels' exp) is within 2 ulp of libm on [-708, 0], 0 below."""
    from numba import njit

    from simlab.dro.kl import exp_nonpositive

    @njit
    def apply(x, out):
        for j in range(x.size):
            out[j] = exp_nonpositive(x[j])

    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-708.0, 0.0, 100_001), -rng.random(10_000) * 40, [0.0, -0.0, -1e-300]])
    out = np.empty_like(x)
    apply(x, out)
    ref = np.exp(x)
    assert np.max(np.abs(out - ref) / ref) <= 2 * np.finfo(float).eps
    tail = np.array([-708.5, -745.0, -1e6, -np.inf, 3.0])
    out = np.empty_like(tail)
    apply(tail, out)
    assert np.array_equal(out, [0.0, 0.0, 0.0, 0.0, 1.0])  # e^x < 3.3e-308 flushed; x > 0 clamped


@pytest.mark.parametrize("n, seed, radius", [(200, 2, 3.0), (1000, 0, 2.0)])
def test_bimodal_losses_converge(n, seed, radius):
    """Two far-apart loss clusters: a Halley step from the start once jumped into the saturated
    regime (alpha ~ 1e4, K flat) and crawled to max_iter with a wrong value (12.44 vs 11.96 for the
    first case).  The certificate and an independent brentq solve of K(alpha) = radius must agree."""
    from scipy.optimize import brentq

    rng = np.random.default_rng(seed)
    l = np.r_[rng.standard_normal(n // 2), 10.0 + rng.standard_normal(n // 2)]
    p = np.full(n, 1.0 / n)
    res = kl_worst_case(l, p, radius)
    assert res.iterations <= 20
    c = l - l.max()

    def excess(log_alpha):
        a = np.exp(log_alpha)
        w = p * np.exp(a * c)
        return a * (w @ c) / w.sum() - np.log(w.sum()) - radius

    alpha = np.exp(brentq(excess, -20.0, 20.0, xtol=1e-15))
    assert 1.0 / res.tau == pytest.approx(alpha, rel=1e-9)
    assert kl_divergence(res.q, p) == pytest.approx(radius, rel=1e-9)
    assert res.q @ l == pytest.approx(res.value, abs=1e-12)


def test_support_statistics_on_integer_keys():
    """The input check's vectorised max (order-preserving int64 keys) equals the max over p > 0 for
    negative, mixed and signed-zero losses with the global argmax outside the support, and the moments
    passes of both duals (P_max, variance, the support's min on keys) match NumPy."""
    from simlab.dro._inputs import check_losses_probs
    from simlab.dro.chi2 import _chi2_support_moments_kernel
    from simlab.dro.kl import _kl_support_moments_kernel

    rng = np.random.default_rng(3)
    for l in (-1.0 - rng.random(1001), rng.standard_normal(1001), np.r_[-0.0, -1.0, -2.5]):
        p = rng.dirichlet(np.ones(l.size))
        p[np.argmax(l)] = 0.0
        p /= p.sum()
        _, _, lmax, mean = check_losses_probs(l, p)
        assert lmax == l[p > 0].max()
        assert mean == pytest.approx(p @ l, rel=1e-13, abs=1e-15)
        var = p @ (l - p @ l) ** 2
        pmax_kl, mass_kl, lmin, far, mu = _kl_support_moments_kernel(l, p, lmax, mean)
        assert far == 0
        mass, pmax_chi, var_chi, count, lmin_chi, offset = _chi2_support_moments_kernel(l, p, lmax, mean)
        for pmax in (pmax_kl, pmax_chi):
            assert pmax == pytest.approx(p[l == lmax].sum(), rel=1e-15)
        assert mu[2] - mu[1] ** 2 == pytest.approx(var, rel=1e-12) and var_chi == pytest.approx(var, rel=1e-12)
        assert abs(offset) <= 1e-15 * (1 + abs(mean)) and abs(mu[1]) <= 1e-15 * (1 + abs(mean))
        assert lmin == lmin_chi == l[p > 0].min()
        assert mass == pytest.approx(1.0, abs=1e-14) and mass_kl == pytest.approx(1.0, abs=1e-14)
        assert count == np.count_nonzero(p)


def test_polynomial_tilt_move_matches_exponential_pass():
    """_tilt_update_kernel moves the tilted weights of alpha to alpha + delta by a Taylor factor; at
    the largest move each degree is allowed (|delta| |l - lmax| = TILT_UPDATE_MAX for degree 7,
    TILT_UPDATE_SMALL for degree 4) every weight matches a fresh exponential pass at alpha + delta to
    the exp's own round-off, and so does the summary up to its round-off."""
    from simlab.dro.kl import (TAYLOR_4, TAYLOR_7, TILT_UPDATE_MAX, TILT_UPDATE_SMALL, _tilt_moments_kernel,
                               _tilt_update_kernel)

    rng = np.random.default_rng(7)
    l = rng.standard_normal(5000) * 3.0
    p = rng.dirichlet(np.ones(l.size))
    lmax, spread = l.max(), l.max() - l.min()
    for taylor, bound in ((TAYLOR_7, TILT_UPDATE_MAX), (TAYLOR_4, TILT_UPDATE_SMALL)):
        for alpha, sign in ((0.3, 1.0), (0.3, -1.0), (2.0, 1.0)):
            delta = sign * bound / spread
            w = np.empty_like(l)
            _tilt_moments_kernel(l, p, lmax, alpha, w)
            moved = _tilt_update_kernel(l, lmax, delta, taylor, w)
            fresh_w = np.empty_like(l)
            fresh = _tilt_moments_kernel(l, p, lmax, alpha + delta, fresh_w)
            # an exp of a rounded argument x carries |x| eps of relative error itself
            x = np.abs((alpha + delta) * (l - lmax))
            assert np.all(np.abs(w - fresh_w) <= (8.0 + 2.0 * x) * np.finfo(float).eps * fresh_w)
            # (Z, mean, variance) to round-off; the third cumulant is a difference of O(mean^3) terms
            assert np.allclose(moved[:3], fresh[:3], rtol=1e-13, atol=0.0)
            assert moved[3] == pytest.approx(fresh[3], rel=1e-10)


@pytest.mark.parametrize("radius", [1e-3, 0.1, 1.0])
def test_worst_case_weights_are_the_tilt_of_the_returned_tau(radius):
    """After polynomial moves the certificate is still, atom by atom, p e^{l/tau}/Z at the returned
    tau (computed here with NumPy's exp)."""
    rng = np.random.default_rng(11)
    l = np.log1p(np.exp(2.0 * rng.standard_normal(20_000)))
    p = rng.dirichlet(np.ones(l.size))
    res = kl_worst_case(l, p, radius)
    direct = p * np.exp((l - l.max()) / res.tau)
    direct /= direct.sum()
    assert np.max(np.abs(res.q - direct) / direct) <= 1e-12
    assert kl_divergence(res.q, p) == pytest.approx(radius, rel=1e-10)


@pytest.mark.parametrize("shape", ["gaussian", "lognormal", "bimodal", "ties", "tiny_spread"])
@pytest.mark.parametrize("radius", [1e-4, 0.01, 0.3, 1.0, 3.0])
def test_dual_root_against_brentq_across_shapes(shape, radius):
    """Whatever path the solve takes (exponential passes, degree-4/7 polynomial moves, a folded last
    step), tau* is the root of K(alpha) = radius found independently by brentq, and q is the tilt of
    the returned tau atom by atom."""
    from scipy.optimize import brentq

    rng = np.random.default_rng(5)
    n = 3000
    l = {"gaussian": rng.standard_normal(n),
         "lognormal": rng.lognormal(0.0, 1.5, n),
         "bimodal": np.r_[rng.standard_normal(n // 2), 6.0 + 0.5 * rng.standard_normal(n - n // 2)],
         "ties": rng.integers(0, 5, n).astype(float),
         "tiny_spread": 1e3 + 1e-6 * rng.standard_normal(n)}[shape]
    p = rng.dirichlet(np.ones(n))
    res = kl_worst_case(l, p, radius)
    c = l - l.max()
    if radius >= -np.log(p[c == 0].sum()):
        assert res.tau == 0.0 and res.value == l.max()
        return

    def excess(log_alpha):
        a = np.exp(log_alpha)
        w = p * np.exp(a * c)
        return a * (w @ c) / w.sum() - np.log(w.sum()) - radius

    alpha = np.exp(brentq(excess, -30.0, 30.0, xtol=1e-14, rtol=1e-15))
    assert 1.0 / res.tau == pytest.approx(alpha, rel=1e-8)
    direct = p * np.exp(c / res.tau)
    direct /= direct.sum()
    assert np.max(np.abs(res.q - direct) / direct) <= 1e-12
    assert res.q @ l == pytest.approx(res.value, rel=1e-13, abs=1e-13)


@pytest.mark.parametrize("radius", [1e-10, 1e-8, 1e-7])
@pytest.mark.parametrize("shape", ["lognormal", "bernoulli"])
def test_small_radius_series_root_against_brentq(shape, radius):
    """Below alpha (max l - min l) = 2^-8 the solve is the root of K's cumulant series (no exponential
    pass): tau* matches brentq on K computed in extended precision, and the value is the dual there."""
    from scipy.optimize import brentq

    rng = np.random.default_rng(2)
    l = rng.lognormal(0.0, 1.0, 200) if shape == "lognormal" else (rng.uniform(size=200) < 0.05).astype(float)
    p = rng.dirichlet(np.ones(200))
    res = kl_worst_case(l, p, radius)
    assert (l.max() - l.min()) / res.tau <= 2.0 ** -8 and res.iterations == 1  # the series path
    L = np.longdouble
    c = (l - l.max()).astype(L)
    pl = p.astype(L) / p.astype(L).sum()  # the law p / sum p, in extended precision

    def excess(alpha):
        w = pl * np.exp(L(alpha) * c)
        return float(L(alpha) * (w @ c) / w.sum() - np.log(w.sum()) - L(radius))

    alpha = brentq(excess, 1e-9, 10.0, xtol=1e-20, rtol=1e-15)
    assert 1.0 / res.tau == pytest.approx(alpha, rel=1e-9)
    w = pl * np.exp(L(alpha) * c)
    truth = float((w @ l.astype(L)) / w.sum())  # <q*, l>, which has no 1/alpha amplification
    assert res.value == pytest.approx(truth, rel=1e-14)  # the p-mean itself is a sum of 200 rounded terms
