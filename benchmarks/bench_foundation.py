"""Benchmark the foundation's hot paths against plain NumPy/SciPy references, in one process.

Run:  python benchmarks/bench_foundation.py
Prints medians over repeats (after one warm-up call that compiles the numba kernels).
"""
from __future__ import annotations

from _timing import median_time  # (pins BLAS/numba threads before numpy loads)

import numpy as np  # noqa: E402

from reference_dpo import fit_dpo_lbfgs, fit_dpo_lbfgs_pairs, sample_pairs_numpy, sgd_dpo_numpy  # noqa: E402
from simlab.env import make_env, preset  # noqa: E402
from simlab.env.sampling import AliasTable, multinomial_counts, sample_atoms  # noqa: E402
from simlab.solvers.dpo import fit_dpo_exact, sgd_dpo  # noqa: E402


def main():
    rng = np.random.default_rng(0)
    env = make_env(preset("E1"), 0)
    atoms = env.atoms()
    table = AliasTable(atoms.p0)
    n = 10_000_000
    t_alias = median_time(lambda: sample_atoms(table, n, rng))
    t_np = median_time(lambda: sample_pairs_numpy(atoms.p0, n, rng), repeats=3)
    print(f"sampling {n:.0e} pairs (A = {atoms.size} atoms): simlab alias {n / t_alias / 1e6:.1f} M pairs/s, "
          f"numpy choice {n / t_np / 1e6:.1f} M pairs/s, ratio {t_np / t_alias:.1f}x")

    print("\nDPO rate cell (sample + exact fit), median seconds:")
    print(f"{'d':>4} {'n':>8} {'simlab':>10} {'L-BFGS atoms':>13} {'ratio':>6} {'L-BFGS pairs':>13} {'ratio':>6}")
    for d in (8, 16, 64):
        env_d = make_env(preset("E4", d=d) if d > 8 else preset("E1", d=d), 1)
        at = env_d.atoms()
        for n_pairs in (1_000, 10_000, 100_000):
            def simlab_cell():
                counts = multinomial_counts(at.p0, n_pairs, rng)
                return fit_dpo_exact(at, counts / n_pairs, env_d.theta_ref, env_d.beta).x

            def ref_cell():
                counts = multinomial_counts(at.p0, n_pairs, rng)
                dphi, y, _, w = at.support(counts / n_pairs)
                return fit_dpo_lbfgs(dphi, y, w, env_d.theta_ref, env_d.beta)

            def ref_pairs_cell():
                idx = sample_pairs_numpy(at.p0, n_pairs, rng)
                return fit_dpo_lbfgs_pairs(at.dphi[idx], at.y[idx], env_d.theta_ref, env_d.beta)

            try:
                ts = median_time(simlab_cell)
            except Exception as exc:  # a separable tiny sample at d = 64
                print(f"{d:>4} {n_pairs:>8} skipped: {exc}")
                continue
            tr = median_time(ref_cell)
            tp = median_time(ref_pairs_cell, repeats=3)
            print(f"{d:>4} {n_pairs:>8} {ts * 1e3:>8.2f}ms {tr * 1e3:>11.2f}ms {tr / ts:>5.1f}x {tp * 1e3:>11.2f}ms {tp / ts:>5.1f}x")

    env16 = make_env(preset("E4", d=16), 2)
    at16 = env16.atoms()
    T = 1_000_000
    t_sgd = median_time(lambda: sgd_dpo(at16, env16.theta_ref, 1.0, T, 0.5, rng))
    T_ref = 20_000
    t_ref = median_time(lambda: sgd_dpo_numpy(at16.dphi, at16.y, at16.p0, env16.theta_ref, 1.0, T_ref, 0.5, rng), repeats=3)
    print(f"\nSGD d = 16: simlab {t_sgd / T * 1e9:.1f} ns/step, NumPy loop {t_ref / T_ref * 1e9:.0f} ns/step, "
          f"ratio {(t_ref / T_ref) / (t_sgd / T):.0f}x")


if __name__ == "__main__":
    main()
