"""Command line: ``simlab run | check | list | results | report``.

The command pins BLAS and numba to one thread in its own process before numpy loads, as pool workers
are pinned: with one worker, cells run in this process, and a stored number must not depend on the
worker count (OpenBLAS with several threads rounds some solves differently).
"""
from __future__ import annotations

from simlab.threads import pin_threads

pin_threads()

import argparse  # noqa: E402  (after the thread pinning above)
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

from simlab.experiments.scenario import DEFAULT_MASTER_SEED, Scenario  # noqa: E402


def _mode(args) -> str:
    return "full" if getattr(args, "full", False) else "quick"


def _executor(args) -> dict:
    kind = args.executor or ("dask" if args.scheduler else "local")
    return {"executor": kind, "scheduler": args.scheduler}


def _add_common(p: argparse.ArgumentParser, modes: bool = True) -> None:
    if modes:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--quick", action="store_true", help="quick grid (default; CI-sized)")
        g.add_argument("--full", action="store_true", help="full grid (long sweeps)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--store", default=None, help="results store (default: $SIMLAB_STORE or results/simlab.sqlite)")
    p.add_argument("--master", type=int, default=DEFAULT_MASTER_SEED, help="master seed (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--executor", choices=("local", "dask"), default=None,
                   help="where cells run: local processes (default) or a Dask cluster (needs simlab[dask])")
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="Dask scheduler to run on (implies --executor dask; default: a new LocalCluster "
                        "of --workers processes)")
    _add_scenarios(p)


