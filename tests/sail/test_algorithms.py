"""Algorithms A/B/C of docs/theory/sail.md §5.5 and the deterministic prox-linear method."""
from __future__ import annotations

import numpy as np
import pytest

from simlab.objectives.sail import weak_convexity_estimate
from simlab.solvers.prox import RobustSailProx
from simlab.solvers.sail_algorithms import (deterministic_prox_linear, random_iterate_indices,
                                            run_algorithm, stratified_iterate_indices)
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


@pytest.mark.parametrize("T", [1, 2, 7, 1000, 2 ** 20])
def test_stratified_indices_are_unbiased_for_the_uniform_output_index(T):
    """weights @ values[inverse] has expectation (1/T) sum_t values_t: the weights sum to 1, every draw
    lies in its dyadic stratum with weight |stratum|/(T m), and a Monte Carlo mean matches."""
    rng = np.random.default_rng(T)
    idx, inv, w = stratified_iterate_indices(T, 4, rng)
    assert abs(w.sum() - 1.0) <= 1e-12 and np.all(np.diff(idx) > 0) and idx[-1] < T
    draws = idx[inv]
    lo = np.where(draws == 0, 0, 2 ** np.floor(np.log2(np.maximum(draws, 1))).astype(np.int64))
    hi = np.minimum(np.where(draws == 0, 1, 2 * lo), T)
    np.testing.assert_allclose(w, (hi - lo) / (4 * T))
    if T >= 1000:
        values = np.sin(np.arange(T) / 37.0) + 5.0 / (1.0 + np.arange(T))   # with an early transient
        est = [w2 @ values[i2[v2]] for i2, v2, w2 in (stratified_iterate_indices(T, 4, rng) for _ in range(400))]
        assert abs(np.mean(est) - values.mean()) <= 4 * np.std(est) / np.sqrt(400)


@pytest.mark.parametrize("T", [1, 7, 1000, 2 ** 20])
def test_proportional_stratified_indices_are_unbiased(T):
    """With a proportional budget every dyadic stratum j gets m_j = max(per_stratum, ceil(budget |S_j| / T))
    draws of weight |S_j|/(T m_j): the weights sum to 1, the counts match, and a Monte Carlo mean of the
    estimate matches the exact trajectory average (independent check by brute force over all t)."""
    rng = np.random.default_rng(T + 1)
    idx, inv, w = stratified_iterate_indices(T, 4, rng, proportional=256)
    assert abs(w.sum() - 1.0) <= 1e-12 and np.all(np.diff(idx) > 0) and idx[-1] < T
    draws = idx[inv]
    lo = np.where(draws == 0, 0, 2 ** np.floor(np.log2(np.maximum(draws, 1))).astype(np.int64))
    hi = np.minimum(np.where(draws == 0, 1, 2 * lo), T)
    m = np.maximum(4, np.ceil(256 * (hi - lo) / T)).astype(np.int64)
    np.testing.assert_allclose(w, (hi - lo) / (m * T))
    for start in np.unique(lo):   # each stratum holds exactly m_j draws
        assert np.sum(lo == start) == m[lo == start][0]
    if T >= 1000:
        values = np.sin(np.arange(T) / 37.0) + 5.0 / (1.0 + np.arange(T))
        est = [w2 @ values[i2[v2]] for i2, v2, w2 in
               (stratified_iterate_indices(T, 4, rng, proportional=256) for _ in range(400))]
        assert abs(np.mean(est) - values.mean()) <= 4 * np.std(est) / np.sqrt(400)
    with pytest.raises(ValueError, match="proportional"):
        stratified_iterate_indices(T, 4, rng, proportional=-1)


def test_proportional_allocation_without_budget_is_the_equal_allocation():
    """proportional = 0 draws exactly what the equal allocation draws (same stream, same weights)."""
    a = stratified_iterate_indices(5000, 8, np.random.default_rng(3))
    b = stratified_iterate_indices(5000, 8, np.random.default_rng(3), proportional=0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_b_model_inner_with_alpha_equal_gamma_is_algorithm_a():
    """B with the model-prox inner solve and alpha = gamma takes theta_{t+1} = z_t: Algorithm A with step gamma."""
    args = problem(random_instance(5))
    rec = np.arange(0, 301, 30)
    a = run_algorithm("A", args[2].copy(), *args, 0.1, RADIUS, 300, 0.1, np.random.default_rng(2), rec, batch=3)
    b = run_algorithm("B", args[2].copy(), *args, 0.1, RADIUS, 300, 0.1, np.random.default_rng(2), rec, batch=3,
                      gamma=0.1, inner="model")
    np.testing.assert_array_equal(a.iterates, b.iterates)
    assert a.inner_iterations == b.inner_iterations > 0


def test_b_model_inner_tolerance_drops_kinks_when_loose():
    """A gap tolerance above every subproblem's initial gap stops the dual at s = 0 (no inner iteration):
    the kinks are dropped; a tight tolerance solves them."""
    args = problem(random_instance(6))
    rec = np.array([0, 500])
    go = lambda tol: run_algorithm("B", args[2].copy(), *args, 0.1, RADIUS, 500, 0.05, np.random.default_rng(4),
                                   rec, batch=4, gap_tol=tol, gamma=0.1, inner="model")
    loose, tight = go(1e6), go(1e-12)
    assert loose.inner_iterations == 0 and tight.inner_iterations >= 500
    assert not np.allclose(loose.iterates[-1], tight.iterates[-1])
    with pytest.raises(ValueError, match="inner"):
        run_algorithm("B", args[2].copy(), *args, 0.1, RADIUS, 5, 0.05, np.random.default_rng(4), rec[:1],
                      gamma=0.1, inner="exact")
