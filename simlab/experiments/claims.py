"""Turning stored rows into verdict rows, running what a check needs, and calibrating tolerances.

``check`` runs each needed scenario (the sweep skips stored cells), then evaluates every selected
claim from the store. A verdict row holds at least id, kind, predicted, measured, ci, verdict
("pass"/"fail") and seconds (the summed compute time of the cells it used).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from simlab.experiments.rates import (
    RateFit, fit_rate, mean_with_ci, verdict_identity_in_expectation, verdict_ordering,
    verdict_tight, verdict_upper)
from simlab.experiments.scenario import DEFAULT_MASTER_SEED, Claim, Scenario, cell_key, select_claims
from simlab.experiments.store import Store
from simlab.experiments.sweep import run_scenario

CALIBRATION_MASTERS = 30


@dataclass
class Measurement:
    """What a claim's evaluation produced: the measured value, its CI, the verdict and details."""

    measured: float
    ci: tuple[float, float]
    passed: bool
    notes: str = ""
    fit: RateFit | None = None
    extra: dict = field(default_factory=dict)


@dataclass
class CheckRow:
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
    notes: str
    extra: dict
    table: list | None = None

    def to_json(self) -> dict:
        out = asdict(self)
        return json.loads(json.dumps(out, default=_json_default))


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def claim_rows(df: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    """Rows of the scenario's frame that the claim uses (its ``where`` filter)."""
    for k, v in claim.where.items():
        if k not in df.columns:
            return df.iloc[0:0]
        df = df[df[k] == v]
    return df


def evaluate_claim(df: pd.DataFrame, claim: Claim) -> Measurement:
    """Judge ``claim`` on its rows (built-in kinds, or the claim's own ``evaluate``)."""
    rows = claim_rows(df, claim)
    if claim.evaluate is not None:
        return claim.evaluate(rows)
    if rows.empty or claim.metric not in rows.columns:
        return Measurement(float("nan"), (float("nan"), float("nan")), False, "no stored rows")
    if claim.kind in ("tight", "upper"):
        fit = fit_rate(rows[claim.x].to_numpy(), rows[claim.metric].to_numpy(),
                       rows["replicate"].to_numpy(), claim.cut)
        if claim.kind == "tight":
            ok, note = verdict_tight(fit.slope, fit.ci, claim.predicted, claim.tol)
        else:
            ok, note = verdict_upper(fit.slope, claim.predicted, claim.tol, claim.direction)
        fails = int(fit.failures.sum())
        if fails:
            ok = False
            note = (note + "; " if note else "") + f"{fails} failed fits past the cut"
        extra = {"slope_median": fit.slope_median}
        for m in claim.also:
            if m in rows.columns:
                f2 = fit_rate(rows[claim.x].to_numpy(), rows[m].to_numpy(), rows["replicate"].to_numpy(), claim.cut)
                extra[f"slope[{m}]"] = f2.slope
                extra[f"ci[{m}]"] = list(f2.ci)
        return Measurement(fit.slope, fit.ci, ok, note, fit, extra)
    values = rows[claim.metric].to_numpy(dtype=float)
    if claim.kind == "identity":
        worst = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else float("nan")
        ok = bool(np.all(np.isfinite(values))) and worst <= claim.tol
        return Measurement(worst, (worst, worst), ok, "" if ok else f"max |error| = {worst:.3g} > {claim.tol:g}")
    mean, ci, fails = mean_with_ci(values)
    if claim.kind == "identity-in-expectation":
        ok, note = verdict_identity_in_expectation(mean, claim.tol)
    else:
        ok, note = verdict_ordering(ci, claim.side)
    if fails:
        ok, note = False, (note + "; " if note else "") + f"{fails} failed cells"
    return Measurement(mean, ci, ok, note, None, {"seeds": int(values.size)})


def convergence_table(fit: RateFit) -> list[dict]:
    """deal.II-style table: grid value, mean error, standard error, local rate."""
    rates = fit.local_rates()
    se = dict(zip(fit.x, fit.stderr))
    return [{"x": float(x), "mean": float(m), "stderr": float(se.get(x, np.nan)),
             "local_rate": float(r)} for x, m, r in zip(fit.x_all, fit.mean_all, rates)]


def scenario_frame(scenario: Scenario, store: Store, master: int, mode: str | None = None) -> pd.DataFrame:
    """The scenario's stored rows for this master seed, restricted to ``mode``'s cells if given."""
    df = pd.DataFrame(store.rows(scenario.name, scenario.version, master))
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
          master: int = DEFAULT_MASTER_SEED, progress: bool = True, run: bool = True) -> list[CheckRow]:
    """Run what the selected claims need (reusing stored cells) and return one row per check."""
    pairs = select_claims(ids)
    store = Store(store_path)
    try:
        scenarios = {}
        for sc, _ in pairs:
            scenarios.setdefault(sc.name, sc)
        frames = {}
        for name, sc in scenarios.items():
            if run:
                run_scenario(sc, mode, workers, store, master, progress)
            frames[name] = scenario_frame(sc, store, master, mode)
        return [_row(sc, claim, frames[sc.name]) for sc, claim in pairs]
    finally:
        store.close()