def _add_scenarios(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scenarios", default=None, metavar="DIR",
                   help="scenario folder to use instead of the registered studies (also $SIMLAB_SCENARIOS)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``simlab`` command and its subcommands.

    Returns
    -------
    argparse.ArgumentParser
        Subcommands ``run``, ``check``, ``list``, ``results``, ``readme`` and ``report``.
    """
    from simlab import __version__

    parser = argparse.ArgumentParser(prog="simlab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"simlab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run a scenario's cells into the store (resumes)")
    p.add_argument("name")
    _add_common(p)

    p = sub.add_parser("check", help="run and judge claims; print verdicts; write JSON, figures, report")
    p.add_argument("ids", nargs="*", help="claim ids or prefixes (default: all)")
    _add_common(p)
    p.add_argument("--json", default=None, help="write the verdict rows to this JSON file")
    p.add_argument("--table", action="store_true", help="print a convergence table per verdict row")
    p.add_argument("--calibrate", action="store_true",
                   help="rerun the claims over 30 master seeds and record the spread of the measured value")
    p.add_argument("--masters", type=int, default=30, help="master seeds for --calibrate (>= 30 to record)")
    p.add_argument("--no-figures", action="store_true", help="skip figures and the report")
    p.add_argument("--out", default=None, help="where figures and REPORT.md go (default: ./figures; a check of "
                                                "selected ids writes into <out>/selection)")
    p.add_argument("--update-baseline", action="store_true",
                   help="rewrite the baseline entries of the checks run (on purpose) and print what changed")

    p = sub.add_parser("list", help="list scenarios and claims")
    _add_scenarios(p)

    p = sub.add_parser("results", help="export a scenario's stored cells as a tidy table (or --describe its columns)")
    p.add_argument("name")
    p.add_argument("--csv", default=None, help="write CSV here (default: print to stdout)")
    p.add_argument("--store", default=None, help="results store to read (default: $SIMLAB_STORE or results/simlab.sqlite)")
    p.add_argument("--master", type=int, default=None, help="only this master seed")
    p.add_argument("--bookkeeping", action="store_true", help="append the columns cell_key and seconds")
    p.add_argument("--describe", action="store_true",
                   help="list the parameters and metrics with their meaning and the claims that use them")
    _add_scenarios(p)

    p = sub.add_parser("readme", help="regenerate the README's generated blocks (scenario table, expected verdicts)")
    p.add_argument("path", nargs="?", default="README.md", help="the README to update (default: %(default)s)")
    p.add_argument("--check", action="store_true", help="only report stale blocks (exit 1 if any)")
    _add_scenarios(p)

    p = sub.add_parser("report", help="write figures/REPORT.md from the stored cells (runs nothing)")
    p.add_argument("ids", nargs="*", help="claim ids or prefixes (default: all; a selection writes <out>/selection)")
    p.add_argument("--full", action="store_true", help="judge the full grid's cells (default: quick)")
    p.add_argument("--store", default=None, help="results store to read")
    p.add_argument("--master", type=int, default=DEFAULT_MASTER_SEED, help="master seed (default: %(default)s)")
    p.add_argument("--out", default=None, help="where figures and REPORT.md go (default: ./figures)")
    _add_scenarios(p)
    return parser


def main(argv=None) -> int:
    """Run one ``simlab`` command.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 when a check's gate fails (or stale README blocks, or uncalibrated
        checks), 2 on a usage error (printed as one line ``simlab: error: ...``) or a scenario file that
        failed to load, 130 after Ctrl-C.
    """
    import os

    args = build_parser().parse_args(argv)
    if getattr(args, "scenarios", None):
        os.environ["SIMLAB_SCENARIOS"] = str(Path(args.scenarios).resolve())
    from simlab.experiments.scenario import LOAD_ERRORS

    LOAD_ERRORS.clear()
    try:
        code = _COMMANDS[args.command](args)
        if LOAD_ERRORS and code == 0:  # a broken scenario file was skipped: the command is not clean
            print(f"simlab: {len(LOAD_ERRORS)} scenario file(s) failed to load (see above)", file=sys.stderr)
            return 2
        return code
    except ValueError as exc:
        print(f"simlab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsimlab: interrupted; finished cells are kept in the store and a re-run resumes",
              file=sys.stderr)
        return 130


def console_main() -> None:
    """The ``simlab`` console script. After Ctrl-C the process ends at once with status 130, once the
    message is flushed: every finished cell is already committed, and the interpreter's shutdown
    (pool and queue finalisers writing to pipes that the interrupted workers closed) is what printed
    "Exception ignored ... OSError: [Errno 9] Bad file descriptor" after the clean message."""
    import os

    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    raise SystemExit(code)


def _cmd_run(args) -> int:
    from simlab.experiments.scenario import load_scenario
    from simlab.experiments.store import Store
    from simlab.experiments.sweep import run_scenario

    sc = load_scenario(args.name)
    store = Store(args.store)
    try:
        stats = run_scenario(sc, _mode(args), args.workers, store, args.master, not args.no_progress,
                             **_executor(args))
    finally:
        store.close()
    print(f"{sc.name} ({_mode(args)}): {stats.total} cells, {stats.skipped} already stored, "
          f"{stats.ran} run in {stats.seconds:.1f}s; store {store.path}")
    return 0


def _cmd_check(args) -> int:
    from simlab.experiments.baseline import gate_passes, update_baseline
    from simlab.experiments.claims import calibrate, check
    from simlab.report import verdict_table

    mode = _mode(args)
    if args.calibrate:
        if args.masters < 30:
            raise ValueError(f"--masters must be >= 30 to calibrate, got {args.masters}")
        out = calibrate(args.ids, mode, args.workers, args.store, args.masters, not args.no_progress,
                        **_executor(args))
        print(f"{'claim|kind|label':56} {'mean':>10} {'sd':>10} {'tol':>6} {'margin/sd':>9} {'pass':>5} calibrated")
        for k, e in out.items():
            print(f"{k:56} {e['mean']:>10.4g} {e['sd']:>10.3g} {e['tol']:>6g} {e['margin_sd']:>9.1f} "
                  f"{e['pass_rate']:>5.2f} {e['calibrated']}")
        bad = [k for k, e in out.items() if not e["calibrated"]]
        if bad:
            print(f"\nnot calibrated (margin < 4 master-seed sds, bias counted): {', '.join(bad)}\n"
                  "buy precision (seeds, grid points) or correct the prediction; never widen tol", file=sys.stderr)
            return 1
        return 0
    t0 = time.perf_counter()
    rows = check(args.ids, mode, args.workers, args.store, args.master, not args.no_progress,
                 **_executor(args))
    print(verdict_table(rows))
    if args.table:
        from simlab.report import convergence_table_text

        for r in rows:
            if r.table:
                print(f"\n{r.id} ({r.kind})\n{convergence_table_text(r)}")
    _print_summary(rows, time.perf_counter() - t0)
    if args.update_baseline:
        changes = update_baseline(rows, mode, args.master)
        print("\nbaseline updated:" if changes else "\nbaseline unchanged")
        for c in changes:
            print(f"  {c}")
    if args.json:
        from simlab.experiments.files import atomic_write_text

        atomic_write_text(args.json, json.dumps({"mode": mode, "master": args.master, "claims": [r.to_json() for r in rows]},
                                                indent=2) + "\n")
    if not args.no_figures:
        path = _write_report(rows, mode, args.store, args.master, args.out, selection=bool(args.ids))
        print(f"report: {path}")
    return 0 if args.update_baseline or gate_passes(rows) else 1


def _print_summary(rows, wall: float) -> None:
    from collections import Counter

    from simlab.experiments.store import provenance

    counts = Counter(r.status for r in rows)
    verdicts = Counter(r.verdict for r in rows)
    print(f"\n{len(rows)} checks: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items()))
          + f" ({wall:.1f}s wall); code fingerprint {provenance()['package_fingerprint']}")
    known = [r for r in rows if r.status == "known finding"]
    if known:
        print("known findings (expected by the baseline; see the README):")
        for r in known:
            print(f"  {r.verdict.upper()}, known finding: {r.key}: {r.finding}")
    bad = [r for r in rows if r.status not in ("ok", "known finding", "report")]
    if bad:
        print("REGRESSIONS against the baseline:")
        for r in bad:
            print(f"  {r.key}: {r.status} (verdict {r.verdict}, expected {r.expected})"
                  + (f"; {r.notes}" if r.notes else ""))
    else:
        print(f"gate: every verdict matches the baseline ({counts.get('ok', 0)} pass, "
              f"{counts.get('known finding', 0)} known findings, {counts.get('report', 0)} report-only)")


def _write_report(rows, mode, store_path, master, out=None, selection=False) -> Path:
    """Figures and REPORT.md from the rows. A check of selected ids writes into ``<out>/selection``
    so it never truncates the full report."""
    from simlab.experiments.claims import scenario_frame
    from simlab.experiments.scenario import load_scenario
    from simlab.experiments.store import Store
    from simlab.report import claim_figures, figures_dir, study_figures, write_report

    store = Store(store_path, create=False)
    try:
        scenarios = [load_scenario(n) for n in dict.fromkeys(r.scenario for r in rows)]
        frames = {sc.name: scenario_frame(sc, store, master, mode) for sc in scenarios}
    finally:
        store.close()
    outdir = Path(out) if out else figures_dir()
    if selection:
        outdir = outdir / "selection"
    figs = claim_figures(rows, outdir)
    extra = study_figures(scenarios, frames, outdir)
    return write_report(rows, figs, extra, outdir / "REPORT.md", mode, master)


def _cmd_list(args) -> int:
    from simlab.experiments.scenario import load_scenario, scenario_names

    from simlab.experiments.scenario import LOAD_ERRORS, ScenarioLoadError

    for name in scenario_names(note=lambda m: print(m, file=sys.stderr)):
        try:
            sc = load_scenario(name)
        except ScenarioLoadError as exc:
            LOAD_ERRORS.append(str(exc))
            print(f"simlab: error: {exc}", file=sys.stderr)
            continue
        q = len(sc.cells("quick"))
        f = len(sc.cells("full"))
        print(f"scenario {name} ({sc.study}): {sc.description} [{q} quick / {f} full cells]")
        for c in sc.claims:
            name_label = c.id + (f" [{c.label}]" if c.label else "")
            print(f"  claim {name_label:48} {c.kind:24} predicted {c.predicted:g}  tol {c.tol:g}")
    return 0


def _cmd_results(args) -> int:
    from simlab.experiments.results import describe_text, results
    from simlab.experiments.scenario import load_scenario

    sc = load_scenario(args.name)
    if args.describe:
        print(describe_text(sc, _stored_columns(sc, args.store, args.master)))
        return 0
    df = results(sc, args.store, args.master, bookkeeping=args.bookkeeping)
    if args.csv:
        df.to_csv(args.csv, index=False)
        print(f"wrote {len(df)} rows to {args.csv}")
    else:
        print(df.to_string(max_rows=40))
    return 0


def _stored_columns(sc, store, master) -> list[str]:
    """Column names of the scenario's stored rows, or none when the store does not exist (``--describe``
    then lists the declared columns only and says so on stderr)."""
    from simlab.experiments.results import results
    from simlab.experiments.store import StoreError

    try:
        return list(results(sc, store, master).columns)
    except StoreError as exc:
        print(f"simlab: note: {exc}; listing the declared columns only", file=sys.stderr)
        return []


def _cmd_report(args) -> int:
    from simlab.experiments.claims import check

    mode = "full" if args.full else "quick"
    rows = check(args.ids, mode, store_path=args.store, master=args.master, progress=False, run=False)
    print(f"report: {_write_report(rows, mode, args.store, args.master, args.out, selection=bool(args.ids))}")
    return 0


def _cmd_readme(args) -> int:
    from simlab.report import update_readme

    stale = update_readme(Path(args.path), check_only=args.check)
    if args.check:
        print(f"stale blocks: {', '.join(stale)}" if stale else "README blocks are up to date")
        return 1 if stale else 0
    print(f"updated blocks: {', '.join(stale)}" if stale else "README blocks were up to date")
    return 0


_COMMANDS = {"readme": _cmd_readme, "run": _cmd_run, "check": _cmd_check, "list": _cmd_list, "results": _cmd_results,
             "report": _cmd_report}


def scenario_main(scenario: Scenario, argv=None) -> int:
    """Entry point of ``python scenarios/NAME.py [--quick|--full] [--workers N]``: run, then check the scenario's claims.

    Parameters
    ----------
    scenario : Scenario
        The scenario of the file being run.
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status of :func:`main`.
    """
    import os

    os.environ.setdefault("SIMLAB_SCENARIOS", str(Path(scenario.path or sys.argv[0]).resolve().parent))
    p = argparse.ArgumentParser(prog=f"python scenarios/{scenario.name}.py")
    _add_common(p)
    args = p.parse_args(argv)
    mode = _mode(args)
    ids = sorted({c.id for c in scenario.claims})
    head = ["check", *ids] if ids else ["run", scenario.name]
    argv2 = head + [f"--{mode}", "--master", str(args.master)]
    if args.workers:
        argv2 += ["--workers", str(args.workers)]
    if args.store:
        argv2 += ["--store", args.store]
    if args.no_progress:
        argv2.append("--no-progress")
    if args.executor:
        argv2 += ["--executor", args.executor]
    if args.scheduler:
        argv2 += ["--scheduler", args.scheduler]
    return main(argv2)


if __name__ == "__main__":
    console_main()
