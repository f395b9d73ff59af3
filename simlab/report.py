"""Figures and the Markdown report, written from the verdict rows a check produced.

Nothing here evaluates a claim again: every number in the table, the convergence tables and the
claim figures comes from the :class:`~simlab.experiments.claims.CheckRow` objects (which carry their
rate fit). Files are written atomically and only when their bytes change; per-run timings stay out
of the tracked report (they go to the store and the JSON).
"""
from __future__ import annotations

import inspect
import math
import os
import re
import time
from pathlib import Path

import pandas as pd

from simlab.experiments.claims import CheckRow
from simlab.experiments.files import atomic_write_text
from simlab.experiments.scenario import Scenario
from simlab.plots.rates import plot_rate

MARGIN_CAP = 100.0
DATE_PREFIX = "- date: "


def figures_dir() -> Path:
    """``figures/`` under the current directory (the repo root when run as documented).

    Returns
    -------
    pathlib.Path
        The default folder of figures and REPORT.md.
    """
    return Path.cwd() / "figures"


def figure_name(row: CheckRow) -> str:
    """File stem of a verdict row's convergence plot: the id, plus the label when rows share the id.

    Parameters
    ----------
    row : CheckRow
        A verdict row.

    Returns
    -------
    str
        ``id`` or ``id--label`` (the label reduced to file-name characters).
    """
    slug = re.sub(r"[^A-Za-z0-9.=-]+", "_", row.label).strip("_")
    return row.id + (f"--{slug}" if slug else "")


FIGURE_INPUTS = ".figure-inputs.json"  # beside the figures: {figure key: digest of what drew it, files}
PARALLEL_FIGURES = 6  # draw in a process pool from this many figures to draw on


def _digest(h, obj) -> None:
    """Feed ``obj`` (numbers, strings, arrays, frames, dataclasses and containers of them) into the
    hash ``h`` exactly: floats by their round-trip repr, arrays and frames by their bytes."""
    import dataclasses

    import numpy as np

    if isinstance(obj, pd.DataFrame):
        h.update(repr((list(obj.columns), [str(t) for t in obj.dtypes])).encode())
        h.update(pd.util.hash_pandas_object(obj, index=False).to_numpy().tobytes())
    elif isinstance(obj, np.ndarray):
        h.update(repr((obj.dtype.str, obj.shape)).encode())
        h.update(np.ascontiguousarray(obj).tobytes())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(type(obj).__name__.encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode() + b"=")
            _digest(h, getattr(obj, f.name))
    elif isinstance(obj, dict):
        for k in sorted(obj, key=repr):
            _digest(h, k)
            _digest(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"{type(obj).__name__}{len(obj)}(".encode())
        for v in obj:
            _digest(h, v)
    else:
        h.update(repr(obj).encode())
    h.update(b"\0")


def _inputs_digest(*parts) -> str:
    import hashlib

    h = hashlib.sha256()
    for part in parts:
        _digest(h, part)
    return h.hexdigest()[:24]


def _plot_code_digest() -> str:
    """What else decides a figure besides its data: the plotting code (``simlab/plots``, and the rate
    fit a convergence plot draws from, ``simlab/experiments/rates.py``) and the matplotlib version."""
    import hashlib

    import matplotlib

    h = hashlib.sha256(matplotlib.__version__.encode())
    package = Path(__file__).resolve().parent
    for path in [*sorted(package.joinpath("plots").glob("*.py")), package / "experiments" / "rates.py"]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


class _FigureInputs:
    """The record of what drew each figure in ``outdir`` (a JSON file beside them): a figure whose
    inputs digest is unchanged and whose files all exist is not drawn again."""

    def __init__(self, outdir: Path):
        import json

        self.path = outdir / FIGURE_INPUTS
        try:
            self.entries = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except ValueError:
            self.entries = {}

    def current(self, key: str, digest: str) -> list[Path] | None:
        """The files recorded for ``key`` if they were drawn from ``digest`` and all still exist."""
        e = self.entries.get(key)
        if not e or e.get("digest") != digest:
            return None
        paths = [self.path.parent / f for f in e["files"]]
        stems = [p.with_suffix(sfx) for p in paths for sfx in (".png", ".pdf")] if e.get("pdf") else paths
        return paths if all(p.is_file() for p in stems) else None

    def record(self, key: str, digest: str, paths, pdf: bool) -> None:
        """Record that ``paths`` were drawn from ``digest`` (not when a file lies outside the folder)."""
        try:
            files = [Path(p).resolve().relative_to(self.path.parent.resolve()).as_posix() for p in paths]
        except ValueError:
            self.entries.pop(key, None)
            return
        self.entries[key] = {"digest": digest, "files": files, "pdf": pdf}

    def save(self) -> None:
        import json

        if self.entries or self.path.is_file():
            atomic_write_text(self.path, json.dumps(self.entries, indent=1, sort_keys=True) + "\n")


