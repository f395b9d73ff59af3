"""Benchmark of one CAID run (docs/theory/constrained.md §6.4): T = 50 dual steps, N x K = 600 x 64 sampled responses per step,
policy dimension k = 8 (E6 with d_psi = 9, d = 8), exact inner maximisation, against the NumPy/SciPy
reference in ``benchmarks/reference_caid.py`` run in the same process. The exact-gradient variant
(n_prompts = 0) is timed too and checked to agree with the reference to 1e-8.

Run: ``python benchmarks/bench_caid.py`` (medians of repeated runs; ratios printed).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import median_time  # noqa: E402  (pins BLAS/numba threads before numpy loads)

import numpy as np  # noqa: E402

from reference_caid import caid_reference  # noqa: E402
from simlab.env.gap import gap_preset, make_gap_env  # noqa: E402
from simlab.objectives.constrained import dual_smoothness_bound  # noqa: E402
from simlab.solvers.constrained import caid, minimize_parametrized_dual, parametrized_dual  # noqa: E402


def main(T: int = 50, n_prompts: int = 600, n_responses: int = 64, repeats: int = 15) -> None:
    env = make_gap_env(gap_preset(d_psi=9, d=8, t=0.3), 0)
    eta = 1.0 / dual_smoothness_bound(env)
    lam0 = np.zeros(env.m)
    theta0 = parametrized_dual(env, lam0).theta
    guess0 = env.U.T @ (env.v_ref + env.w_r / env.beta)
    guess_lam = env.U.T @ env.W_g.T / env.beta
    args = (env.phi, env.p_x, env.reward, env.constraint, env.theta_ref, env.beta, guess0, guess_lam)
    target = minimize_parametrized_dual(env)

    # correctness: exact-gradient runs agree step by step
    ours = caid(env, eta=eta, T=T, lam0=lam0, theta0=theta0, n_checkpoints=T)
    ref_l, ref_dp, _ = caid_reference(*args, lam0, theta0, eta, T, 0, 1, None)
    err = max(np.abs(ours.lam - ref_l[ours.t]).max(), np.abs(ours.dual_p - ref_dp[ours.t]).max())
    assert err < 1e-8, f"exact CAID differs from the reference by {err:.2e}"
    # sampled runs from the same seed (numba's binomial chain and NumPy's multinomial consume the stream alike
    # here, so the trajectories coincide; otherwise both would only end near lambda*_p)
    s_ours = caid(env, eta=eta, T=T, lam0=lam0, theta0=theta0, n_prompts=n_prompts, n_responses=n_responses,
                  rng=np.random.default_rng(1))
    s_ref = caid_reference(*args, lam0, theta0, eta, T, n_prompts, n_responses, np.random.default_rng(1))
    print(f"lambda*_p = {target.lam[0]:.6f}; sampled final lambda: simlab {s_ours.lam[-1, 0]:.8f}, "
          f"reference {s_ref[0][-1, 0]:.8f}; exact-run max difference {err:.1e}")

    print(f"{'variant':28s} {'simlab ms':>10s} {'reference ms':>13s} {'speedup':>8s}")
    for name, n_p in (("sampled 600 x 64 (issue)", n_prompts), ("exact dual gradient", 0)):
        t_ours = median_time(lambda: caid(env, eta=eta, T=T, lam0=lam0, theta0=theta0, n_prompts=n_p,
                                          n_responses=n_responses, rng=np.random.default_rng(2)), repeats)
        t_ref = median_time(lambda: caid_reference(*args, lam0, theta0, eta, T, n_p, n_responses,
                                                   np.random.default_rng(2)), max(3, repeats // 2))
        print(f"{name:28s} {1e3 * t_ours:10.2f} {1e3 * t_ref:13.2f} {t_ref / t_ours:8.1f}x")


if __name__ == "__main__":
    main()
