"""E6 environment: validation, the knob geometry and t-invariance of the distribution-space problem."""
import numpy as np
import pytest

from simlab.env.gap import GapSpec, gap_preset, make_gap_env
from simlab.policy import log_policy


@pytest.mark.parametrize("field,value", [("n_x", 0), ("n_y", 1), ("m", 0), ("d_psi", 2), ("d", 6),
                                         ("d", 1), ("beta", 0.0), ("t", -0.1), ("t", 2.0),
                                         ("threshold_fraction", 1.0), ("utility_norm", 0.0),
                                         ("ref_norm", -1.0), ("conflict", 1.0)])
def test_spec_rejects_bad_fields_by_name(field, value):
    with pytest.raises(ValueError, match=field):
        GapSpec(**{field: value})


def test_make_gap_env_rejects_bad_spec_and_lam():
    with pytest.raises(ValueError, match="spec"):
        make_gap_env({"n_x": 8}, 0)
    env = make_gap_env(gap_preset(), 0)
    with pytest.raises(ValueError, match="lam"):
        env.lagrangian_reward([-1.0])
    with pytest.raises(ValueError, match="lam"):
        env.lagrangian_reward([1.0, 2.0])


@pytest.mark.parametrize("m,d", [(1, 5), (2, 5), (2, 3)])
def test_knob_geometry(m, d):
    for t in (0.0, 0.4):
        env = make_gap_env(gap_preset(m=m, d=d, t=t), 3)
        U = env.U
        assert np.allclose(U.T @ U, np.eye(d), atol=1e-12)
        # reference policy is in the class and does not move with t
        assert np.allclose(log_policy(env.theta_ref, env.phi), env.psi @ env.v_ref
                           - np.log(np.exp(env.psi @ env.v_ref).sum(axis=1, keepdims=True)), atol=1e-12)
        resid = lambda w: np.linalg.norm(w - U @ (U.T @ w))
        assert resid(env.w_r) < 1e-12
        for i in range(m - 1):
            assert resid(env.W_g[i]) < 1e-12
        if t == 0.0:
            assert resid(env.W_g[m - 1]) < 1e-12      # realizable
        else:
            assert resid(env.W_g[m - 1]) > 1e-3       # the tilt moves part of w_gm out of the class


def test_problem_is_t_invariant_and_constraints_centred():
    a = make_gap_env(gap_preset(t=0.0), 7)
    b = make_gap_env(gap_preset(t=0.8), 7)
    for f in ("reward", "utility", "b", "log_ref", "constraint", "psi"):
        assert np.allclose(getattr(a, f), getattr(b, f), atol=1e-12), f
    # E_ref c = -b in every context; b = q_b max_pi E_x[E_pi g - E_ref g]
    ref_mean_c = np.einsum("xa,xai->xi", np.exp(a.log_ref), a.constraint)
    assert np.allclose(ref_mean_c, -a.b[None, :], atol=1e-12)
    assert np.all(a.b > 0)
    assert a.bound_M >= np.abs(a.reward).max()


def test_reused_seed_sequence_gives_the_same_instance():
    ss = np.random.SeedSequence(5, spawn_key=(1, 2))
    a = make_gap_env(gap_preset(t=0.1), ss)
    b = make_gap_env(gap_preset(t=0.1), ss)
    assert np.array_equal(a.psi, b.psi) and np.array_equal(a.U, b.U)