def _draw(tasks: list) -> list:
    """Run drawing tasks ``(function, args)``; in a spawned process pool when there are enough of
    them (each task writes its own files, atomically), else here. Results in task order."""
    if len(tasks) < PARALLEL_FIGURES or (os.cpu_count() or 1) < 2:
        return [fn(*args) for fn, args in tasks]
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(max_workers=min(os.cpu_count() or 1, 4, len(tasks)),
                             mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(fn, *args) for fn, args in tasks]
        return [f.result() for f in futures]


def claim_figures(rows: list[CheckRow], outdir: Path) -> dict[str, Path]:
    """One convergence plot per (id, label) whose row carries a rate fit.

    A plot whose inputs (the fit, its labels, the plotting code) are those it was last drawn from
    (recorded in ``outdir/.figure-inputs.json``) and whose files exist is kept, not redrawn; the
    plots to draw are drawn in a process pool when there are several.

    Parameters
    ----------
    rows : list of CheckRow
        Verdict rows.
    outdir : pathlib.Path
        Where the PNG and PDF files go.

    Returns
    -------
    dict of str to pathlib.Path
        Figure name -> PNG path.
    """
    record = _FigureInputs(outdir)
    code = _plot_code_digest()
    out: dict[str, Path] = {}
    todo = []
    for row in rows:
        name = figure_name(row)
        if name in out or row.fit is None:
            continue
        title = f"{name}: {row.quantity}"
        args = (row.fit, outdir / f"{name}.png", title, row.x, row.metric, row.predicted, row.cut)
        # the output file by its name only: a clone elsewhere must find the same digests (no redraw)
        digest = _inputs_digest(code, args[:1] + tuple(a.name if isinstance(a, Path) else a for a in args[1:]))
        kept = record.current(f"claim:{name}", digest)
        out[name] = kept[0] if kept else args[1]
        if not kept:
            todo.append((name, digest, args))
    for (name, digest, _), path in zip(todo, _draw([(plot_rate, args) for _, _, args in todo])):
        out[name] = path
        record.record(f"claim:{name}", digest, [path], pdf=True)
    record.save()
    return out


def _study_figure(scenario_name: str, scenario_dir: str, index: int, frame: pd.DataFrame, outdir: Path) -> list[Path]:
    """Draw figure ``index`` of a scenario's ``figures=`` (loaded by name: a pool worker cannot
    unpickle a function of a scenario file)."""
    from simlab.experiments.scenario import load_scenario

    os.environ["SIMLAB_SCENARIOS"] = scenario_dir
    return list(load_scenario(scenario_name).figures[index](frame, outdir))


