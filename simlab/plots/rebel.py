"""Figures of the preference-shift study: robust minus nominal worst-case reward against the radius."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simlab.plots.style import apply_style, save_figure

PANELS = (("mixed", 0.1), ("labelers", 0.1), ("labelers", 0.25), ("labelers", 0.5), ("misspecified", 0.1))
METHODS = {"rebel": ("kl", "chi2", "w2"), "dpo": ("kldpo", "chi2dpo", "wdpo")}
LABELS = {"kl": "KL-REBEL", "chi2": "chi2-REBEL", "w2": "W2-REBEL", "kldpo": "KLDPO", "chi2dpo": "chi2-DPO",
          "wdpo": "WDPO (surrogate)"}


def shift_advantage_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Rows: REBEL and DPO family; columns: regimes. Mean over seeds of robust minus nominal min_alpha J of the
    empirical fits, with a 95% normal CI (1.96 standard errors), against the radius index k (radius = 4^-k
    times the largest radius of the method); the exact population difference dashed. Columns ``dminJ_<m>_<k>``
    and ``pop_dminJ_<m>_<k>`` of the shift scenario's ``map`` rows. Returns the written paths (none if empty).

    The regimes (mixed, labelers at alpha0 in {0.1, 0.25, 0.5}, misspecified), the methods and the radius
    rules are those of docs/theory/rebel.md §4.9 ("Preference shift").

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``shift`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); only rows with
        ``experiment == "map"`` are drawn. May be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "shift_advantage_vs_radius.png"]`` as written by
        :func:`simlab.plots.style.save_figure`, or an empty list when there are no ``map`` rows.
    """
    if df is None or df.empty or "experiment" not in df.columns:
        return []
    rows = df[df["experiment"] == "map"]
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    fig, axes = plt.subplots(2, len(PANELS), figsize=(3.3 * len(PANELS), 6.2), squeeze=False, sharex=True)
    for i, family in enumerate(("rebel", "dpo")):
        for j, (regime, alpha0) in enumerate(PANELS):
            ax = axes[i, j]
            sel = rows[(rows["regime"] == regime) & (rows["family"] == family) & np.isclose(rows["alpha0"], alpha0)]
            ax.axhline(0.0, color="k", lw=0.8)
            for m in METHODS[family]:
                ks = sorted(int(c.rsplit("_", 1)[1]) for c in sel.columns if c.startswith(f"dminJ_{m}_"))
                if sel.empty or not ks:
                    continue
                x = 4.0 ** -np.array(ks, dtype=float)
                vals = [sel[f"dminJ_{m}_{k}"].to_numpy(dtype=float) for k in ks]
                ok = [v[np.isfinite(v)] for v in vals]
                mean = np.array([v.mean() if v.size else np.nan for v in ok])
                se = np.array([v.std(ddof=1) / np.sqrt(v.size) if v.size > 1 else np.nan for v in ok])
                line = ax.errorbar(x, mean, yerr=1.96 * se, fmt="o-", ms=3, lw=1.3, capsize=2, label=LABELS[m])
                pop = [float(sel[f"pop_dminJ_{m}_{k}"].mean()) for k in ks]
                ax.plot(x, pop, "--", lw=1, color=line[0].get_color())
            ax.set_xscale("log")
            ax.set_title(f"{family.upper()} | {regime}, alpha0={alpha0:g}", fontsize=9)
            if i == 1:
                ax.set_xlabel("radius / largest radius (4^-k)")
            if j == 0:
                ax.set_ylabel("robust - nominal min_alpha J")
            if ax.get_legend_handles_labels()[0]:  # a panel without rows of its regime has nothing to name
                ax.legend(fontsize=6)
    fig.tight_layout()
    path = Path(outdir) / "shift_advantage_vs_radius.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, path)]
