"""A scenario's stored cells as one tidy table, and what each of its columns means.

One row per stored cell (a grid point and a replicate) under the scenario's current code fingerprint.
The columns come in four groups, always in this order:

=============  ================================================================================
group          columns
=============  ================================================================================
id             ``scenario``, ``fingerprint``, ``master``, ``replicate``
params         the cell's parameters (``Scenario.fixed`` merged with one grid point), sorted by name
metrics        what ``cell(params, seeds)`` returned, sorted by name (``failed`` included)
bookkeeping    ``cell_key`` (the store's canonical parameter text) and ``seconds`` (the cell's wall
               time); only with ``bookkeeping=True`` (``simlab results NAME --bookkeeping``)
=============  ================================================================================

A column is a parameter when it is a key of the cell's stored parameters (its ``cell_key``), so the
split never depends on a naming convention. The groups are also recorded in ``DataFrame.attrs["groups"]``
(a dict group -> list of column names). Rows are in the scenario's grid order (quick cells first, then
the cells only the full grid has), then by master seed and replicate, independent of the order in which
the cells finished.

:func:`describe` lists the metrics of a scenario with their meaning (``Scenario.metrics``) and the
claims that use each one (as ``metric``, ``also``, ``facts``, ``x`` or a ``where`` filter).
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from simlab.experiments.fingerprint import scenario_fingerprint
from simlab.experiments.scenario import MODES, Scenario, cell_key, load_scenario
from simlab.experiments.store import Store

ID_COLUMNS = ("scenario", "fingerprint", "master", "replicate")
BOOKKEEPING_COLUMNS = ("cell_key", "seconds")
UNDOCUMENTED = "(undocumented)"


def results(scenario: str | Scenario, store: str | Path | None = None, master: int | None = None,
            bookkeeping: bool = False) -> pd.DataFrame:
    """The stored cells of a scenario under its current code fingerprint, one tidy row per cell.

    Parameters
    ----------
    scenario : str or Scenario
        The scenario's name (looked up with :func:`simlab.experiments.scenario.load_scenario`) or the
        scenario itself.
    store : str or pathlib.Path, optional
        The results store to read (default: ``$SIMLAB_STORE`` or ``results/simlab.sqlite``). It must
        exist: a missing store raises :class:`simlab.experiments.store.StoreError` (a ``ValueError``).
    master : int, optional
        Keep only the cells of this master seed (default: every master seed).
    bookkeeping : bool, default False
        Append the bookkeeping columns ``cell_key`` and ``seconds``.

    Returns
    -------
    pandas.DataFrame
        Columns in the order id, params, metrics (, bookkeeping); see the module docstring. An empty
        frame with the id columns when nothing is stored. ``attrs["groups"]`` maps each group to its
        columns.

    Raises
    ------
    ValueError
        For an unknown scenario name or a missing store.
    """
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    st = Store(store, create=False)
    try:
        rows = st.rows(sc.name, scenario_fingerprint(sc), master)
    finally:
        st.close()
    return tidy_frame(sc, rows, bookkeeping)


def tidy_frame(scenario: Scenario, rows: Iterable[dict], bookkeeping: bool = False) -> pd.DataFrame:
    """Order and group flat stored rows (:meth:`simlab.experiments.store.Store.rows`) as a tidy table.

    Parameters
    ----------
    scenario : Scenario
        The scenario the rows belong to (its grids give the row order).
    rows : iterable of dict
        Flat rows with the keys ``fingerprint``, ``master``, ``cell_key``, ``replicate``, ``seconds``,
        the cell's parameters and its metrics.
    bookkeeping : bool, default False
        Keep ``cell_key`` and ``seconds`` as the last columns.

    Returns
    -------
    pandas.DataFrame
        The table described in the module docstring, with ``attrs["groups"]`` set.
    """
    rows = list(rows)
    param_names: set[str] = set()
    for r in rows:
        param_names.update(json.loads(r["cell_key"]))
    reserved = set(ID_COLUMNS) | set(BOOKKEEPING_COLUMNS)
    metric_names = {k for r in rows for k in r} - param_names - reserved
    groups = {"id": list(ID_COLUMNS), "params": sorted(param_names), "metrics": sorted(metric_names),
              "bookkeeping": list(BOOKKEEPING_COLUMNS) if bookkeeping else []}
    columns = [c for g in groups.values() for c in g]
    position = _grid_positions(scenario)
    rows.sort(key=lambda r: (position.get(r["cell_key"], len(position)), r["cell_key"], r["master"], r["replicate"]))
    df = pd.DataFrame([{**r, "scenario": scenario.name} for r in rows], columns=columns)
    df.attrs["groups"] = groups
    return df


def _grid_positions(scenario: Scenario) -> dict[str, int]:
    """Position of each cell key in the scenario's grid order (quick first, then the full grid)."""
    out: dict[str, int] = {}
    for mode in MODES:
        for params, _ in scenario.cells(mode):
            out.setdefault(cell_key(params), len(out))
    return out


