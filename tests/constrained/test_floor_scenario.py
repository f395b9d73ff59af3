"""The stratified ordering statistic of constrained_floor (an equal-weight mean over eta of per-eta means)."""
import sys

import numpy as np

from simlab.experiments.rates import mean_with_ci
from simlab.experiments.scenario import load_scenario


def _floor_module():
    load_scenario("constrained_floor")
    return sys.modules["simlab_scenarios.constrained_floor"]


def test_stratified_mean_equals_the_pooled_mean_for_balanced_strata():
    rng = np.random.default_rng(3)
    v = rng.standard_normal(60) + 0.5
    strata = np.repeat([1.0, 0.5, 0.25], 20)
    mean, ci, fails = _floor_module().stratified_mean_with_ci(v, strata)
    pooled, pooled_ci, _ = mean_with_ci(v)
    assert fails == 0
    assert abs(mean - pooled) < 1e-14
    # the stratified bootstrap is narrower than (or as wide as) the pooled one up to resampling noise
    assert ci[0] < mean < ci[1] and (ci[1] - ci[0]) <= 1.1 * (pooled_ci[1] - pooled_ci[0])


def test_stratified_mean_weights_strata_equally_and_counts_failures():
    v = np.array([1.0, 1.0, 1.0, 1.0, 3.0, np.nan])
    strata = np.array([0, 0, 0, 0, 1, 1])
    mean, ci, fails = _floor_module().stratified_mean_with_ci(v, strata)
    assert mean == 2.0 and fails == 1
    assert ci == (2.0, 2.0)
