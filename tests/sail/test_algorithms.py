"""Algorithms A/B/C of spec §5.5 and the deterministic prox-linear method."""
from __future__ import annotations

import numpy as np
import pytest

from simlab.objectives.sail import weak_convexity_estimate
from simlab.solvers.prox import RobustSailProx
from simlab.solvers.sail_algorithms import (deterministic_prox_linear, random_iterate_indices,
                                            run_algorithm)
from tests.sail.instances import problem, random_instance

RADIUS = 3.0


def test_a_equals_c_without_kinks():
    """With rho = 0 the prox-linear step over the ball is Proj(theta - alpha G): A and C coincide draw by draw."""
    args = problem(random_instance(0))
    rec = np.arange(0, 201, 20)
    runs = [run_algorithm(alg, np.zeros(3), *args, 0.0, RADIUS, 200, 0.5, np.random.default_rng(7), rec)
            for alg in "AC"]
    np.testing.assert_allclose(runs[0].iterates, runs[1].iterates, atol=1e-12)


@pytest.mark.parametrize("alg", ["A", "B", "C"])
def test_runs_stay_in_ball_and_are_reproducible(alg):
    args = problem(random_instance(1))
    idx, inv = random_iterate_indices(1000, 32, np.random.default_rng(3))
    assert idx.size <= 32 and np.all(np.diff(idx) > 0) and idx[inv].size == 32
    go = lambda: run_algorithm(alg, args[2].copy(), *args, 0.1, RADIUS, 1000, 2.0 if alg != "B" else 0.1,
                               np.random.default_rng(11), idx)
    r1, r2 = go(), go()
    np.testing.assert_array_equal(r1.iterates, r2.iterates)
    assert np.all(np.linalg.norm(r1.iterates - args[2], axis=1) <= RADIUS + 1e-12)
    if alg == "A":
        assert r1.inner_iterations > 0


def test_stochastic_a_reduces_envelope_gradient():
    inst = random_instance(2)
    args = problem(inst)
    pr = RobustSailProx(*args, 0.1, RADIUS, 0.1)
    start = pr.envelope_grad_norms2(args[2][None])[0]
    run = run_algorithm("A", args[2].copy(), *args, 0.1, RADIUS, 20_000, 2.0 / np.sqrt(20_000),
                        np.random.default_rng(5), np.arange(19_000, 20_000, 50))
    assert pr.envelope_grad_norms2(run.iterates).mean() < 0.1 * start


def test_b_step_with_alpha_gamma_approximates_prox():
    """One B step with alpha = gamma returns the averaged inner iterate, close to prox_gamma(theta)."""
    args = problem(random_instance(3))
    pr = RobustSailProx(*args, 0.1, RADIUS, 0.1)
    theta = np.array([0.5, -0.5, 1.0])
    run = run_algorithm("B", theta, *args, 0.1, RADIUS, 1, 0.1, np.random.default_rng(0), [1],
                        gamma=0.1, inner_steps=50_000, mu_in=5.0)
    assert np.linalg.norm(run.iterates[0] - pr.prox(theta).prox) < 0.02


def test_deterministic_prox_linear_converges_to_stationarity():
    """Exact-expectation Algorithm A with alpha = 1/(2 omega_hat) reaches machine-level stationarity."""
    args = problem(random_instance(4))
    pr = RobustSailProx(*args, 0.1, RADIUS, 0.1)
    omega_hat = weak_convexity_estimate(*args, 0.1, RADIUS, 400, np.random.default_rng(0))
    iterates = deterministic_prox_linear(args[2], *args, 0.1, RADIUS, 300, 1.0 / (2.0 * omega_hat))
    g2 = pr.envelope_grad_norms2(iterates[[0, 300]])
    assert g2[1] <= 1e-12 * max(g2[0], 1.0)


def test_bad_input_names_the_field():
    args = problem(random_instance(0))
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="algorithm"):
        run_algorithm("D", np.zeros(3), *args, 0.1, RADIUS, 10, 0.1, rng, [0])
    with pytest.raises(ValueError, match="step"):
        run_algorithm("A", np.zeros(3), *args, 0.1, RADIUS, 10, 0.0, rng, [0])
    with pytest.raises(ValueError, match="record_at"):
        run_algorithm("A", np.zeros(3), *args, 0.1, RADIUS, 10, 0.1, rng, [5, 2])
    with pytest.raises(ValueError, match="step"):
        run_algorithm("B", np.zeros(3), *args, 0.1, RADIUS, 10, 1.0, rng, [0], gamma=0.1)
