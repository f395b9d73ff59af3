"""Every speed figure of the README: ``simlab check --quick`` with a cold and a warm numba cache for 1
and 2 workers (and the 1 -> 2 worker speed-up), ``simlab check --full``, a calibration, and the store's
lease + commit rate.

Every check run uses a fresh results store (so every cell is computed); "cold" runs on an empty numba
cache directory, "warm" reruns on the cache the cold run filled. Figures go to one folder for all runs
(as ./figures does), so a run whose rows did not change keeps its figures; each line splits the wall
time into sweeps + verdicts and figures + report. Prints the date, the machine and the load average
(other processes on the machine inflate every figure; compare runs made under the same load; CPU
seconds depend much less on other load than wall time).

    python benchmarks/bench_suite.py                       # quick suite, cold and warm, 1 and 2 workers
    python benchmarks/bench_suite.py dpo rebel --repeats 3 # a subset of claim ids, medians of 3
    python benchmarks/bench_suite.py --full --calibrate    # also --full (warm, 2 workers) and a 30-master calibration
    python benchmarks/bench_suite.py --executor dask       # the same on a 1- and a 2-process LocalCluster
    python benchmarks/bench_suite.py rebel --tree /path/to/before .   # before/after, runs interleaved
"""
from __future__ import annotations

import argparse
import datetime
import re
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_check(tree: Path, ids, workers: int, cache: Path, store: Path, executor: str, figures: bool,
              out: Path, mode: str = "--quick", extra=(), scenarios: Path | None = None) -> tuple[float, float, int, str]:
    """One ``simlab check`` in a subprocess; (wall seconds, CPU seconds of the whole process tree,
    exit code, last summary line). ``scenarios``: the scenario folder (default: the tree's)."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache), PYTHONPATH=str(tree),
               SIMLAB_SCENARIOS=str(scenarios or tree / "scenarios"))
    cmd = [sys.executable, "-m", "simlab.cli", "check", *ids, mode, "--workers", str(workers),
           "--store", str(store), "--no-progress", "--out", str(out), *extra]
    if executor != "local":
        cmd += ["--executor", executor]
    if not figures:
        cmd.append("--no-figures")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, cwd=tree, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    summary = next((ln for ln in res.stdout.splitlines() if " checks: " in ln), res.stderr.strip()[-200:])
    return wall, cpu, res.returncode, summary


def split_wall(wall: float, summary: str) -> str:
    """'sweeps + verdicts X s, figures + report Y s' from the check's own '(X s wall)' summary."""
    m = re.search(r"\(([0-9.]+)s wall\)", summary)
    if not m:
        return ""
    inner = float(m.group(1))
    return f"[sweeps + verdicts {inner:.1f} s, start-up + figures + report {wall - inner:.1f} s]"


