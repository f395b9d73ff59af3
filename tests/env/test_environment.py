"""The environment engine: atoms, samplers, coverage design, misspecification, validation."""
import numpy as np
import pytest
from scipy import stats

from simlab.env import EnvSpec, make_env, preset
from simlab.env.sampling import AliasTable, multinomial_counts, nested_counts, sample_atoms


@pytest.mark.parametrize("name", ["E1", "E2", "E3", "E4", "E5"])
@pytest.mark.parametrize("sampler", ["offline", "online", "online_mixed", "uniform"])
def test_atom_probabilities_sum_to_one(name, sampler):
    env = make_env(preset(name), 3)
    theta = np.full(env.spec.d, 0.3)
    atoms = env.atoms(sampler, theta=theta)
    assert abs(atoms.p0.sum() - 1.0) < 1e-12
    assert np.all(atoms.p0 >= 0)
    # the pair marginal of the atoms is the sampler's pair law
    pair = np.zeros((env.spec.n_x, env.spec.n_y, env.spec.n_y))
    np.add.at(pair, (atoms.x, atoms.a, atoms.b), atoms.p0)
    np.testing.assert_allclose(pair, env.pair_probs(sampler, theta), atol=1e-14)


def test_atoms_carry_consistent_pair_quantities():
    env = make_env(preset("E2"), 1)
    atoms = env.atoms("online", theta=np.zeros(8))
    np.testing.assert_allclose(atoms.dphi, env.phi[atoms.x, atoms.a] - env.phi[atoms.x, atoms.b])
    np.testing.assert_allclose(atoms.dr_true, env.reward[atoms.x, atoms.a] - env.reward[atoms.x, atoms.b])
    # reward noise is mean zero per pair: E[dr | pair] = dr_true
    mean_noise = np.sum(atoms.p0 * (atoms.dr - atoms.dr_true))
    assert abs(mean_noise) < 1e-12
    assert abs(env.noise_variance - 0.09) < 1e-12


def test_same_seed_same_instance_and_components_independent():
    a = make_env(preset("E1"), 7)
    b = make_env(preset("E1"), 7)
    np.testing.assert_array_equal(a.phi, b.phi)
    c = make_env(preset("E1", oracle="box", rho_true=0.1), 7)
    np.testing.assert_array_equal(a.phi, c.phi)  # switching the oracle leaves the features alone
    np.testing.assert_array_equal(a.w_star, c.w_star)


def test_alias_sampler_frequencies_match_exact_probabilities():
    env = make_env(preset("E5"), 0)
    atoms = env.atoms()
    idx = sample_atoms(AliasTable(atoms.p0), 400_000, np.random.default_rng(11))
    observed = np.bincount(idx, minlength=atoms.size)
    keep = atoms.p0 > 0
    expected = atoms.p0[keep] * idx.size
    chi2 = np.sum((observed[keep] - expected) ** 2 / expected)
    p = stats.chi2.sf(chi2, keep.sum() - 1)
    assert p > 1e-3, f"chi-square p-value {p:.2e}"
    assert observed[~keep].sum() == 0


def test_multinomial_and_nested_counts():
    p = make_env(preset("E5"), 0).atoms().p0
    rng = np.random.default_rng(2)
    c = multinomial_counts(p, 1000, rng)
    assert c.sum() == 1000
    nested = nested_counts(p, [10, 100, 1000], np.random.default_rng(3))
    assert [v.sum() for v in nested.values()] == [10, 100, 1000]
    assert np.all(nested[100] >= nested[10]) and np.all(nested[1000] >= nested[100])
    # same stream, same counts
    again = nested_counts(p, [10, 100, 1000], np.random.default_rng(3))
    for n in (10, 100, 1000):
        np.testing.assert_array_equal(nested[n], again[n])


