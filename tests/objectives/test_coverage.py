"""Worst-case coverage: the 1-D dual per direction against a primal SLSQP over the ball's weights, and the
collapse to 0 once the ball reaches the a = b atoms."""
import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.dro import chi2_divergence, kl_divergence
from simlab.env import make_env, preset
from simlab.objectives.coverage import coverage_collapse_radius, directional_worst_coverage, worst_case_coverage


@pytest.fixture(scope="module")
def atoms():
    return make_env(preset("E1", n_x=2, n_y=3, d=2), 0).atoms("uniform")


@pytest.mark.parametrize("div, radius", [("kl", 0.1), ("chi2", 0.1), ("kl", 0.6), ("chi2", 0.5)])
def test_directional_dual_matches_primal(atoms, div, radius):
    p = atoms.p0
    v = np.array([0.6, 0.8])
    X = (atoms.dphi @ v) ** 2
    D = kl_divergence if div == "kl" else chi2_divergence
    cons = [{"type": "eq", "fun": lambda q: q.sum() - 1.0},
            {"type": "ineq", "fun": lambda q: radius - D(np.maximum(q, 1e-300), p)}]
    res = minimize(lambda q: q @ X, p, method="SLSQP", bounds=[(0, 1)] * p.size, constraints=cons,
                   options={"ftol": 1e-14, "maxiter": 500})
    dual = directional_worst_coverage(v, atoms.dphi, p, div, radius)[0]
    assert dual == pytest.approx(res.fun, abs=1e-6)


@pytest.mark.parametrize("div", ["kl", "chi2"])
def test_coverage_collapses_beyond_the_a_equals_b_radius(atoms, div):
    r0 = coverage_collapse_radius(atoms.dphi, atoms.p0, div)
    assert worst_case_coverage(atoms.dphi, atoms.p0, div, 1.01 * r0)[0] <= 1e-10
    below = worst_case_coverage(atoms.dphi, atoms.p0, div, 0.5 * r0)[0]
    lam = np.linalg.eigvalsh(atoms.sigma())[0]
    assert 0 < below < lam
    assert worst_case_coverage(atoms.dphi, atoms.p0, div, 0.0)[0] == pytest.approx(lam, rel=1e-7)


@pytest.mark.parametrize("div, radius", [("kl", 0.3), ("chi2", 0.3)])
def test_directional_danskin_gradient_passes_a_taylor_test(atoms, div, radius):
    """The gradient SLSQP is given (the Danskin gradient 2 E_q[(v^T dphi) dphi]) is the derivative of the
    directional worst-case coverage in v (taken unnormalised: c is a function of v, not of v/||v||)."""
    from tests.taylor import assert_taylor

    f = lambda v: directional_worst_coverage(v, atoms.dphi, atoms.p0, div, radius)[0]
    g = lambda v: directional_worst_coverage(v, atoms.dphi, atoms.p0, div, radius)[1]
    assert_taylor(f, g, np.array([0.6, 0.8]))


@pytest.mark.parametrize("div", ["kl", "chi2"])
def test_worst_case_coverage_is_the_minimum_over_a_fine_grid_of_directions(atoms, div):
    """d = 2: brute force over the unit circle (2000 angles, then twice 201 angles across the two cells
    around the best one: final step 1.6e-7) against the gradient-based SLSQP: never above the grid's
    minimum, and below it only by the refined grid's resolution (a 1.6e-7 step moves the minimum by far
    less than 1e-10 relative, even at a kink of the Danskin gradient)."""
    radius = 0.5 * coverage_collapse_radius(atoms.dphi, atoms.p0, div)

    def c(a):
        return directional_worst_coverage(np.array([np.cos(a), np.sin(a)]), atoms.dphi, atoms.p0, div, radius)[0]

    angles = np.linspace(0.0, np.pi, 2000, endpoint=False)
    for _ in range(3):
        values = [c(a) for a in angles]
        best, step, grid = angles[int(np.argmin(values))], angles[1] - angles[0], min(values)
        angles = np.linspace(best - step, best + step, 201)
    value = worst_case_coverage(atoms.dphi, atoms.p0, div, radius)[0]
    assert value <= grid + 1e-12 and value == pytest.approx(grid, rel=1e-10)
