"""The first-order mechanism of the preference-shift study (scenarios/shift.py): the worst mixture's value gradient,
the first-order direction of the chi^2 robust minimiser and the held-out statistic oriented by sign(s)."""
import sys

import numpy as np
import pandas as pd
import pytest

from simlab.experiments.scenario import load_scenario
from simlab.policy import expected_reward
from tests.taylor import assert_taylor


@pytest.fixture(scope="module")
def shift():
    load_scenario("shift")
    return sys.modules["simlab_scenarios.shift"]


def _instance(i=7):
    return np.random.SeedSequence(4242, spawn_key=(i,))


@pytest.mark.parametrize("regime,family,alpha0", [("misspecified", "rebel", 0.1), ("labelers", "dpo", 0.25)])
def test_worst_mixture_gradient_taylor(shift, regime, family, alpha0):
    world = shift._world(_instance(), regime, alpha0, family)
    theta = shift._population(_instance(), regime, alpha0, family)["theta"][(shift.NOMINAL[family], 0)]
    alpha_star, grad = shift.worst_mixture_gradient(world, theta)
    i = int(np.flatnonzero(shift.ALPHAS == alpha_star)[0])
    env = world.env

    def value(t):
        return expected_reward(t, env.phi, world.rewards[i], env.p_x)

    def gradient(t):
        a, g = shift.worst_mixture_gradient(world, t)
        assert a == alpha_star          # the worst mixture is an isolated end point: stable under the steps
        return g

    assert value(theta) == pytest.approx(shift.policy_summary(world, family, theta)["minJ"], abs=1e-14)
    assert_taylor(value, gradient, theta)


@pytest.mark.parametrize("regime,family,alpha0", [("misspecified", "rebel", 0.1), ("misspecified", "rebel", 0.5),
                                                  ("labelers", "dpo", 0.1)])
def test_first_order_direction_matches_the_exact_chi2_minimiser(shift, regime, family, alpha0):
    """(theta*_eps - theta*_0)/sqrt(2 eps) -> u with an O(sqrt eps) error (exact chi^2 solver, two radii)."""
    world = shift._world(_instance(), regime, alpha0, family)
    p0 = world.atoms.p0
    theta0 = shift.fit_method(world, family, shift.NOMINAL[family], 0.0, p0)
    u = shift.first_order_direction(world, family, theta0)
    method = shift.CHI2[family]
    errors = []
    for eps in (1e-6, 1e-8):
        theta = shift.fit_method(world, family, method, eps, p0, theta0=theta0)
        errors.append(np.linalg.norm((theta - theta0) / np.sqrt(2 * eps) - u) / np.linalg.norm(u))
    assert errors[0] < 0.05 and errors[1] < 0.1 * errors[0] + 1e-6, errors
    # and the effect on min_alpha J: (minJ(theta*_eps) - minJ(theta*_0))/sqrt(2 eps) -> s
    s = shift.first_order_effect(world, family, theta0)
    eps = 1e-8
    theta = shift.fit_method(world, family, method, eps, p0, theta0=theta0)
    d = (shift.policy_summary(world, family, theta)["minJ"] - shift.policy_summary(world, family, theta0)["minJ"])
    assert d / np.sqrt(2 * eps) == pytest.approx(s, rel=1e-2, abs=1e-6)


def test_held_out_advantage_orients_by_the_sign_of_s(shift):
    """sign(s) x effect: instances with s < 0 and a negative effect count as agreement (> 0)."""
    rng = np.random.default_rng(0)
    rows = []
    for draw, s in enumerate((0.3, -0.2, 0.1, -0.4)):
        for rep in range(6):
            row = {"env_draw": draw, "replicate": rep, "pop_first_order_effect": s, "nominal_minJ": 0.0}
            for m in shift.ROBUST["dpo"]:
                for k in shift.KS:
                    effect = np.sign(s) * 0.01 * 2.0 ** -k
                    row[f"radius_{m}_{k}"] = 0.1 * 4.0 ** -k
                    row[f"dminJ_{m}_{k}"] = effect + 1e-4 * rng.standard_normal()
                    row[f"pop_dminJ_{m}_{k}"] = effect
            rows.append(row)
    rows = pd.DataFrame(rows)
    oriented = shift.held_out_advantage(rows, "dpo", methods=("chi2dpo",), orient="pop_first_order_effect")
    plain = shift.held_out_advantage(rows, "dpo", methods=("chi2dpo",))
    assert oriented.measured == pytest.approx(0.01, abs=1e-4) and oriented.verdict == "pass"
    assert abs(plain.measured) < 1e-3 and oriented.extra["held-out choice"].startswith("chi2dpo k=0")
    assert oriented.extra["instances whose exact effect at the choice has the sign of s"] == "4/4"
    assert oriented.extra["instances with first-order effect s > 0"] == "2/4"
