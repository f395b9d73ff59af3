"""Sandwich constants: every influence row equals the finite difference of the exact minimiser theta*(p)
in the direction delta_j - p (an independent computation: the solvers re-solved at perturbed weights),
and the sandwich Hessian equals the solvers' population Hessian."""
import numpy as np
import pytest

from simlab.env import make_env, preset
from simlab.objectives.asymptotics import dpo_sandwich, rebel_sandwich
from simlab.objectives.robust_dpo import robust_dpo_value_grad_hess
from simlab.solvers.rebel import fit_rebel, population_hessian
from simlab.solvers.robust_dpo import fit_robust_dpo_exact

STEP = 1e-5


def _fd_rows(solve, p, atoms_idx):
    rows = []
    for j in atoms_idx:
        e = np.zeros(p.size)
        e[j] = 1.0
        rows.append((solve(p + STEP * (e - p)) - solve(p - STEP * (e - p))) / (2 * STEP))
    return np.array(rows)


@pytest.fixture(scope="module")
def rebel_world():
    env = make_env(preset("E3", n_x=3, n_y=3, d=3), 1)
    theta_t = np.array([0.3, -0.2, 0.1])
    return env.atoms("online", theta_t), theta_t


@pytest.mark.parametrize("objective, radius", [("rebel", 0.0), ("w2", 0.05), ("kl", 0.05), ("kl_tau", 1.0),
                                               ("chi2", 0.05)])
def test_rebel_influence_is_derivative_of_minimiser(rebel_world, objective, radius):
    atoms, theta_t = rebel_world
    p = atoms.p0

    def solve(w):
        return fit_rebel(atoms.dphi, atoms.dr, w, theta_t, 1.0, objective, radius, gtol=1e-14).x

    theta = solve(p)
    s = rebel_sandwich(objective, theta, theta_t, 1.0, atoms.dphi, atoms.dr, p, radius)
    idx = [3, 17, 30, 61, 100]
    fd = _fd_rows(solve, p, idx)
    scale = np.abs(s.influence).max()
    assert np.max(np.abs(fd - s.influence[idx])) <= 1e-6 * scale
    assert abs(p @ s.influence).max() <= 1e-10 * scale
    obj = "kl" if objective == "kl_tau" else objective
    if objective != "kl_tau":
        H = population_hessian(atoms.dphi, atoms.dr, p, theta, theta_t, 1.0, obj, radius)
        np.testing.assert_allclose(s.hess, H, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(s.constant(), np.einsum("j,jk,jk->", p, s.influence, s.influence), rtol=1e-12)


def test_nominal_rebel_constant_is_ols_formula():
    """Realizable REBEL with symmetric noise: C = 2 sigma^2 eta^2 tr Sigma^-1 (docs/theory/rebel.md §4.1)."""
    env = make_env(preset("E2", n_x=4, n_y=3, d=3), 2)
    atoms = env.atoms("uniform")
    theta = fit_rebel(atoms.dphi, atoms.dr, atoms.p0, np.zeros(3), 1.0).x
    s = rebel_sandwich("rebel", theta, np.zeros(3), 1.0, atoms.dphi, atoms.dr, atoms.p0)
    expected = 2 * env.noise_variance * np.trace(np.linalg.inv(atoms.sigma()))
    assert s.constant() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("objective, radius", [("dpo", 0.0), ("wdpo_surrogate", 0.1), ("kldpo_constrained", 0.05),
                                               ("kldpo_penalized", 1.0), ("chi2dpo", 0.05)])
def test_dpo_influence_is_derivative_of_minimiser(objective, radius):
    env = make_env(preset("E1", n_x=3, n_y=3, d=3, w_norm=2.0), 1)
    atoms = env.atoms("uniform")
    p = atoms.p0

    def solve(w, start=None):
        return fit_robust_dpo_exact(objective, atoms, w, env.theta_ref, 1.0, radius, theta0=start, gtol=1e-14).x

    theta = solve(p)
    s = dpo_sandwich(objective, theta, env.theta_ref, 1.0, atoms.dphi, atoms.y, p, radius)
    idx = [3, 11, 20, 33, 47]
    fd = _fd_rows(lambda w: solve(w, theta), p, idx)
    scale = np.abs(s.influence).max()
    assert np.max(np.abs(fd - s.influence[idx])) <= 1e-6 * scale
    H = robust_dpo_value_grad_hess(objective, theta, env.theta_ref, 1.0, atoms.dphi, atoms.y, p, radius)[2]
    np.testing.assert_allclose(s.hess, H, rtol=1e-8, atol=1e-10)


def test_dpo_constant_is_inverse_fisher_trace():
    """Well-specified BT: the sandwich collapses to tr I^-1 (V = H = I)."""
    env = make_env(preset("E1", n_x=4, n_y=3, d=3, w_norm=2.0), 3)
    atoms = env.atoms("uniform")
    theta = fit_robust_dpo_exact("dpo", atoms, atoms.p0, env.theta_ref, 1.0, 0.0, gtol=1e-13).x
    s = dpo_sandwich("dpo", theta, env.theta_ref, 1.0, atoms.dphi, atoms.y, atoms.p0)
    np.testing.assert_allclose(s.V, s.hess, rtol=1e-8, atol=1e-12)
    assert s.constant() == pytest.approx(np.trace(np.linalg.inv(s.hess)), rel=1e-10)


def test_saturated_ball_raises():
    env = make_env(preset("E1", n_x=2, n_y=2, d=2, w_norm=2.0), 1)
    atoms = env.atoms("uniform")
    with pytest.raises(ValueError, match="saturated"):
        dpo_sandwich("chi2dpo", np.ones(2), env.theta_ref, 1.0, atoms.dphi, atoms.y, atoms.p0, 50.0)
