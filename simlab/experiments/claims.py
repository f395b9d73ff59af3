"""Turning stored rows into verdict rows, running what a check needs, and calibrating tolerances.

``check`` runs each needed scenario (the sweep skips cells stored under the current code
fingerprint), evaluates every selected claim once from those rows, and returns one
:class:`CheckRow` per check. A row carries everything the table, the JSON, the figures and the report
need (measurement, CI, verdict, fit, convergence table, calibration margin), so nothing downstream
evaluates again. Verdicts are ``pass`` / ``fail`` / ``inconclusive`` (rules in
:mod:`simlab.experiments.rates`), ``report`` for report-only claims and ``not run`` for claims
without stored rows.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simlab.experiments.files import atomic_write_text
from simlab.experiments.fingerprint import refuse_package_write, scenario_fingerprint
from simlab.experiments.rates import (
    FAIL, INCONCLUSIVE, PASS, RateFit, as_verdict, fit_rate, mean_with_ci, verdict_identity,
    verdict_identity_in_expectation, verdict_ordering, verdict_tight, verdict_upper)
from simlab.experiments.scenario import DEFAULT_MASTER_SEED, Claim, Scenario, cell_key, select_claims
from simlab.experiments.store import Store
from simlab.experiments.sweep import SweepJob, run_sweeps

CALIBRATION_MASTERS = 30
CALIBRATED_SDS = 4.0
NOT_RUN, REPORT = "not run", "report"


@dataclass
class Measurement:
    """What a claim's evaluation produced: the measured value, its CI, the verdict and details.

    ``verdict`` is ``"pass"``, ``"fail"`` or ``"inconclusive"`` (a bool is accepted: True = pass)."""

    measured: float
    ci: tuple[float, float]
    verdict: str | bool
    notes: str = ""
    fit: RateFit | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.verdict = as_verdict(self.verdict)

    @classmethod
    def undefined(cls, note: str) -> "Measurement":
        """A measurement that could not be made (NaN value and CI), judged ``fail`` with ``note``.

        Parameters
        ----------
        note : str
            Why it could not be made.

        Returns
        -------
        Measurement
            The failing measurement.
        """
        return cls(float("nan"), (float("nan"), float("nan")), FAIL, note)

    @property
    def passed(self) -> bool:
        """Whether the verdict is ``pass``."""
        return self.verdict == PASS


@dataclass
class CheckRow:
    """One verdict row. ``status`` compares the verdict with the committed baseline (see
    :mod:`simlab.experiments.baseline`): ``ok``, ``known finding``, ``report``, ``regression``,
    ``finding now passes``, ``drift`` or ``not run``."""

    id: str
    kind: str
    label: str
    predicted: float
    measured: float
    ci: list
    verdict: str
    seconds: float
    tol: float
    scenario: str
    metric: str
    x: str | None
    statement: str
    paper: str
    quantity: str
    notes: str
    extra: dict
    fingerprint: str
    table: list | None = None
    calibration: dict | None = None
    expected: str = PASS
    status: str = "ok"
    finding: str = ""
    fit: RateFit | None = field(default=None, repr=False)
    cut: float | None = None

    @property
    def key(self) -> str:
        """The check's key ``id|kind`` or ``id|kind|label`` (see :func:`calibration_key`)."""
        return calibration_key(self)

    def to_json(self) -> dict:
        """The row as JSON-ready data (the fit object left out; NumPy scalars and arrays converted).

        Returns
        -------
        dict
            Field name -> value.
        """
        out = asdict(self)
        out.pop("fit")
        return json.loads(json.dumps(out, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def claim_rows(df: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """Rows of the scenario's frame that the claim uses (its ``where`` filter).

    Parameters
    ----------
    df : pandas.DataFrame
        The scenario's rows.
    claim : Claim
        Its ``where`` maps a column to a value, or to a predicate applied to each value of the column.

    Returns
    -------
    pandas.DataFrame
        The selected rows (none if a ``where`` column is missing).
    """
    for k, v in claim.where.items():
        if k not in df.columns:
            return df.iloc[0:0]
        df = df[df[k].map(v).astype(bool)] if callable(v) else df[df[k] == v]
    return df


def claim_cells(scenario: Scenario, claims, mode: str) -> list[tuple[dict, int]]:
    """The cells of ``mode`` that some of ``claims`` use: those whose params pass a claim's ``where`` filter.

    The filter is applied as in :func:`claim_rows`; a ``where`` key that is not a parameter of the cell
    (a metric, say) cannot be decided before the cell runs, so it keeps the cell.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    claims : iterable of Claim
        Claims of that scenario.
    mode : {"quick", "full"}
        The grid.

    Returns
    -------
    list of (dict, int)
        (params, replicate) of the cells to run.
    """
    def used(params, claim) -> bool:
        return all(k not in params or (bool(v(params[k])) if callable(v) else params[k] == v)
                   for k, v in claim.where.items())

    return [(p, r) for p, r in scenario.cells(mode) if any(used(p, c) for c in claims)]


def evaluate_claim(df: pd.DataFrame, claim: Claim) -> Measurement:
    """Judge ``claim`` on its rows (built-in kinds, or the claim's own ``evaluate``).

    The caller handles claims without rows (see :func:`judge`). The verdict rules are those of
    :mod:`simlab.experiments.rates`; failed fits past the cut (or failed cells) make the verdict ``fail``.

    Parameters
    ----------
    df : pandas.DataFrame
        The scenario's rows (the claim's ``where`` filter is applied here).
    claim : Claim
        The claim.

    Returns
    -------
    Measurement
        Measured value, CI, verdict, notes, the rate fit (rate kinds) and extras (slopes of ``also``).

    Raises
    ------
    ValueError
        If the claim's metric is not a stored column.
    """
    rows = claim_rows(df, claim)
    if claim.evaluate is not None:
        return claim.evaluate(rows)
    if claim.metric not in rows.columns:
        raise ValueError(f"claim {claim.id!r}: metric {claim.metric!r} is not among the stored columns")
    if claim.kind in ("tight", "upper") or (claim.kind == REPORT and claim.x is not None):
        fit = fit_rate(rows[claim.x].to_numpy(), rows[claim.metric].to_numpy(),
                       rows["replicate"].to_numpy(), claim.cut)
        if claim.kind == "tight":
            verdict, note = verdict_tight(fit.ci, claim.predicted, claim.tol)
        elif claim.kind == "upper":
            verdict, note = verdict_upper(fit.ci, claim.predicted, claim.tol, claim.direction)
        else:
            verdict, note = PASS, ""
        fails = int(fit.failures.sum())
        if fails:
            verdict = FAIL
            note = (note + "; " if note else "") + f"{fails} failed fits past the cut"
        extra = {"slope_median": fit.slope_median}
        for m in claim.also:
            if m in rows.columns:
                f2 = fit_rate(rows[claim.x].to_numpy(), rows[m].to_numpy(), rows["replicate"].to_numpy(), claim.cut)
                extra[f"slope[{m}]"] = f2.slope
                extra[f"ci[{m}]"] = list(f2.ci)
        return Measurement(fit.slope, fit.ci, verdict, note, fit, extra)
    values = rows[claim.metric].to_numpy(dtype=float)
    if claim.kind == "identity":
        worst = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else float("nan")
        if not np.all(np.isfinite(values)):
            worst = float("nan")
        verdict, note = verdict_identity(worst, claim.tol)
        return Measurement(worst, (worst, worst), verdict, note, extra={"cells": int(values.size)})
    mean, ci, fails = mean_with_ci(values)
    if claim.kind == "identity-in-expectation":
        verdict, note = verdict_identity_in_expectation(ci, claim.predicted, claim.tol)
    elif claim.kind == "ordering":
        verdict, note = verdict_ordering(ci, claim.side, claim.tol)
    else:
        verdict, note = PASS, ""
    if fails:
        verdict, note = FAIL, (note + "; " if note else "") + f"{fails} failed cells"
    return Measurement(mean, ci, verdict, note, None, {"seeds": int(values.size)})


def convergence_table(fit: RateFit) -> list[dict]:
    """deal.II-style convergence table of a rate fit.

    Parameters
    ----------
    fit : RateFit
        The fit of :func:`simlab.experiments.rates.fit_rate`.

    Returns
    -------
    list of dict
        One row per grid value: ``x``, ``mean``, ``stderr`` and ``local_rate``.
    """
    rates = fit.local_rates()
    se = dict(zip(fit.x, fit.stderr))
    return [{"x": float(x), "mean": float(m), "stderr": float(se.get(x, np.nan)),
             "local_rate": float(r)} for x, m, r in zip(fit.x_all, fit.mean_all, rates)]


def scenario_frame(scenario: Scenario, store: Store, master: int, mode: str | None = None) -> pd.DataFrame:
    """The scenario's rows stored under its current code fingerprint for this master seed.

    Rows of other fingerprints never enter a verdict. Rows are sorted by (cell_key, replicate), so a
    verdict does not depend on the order in which cells finished.

    Parameters
    ----------
    scenario : Scenario
        The scenario.
    store : Store
        An open results store.
    master : int
        The master seed.
    mode : {"quick", "full"}, optional
        Keep only the cells of this grid.

    Returns
    -------
    pandas.DataFrame
        Flat rows as :meth:`simlab.experiments.store.Store.rows` gives them (empty if none).
    """
    df = pd.DataFrame(store.rows(scenario.name, scenario_fingerprint(scenario), master))
    if df.empty:
        return df
    # a canonical row order: verdicts must not depend on the order in which cells finished
    df = df.sort_values(["cell_key", "replicate"], kind="stable").reset_index(drop=True)
    if mode is None:
        return df
    wanted = {(cell_key(p), r) for p, r in scenario.cells(mode)}
    keep = [(k, int(r)) in wanted for k, r in zip(df["cell_key"], df["replicate"])]
    return df[keep].reset_index(drop=True)


def check(ids=None, mode: str = "quick", workers: int | None = None, store_path=None,
          master: int = DEFAULT_MASTER_SEED, progress: bool = True, run: bool = True,
          pairs=None, executor="local", scheduler: str | None = None) -> list[CheckRow]:
    """Run what the selected claims need (reusing stored cells) and return one row per check.

    Every row is compared with the baseline (``status``). The scenarios stream through one executor.

    Parameters
    ----------
    ids : sequence of str, optional
        Claim ids, id prefixes or scenario names (default: all claims judged in ``mode``).
    mode : {"quick", "full"}, default "quick"
        The grid.
    workers : int, optional
        Worker processes (default: all cores).
    store_path : str or pathlib.Path, optional
        The results store (default: ``$SIMLAB_STORE`` or ``results/simlab.sqlite``).
    master : int, default DEFAULT_MASTER_SEED
        The master seed.
    progress : bool, default True
        Show a progress bar.
    run : bool, default True
        Run missing cells first; False judges the stored cells only (``simlab report``).
    pairs : list of (Scenario, Claim), optional
        Replaces the selection by ``ids``.
    executor : {"local", "dask"}, default "local"
        Where cells run (see :func:`simlab.experiments.sweep.open_executor`).
    scheduler : str, optional
        Address of a Dask scheduler (``executor="dask"``).

    Returns
    -------
    list of CheckRow
        One row per check, with verdict and baseline status.
    """
    from simlab.experiments.baseline import compare_with_baseline

    pairs = select_claims(ids, mode) if pairs is None else pairs
    store = Store(store_path, create=run)
    try:
        scenarios = {}
        for sc, _ in pairs:
            scenarios.setdefault(sc.name, sc)
        if run:
            run_sweeps([SweepJob(sc, mode, master) for sc in scenarios.values()], workers, store, progress,
                       executor, scheduler)
        frames = {name: scenario_frame(sc, store, master, mode) for name, sc in scenarios.items()}
        rows = [judge(sc, claim, frames[sc.name]) for sc, claim in pairs]
        compare_with_baseline(rows, mode, master)
        if run:
            store.record_check(mode, master, [r.to_json() for r in rows])
        return rows
    finally:
        store.close()


def judge(sc: Scenario, claim: Claim, df: pd.DataFrame) -> CheckRow:
    """Evaluate one claim on the scenario's frame into a :class:`CheckRow`.

    A claim without rows is ``not run``; an evaluation that raises is a failing row that says why.

    Parameters
    ----------
    sc : Scenario
        The claim's scenario.
    claim : Claim
        The claim.
    df : pandas.DataFrame
        The scenario's frame (:func:`scenario_frame`).

    Returns
    -------
    CheckRow
        The verdict row, with its calibration record and margin when one exists.
    """
    t0 = time.perf_counter()
    rows = claim_rows(df, claim) if not df.empty else df
    if rows.empty:
        m = Measurement.undefined("no stored rows")
        verdict = NOT_RUN
    else:
        try:
            m = evaluate_claim(df, claim)
        except Exception as exc:  # a broken evaluation is a failing row, not a crash of the check or report
            m = Measurement.undefined(f"evaluation error: {type(exc).__name__}: {exc}")
        verdict = REPORT if claim.kind == REPORT and m.verdict == PASS else m.verdict
        for col in claim.facts:  # report-only columns beside the verdict
            if col in rows and pd.to_numeric(rows[col], errors="coerce").notna().any():
                m.extra[col] = float(pd.to_numeric(rows[col], errors="coerce").mean())
    seconds = float(rows["seconds"].sum()) if "seconds" in rows else 0.0
    calib = load_calibration(sc).get(calibration_key(claim))
    if calib is not None:
        calib = dict(calib, margin_sd=calibration_margin(claim, calib["mean"], calib["sd"]))
    return CheckRow(id=claim.id, kind=claim.kind, label=claim.label, predicted=claim.predicted,
                    measured=m.measured, ci=list(m.ci), verdict=verdict,
                    seconds=seconds + time.perf_counter() - t0, tol=claim.tol, scenario=sc.name,
                    metric=claim.metric, x=claim.x, statement=claim.statement, paper=claim.paper,
                    quantity=claim.quantity, notes="; ".join(s for s in (m.notes, claim.notes) if s),
                    extra=m.extra, fingerprint=scenario_fingerprint(sc),
                    table=convergence_table(m.fit) if m.fit is not None else None,
                    calibration=calib, fit=m.fit, cut=claim.cut)


# ------------------------------------------------------------- calibration

def calibration_path(sc: Scenario | None = None) -> Path:
    """``calibration.json`` beside the scenario files (of ``sc``, or of the scenario directory).

    Parameters
    ----------
    sc : Scenario, optional
        A loaded scenario (its file's folder is used).

    Returns
    -------
    pathlib.Path
        The calibration record's path.
    """
    if sc is not None and sc.path:
        return Path(sc.path).parent / "calibration.json"
    from simlab.experiments.scenario import scenario_dir

    return scenario_dir() / "calibration.json"


def calibration_margin(claim: Claim, mean: float, sd: float) -> float:
    """Distance, in master-seed sds, from the mean measured value to the verdict's decision boundary.

    Bias counted (docs/theory/claims.md §7.1: calibrated when >= 4). tight and identity-in-expectation:
    (tol - abs(mean - predicted)) / sd (the distance to the nearer edge of the band, so a biased mean has
    less room); upper: (predicted + tol - mean) / sd for direction 'inf', (mean - predicted + tol) / sd
    for 'zero'; ordering: the mean difference's distance from the boundary (+tol for '<', -tol for '>')
    on the claimed side; identity: (tol - mean) / sd.

    Parameters
    ----------
    claim : Claim
        The check.
    mean, sd : float
        Mean and standard deviation of the measured value over master seeds.

    Returns
    -------
    float
        The margin; +inf / -inf for a zero sd with the mean inside / outside the boundary; NaN for a
        report-only claim.
    """
    if claim.kind in ("tight", "identity-in-expectation"):
        gap = claim.tol - abs(mean - claim.predicted)
    elif claim.kind == "upper":
        gap = claim.predicted + claim.tol - mean if claim.direction == "inf" else mean - claim.predicted + claim.tol
    elif claim.kind == "ordering":  # boundary +tol / -tol (ties within round-off for deterministic orderings)
        gap = claim.tol - mean if claim.side == "<" else mean + claim.tol
    elif claim.kind == "identity":
        gap = claim.tol - mean
    else:
        return float("nan")
    if not sd > 0:
        return math.inf if gap > 0 else -math.inf
    return gap / sd


def calibrate(ids, mode: str = "quick", workers: int | None = None, store_path=None,
              masters: int = CALIBRATION_MASTERS, progress: bool = True, executor="local",
              scheduler: str | None = None) -> dict:
    """Rerun the selected claims over ``masters`` independent master seeds and record the spread.

    The cells of every master seed stream through one executor together, and only the cells the
    selected claims use run (:func:`claim_cells`). The record per check (key id|kind|label: mean and sd
    of the measured value over masters, predicted, tol, the margin of :func:`calibration_margin`, the pass
    rate, the code fingerprint) is merged into the scenario folder's ``calibration.json``; a check is
    calibrated iff its margin is >= 4 sd. Report-only claims are not calibrated.

    Parameters
    ----------
    ids : sequence of str
        Claim ids or prefixes (empty: all).
    mode : {"quick", "full"}, default "quick"
        The grid.
    workers : int, optional
        Worker processes.
    store_path : str or pathlib.Path, optional
        The results store.
    masters : int, default 30
        Number of master seeds (>= 2).
    progress : bool, default True
        Show a progress bar.
    executor : {"local", "dask"}, default "local"
        Where cells run (see :func:`simlab.experiments.sweep.open_executor`).
    scheduler : str, optional
        Address of a Dask scheduler (``executor="dask"``).

    Returns
    -------
    dict
        Check key -> its calibration record.
    """
    if masters < 2:
        raise ValueError(f"masters must be >= 2, got {masters}")
    pairs = [(sc, c) for sc, c in select_claims(ids, mode) if c.kind != REPORT]
    for sc in {sc.name: sc for sc, _ in pairs}.values():
        refuse_package_write(calibration_path(sc))
    claims = {calibration_key(c): (sc, c) for sc, c in pairs}
    measured: dict[str, list[float]] = {}
    passed: dict[str, int] = {}
    seeds = [DEFAULT_MASTER_SEED + 1000 + k for k in range(masters)]
    used: dict[str, tuple[Scenario, list]] = {}
    for sc, c in pairs:
        used.setdefault(sc.name, (sc, []))[1].append(c)
    subsets = {name: tuple(claim_cells(sc, cs, mode)) for name, (sc, cs) in used.items()}
    store = Store(store_path)
    try:
        run_sweeps([SweepJob(sc, mode, master, subsets[sc.name]) for master in seeds for sc, _ in used.values()],
                   workers, store, progress, executor, scheduler, desc=f"calibrate ({masters} masters)")
    finally:
        store.close()
    for master in seeds:
        for row in check(None, mode, workers, store_path, master, progress=False, run=False, pairs=pairs):
            measured.setdefault(row.key, []).append(row.measured)
            passed[row.key] = passed.get(row.key, 0) + (row.verdict == PASS)
    out, records = {}, {}
    for key, vals in measured.items():
        sc, claim = claims[key]
        v = np.asarray(vals, dtype=float)
        mean, sd = float(np.nanmean(v)), float(np.nanstd(v, ddof=1))
        margin = calibration_margin(claim, mean, sd)
        entry = {"mode": mode, "masters": masters, "mean": mean, "sd": sd, "predicted": claim.predicted,
                 "tol": claim.tol, "margin_sd": margin, "pass_rate": passed[key] / masters,
                 "calibrated": bool(margin >= CALIBRATED_SDS), "fingerprint": scenario_fingerprint(sc),
                 "date": time.strftime("%Y-%m-%d")}
        records.setdefault(calibration_path(sc), {})[key] = entry
        out[key] = entry
    for path, entries in records.items():
        record = json.loads(path.read_text()) if path.exists() else {}
        record.update(entries)
        _atomic_json(path, record)
    return out


def _atomic_json(path: Path, obj) -> None:
    refuse_package_write(path)
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def calibration_key(row) -> str:
    """The key ``id|kind`` or ``id|kind|label`` of a check.

    Parameters
    ----------
    row : CheckRow or Claim
        Anything with ``id``, ``kind`` and ``label``.

    Returns
    -------
    str
        The key used by the baseline and the calibration record.
    """
    return f"{row.id}|{row.kind}" + (f"|{row.label}" if row.label else "")


def load_calibration(sc: Scenario | None = None) -> dict:
    """The calibration record of a scenario folder.

    Parameters
    ----------
    sc : Scenario, optional
        A loaded scenario (default: the scenario directory).

    Returns
    -------
    dict
        Check key -> record; empty if there is no ``calibration.json``.
    """
    path = calibration_path(sc)
    return json.loads(path.read_text()) if path.exists() else {}