def study_figures(scenarios: list[Scenario], frames: dict[str, pd.DataFrame],
                  outdir: Path) -> dict[str, list[tuple[Path, str]]]:
    """Each scenario's own figures (its ``figures=`` hook), drawn from its stored rows.

    A hook whose inputs (the scenario's rows without their timings and fingerprints, the scenario's
    own source (:func:`~simlab.experiments.fingerprint.scenario_source_fingerprint`), the plotting
    code) are those it last drew from (recorded in ``outdir/.figure-inputs.json``) and whose files exist
    is not called again; the hooks to call run in a process pool when there are several.

    Parameters
    ----------
    scenarios : list of Scenario
        The scenarios of the report.
    frames : dict of str to pandas.DataFrame
        Scenario name -> its stored rows (a missing name gives an empty frame).
    outdir : pathlib.Path
        Where the figures go.

    Returns
    -------
    dict of str to list of (pathlib.Path, str)
        Scenario name -> the files its hooks wrote, each with its caption (:func:`figure_caption`);
        scenarios without figures left out.
    """
    from simlab.experiments.fingerprint import scenario_source_fingerprint

    record = _FigureInputs(outdir)
    code = _plot_code_digest()
    found: dict[tuple[str, int], list[Path]] = {}
    todo = []
    for sc in scenarios:
        frame = frames.get(sc.name, pd.DataFrame())
        rows = frame.drop(columns=[c for c in ("seconds", "fingerprint") if c in frame.columns])
        rows = rows[sorted(rows.columns)]  # the column order follows the order cells finished in: not an input
        digest = _inputs_digest(code, scenario_source_fingerprint(sc), rows)  # not the folder: clones share digests
        for i, fn in enumerate(sc.figures):
            key = f"study:{sc.name}:{i}:{getattr(fn, '__name__', '')}"
            kept = record.current(key, digest)
            if kept is not None:
                found[sc.name, i] = kept
            elif sc.path:
                todo.append((key, digest, (sc.name, i), (_study_figure, (sc.name, str(Path(sc.path).parent), i, frame, outdir))))
            else:  # a scenario without a file (defined in a session): drawn here
                todo.append((key, digest, (sc.name, i), (lambda f, o, fn=fn: list(fn(f, o)), (frame, outdir))))
    local = [t for t in todo if t[3][0] is not _study_figure]
    pooled = [t for t in todo if t[3][0] is _study_figure]
    for group, results in ((pooled, _draw([t[3] for t in pooled])), (local, [fn(*a) for _, _, _, (fn, a) in local])):
        for (key, digest, where, _), paths in zip(group, results):
            found[where] = [Path(p) for p in paths]
            record.record(key, digest, paths, pdf=False)
    record.save()
    out = {}
    for sc in scenarios:
        figs = [(p, figure_caption(fn)) for i, fn in enumerate(sc.figures) for p in found.get((sc.name, i), [])]
        if figs:
            out[sc.name] = figs
    return out


def figure_caption(hook) -> str:
    """The caption of a study figure: the first paragraph of its hook's docstring, on one line.

    Parameters
    ----------
    hook : callable
        A scenario's figure hook.

    Returns
    -------
    str
        The caption ('' for a hook without a docstring).
    """
    doc = inspect.getdoc(hook) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def ci_text(row: CheckRow) -> str:
    """The CI for people: ``exact`` for a deterministic value (degenerate CI), ``n/a`` without one.

    Parameters
    ----------
    row : CheckRow
        A verdict row.

    Returns
    -------
    str
        ``[low, high]``, ``exact`` or ``n/a``.
    """
    lo, hi = row.ci
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return "n/a"
    if lo == hi:
        return "exact"
    return f"[{_fmt(lo)}, {_fmt(hi)}]"


def verdict_text(row: CheckRow) -> str:
    """Verdict with its gate status: ``PASS``, ``FAIL, known finding``, ``PASS, finding now passes``...

    Parameters
    ----------
    row : CheckRow
        A verdict row.

    Returns
    -------
    str
        The upper-case verdict, followed by the status unless it is ``ok``, ``report`` or ``not run``.
    """
    v = row.verdict.upper()
    if row.status in ("ok", "report", "not run"):
        return v
    return f"{v}, {row.status}"


def margin_text(row: CheckRow) -> str:
    """Calibration margin in master-seed sds (bias counted), capped for reading.

    Parameters
    ----------
    row : CheckRow
        A verdict row.

    Returns
    -------
    str
        The margin and the number of masters; ``exact`` for a deterministic check, ``no record`` without
        a calibration record.
    """
    cal = row.calibration
    if not cal:
        return "no record"
    m = cal["margin_sd"]
    if cal.get("sd", 1.0) == 0:
        txt = "exact" if m > 0 else "exact, boundary crossed"
    elif m > MARGIN_CAP:
        txt = f"> {MARGIN_CAP:g}"
    else:
        txt = f"{m:.1f}" + ("" if m >= 4 else " (< 4: not calibrated)")
    return f"{txt}, {cal['masters']} masters"


def verdict_table(rows: list[CheckRow]) -> str:
    """Plain-text table: id, kind, predicted, measured with CI, verdict with its gate status.

    Parameters
    ----------
    rows : list of CheckRow
        Verdict rows.

    Returns
    -------
    str
        The table, one line per row under a header.
    """
    head = f"{'claim':50} {'kind':24} {'predicted':>9} {'measured':>10} {'95% CI':>22}  verdict"
    lines = [head, "-" * (len(head) + 16)]
    for r in rows:
        name = f"{r.id} [{r.label}]" if r.label else r.id
        lines.append(f"{name:50} {r.kind:24} {_fmt(r.predicted):>9} {_fmt(r.measured):>10} {ci_text(r):>22}  "
                     f"{verdict_text(r)}")
    return "\n".join(lines)


