"""Collapse radii of robust DPO against the solver's independent kink test (SLSQP over directions)."""
import numpy as np
import pytest

from simlab.env import make_env, preset
from simlab.objectives.dpo_radii import chi2_dpo_collapse_radius, wdpo_reference_threshold
from simlab.solvers.robust_dpo import reference_optimality_margin


@pytest.mark.parametrize("seed", [0, 1])
def test_chi2_collapse_radius_matches_kink_test(seed):
    env = make_env(preset("E1", n_x=4, n_y=3, d=3, w_norm=1.0), seed)
    atoms = env.atoms("uniform")
    eps_bar = chi2_dpo_collapse_radius(atoms.dphi, atoms.y, atoms.p0, 1.0)
    below = reference_optimality_margin("chi2dpo", atoms, atoms.p0, env.theta_ref, 1.0, 0.9 * eps_bar)
    above = reference_optimality_margin("chi2dpo", atoms, atoms.p0, env.theta_ref, 1.0, 1.1 * eps_bar)
    assert below < 0 < above


def test_wdpo_threshold_matches_kink_test():
    env = make_env(preset("E1", n_x=4, n_y=3, d=3, w_norm=1.0), 2)
    atoms = env.atoms("uniform")
    rho_bar = wdpo_reference_threshold(atoms.dphi, atoms.y, atoms.p0)
    for obj in ("wdpo_surrogate", "wdpo_exact"):
        m = reference_optimality_margin(obj, atoms, atoms.p0, env.theta_ref, 1.0, rho_bar)
        assert m == pytest.approx(0.0, abs=1e-12)
