"""The one-pass numba collapse of label atoms onto soft-label pairs and the exact DPO fit built on it:
the same rows as the np.unique rewrite of the NumPy reference (benchmarks/reference_dpo.py), the same
argument checks, the same minimiser."""
import numpy as np
import pytest
from scipy.optimize import minimize

from simlab.env import make_env, preset
from simlab.env.sampling import multinomial_counts
from benchmarks.reference_dpo import collapse_pairs_numpy
from simlab.objectives.dpo import dpo_value_grad_hess
from simlab.solvers.dpo import fit_dpo_exact, soft_label_rows


@pytest.mark.parametrize("seed", range(4))
def test_rows_equal_the_sorting_rewrite_and_the_fit_the_numpy_newton(seed):
    env = make_env(preset("E1", d=4 + 4 * (seed % 2)), seed)
    atoms = env.atoms("offline")
    n = 300 * (seed + 1)
    w = multinomial_counts(atoms.p0, n, np.random.default_rng(seed)) / n
    w[: 3 * seed] = 0.0
    got = soft_label_rows(atoms, w)
    want = collapse_pairs_numpy(atoms.x, atoms.a, atoms.b, atoms.y, atoms.dphi, w)
    for g, e in zip(got[:3], want[:3]):
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=1e-15, atol=1e-17)
    assert got[3] == pytest.approx(want[3], rel=1e-13, abs=0)  # a sequential vs a pairwise sum
    fit = fit_dpo_exact(atoms, w, env.theta_ref, env.beta, gtol=1e-13)
    # an independent solver on the uncollapsed atoms, polished by Newton steps with numpy's solve
    ref = minimize(lambda t: dpo_value_grad_hess(t, env.theta_ref, env.beta, atoms.dphi, atoms.y, w)[:2],
                   env.theta_ref, jac=True, method="BFGS", options={"gtol": 1e-10}).x
    for _ in range(3):
        _, g, h = dpo_value_grad_hess(ref, env.theta_ref, env.beta, atoms.dphi, atoms.y, w)
        ref = ref - np.linalg.solve(h, g)
    np.testing.assert_allclose(fit.x, ref, rtol=0, atol=1e-12)


def test_rows_check_labels_and_weights_by_name():
    env = make_env(preset("E1"), 0)
    atoms = env.atoms("offline")
    w = atoms.p0.copy()
    np.testing.assert_array_equal(soft_label_rows(atoms, list(w))[0], soft_label_rows(atoms, w)[0])
    np.testing.assert_array_equal(soft_label_rows(atoms, np.repeat(w, 2)[::2])[1], soft_label_rows(atoms, w)[1])
    for bad, match in ((-w, "weights.*>= 0"), (np.where(np.arange(w.size) == 3, np.nan, w), "weights.*NaN"),
                       (0.0 * w, "weights.*positive sum"), (w[:-1], "weights.*shape")):
        with pytest.raises(ValueError, match=match):
            soft_label_rows(atoms, bad)
        with pytest.raises(ValueError, match=match):
            fit_dpo_exact(atoms, bad, env.theta_ref, env.beta)
    rewards = make_env(preset("E2"), 0).atoms("offline")
    with pytest.raises(ValueError, match="atoms must carry labels"):
        soft_label_rows(rewards, rewards.p0)
    with pytest.raises(ValueError, match="atoms must be a PairAtoms"):
        soft_label_rows(w, w)
