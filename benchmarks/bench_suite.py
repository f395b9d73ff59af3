"""Wall time of ``simlab check --quick`` with a cold and a warm numba cache, for 1 and 2 workers.

Every run uses a fresh results store (so every cell is computed); "cold" runs on an empty numba cache
directory, "warm" reruns on the cache the cold run filled. Prints one line per run, the 1 -> 2 worker
speed-ups, the date, the machine and the load average (other processes on the machine inflate every
figure; compare runs made under the same load).

    python benchmarks/bench_suite.py                       # the whole quick suite, local executor
    python benchmarks/bench_suite.py dpo rebel --repeats 3 # a subset of claim ids, medians of 3
    python benchmarks/bench_suite.py --executor dask       # the same on a 1- and a 2-process LocalCluster
    python benchmarks/bench_suite.py --tree /path/to/other/checkout   # another source tree (before/after)
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_check(tree: Path, ids, workers: int, cache: Path, store: Path, executor: str, figures: bool,
              out: Path) -> tuple[float, int, str]:
    """One ``simlab check --quick`` in a subprocess; (wall seconds, exit code, last summary line)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(tree),
               SIMLAB_SCENARIOS=str(tree / "scenarios"))
    cmd = [sys.executable, "-m", "simlab.cli", "check", *ids, "--quick", "--workers", str(workers),
           "--store", str(store), "--no-progress", "--out", str(out)]
    if executor != "local":
        cmd += ["--executor", executor]
    if not figures:
        cmd.append("--no-figures")
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    summary = next((ln for ln in res.stdout.splitlines() if " checks: " in ln), res.stderr.strip()[-200:])
    return wall, res.returncode, summary


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="*", help="claim ids or prefixes (default: every claim)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration; the median is reported")
    p.add_argument("--no-figures", action="store_true", help="pass --no-figures (sweeps and verdicts only)")
    p.add_argument("--tree", type=Path, default=ROOT, help="source tree to benchmark (default: this checkout)")
    p.add_argument("--warm-only", action="store_true", help="skip the cold-cache runs (one warm-up run first)")
    args = p.parse_args(argv)
    tree = args.tree.resolve()
    print(f"# simlab check --quick {' '.join(args.ids) or '(all claims)'}: {datetime.date.today()}, "
          f"{platform.node()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, executor {args.executor}, tree {tree}")
    results: dict[tuple[str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="simlab-bench-") as tmp:
        tmp = Path(tmp)
        for workers in args.workers:
            for rep in range(args.repeats):
                cache = tmp / f"numba-{workers}-{rep}"
                phases = ["warm"] if args.warm_only else ["cold", "warm"]
                if args.warm_only:
                    run_check(tree, args.ids, workers, cache, tmp / f"pre-{workers}-{rep}.sqlite", args.executor,
                              False, tmp / "figs")
                for phase in phases:
                    store = tmp / f"{phase}-{workers}-{rep}.sqlite"
                    load0 = os.getloadavg()[0]
                    wall, code, summary = run_check(tree, args.ids, workers, cache, store, args.executor,
                                                    not args.no_figures, tmp / "figs")
                    load1 = os.getloadavg()[0]
                    results.setdefault((phase, workers), []).append(wall)
                    print(f"{phase:4} cache, {workers} worker(s), run {rep + 1}: {wall:7.1f} s wall "
                          f"(load {load0:.1f} -> {load1:.1f}; exit {code}) {summary}", flush=True)
                    store.unlink(missing_ok=True)
                shutil.rmtree(cache, ignore_errors=True)
    print("\n# medians")
    for (phase, workers), walls in sorted(results.items()):
        print(f"{phase:4} cache, {workers} worker(s): {statistics.median(walls):7.1f} s")
    for phase in ("cold", "warm"):
        one, two = results.get((phase, 1)), results.get((phase, 2))
        if one and two:
            print(f"{phase} cache speed-up 1 -> 2 workers: {statistics.median(one) / statistics.median(two):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
