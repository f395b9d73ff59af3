"""Figures and the Markdown report, written from the verdict rows a check produced.

Nothing here evaluates a claim again: every number in the table, the convergence tables and the
claim figures comes from the :class:`~simlab.experiments.claims.CheckRow` objects (which carry their
rate fit). Files are written atomically and only when their bytes change; per-run timings stay out
of the tracked report (they go to the store and the JSON).
"""
from __future__ import annotations

import math
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


def claim_figures(rows: list[CheckRow], outdir: Path) -> dict[str, Path]:
    """One convergence plot per (id, label) whose row carries a rate fit.

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
    out: dict[str, Path] = {}
    for row in rows:
        name = figure_name(row)
        if name in out or row.fit is None:
            continue
        title = f"{name}: {row.quantity}"
        out[name] = plot_rate(row.fit, outdir / f"{name}.png", title, row.x, row.metric, row.predicted, row.cut)
    return out


def study_figures(scenarios: list[Scenario], frames: dict[str, pd.DataFrame], outdir: Path) -> dict[str, list[Path]]:
    """Each scenario's own figures (its ``figures=`` hook), drawn from its stored rows.

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
    dict of str to list of pathlib.Path
        Scenario name -> the files its hooks wrote (scenarios without figures left out).
    """
    out = {}
    for sc in scenarios:
        paths = []
        for fn in sc.figures:
            paths += list(fn(frames.get(sc.name, pd.DataFrame()), outdir))
        if paths:
            out[sc.name] = paths
    return out


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


def write_report(rows: list[CheckRow], figures: dict[str, Path], extra: dict[str, list[Path]],
                 path: Path, mode: str, master: int) -> Path:
    """Markdown report: provenance, the verdict table, then per claim its statement, notes, table and figure.

    Written atomically; left untouched when only the date would change.

    Parameters
    ----------
    rows : list of CheckRow
        Verdict rows.
    figures : dict of str to pathlib.Path
        Convergence plots (:func:`claim_figures`).
    extra : dict of str to list of pathlib.Path
        Study figures (:func:`study_figures`).
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
        if figure_name(r) in figures:
            rel = figures[figure_name(r)].relative_to(base)
            md += [f"![{figure_name(r)}]({rel.as_posix()})", "",
                   f"*Figure: mean of `{r.metric}` over seeds against `{r.x}` (log-log) with its 95% CI band and the "
                   f"seeds' inter-quartile range; the fitted slope {_fmt(r.measured)} (95% CI {ci_text(r)}) over the "
                   f"points past the cut, and the predicted slope {_fmt(r.predicted)}. "
                   f"Vector version: [{rel.with_suffix('.pdf').name}]({rel.with_suffix('.pdf').as_posix()}).*", ""]
    for name, paths in extra.items():
        md += [f"## Study figures: `{name}`", ""]
        md += [f"![{p.stem}]({p.relative_to(base).as_posix()})" for p in paths] + [""]
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
