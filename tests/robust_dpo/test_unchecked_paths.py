"""The ``check_input=False`` paths that the Newton loops take after validating once return the checked
paths' values to the bit (they skip checks, never arithmetic: the W_2 law is still normalised as p / sum p)."""
import numpy as np
import pytest

from simlab.dro import w2_margin_value_grad_hess, w2_margin_worst_case, w2_surrogate_value_grad_hess
from simlab.objectives.dpo import dpo_losses
from simlab.objectives.rebel import rebel_ols
from simlab.objectives.robust_dpo import OBJECTIVES, robust_dpo_value_grad_hess


def _problem(seed, n=60, d=4):
    rng = np.random.default_rng(seed)
    dphi = rng.standard_normal((n, d))
    y = (rng.random(n) < 0.6).astype(float)
    w = rng.random(n)
    w[rng.random(n) < 0.2] = 0.0
    return dphi, y, w / w.sum(), 0.3 * rng.standard_normal(d), 0.1 * rng.standard_normal(d)


def _same(a, b):
    if isinstance(a, tuple):
        assert len(a) == len(b)
        for x, z in zip(a, b):
            _same(x, z)
    elif hasattr(a, "_fields"):  # W2WorstCase
        _same(tuple(a), tuple(b))
    else:
        assert np.array_equal(np.asarray(a), np.asarray(b)), (a, b)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_robust_dpo_objective_unchecked_is_bit_identical(objective):
    radius = 1.0 if objective == "kldpo_penalized" else 0.05
    for seed in range(3):
        dphi, y, w, theta, theta_ref = _problem(seed)
        args = (objective, theta, theta_ref, 1.3, dphi, y, w, radius)
        _same(robust_dpo_value_grad_hess(*args), robust_dpo_value_grad_hess(*args, check_input=False))


def test_w2_and_dpo_primitives_unchecked_are_bit_identical():
    for seed in range(3):
        dphi, y, w, theta, theta_ref = _problem(seed)
        g = theta - theta_ref
        for fn in (w2_margin_value_grad_hess, w2_surrogate_value_grad_hess):
            _same(fn(g, dphi, y, w, 0.2, "logistic")[:3], fn(g, dphi, y, w, 0.2, "logistic", check_input=False)[:3])
        m, s = dphi @ g, float(np.linalg.norm(g))
        _same(w2_margin_worst_case(m, s, w, 0.2, "logistic", y),
              w2_margin_worst_case(m, s, w, 0.2, "logistic", y, check_input=False))
        _same(dpo_losses(theta, theta_ref, 1.3, dphi, y), dpo_losses(theta, theta_ref, 1.3, dphi, y, check_input=False))
        dr = dphi @ g + 0.1 * np.random.default_rng(seed).standard_normal(dphi.shape[0])
        _same(rebel_ols(theta_ref, 1.0, dphi, dr, w), rebel_ols(theta_ref, 1.0, dphi, dr, w, check_input=False))


def test_checked_path_still_rejects_bad_input():
    dphi, y, w, theta, theta_ref = _problem(0)
    with pytest.raises(ValueError, match="labels"):
        robust_dpo_value_grad_hess("wdpo_exact", theta, theta_ref, 1.0, dphi, y + 2.0, w, 0.1)
    with pytest.raises(ValueError, match="theta"):
        dpo_losses(theta[:-1], theta_ref, 1.0, dphi, y)