def convergence_table_text(row: CheckRow) -> str:
    """deal.II-style convergence table for one verdict row.

    Parameters
    ----------
    row : CheckRow
        A verdict row.

    Returns
    -------
    str
        Grid value, mean, standard error and local rate per point, then the fitted slope; empty for a
        row without a rate fit.
    """
    if not row.table:
        return ""
    lines = [f"{row.x or 'x':>10} {'mean':>12} {'std.err':>11} {'local rate':>11}"]
    for t in row.table:
        lines.append(f"{t['x']:>10.6g} {t['mean']:>12.5g} {t['stderr']:>11.3g} {_fmt(t['local_rate']):>11}")
    lines.append(f"fitted slope {_fmt(row.measured)}, 95% CI {ci_text(row)}")
    return "\n".join(lines)


def provenance_lines(rows: list[CheckRow], mode: str, master: int) -> list[str]:
    """Report header: git hash, code fingerprints, master seed, library versions, date.

    Parameters
    ----------
    rows : list of CheckRow
        Verdict rows.
    mode : {"quick", "full"}
        The grid judged.
    master : int
        The master seed.

    Returns
    -------
    list of str
        Markdown list items.
    """
    from simlab.experiments.store import provenance

    prov = provenance()
    fps = sorted({f"`{r.scenario}` {r.fingerprint}" for r in rows})
    libs = ", ".join(f"{k} {prov[k]}" for k in ("python", "numpy", "scipy", "numba"))
    return [f"- git: `{prov.get('git', 'not a git checkout')}`",
            f"- package fingerprint: `{prov['package_fingerprint']}`; scenario fingerprints: {', '.join(fps)}",
            f"- mode: {mode}; master seed: {master}",
            f"- simlab {prov['simlab']}; {libs}",
            f"{DATE_PREFIX}{time.strftime('%Y-%m-%d')}"]


def _same_but_date(old: str, new: str) -> bool:
    strip = lambda text: [ln for ln in text.splitlines() if not ln.startswith(DATE_PREFIX)]
    return strip(old) == strip(new)