@dataclass(frozen=True)
class ColumnDescription:
    """One column of a scenario's table: its group, its meaning and the claims that use it.

    Attributes
    ----------
    name : str
        The column name.
    group : str
        ``"params"`` or ``"metrics"``.
    meaning : str
        The scenario's description of the column (``Scenario.metrics``), the grid values of a
        parameter, or ``"(undocumented)"``.
    used_by : tuple of str
        Entries ``"<claim id> [label] (<role>)"`` with role ``metric``, ``also``, ``facts``, ``x`` or
        ``where``.
    """

    name: str
    group: str
    meaning: str
    used_by: tuple


def describe(scenario: str | Scenario, stored: Iterable[str] = ()) -> list[ColumnDescription]:
    """The parameters and metrics of a scenario with their meaning and the claims that use them.

    Metrics are those the scenario documents (``Scenario.metrics``), those its claims name (``metric``,
    ``also``, ``facts``) and those in ``stored`` (column names of stored rows) that are not parameters.
    Parameters are the axes of ``fixed`` and of every grid.

    Parameters
    ----------
    scenario : str or Scenario
        The scenario's name or the scenario itself.
    stored : iterable of str, optional
        Column names seen in the store (for metrics the scenario neither documents nor judges).

    Returns
    -------
    list of ColumnDescription
        Parameters first, then metrics, each group sorted by name.
    """
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    params: dict[str, list] = {}
    for mode in MODES:
        for cell_params, _ in sc.cells(mode):
            for axis, value in cell_params.items():
                values = params.setdefault(axis, [])
                if value not in values:
                    values.append(value)
    used: dict[str, list[str]] = {}
    for c in sc.claims:
        name = c.id + (f" [{c.label}]" if c.label else "")
        roles = [(c.metric, "metric")] + [(m, "also") for m in c.also] + [(m, "facts") for m in c.facts]
        roles += [(c.x, "x")] if c.x else []
        roles += [(k, "where") for k in c.where]
        for col, role in roles:
            entry = f"{name} ({role})"
            if entry not in used.setdefault(col, []):
                used[col].append(entry)
    metric_names = set(sc.metrics) | {c.metric for c in sc.claims} | {m for c in sc.claims for m in (*c.also, *c.facts)}
    metric_names |= set(stored) - set(params) - set(ID_COLUMNS) - set(BOOKKEEPING_COLUMNS)
    metric_names -= set(params)
    for values in params.values():
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            values.sort()
    out = [ColumnDescription(p, "params", (sc.metrics[p] + "; " if p in sc.metrics else "")
                             + "values " + ", ".join(map(str, params[p])), tuple(used.get(p, ())))
           for p in sorted(params)]
    out += [ColumnDescription(m, "metrics", sc.metrics.get(m, UNDOCUMENTED), tuple(used.get(m, ())))
            for m in sorted(metric_names)]
    return out


def describe_text(scenario: str | Scenario, stored: Iterable[str] = ()) -> str:
    """:func:`describe` as the text that ``simlab results NAME --describe`` prints.

    Parameters
    ----------
    scenario : str or Scenario
        The scenario's name or the scenario itself.
    stored : iterable of str, optional
        Column names seen in the store (see :func:`describe`).

    Returns
    -------
    str
        One block per group: each column, its meaning, and the claims that use it.
    """
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    cols = describe(sc, stored)
    lines = [f"scenario {sc.name} ({sc.study}): {sc.description}",
             "columns: " + ", ".join(ID_COLUMNS) + ", then the parameters, then the metrics "
             "(--bookkeeping appends " + ", ".join(BOOKKEEPING_COLUMNS) + ")"]
    for group, title in (("params", "parameters"), ("metrics", "metrics")):
        lines.append(f"{title}:")
        for c in (c for c in cols if c.group == group):
            lines.append(f"  {c.name}: {c.meaning}")
            if c.used_by:
                lines.append(f"      used by {', '.join(c.used_by)}")
    return "\n".join(lines)