def store_rates(cells: int = 2000, batch: int = 64) -> dict[str, float]:
    """Cells per second through the store's lease and commit, one transaction per cell (as the sweep
    did before chunked writes) against one transaction per ``batch`` cells (``lease_many`` /
    ``add_cells``), in this process on fresh temporary stores, alternating so both see the same load."""
    sys.path.insert(0, str(ROOT))
    from simlab.experiments.store import Store

    params, metrics = {"n": 1000, "beta": 0.5, "env": "E1"}, {"err": 0.125, "loss": 0.5, "failed": 0.0}
    times: dict[str, list[float]] = {"single": [], "batched": []}
    with tempfile.TemporaryDirectory(prefix="simlab-store-bench-") as tmp:
        for rep in range(3):
            for mode in times:
                store = Store(Path(tmp) / f"{mode}-{rep}.sqlite")
                keys = [(f"k{i}", i % 7) for i in range(cells)]
                t0 = time.perf_counter()
                if mode == "single":
                    for key, r in keys:
                        store.lease("bench", "fp", 0, key, r)
                        store.add_cell("bench", "fp", 0, key, r, params, metrics, 0.01, 1)
                else:
                    for i in range(0, cells, batch):
                        part = keys[i:i + batch]
                        store.lease_many("bench", "fp", 0, part)
                        store.add_cells("bench", "fp", 0, 1, [(k, r, params, metrics, 0.01) for k, r in part])
                times[mode].append(time.perf_counter() - t0)
                store.close()
    return {mode: cells / statistics.median(ts) for mode, ts in times.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ids", nargs="*", help="claim ids or prefixes (default: every claim)")
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts (default: 1 2)")
    p.add_argument("--executor", choices=("local", "dask"), default="local")
    p.add_argument("--repeats", type=int, default=1, help="runs per configuration; the median is reported")
    p.add_argument("--no-figures", action="store_true", help="pass --no-figures (sweeps and verdicts only)")
    p.add_argument("--tree", type=Path, nargs="+", default=[ROOT],
                   help="source trees to benchmark, interleaved run by run so they share the machine's load "
                        "(default: this checkout)")
    p.add_argument("--warm-only", action="store_true", help="skip the cold-cache runs (one warm-up run first)")
    p.add_argument("--full", action="store_true", help="also time `simlab check --full` (warm cache, fresh store, "
                                                       "the largest --workers)")
    p.add_argument("--calibrate", action="store_true", help="also time `simlab check --calibrate` of the ids "
                                                            "(quick mode, --masters masters, the largest --workers)")
    p.add_argument("--masters", type=int, default=30, help="master seeds of --calibrate (default: 30)")
    p.add_argument("--no-store-rates", action="store_true", help="skip the store's lease + commit rates")
    args = p.parse_args(argv)
    trees = [t.resolve() for t in args.tree]
    print(f"# simlab check --quick {' '.join(args.ids) or '(all claims)'}{' --no-figures' if args.no_figures else ''}: "
          f"{datetime.date.today()}, {platform.node()}, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, executor {args.executor}")
    results: dict[tuple[Path, str, int], list[float]] = {}
    cpus: dict[tuple[Path, str, int], list[float]] = {}
    phases = ["warm"] if args.warm_only else ["cold", "warm"]
    with tempfile.TemporaryDirectory(prefix="simlab-bench-") as tmp:
        tmp = Path(tmp)
        for rep in range(args.repeats):
            for workers in args.workers:
                for ti, tree in enumerate(trees):
                    cache = tmp / f"numba-{ti}-{workers}-{rep}"
                    if args.warm_only:
                        run_check(tree, args.ids, workers, cache, tmp / "pre.sqlite", args.executor, False, tmp / "figs")
                        (tmp / "pre.sqlite").unlink(missing_ok=True)
                    for phase in phases:
                        store = tmp / f"{phase}.sqlite"
                        load0 = os.getloadavg()[0]
                        wall, cpu, code, summary = run_check(tree, args.ids, workers, cache, store, args.executor,
                                                        not args.no_figures, tmp / "figs")
                        load1 = os.getloadavg()[0]
                        results.setdefault((tree, phase, workers), []).append(wall)
                        cpus.setdefault((tree, phase, workers), []).append(cpu)
                        print(f"{tree}: {phase} cache, {workers} worker(s), run {rep + 1}: {wall:7.1f} s wall, "
                              f"{cpu:7.1f} s CPU {split_wall(wall, summary)} "
                              f"(load {load0:.1f} -> {load1:.1f}; exit {code}) {summary}", flush=True)
                        store.unlink(missing_ok=True)
                    if not (args.full or args.calibrate) or rep < args.repeats - 1 or workers != max(args.workers):
                        shutil.rmtree(cache, ignore_errors=True)
        last = max(args.workers)
        for flag, wanted in (("--full", args.full), ("--calibrate", args.calibrate)):
            if not wanted:
                continue
            for ti, tree in enumerate(trees):
                cache = tmp / f"numba-{ti}-{last}-{args.repeats - 1}"  # warm: the last quick runs filled it
                store = tmp / f"{flag[2:]}.sqlite"
                extra = ("--masters", str(args.masters)) if flag == "--calibrate" else ()
                mode = "--quick" if flag == "--calibrate" else "--full"
                # a calibration writes calibration.json beside the scenarios: into a copy, never the tree's
                scen = tmp / f"scenarios-{ti}"
                if flag == "--calibrate" and not scen.exists():
                    shutil.copytree(tree / "scenarios", scen)
                load0 = os.getloadavg()[0]
                wall, cpu, code, summary = run_check(tree, args.ids, last, cache, store, args.executor, flag == "--full",
                                                     tmp / "figs-full", mode, (flag, *extra) if flag == "--calibrate" else extra,
                                                     scen if flag == "--calibrate" else None)
                print(f"{tree}: check {flag}{' (' + str(args.masters) + ' masters)' if extra else ''}, warm cache, "
                      f"{last} worker(s): {wall:7.1f} s wall, {cpu:7.1f} s CPU {split_wall(wall, summary)} "
                      f"(load {load0:.1f} -> {os.getloadavg()[0]:.1f}; exit {code})", flush=True)
                store.unlink(missing_ok=True)
    print("\n# medians")
    for (tree, phase, workers), walls in results.items():
        print(f"{tree}: {phase} cache, {workers} worker(s): {statistics.median(walls):7.1f} s wall, "
              f"{statistics.median(cpus[tree, phase, workers]):7.1f} s CPU ({len(walls)} runs)")
    for tree in trees:
        for phase in phases:
            one, two = results.get((tree, phase, 1)), results.get((tree, phase, 2))
            if one and two:
                print(f"{tree}: {phase} cache speed-up 1 -> 2 workers: "
                      f"{statistics.median(one) / statistics.median(two):.2f}x")
    if not args.no_store_rates:
        rates = store_rates()
        print(f"store: {rates['single']:,.0f} cells/s leased + committed one transaction per cell, "
              f"{rates['batched']:,.0f} cells/s in batches of 64 ({rates['batched'] / rates['single']:.1f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