def _row(sc: Scenario, claim: Claim, df: pd.DataFrame) -> CheckRow:
    t0 = time.perf_counter()
    try:
        m = evaluate_claim(df, claim)
    except Exception as exc:  # a broken evaluation is a failing row, not a crash of the whole check
        m = Measurement(float("nan"), (float("nan"), float("nan")), False, f"evaluation error: {exc!r}")
    rows = claim_rows(df, claim) if not df.empty else df
    seconds = float(rows["seconds"].sum()) if "seconds" in rows else 0.0
    return CheckRow(id=claim.id, kind=claim.kind, label=claim.label, predicted=claim.predicted, measured=m.measured,
                    ci=list(m.ci), verdict="pass" if m.passed else "fail",
                    seconds=seconds + time.perf_counter() - t0, tol=claim.tol, scenario=sc.name,
                    metric=claim.metric, x=claim.x, statement=claim.statement, paper=claim.paper,
                    notes="; ".join(s for s in (m.notes, claim.notes) if s), extra=m.extra,
                    table=convergence_table(m.fit) if m.fit is not None else None)


# ------------------------------------------------------------- calibration

def calibration_path() -> Path:
    from simlab.experiments.scenario import scenario_dir

    return scenario_dir() / "calibration.json"


def calibration_margin(claim: Claim, mean: float, sd: float) -> float:
    """Distance, in master-seed standard deviations, from the mean measured value to the verdict's
    decision boundary (spec §7.1: a verdict is calibrated when this is >= 4).

    tight and identity-in-expectation: tol / sd (the band's half-width, the spec's rule);
    upper: (predicted + tol - mean) / sd for direction 'inf', (mean - predicted + tol) / sd for 'zero';
    ordering: the mean difference's distance from the boundary (0, or -tol/+tol for deterministic
    orderings with ties within tol) on the claimed side; identity: (tol - mean) / sd.
    """
    if not sd > 0:
        return float("inf")
    if claim.kind in ("tight", "identity-in-expectation"):
        return claim.tol / sd
    if claim.kind == "upper":
        gap = claim.predicted + claim.tol - mean if claim.direction == "inf" else mean - claim.predicted + claim.tol
        return gap / sd
    if claim.kind == "ordering":  # boundary at -tol / +tol (deterministic orderings allow ties within tol)
        return (claim.tol - mean if claim.side == "<" else mean + claim.tol) / sd
    return (claim.tol - mean) / sd


def calibrate(ids, mode: str = "quick", workers: int | None = None, store_path=None,
              masters: int = CALIBRATION_MASTERS, progress: bool = True) -> dict:
    """Rerun the selected claims over ``masters`` independent master seeds and record the spread.

    The record per check (key id|kind|label: mean and sd of the measured value over masters, tol, the
    margin of :func:`calibration_margin`, the pass rate) is merged into ``scenarios/calibration.json``;
    a check is calibrated iff its margin is >= 4 sd.
    """
    if masters < 2:
        raise ValueError(f"masters must be >= 2, got {masters}")
    claims = {calibration_key(c): c for _, c in select_claims(ids)}
    measured: dict[str, list[float]] = {}
    passed: dict[str, int] = {}
    for k in range(masters):
        master = DEFAULT_MASTER_SEED + 1000 + k
        for row in check(ids, mode, workers, store_path, master, progress=progress):
            key = calibration_key(row)
            measured.setdefault(key, []).append(row.measured)
            passed[key] = passed.get(key, 0) + (row.verdict == "pass")
    path = calibration_path()
    record = json.loads(path.read_text()) if path.exists() else {}
    out = {}
    for key, vals in measured.items():
        v = np.asarray(vals, dtype=float)
        mean, sd = float(np.nanmean(v)), float(np.nanstd(v, ddof=1))
        margin = calibration_margin(claims[key], mean, sd)
        entry = {"mode": mode, "masters": masters, "mean": mean, "sd": sd, "tol": claims[key].tol,
                 "margin_sd": margin, "pass_rate": passed[key] / masters, "calibrated": bool(margin >= 4),
                 "date": time.strftime("%Y-%m-%d")}
        record[key] = entry
        out[key] = entry
    path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return out


def calibration_key(row) -> str:
    """'id|kind' or 'id|kind|label' (a CheckRow or a Claim)."""
    return f"{row.id}|{row.kind}" + (f"|{row.label}" if row.label else "")


def load_calibration() -> dict:
    path = calibration_path()
    return json.loads(path.read_text()) if path.exists() else {}
