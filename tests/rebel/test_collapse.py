"""Pair-collapsed DRO-REBEL fits and the objective kernel (docs/theory/rebel.md §4.3-§4.5), and the
per-process nested-prefix ladder of the DRO-REBEL study."""
import sys

import numpy as np
import pytest

from simlab.env import make_env, preset
from simlab.env.sampling import nested_counts, prefix_ladder
from simlab.experiments.scenario import load_scenario
from simlab.objectives.rebel import (collapse_atoms, f_rebel_value_grad_hess, rebel_value_grad_hess,
                                     robust_rebel_value_grad_hess, w2_rebel_value_grad_hess)
from simlab.solvers.rebel import fit_rebel
from tests.rebel.test_objectives import _check_vgh, _instance


def _with_flipped_copies(seed, n=30, d=3):
    """Atoms, each followed by duplicates and sign-flipped copies (as the ordered pairs (a, b), (b, a))."""
    dphi, dr, _, anc, theta, eta = _instance(seed, n=n, d=d)
    rng = np.random.default_rng(seed + 100)
    sign = rng.choice([-1.0, 1.0], size=3 * n)
    idx = np.tile(np.arange(n), 3)
    big_dphi, big_dr = sign[:, None] * dphi[idx], sign * dr[idx]
    big_dphi[:4], big_dr[:4] = 0.0, [0.3, -0.3, 0.0, 0.3]  # a = b rows: dphi = 0
    w = rng.dirichlet(np.ones(3 * n)) * (rng.random(3 * n) < 0.8)
    return big_dphi, big_dr, w / w.sum(), anc, theta, eta


@pytest.mark.parametrize("seed", range(3))
def test_collapse_merges_exactly_the_rows_equal_up_to_sign(seed):
    dphi, dr, w, anc, theta, eta = _with_flipped_copies(seed)
    rows = collapse_atoms(dphi, dr)
    assert rows.size == 30 + 2  # the 30 distinct rows and the a = b rows dr in {0, 0.3} (|dr| = 0.3 twice)
    wc = rows.weights(w)
    assert abs(wc.sum() - 1.0) < 1e-15 and np.all(wc >= 0)
    sign = np.where(np.abs(rows.dr[rows.index] - dr) <= 1e-15, 1.0, -1.0)
    assert np.array_equal(rows.dphi[rows.index] * sign[:, None] + 0.0, dphi + 0.0)
    assert np.array_equal(rows.dr[rows.index] * sign, dr)
    for obj, radius in (("w2", 0.05), ("kl", 0.1), ("chi2", 0.1)):
        a = robust_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, obj, radius)
        b = robust_rebel_value_grad_hess(theta, anc, eta, rows.dphi, rows.dr, wc, obj, radius)
        for x, y in zip(a, b):
            assert np.max(np.abs(np.asarray(x) - y)) <= 1e-12 * (1 + np.max(np.abs(y)))
        fa = fit_rebel(dphi, dr, w, anc, eta, obj, radius).x
        fb = fit_rebel(rows.dphi, rows.dr, wc, anc, eta, obj, radius).x
        assert np.max(np.abs(fa - fb)) <= 1e-12
    a = rebel_value_grad_hess(theta, anc, eta, dphi, dr, w)
    b = rebel_value_grad_hess(theta, anc, eta, rows.dphi, rows.dr, wc)
    assert all(np.max(np.abs(np.asarray(x) - y)) <= 1e-12 * (1 + np.max(np.abs(y))) for x, y in zip(a, b))


def test_online_atoms_collapse_to_unordered_pairs_times_noise_differences():
    env = make_env(preset("E2", d=4), 0)  # 32 contexts, 6 responses, Rademacher noise (4 outcomes per pair)
    atoms = env.atoms("online", np.zeros(4))
    rows = collapse_atoms(atoms.dphi, atoms.dr)
    assert atoms.size == 32 * 36 * 4
    assert rows.size == 32 * 15 * 3 + 2  # xi_a - xi_b in {-0.6, 0, 0.6}; a = b rows dr in {0, 0.6}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("obj, radius", [("w2", 0.05), ("kl", 0.1), ("kl", 0.02), ("chi2", 0.1), ("chi2", 2.0)])
def test_kernel_equals_the_numpy_objectives_and_passes_taylor(seed, obj, radius):
    dphi, dr, w, anc, theta, eta = _instance(seed)
    ours = robust_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, obj, radius)
    ref = (w2_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, radius) if obj == "w2"
           else f_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, obj, radius)[:3])
    for x, y in zip(ours, ref):
        assert np.max(np.abs(np.asarray(x) - y)) <= 1e-12 * (1 + np.max(np.abs(y)))
    _check_vgh(lambda t: robust_rebel_value_grad_hess(t, anc, eta, dphi, dr, w, obj, radius), theta)


def test_kernel_names_bad_input():
    dphi, dr, w, anc, theta, eta = _instance(0)
    with pytest.raises(ValueError, match="objective"):
        robust_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, "w2_surrogate", 0.1)
    with pytest.raises(ValueError, match="radius"):
        robust_rebel_value_grad_hess(theta, anc, eta, dphi, dr, w, "kl", -1.0)


def test_study_ladder_cache_reproduces_the_fresh_ladder():
    """The study's per-process ladders give the counts of a fresh nested_counts for any request order."""
    scenario = load_scenario("drorebel")
    study = sys.modules[scenario.cell.__module__]
    params = dict(experiment="rate_n", env="E3", div="kl", d=8)
    seeds = scenario.seeds_for(params, 0, 7)
    p0 = study._instance(seeds.instance, "E3", 8)[2].p0
    study._LADDERS.clear()
    for n in (2**12, 2**10, 2**14, 2**14, 3000, 2**13, 2**16):  # up, down, repeat, off-ladder, up again
        fresh = nested_counts(p0, prefix_ladder(n, start=512), np.random.default_rng(seeds.sample))[n]
        assert np.array_equal(study._prefix_counts(seeds.instance, "E3", 8, seeds.sample, n, 512), fresh)