@pytest.mark.parametrize("d", [2, 3, 8, 16, 33, 64])
def test_coverage_design_keeps_lambda_min_at_the_set_value(d):
    env = make_env(preset("E4", d=d, coverage=0.4), d)
    lo, hi = env.atoms("uniform").coverage()
    assert lo >= 0.4 - 1e-9 and hi <= 0.4 + 1e-9


def test_sphere_design_has_unit_features():
    env = make_env(preset("E1"), 0)
    np.testing.assert_allclose(np.linalg.norm(env.phi, axis=2), 1.0)


def test_box_misspecification_is_exact_and_antisymmetric():
    env = make_env(preset("E5", oracle="box", rho_true=0.08), 0)
    assert abs(env.misspecification() - 0.08) < 1e-12
    np.testing.assert_allclose(env.P_obs + np.transpose(env.P_obs, (0, 2, 1)), 1.0, atol=1e-14)
    assert np.all((env.P_obs >= 0) & (env.P_obs <= 1))


def test_flip_and_confounder_misspecification():
    env = make_env(preset("E1", oracle="flips", flip=0.2), 0)
    expected = 0.2 * np.max(np.abs(1 - 2 * env.P_true))
    assert abs(env.misspecification() - expected) < 1e-12
    conf = make_env(preset("E5", oracle="confounder"), 0)
    assert conf.spec.kappa_s == 1.0 and 0 < conf.misspecification() < 0.5
    np.testing.assert_allclose(conf.P_obs + np.transpose(conf.P_obs, (0, 2, 1)), 1.0, atol=1e-14)
    assert make_env(preset("E1"), 0).misspecification() == 0.0


def test_preference_shift_mixture():
    env = make_env(preset("E1", mixture=True, alpha_train=0.1), 0)
    np.testing.assert_allclose(env.w_star, 0.1 * env.w_a + 0.9 * env.w_b)
    np.testing.assert_allclose(env.mixture_reward(0.1), env.w_star)
    with pytest.raises(ValueError, match="alpha"):
        env.mixture_reward(1.5)


@pytest.mark.parametrize("kwargs, field", [
    (dict(d=0), "d"), (dict(n_y=1), "n_y"), (dict(n_x=0), "n_x"), (dict(beta=-1.0), "beta"),
    (dict(radius_B=-1.0), "radius_B"), (dict(rho_true=1.5), "rho_true"), (dict(flip=-0.1), "flip"),
    (dict(alpha_train=2.0), "alpha_train"), (dict(design="cube"), "design"),
    (dict(oracle="bogus"), "oracle"), (dict(feedback="stars"), "feedback"),
    (dict(p_x=(0.5, 0.6)), "p_x"), (dict(n_x=2, p_x=(1.2, -0.2)), "p_x"),
    (dict(noise="rademacher", sigma=0.1), "noise"), (dict(sigma=float("nan")), "sigma"),
    # defect 9: sizes have upper bounds, checked before anything is allocated; bools are not numbers
    (dict(d=10**7), "d must be <= 4096"), (dict(n_x=10**6), "n_x must be <="), (dict(n_y=5000), "n_y must be <="),
    (dict(n_x=4096, n_y=64, d=256), "pair-atom feature entries exceeds"), (dict(beta=True), "beta must be a real"),
])
def test_validation_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        EnvSpec(**kwargs)


def test_bad_sampler_and_preset_names():
    env = make_env(preset("E1"), 0)
    with pytest.raises(ValueError, match="sampler"):
        env.atoms("sideways")
    with pytest.raises(ValueError, match="theta"):
        env.atoms("online")
    with pytest.raises(ValueError, match="preset"):
        preset("E9")
    with pytest.raises(ValueError, match="unknown EnvSpec field.*'dd'"):  # defect 9: was a TypeError
        preset("E1", dd=3)
    with pytest.raises(ValueError, match="seed must be >= 0"):  # defect 9: the message names seed
        make_env(preset("E1"), -1)
    with pytest.raises(ValueError, match="p0"):
        multinomial_counts(np.array([0.5, 0.6]), 3, np.random.default_rng(0))
