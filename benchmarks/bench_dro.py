"""Benchmark of the DRO duals (spec §2): ``simlab.dro.worst_case`` for n = 1e5 atoms (KL, chi^2)
against the plain NumPy/SciPy references in ``benchmarks/reference_dro.py``, and against single
NumPy passes over the losses array (``l.sum()``, ``np.exp(l)``).

Run: ``python benchmarks/bench_dro.py`` (medians of repeated runs; ratios printed).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402

from reference_dro import chi2_worst_case_reference, kl_worst_case_reference  # noqa: E402
from simlab.dro import chi2_worst_case, kl_worst_case  # noqa: E402
from simlab.dro.chi2 import _chi2_active_set_kernel  # noqa: E402
from simlab.dro.kl import _kl_dual_kernel, _support_max_kernel  # noqa: E402


def median_time(fn, repeats: int = 21) -> float:
    fn()  # warm-up (compilation, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def bench_worst_case(n: int = 100_000, radius: float = 0.1, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    l = np.log1p(np.exp(rng.standard_normal(n) * 2.0))  # logistic-loss-like values
    for weights in ("uniform", "dirichlet"):
        p = np.full(n, 1.0 / n) if weights == "uniform" else rng.dirichlet(np.ones(n))
        rows = []
        t_sum = median_time(lambda: l.sum())
        t_exp = median_time(lambda: np.exp(l))
        lmax, pmax, mean, var = _support_max_kernel(l, p)
        for name, ours, ref, core in (
            ("kl", lambda: kl_worst_case(l, p, radius), lambda: kl_worst_case_reference(l, p, radius),
             lambda: _kl_dual_kernel(l, p, lmax, radius, var, 200, np.empty(n))),
            ("chi2", lambda: chi2_worst_case(l, p, radius), lambda: chi2_worst_case_reference(l, p, radius),
             lambda: _chi2_active_set_kernel(l, p, 1 + 2 * radius, mean, 200)),
        ):
            assert abs(ours().value - ref()[0]) <= 1e-9 * (1 + abs(ref()[0]))
            t_ours, t_ref, t_core = median_time(ours), median_time(ref), median_time(core)
            rows.append(dict(divergence=name, weights=weights, n=n, simlab_ms=1e3 * t_ours,
                             dual_only_ms=1e3 * t_core, reference_ms=1e3 * t_ref,
                             speedup=t_ref / t_ours, vs_sum=t_ours / t_sum, vs_exp=t_ours / t_exp,
                             iterations=ours().iterations))
        yield from rows


def main() -> None:
    print(f"{'dual':5s} {'weights':9s} {'n':>7s} {'simlab ms':>10s} {'dual-only':>10s} {'ref ms':>8s} "
          f"{'speedup':>8s} {'x l.sum()':>10s} {'x exp(l)':>9s} {'iters':>6s}")
    for r in bench_worst_case():
        print(f"{r['divergence']:5s} {r['weights']:9s} {r['n']:7d} {r['simlab_ms']:10.3f} "
              f"{r['dual_only_ms']:10.3f} {r['reference_ms']:8.3f} {r['speedup']:8.1f} "
              f"{r['vs_sum']:10.1f} {r['vs_exp']:9.2f} {r['iterations']:6d}")


if __name__ == "__main__":
    main()
