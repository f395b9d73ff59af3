"""Benchmark of one stochastic Algorithm A run of oracle-robust SAIL (docs/theory/sail.md §5.5): T = 10^4 steps,
N_b = 1, d = 8 (E5 with d = 8), alpha = 2/sqrt(T), rho = 0.1, against the NumPy reference in
``benchmarks/reference_sail.py`` run in the same process. Both consume one Generator stream in the
same order, so the trajectories are checked to agree (first 1000 steps, to 1e-10) before timing. Also times the exact Moreau-envelope
gradient (prox-linear + dual box-QP) at 32 iterates, the per-run evaluation cost of the rate claim.

Run: ``python benchmarks/bench_sail.py`` (medians of repeated runs; ratios printed).
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _timing import median_time  # noqa: E402  (pins BLAS/numba threads before numpy loads)

import numpy as np  # noqa: E402

from reference_sail import algorithm_a_reference  # noqa: E402
from simlab.env import make_env, preset  # noqa: E402
from simlab.solvers.prox import RobustSailProx  # noqa: E402
from simlab.solvers.sail_algorithms import run_algorithm  # noqa: E402


def main(T: int = 10_000, d: int = 8, repeats: int = 5, rho: float = 0.1) -> None:
    env = make_env(preset("E5", d=d), 0)
    args = (env.phi, env.p_x, env.theta_ref, env.beta, env.P_obs)
    B, step = env.spec.radius_B, 2.0 / np.sqrt(T)
    record = np.arange(0, T + 1, T // 10)

    # correctness on the first 1000 steps: rounding differences (fastmath summation order) grow
    # geometrically along a stochastic trajectory (~1e-16 at t = 1000, ~1e-2 by t = 10^4), so the
    # step-by-step comparison is made where they are still at machine level
    check = np.arange(0, 1001, 100)
    ours = run_algorithm("A", env.theta_ref, *args, rho, B, 1000, step, np.random.default_rng(3), check).iterates
    ref = algorithm_a_reference(env.theta_ref, *args, rho, B, step, 1000, np.random.default_rng(3), check)
    err = float(np.abs(ours - ref).max())
    assert err < 1e-10, f"Algorithm A differs from the reference by {err:.2e}"

    t_ours = median_time(lambda: run_algorithm("A", env.theta_ref, *args, rho, B, T, step,
                                               np.random.default_rng(3), record), repeats)
    t_ref = median_time(lambda: algorithm_a_reference(env.theta_ref, *args, rho, B, step, T,
                                                      np.random.default_rng(3), record), max(1, repeats // 2))
    prox = RobustSailProx(*args, rho, B, 0.1)
    thetas = run_algorithm("A", env.theta_ref, *args, rho, B, T, step, np.random.default_rng(4),
                           np.sort(np.random.default_rng(5).choice(T, 32, replace=False))).iterates
    t_env = median_time(lambda: prox.envelope_grad_norms2(thetas), repeats)

    print(f"E5 with d = {d}: n_x = {env.spec.n_x}, n_y = {env.spec.n_y}; T = {T}, N_b = 1, rho = {rho}; "
          f"max trajectory difference over 1000 steps {err:.1e}")
    print(f"{'computation':40s} {'simlab ms':>10s} {'reference ms':>13s} {'speedup':>8s}")
    print(f"{'Algorithm A run (T = 1e4, d = 8)':40s} {1e3 * t_ours:10.2f} {1e3 * t_ref:13.1f} {t_ref / t_ours:7.0f}x")
    print(f"{'exact ||grad env||^2 at 32 iterates':40s} {1e3 * t_env:10.2f} {'-':>13s} {'-':>8s}")


if __name__ == "__main__":
    main()
