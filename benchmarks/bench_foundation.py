"""Benchmark the foundation's hot paths against plain NumPy/SciPy references, in one process.

Run:  python benchmarks/bench_foundation.py
Prints medians over repeats (after one warm-up call that compiles the numba kernels).
"""
from __future__ import annotations

from _timing import median_time  # (pins BLAS/numba threads before numpy loads)

import time  # noqa: E402

import numpy as np  # noqa: E402

from reference_dpo import (collapse_pairs_numpy, fit_dpo_lbfgs, fit_dpo_lbfgs_pairs, fit_dpo_newton_numpy,  # noqa: E402
                           sample_pairs_numpy, sgd_dpo_numpy)
from simlab.env import make_env, preset  # noqa: E402
from simlab.env.sampling import AliasTable, multinomial_counts, sample_atoms  # noqa: E402
from simlab.solvers.dpo import fit_dpo_exact, sgd_dpo  # noqa: E402


def paired_fit_times(calls: dict, inputs: list, repeats: int = 300) -> dict:
    """Median CPU seconds per call of each function in ``calls`` over ``inputs``, the functions
    interleaved call by call (so a shared machine's load hits them alike; CPU time, not wall time)."""
    for fn in calls.values():
        fn(inputs[0])
    times: dict = {name: [] for name in calls}
    for rep in range(repeats):
        arg = inputs[rep % len(inputs)]
        for name, fn in calls.items():
            t0 = time.process_time()
            fn(arg)
            times[name].append(time.process_time() - t0)
    return {name: float(np.median(ts)) for name, ts in times.items()}


def dpo_fit_against_numpy_newton(d: int = 8, n: int = 10_000) -> None:
    """fit_dpo_exact against the same Newton (Armijo backtracking) in vectorised NumPy on the same
    collapsed rows (E1, the dpo.rate_n cell's fit)."""
    env = make_env(preset("E1", d=d), 1)
    at = env.atoms("offline")
    rng = np.random.default_rng(0)
    weights = [multinomial_counts(at.p0, n, rng) / n for _ in range(20)]
    rows = {id(w): collapse_pairs_numpy(at.x, at.a, at.b, at.y, at.dphi, w)[:3] for w in weights}
    t = paired_fit_times({
        "simlab": lambda w: fit_dpo_exact(at, w, env.theta_ref, env.beta).x,
        "numpy Newton": lambda w: fit_dpo_newton_numpy(*rows[id(w)], env.theta_ref, env.beta),
        "numpy collapse + Newton": lambda w: fit_dpo_newton_numpy(
            *collapse_pairs_numpy(at.x, at.a, at.b, at.y, at.dphi, w)[:3], env.theta_ref, env.beta)}, weights)
    gap = max(np.max(np.abs(fit_dpo_exact(at, w, env.theta_ref, env.beta).x
                            - fit_dpo_newton_numpy(*rows[id(w)], env.theta_ref, env.beta))) for w in weights)
    print(f"DPO exact fit (E1, d = {d}, n = {n:.0e}, {rows[id(weights[0])][0].shape[0]} collapsed rows), median CPU "
          f"per fit: simlab {t['simlab'] * 1e6:.0f} us; NumPy Newton on the collapsed rows {t['numpy Newton'] * 1e6:.0f} us "
          f"({t['numpy Newton'] / t['simlab']:.2f}x); NumPy collapse + Newton {t['numpy collapse + Newton'] * 1e6:.0f} us "
          f"({t['numpy collapse + Newton'] / t['simlab']:.2f}x); max |difference| {gap:.1e}")


def main():
    dpo_fit_against_numpy_newton()
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
