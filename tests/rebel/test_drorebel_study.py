"""The DRO-REBEL study's exact coverage prediction and its rate_d sample (scenarios/drorebel.py)."""
import sys

import numpy as np
import pytest

from simlab.experiments.scenario import load_scenario


@pytest.fixture(scope="module")
def study():
    scenario = load_scenario("drorebel")
    return sys.modules[scenario.cell.__module__]


@pytest.mark.parametrize("d", [2, 8])
def test_coverage_trace_inverse_matches_the_enumerated_design(study, d):
    """tr Sigma^-1 = 1/lambda + 2(d - 1) against tr of the inverse of the atoms' covariance (enumeration)."""
    instance = np.random.SeedSequence(5)
    for k in (0, 3, 5):
        row = study.coverage_cell(instance, "rebel", d, k)
        assert row["trace_sigma_inv"] == pytest.approx(study.coverage_trace_inverse(4.0**k, d), rel=1e-12)


def test_coverage_euclidean_slope_against_brute_force(study):
    """The predicted slope equals (i) an independent OLS of log(1/lambda + 14) on log(1/lambda) and (ii) the
    OLS slope of log C_E of the REBEL and KL estimators computed from scratch on the design (C_E = c tr Sigma^-1,
    c free of lambda); it tends to the asymptotic 1 as lambda -> 0."""
    x = np.array([64.0, 256.0, 1024.0])
    predicted = study.coverage_euclidean_slope(8, x)
    assert predicted == pytest.approx(np.polyfit(np.log(x), np.log(x + 14.0), 1)[0], abs=1e-14)
    assert predicted == pytest.approx(0.9335471273739083, abs=1e-14)
    assert study.COVERAGE_SLOPE == predicted
    instance = np.random.SeedSequence(11)
    for div in ("rebel", "kl"):
        c_e = np.array([study.coverage_cell(instance, div, 8, k)["C_E"] for k in (3, 4, 5)])
        assert np.polyfit(np.log(x), np.log(c_e), 1)[0] == pytest.approx(predicted, abs=1e-10)
        assert np.ptp(c_e / (x + 14.0)) <= 1e-10 * c_e[0] / 78.0
    assert study.coverage_euclidean_slope(8, 4.0 ** np.arange(3, 6) * 4.0**10) == pytest.approx(1.0, abs=1e-5)


def test_rate_d_sample_is_one_multinomial(study):
    """A rate_d cell's sample is the single draw Multinomial(n, p0) of its sample generator; rate_n and
    tradeoff keep their nested ladders from 2^9 and n0."""
    scenario = study.SCENARIO
    params = dict(experiment="rate_d", env="E4", div="kl", d=4, n=2**12, env_draw=0)
    seeds = scenario.seeds_for(params, 3, 7)
    assert study.ladder_start(params) == 2**12
    p0 = study._instance(seeds.instance, "E4", 4)[2].p0
    study._LADDERS.clear()
    got = study._prefix_counts(seeds.instance, "E4", 4, seeds.sample, 2**12, study.ladder_start(params))
    np.testing.assert_array_equal(got, np.random.default_rng(seeds.sample).multinomial(2**12, p0 / p0.sum()))
    assert study.ladder_start(dict(experiment="rate_n", n=2**16)) == 2**9
    assert study.ladder_start(dict(experiment="rate_n", n=2**8)) == 2**8
    assert study.ladder_start(dict(experiment="tradeoff", n=2**24, n0=2**20)) == 2**20
