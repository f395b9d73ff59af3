"""Benchmark of the online DRO-REBEL loop (docs/theory/rebel.md §4.9): one run of T = 100 iterations with n = 128 fresh
pairs per iteration, d = 16, one Adam step per batch (the DRO-REBEL code's inner loop), per variant:
``simlab.solvers.rebel.online_rebel_sgd`` (one numba call) against the NumPy/SciPy reference in
``benchmarks/reference_rebel.py`` run in the same process. Also times the exact-inner loop
(``online_rebel_exact``, Newton per batch on the atoms) for information.

Run: ``python benchmarks/bench_rebel.py [--repeats R] [--no-exact]``: simlab and NumPy runs alternate,
medians with [min-max] ranges and the ratio of medians with the range of per-round ratios.

``--drorebel`` instead times the sample cells of ``scenarios/drorebel.py`` (rate_n, rate_d, tradeoff
per divergence, each a run of cells in the sweep's order: n outer, replicates inner) against the same
cells as they ran before the speed-up (``reference_rebel.drorebel_sample_cell_reference``: the nested
ladder redrawn per cell, Newton over the uncollapsed atoms with NumPy objectives), old and new runs
alternating in one process; it prints the ratio of median run times with the range of per-round
ratios, and the largest relative difference of the fitted metrics between the two.
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import median_time  # noqa: E402  (pins BLAS/numba threads before numpy is imported)

import numpy as np  # noqa: E402

from reference_rebel import (batch_gradient, drorebel_sample_cell_reference,  # noqa: E402
                             online_rebel_reference)
from simlab.env import make_env, preset  # noqa: E402
from simlab.solvers.rebel import (SGD_OBJECTIVES, batch_gradient_kernel, online_rebel_exact,  # noqa: E402
                                  online_rebel_sgd)

RADII = {"rebel": 0.0, "w2": 0.1, "w2_surrogate": 0.01, "kl_tau": 0.1, "kl": 0.05, "chi2": 0.05,
         "chi2_code": 0.01}


def check_same_gradients(env, seed=0):
    """The two implementations compute the same batch gradients (so the timing compares like with like)."""
    rng = np.random.default_rng(seed)
    n, d = 128, env.spec.d
    dphi = rng.standard_normal((n, d))
    dr = rng.standard_normal(n)
    anc = rng.standard_normal(d)
    theta = anc + 0.3 * rng.standard_normal(d)
    for name in SGD_OBJECTIVES:
        g = np.empty(d)
        batch_gradient_kernel(theta, anc, 1.0, dphi, dr, SGD_OBJECTIVES.index(name), RADII[name], False,
                               np.empty(n), np.empty(n), np.empty(n), np.full(n, 1.0 / n), g)
        ref = batch_gradient(theta, anc, 1.0, dphi, dr, name, RADII[name])
        assert np.max(np.abs(g - ref)) <= 1e-8 * (1 + np.max(np.abs(ref))), name


def main(T: int = 100, n: int = 128, d: int = 16, repeats: int = 15, exact: bool = True) -> None:
    env = make_env(preset("E2", d=d, n_x=32, mixture=True, alpha_train=0.5), 0)
    check_same_gradients(env)
    print(f"online loop: T = {T}, n = {n} per iteration, d = {d}, 1 Adam step per batch; {repeats} interleaved "
          "rounds (one simlab run and one NumPy run each): medians [min-max]")
    for log_coverage in (True, False):
        print(f"per-iteration lambda_min logging: {log_coverage}")
        bench_variants(env, T, n, repeats, log_coverage)
    if not exact:
        return
    for name, radius in (("rebel", 0.0), ("kl", 0.05), ("chi2", 0.05), ("w2", 0.1)):
        t = median_time(lambda: online_rebel_exact(env, T, n, 1.0, np.random.default_rng(1), name, radius), 3)
        print(f"exact inner {name:5s}: {1e3 * t:8.1f} ms (Newton per batch on the {env.atoms('online', env.theta_ref).size} atoms)")


def _once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_variants(env, T, n, repeats, log_coverage):
    """Per variant: simlab and NumPy runs alternate (so a load change on the shared machine hits both);
    the speed-up is the ratio of the medians, with the range of the per-round ratios."""
    print(f"{'variant':13s} {'simlab ms':>18s} {'numpy ms':>18s} {'speed-up':>20s} {'J(0.5) simlab':>14s} {'J(0.5) numpy':>13s}")
    for name in SGD_OBJECTIVES:
        kw = dict(objective=name, radius=RADII[name], inner_steps=1, optimizer="adam", lr=0.05,
                  log_coverage=log_coverage)
        ours = lambda: online_rebel_sgd(env, T, n, 1.0, np.random.default_rng(1), **kw)
        ref = lambda: online_rebel_reference(env, T, n, 1.0, np.random.default_rng(1), **kw)
        ours(), ref()
        t = np.array([(_once(ours), _once(ref)) for _ in range(repeats)])
        t_ours, t_ref, ratio = 1e3 * t[:, 0], 1e3 * t[:, 1], t[:, 1] / t[:, 0]
        j_ours = np.mean([online_rebel_sgd(env, T, n, 1.0, np.random.default_rng(s), **kw).reward[-1, 1] for s in range(5)])
        j_ref = np.mean([online_rebel_reference(env, T, n, 1.0, np.random.default_rng(s), **kw)[2][-1, 1] for s in range(5)])
        print(f"{name:13s} {np.median(t_ours):6.2f} [{t_ours.min():4.2f}-{t_ours.max():5.2f}] "
              f"{np.median(t_ref):6.1f} [{t_ref.min():4.1f}-{t_ref.max():5.1f}] "
              f"{np.median(t_ref) / np.median(t_ours):6.1f}x [{ratio.min():4.1f}-{ratio.max():5.1f}] "
              f"{j_ours:14.4f} {j_ref:13.4f}")


def _load_drorebel():
    """The DRO-REBEL study module (scenarios/drorebel.py of this checkout)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scenarios" / "drorebel.py"
    spec = importlib.util.spec_from_file_location("drorebel_study", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _drorebel_runs(study, replicates: int):
    """(label, [(params, replicate), ...]) per cell type, in the sweep's order."""
    runs = []
    for div in ("w", "kl", "chi2"):
        runs.append((f"rate_n E3 {div} (n = 2^10..2^16)",
                     [(dict(experiment="rate_n", env="E3", div=div, n=n, d=8), r)
                      for n in study.N_QUICK for r in range(replicates)]))
        for d in (2, 16):
            runs.append((f"rate_d E4 {div} d = {d} (n = 2^14)",
                         [(dict(experiment="rate_d", env="E4", div=div, n=2**14, d=d, env_draw=0), r)
                          for r in range(replicates)]))
        runs.append((f"tradeoff E3 {div} slow (n = 2^20..2^26)",
                     [(dict(experiment="tradeoff", env="E3", div=div, schedule="slow", n=n, n0=2**20, d=8), r)
                      for n in study.N_TRADE_QUICK for r in range(replicates)]))
    return runs


def bench_drorebel(repeats: int = 5, replicates: int = 8, master: int = 20261123) -> None:
    study = _load_drorebel()
    scenario = study.SCENARIO
    print(f"DRO-REBEL sample cells, {replicates} replicates per grid point, {repeats} interleaved rounds "
          "(old run, new run): ratio old/new of the median run times [range of per-round ratios]")
    print(f"{'cell type':40s} {'cells':>5s} {'old ms/cell':>12s} {'new ms/cell':>12s} {'speed-up':>18s} "
          f"{'max rel diff':>13s}")
    for label, cells in _drorebel_runs(study, replicates):
        seeds = [scenario.seeds_for(p, r, master) for p, r in cells]

        def old():
            return [drorebel_sample_cell_reference(study, p, s) for (p, _), s in zip(cells, seeds)]

        def new():
            study._LADDERS.clear()  # each run starts with no replicate's ladder drawn
            return [study.cell(p, s) for (p, _), s in zip(cells, seeds)]

        ref, ours = old(), new()  # warm-up: population caches, kernels
        diff = 0.0
        for a, b in zip(ref, ours):
            for k, v in a.items():
                diff = max(diff, abs(b[k] - v) / abs(v))
        t = np.array([(_once(old), _once(new)) for _ in range(repeats)])
        ratio = t[:, 0] / t[:, 1]
        per_cell = 1e3 * np.median(t, axis=0) / len(cells)
        print(f"{label:40s} {len(cells):5d} {per_cell[0]:12.2f} {per_cell[1]:12.2f} "
              f"{np.median(t[:, 0]) / np.median(t[:, 1]):6.2f}x [{ratio.min():4.2f}-{ratio.max():5.2f}] "
              f"{diff:13.2e}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="interleaved timing rounds per variant")
    parser.add_argument("--no-exact", action="store_true", help="skip the exact-inner loop timings")
    parser.add_argument("--drorebel", action="store_true",
                        help="time the DRO-REBEL study's sample cells against their pre-speed-up form instead")
    args = parser.parse_args()
    if args.drorebel:
        bench_drorebel(repeats=args.repeats)
    else:
        main(repeats=args.repeats, exact=not args.no_exact)
