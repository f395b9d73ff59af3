"""Known findings as data: the committed baseline of expected verdicts.

``baseline.json`` (beside the scenario files) records, per mode and per check (key
id|kind|label), the expected verdict, the measured value at the baseline's master seed and, for an
expected ``fail`` or ``inconclusive``, the finding in one sentence. A check's ``status``:

====================  ===========================================================================  ======
status                meaning                                                                      gate
====================  ===========================================================================  ======
ok                    the verdict is the expected ``pass``                                         passes
known finding         the verdict is the expected ``fail`` / ``inconclusive`` (the finding)        passes
report                a report-only claim                                                          passes
regression            an expected ``pass`` is now ``fail`` / ``inconclusive``, or a finding        fails
                      changed its verdict
finding now passes    an expected ``fail`` / ``inconclusive`` now passes (strict, like a strict    fails
                      xfail: update the baseline on purpose)
drift                 the verdict holds but the measured value moved more than 4 calibrated        fails
                      master-seed sds from the baseline's (same master only)
not run               the claim has no stored rows                                                 fails
====================  ===========================================================================  ======

A check without a baseline entry is expected to pass. ``simlab check --update-baseline`` rewrites the
entries of the checks it ran, on purpose, and says what changed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from simlab.experiments.files import atomic_write_text
from simlab.experiments.fingerprint import refuse_package_write
from simlab.experiments.rates import PASS

DRIFT_SDS = 4.0
GATE_OK = ("ok", "known finding", "report")


def baseline_path(scenario_path: str | Path | None = None) -> Path:
    """``baseline.json`` beside a scenario file (or in the scenario directory).

    Parameters
    ----------
    scenario_path : str or pathlib.Path, optional
        A scenario file (default: :func:`simlab.experiments.scenario.scenario_dir`).

    Returns
    -------
    pathlib.Path
        The baseline file of that scenario folder.
    """
    if scenario_path:
        return Path(scenario_path).parent / "baseline.json"
    from simlab.experiments.scenario import scenario_dir

    return scenario_dir() / "baseline.json"


def load_baseline(path: Path) -> dict:
    """Read a baseline file.

    Parameters
    ----------
    path : pathlib.Path
        The ``baseline.json`` to read.

    Returns
    -------
    dict
        Its content (``{"master": ..., "quick": {key: entry}, "full": {...}}``); empty if the file does
        not exist.

    Raises
    ------
    ValueError
        If the file is not a JSON object.
    """
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"baseline {path} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"baseline {path} must hold a JSON object")
    return data


def _path_of(row) -> Path:
    from simlab.experiments.scenario import load_scenario

    return baseline_path(load_scenario(row.scenario).path)


def status_of(row, entry: dict | None, same_master: bool) -> str:
    """The gate status of one row against its baseline entry (see the module's table).

    Sets ``row.expected`` and ``row.finding`` (and ``row.extra`` on drift) as a side effect.

    Parameters
    ----------
    row : CheckRow
        A judged check.
    entry : dict or None
        Its baseline entry (None: expected pass).
    same_master : bool
        Whether the row was measured at the baseline's master seed (drift is judged only then).

    Returns
    -------
    str
        ``ok``, ``known finding``, ``report``, ``regression``, ``finding now passes``, ``drift`` or
        ``not run``.
    """
    expected = entry["verdict"] if entry else PASS
    row.expected = expected
    row.finding = entry.get("finding", "") if entry else ""
    if row.verdict == "not run":
        return "not run"
    if row.verdict == "report":
        status = "report"
    elif row.verdict == expected:
        status = "ok" if expected == PASS else "known finding"
    elif expected == PASS:
        return "regression"
    elif row.verdict == PASS:
        return "finding now passes"
    else:
        return "regression"
    cal = row.calibration or {}
    sd = cal.get("sd", math.nan)
    if entry and same_master and "measured" in entry and math.isfinite(sd) and sd > 0:
        now, then = row.measured, entry["measured"]
        finite = [v is not None and math.isfinite(v) for v in (now, then)]
        # both undefined (e.g. an inconclusive check with no finite estimate): nothing moved
        moved = abs(now - then) if all(finite) else (0.0 if not any(finite) else math.inf)
        if moved > DRIFT_SDS * sd:
            row.extra = dict(row.extra, drift_sds=moved / sd, baseline_measured=entry["measured"])
            return "drift"
    return status


def compare_with_baseline(rows, mode: str, master: int) -> None:
    """Set ``expected``, ``finding`` and ``status`` of every row from its scenario folder's baseline.

    Parameters
    ----------
    rows : list of CheckRow
        Judged checks (modified in place).
    mode : {"quick", "full"}
        The grid the rows were judged on.
    master : int
        The master seed of the rows.
    """
    cache: dict[Path, dict] = {}
    for row in rows:
        path = _path_of(row)
        if path not in cache:
            cache[path] = load_baseline(path)
        data = cache[path]
        entry = data.get(mode, {}).get(row.key)
        row.status = status_of(row, entry, master == data.get("master"))


def gate_passes(rows) -> bool:
    """Whether every row's status is one the gate accepts (``ok``, ``known finding``, ``report``).

    Parameters
    ----------
    rows : list of CheckRow
        Rows compared with the baseline (:func:`compare_with_baseline`).

    Returns
    -------
    bool
        True iff ``simlab check`` may exit 0.
    """
    return all(r.status in GATE_OK for r in rows)


def update_baseline(rows, mode: str, master: int) -> list[str]:
    """Rewrite the baseline entries of ``rows`` on purpose.

    The expected verdict becomes the verdict now, with the measured value; the finding is the existing
    sentence if the verdict is unchanged, else the row's notes. Entries of checks that are no longer
    registered are dropped.

    Parameters
    ----------
    rows : list of CheckRow
        Judged checks; rows that did not run are left alone.
    mode : {"quick", "full"}
        The grid the rows were judged on.
    master : int
        Their master seed (recorded; a baseline of another master is reset).

    Returns
    -------
    list of str
        One line per change.
    """
    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    registered = {calibration_key(c) for _, c in all_claims(strict=False)}
    changes: list[str] = []
    by_path: dict[Path, list] = {}
    for row in rows:
        by_path.setdefault(_path_of(row), []).append(row)
    for path in by_path:
        refuse_package_write(path)
    for path, group in by_path.items():
        data = load_baseline(path)
        if data.get("master") not in (None, master):
            changes.append(f"{path}: master seed {data['master']} -> {master} (drift is judged at this master)")
            for m in ("quick", "full"):
                data.pop(m, None)
        data["master"] = master
        entries = data.setdefault(mode, {})
        for key in [k for k in entries if k not in registered]:
            changes.append(f"{key}: dropped (no longer registered)")
            del entries[key]
        for row in group:
            if row.verdict == "not run":
                continue
            old = entries.get(row.key)
            new = {"verdict": row.verdict, "measured": row.measured}
            if row.verdict not in (PASS, "report"):
                keep = old is not None and old.get("verdict") == row.verdict and old.get("finding")
                new["finding"] = old["finding"] if keep else (row.notes or row.statement)
            if old is None:
                changes.append(f"{row.key}: new entry, {row.verdict}")
            elif old.get("verdict") != row.verdict:
                changes.append(f"{row.key}: {old.get('verdict')} -> {row.verdict}")
            elif old.get("measured") != row.measured:
                changes.append(f"{row.key}: measured {old.get('measured')!r} -> {row.measured!r}")
            entries[row.key] = new
        data[mode] = dict(sorted(entries.items()))
        atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return changes
