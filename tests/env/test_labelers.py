"""Two-labeler worlds: the closed-form divergences of the test mixtures against enumeration over atoms, the
data-processing bound for the observed law, and the DRO certificate at the exact robust minimiser."""
import numpy as np
import pytest

from simlab.dro import chi2_divergence, kl_divergence, worst_case
from simlab.env import make_env, preset
from simlab.env.labelers import chi2_bernoulli, kl_bernoulli, labeler_atoms
from simlab.objectives.rebel import rebel_losses
from simlab.solvers.rebel import fit_rebel


@pytest.fixture(scope="module")
def world():
    env = make_env(preset("E2", n_x=4, n_y=3, d=3, mixture=True, alpha_train=0.2, w_norm=2.0), 0)
    return env, labeler_atoms(env, 0.2, "rewards")


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.5, 1.0])
def test_closed_form_divergences_match_atoms(world, alpha):
    _, lab = world
    q, p = lab.law(alpha), lab.atoms.p0
    assert kl_divergence(q, p) == pytest.approx(kl_bernoulli(alpha, 0.2), rel=1e-10, abs=1e-14)
    assert chi2_divergence(q, p) == pytest.approx(chi2_bernoulli(alpha, 0.2), rel=1e-10, abs=1e-14)
    np.testing.assert_allclose(lab.density_ratio(alpha) * p, q, rtol=1e-12, atol=1e-18)


def test_observed_law_divergence_is_smaller(world):
    """BT labels: merging the two labelers' identical (x, a, b, y) atoms (data processing) lowers the KL."""
    env, _ = world
    envl = make_env(preset("E2", n_x=4, n_y=3, d=3, mixture=True, alpha_train=0.2, w_norm=2.0, feedback="bt",
                           noise="none", sigma=0.0), 0)
    lab = labeler_atoms(envl, 0.2, "bt")
    half = lab.atoms.size // 2
    q, p = lab.law(0.9), lab.atoms.p0
    merged_q, merged_p = q[:half] + q[half:], p[:half] + p[half:]
    assert kl_divergence(merged_q, merged_p) < kl_bernoulli(0.9, 0.2)
    assert np.allclose(lab.atoms.y[:half], lab.atoms.y[half:])


def test_rewards_follow_each_labeler(world):
    env, lab = world
    at = lab.atoms
    w = np.where(lab.group[:, None] == 1, env.w_a, env.w_b)
    noise = at.dr - np.einsum("jd,jd->j", at.dphi, w)
    assert set(np.round(np.unique(noise), 12)) <= {-0.6, 0.0, 0.6}


@pytest.mark.parametrize("div", ["kl", "chi2"])
def test_certificate_at_robust_minimiser(world, div):
    """Every test law inside the ball has test risk <= the robust risk (brute force over an alpha grid)."""
    env, lab = world
    at = lab.atoms
    radius = 0.3
    theta = fit_rebel(at.dphi, at.dr, at.p0, env.theta_ref, 1.0, div, radius, gtol=1e-12).x
    l = rebel_losses(theta, env.theta_ref, 1.0, at.dphi, at.dr)
    robust = worst_case(l, at.p0, div, radius)[0]
    fn = kl_bernoulli if div == "kl" else chi2_bernoulli
    covered = [a for a in np.linspace(0, 1, 101) if fn(a, 0.2) <= radius]
    assert len(covered) > 5
    assert max(lab.law(a) @ l for a in covered) <= robust + 1e-12


def test_alpha0_must_be_interior(world):
    env, _ = world
    with pytest.raises(ValueError, match="alpha"):
        labeler_atoms(env, 1.0, "rewards")
    with pytest.raises(ValueError, match="mixture"):
        labeler_atoms(make_env(preset("E2", n_x=2, n_y=2, d=2), 0), 0.3, "rewards")