def write_report(rows: list[CheckRow], figures: dict[str, Path], extra: dict[str, list[tuple[Path, str]]],
                 path: Path, mode: str, master: int) -> Path:
    """Markdown report: provenance, the verdict table, then per claim its statement, notes, table and figure.

    Written atomically; left untouched when only the date would change.

    Parameters
    ----------
    rows : list of CheckRow
        Verdict rows.
    figures : dict of str to pathlib.Path
        Convergence plots (:func:`claim_figures`).
    extra : dict of str to list of (pathlib.Path, str)
        Study figures with their captions (:func:`study_figures`).
    path : pathlib.Path
        The report file; figure links are relative to its folder.
    mode : {"quick", "full"}
        The grid judged.
    master : int
        The master seed.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    base = path.parent
    md = [f"# simlab verdicts ({mode} mode)", "",
          "Generated by `simlab check`; every number below comes from cells stored in the results store "
          "under the code fingerprints listed here.", "", *provenance_lines(rows, mode, master), "",
          "| claim | kind | predicted | measured | 95% CI | tol | verdict | calibration margin / sd |",
          "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| `{r.id}`{' ' + r.label if r.label else ''} | {r.kind} | {_fmt(r.predicted)} | "
                  f"{_fmt(r.measured)} | {ci_text(r)} | {_fmt(r.tol)} | **{verdict_text(r)}** | {margin_text(r)} |")
    md.append("")
    for r in rows:
        md += [f"## `{r.id}` ({r.kind}{', ' + r.label if r.label else ''})", "", f"*{r.paper}*", "",
               r.statement, "",
               f"Quantity: {r.quantity} (metric `{r.metric}`" + (f" against `{r.x}`" if r.x else "")
               + f"; scenario `{r.scenario}`).", "",
               f"Verdict: **{verdict_text(r)}**" + (f". Known finding: {r.finding}" if r.finding else "."), ""]
        if r.notes:
            md += [f"Notes: {r.notes}", ""]
        if r.extra:
            md += ["Also measured: " + ", ".join(f"{k} = {_fmt(v) if not isinstance(v, list) else [round(x, 4) for x in v]}"
                                                 for k, v in r.extra.items()), ""]
        table = convergence_table_text(r)
        if table:
            md += ["```", table, "```", ""]
        if r.fit is not None and figure_name(r) in figures:  # a row without a rate fit has no convergence plot
            rel = figures[figure_name(r)].relative_to(base)
            md += [f"![{figure_name(r)}]({rel.as_posix()})", "",
                   f"*Figure: mean of `{r.metric}` over seeds against `{r.x}` (log-log) with its 95% CI band and the "
                   f"seeds' inter-quartile range; the fitted slope {_fmt(r.measured)} (95% CI {ci_text(r)}) over the "
                   f"points past the cut, and the predicted slope {_fmt(r.predicted)}. "
                   f"Vector version: [{rel.with_suffix('.pdf').name}]({rel.with_suffix('.pdf').as_posix()}).*", ""]
    for name, figs in extra.items():
        md += [f"## Study figures: `{name}`", ""]
        for p, caption in figs:
            md += [f"![{p.stem}]({p.relative_to(base).as_posix()})", ""]
            if caption:
                md += [f"*Figure: {caption}*", ""]
    text = "\n".join(md) + "\n"
    if not (path.is_file() and _same_but_date(path.read_text(), text)):
        atomic_write_text(path, text)
    return path


# ------------------------------------------------------------------ README blocks

def _block_scenarios() -> str:
    from simlab.experiments.scenario import all_claims, scenario_names, load_scenario

    all_claims()  # loads every file (a broken one is reported, not fatal)
    lines = ["| scenario | study | quick / full cells | claims |", "|---|---|---|---|"]
    for name in scenario_names():
        try:
            sc = load_scenario(name)
        except ValueError:
            continue
        ids = ", ".join(f"`{i}`" for i in dict.fromkeys(c.id for c in sc.claims))
        lines.append(f"| `{name}` | {sc.study} | {len(sc.cells('quick'))} / {len(sc.cells('full'))} | {ids} |")
    return "\n".join(lines)


def _block_verdicts() -> str:
    """The expected quick-mode verdicts as committed in the baseline (what `simlab check --quick`
    must reproduce), with the known findings spelled out."""
    from simlab.experiments.baseline import baseline_path, load_baseline
    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    data = load_baseline(baseline_path())
    entries = data.get("quick", {})
    pairs = [p for p in all_claims() if "quick" in p[1].modes]
    counts: dict[str, int] = {}
    lines = ["| claim | check | predicted | tol | baseline verdict | measured |", "|---|---|---|---|---|---|"]
    findings = []
    for _, c in pairs:
        e = entries.get(calibration_key(c), {"verdict": "pass (no baseline entry)"})
        v = e["verdict"]
        counts[v.split(" ")[0]] = counts.get(v.split(" ")[0], 0) + 1
        shown = f"**{v.upper()}**, known finding" if v not in ("pass", "report") and "finding" in e else v.upper()
        name = f"`{c.id}`" + (f" [{c.label}]" if c.label else "")
        lines.append(f"| {name} | {c.kind} | {c.predicted:g} | {c.tol:g} | {shown} | {_fmt(e.get('measured'))} |")
        if "finding" in e:
            findings.append(f"- `{calibration_key(c)}`: {e['finding']}")
    head = (f"`simlab check --quick` (master seed {data.get('master', 'n/a')}) is expected to reproduce these "
            f"verdicts exactly: {len(pairs)} checks, " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
            + ". Any difference (a regression, a known finding that starts passing, drift) exits 1.")
    return "\n".join([head, "", *lines] + (["", "Known findings:", *findings] if findings else []))


README_BLOCKS = {"scenarios": _block_scenarios, "verdicts": _block_verdicts}


def update_readme(path: Path, check_only: bool = False) -> list[str]:
    """Regenerate the README's generated blocks (``<!-- NAME:start -->`` ... ``<!-- NAME:end -->``).

    The blocks come from the scenario files and the committed baseline.

    Parameters
    ----------
    path : pathlib.Path
        The README.
    check_only : bool, default False
        Only report the stale blocks; write nothing.

    Returns
    -------
    list of str
        Names of the stale blocks (written unless ``check_only``).

    Raises
    ------
    ValueError
        If a block's markers are missing.
    """
    text = Path(path).read_text()
    stale = []
    for name, make in README_BLOCKS.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if start not in text or end not in text:
            raise ValueError(f"{path} has no generated block {name!r} ({start} ... {end})")
        i, j = text.index(start) + len(start), text.index(end)
        new = "\n" + make() + "\n"
        if text[i:j] != new:
            stale.append(name)
            text = text[:i] + new + text[j:]
    if stale and not check_only:
        atomic_write_text(path, text)
    return stale
