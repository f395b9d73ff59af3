"""Figures of the constrained-alignment study (spec §6, §7.3), drawn through the scenario ``figures=`` hook.

- duality gaps G1, G2 and the dual distance vs nu-hat (``constrained_gap`` rows);
- dual trajectories, CAID vs primal-dual GDA, as a phase plot lambda vs E_x E_pi c (recomputed: one E6 draw);
- |constraint slack| vs threshold fraction, one-shot vs multi-shot (the CAID paper's Figure 1 analogue).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _figure(ncols=1, width=4.6):
    import matplotlib.pyplot as plt

    from simlab.plots.style import apply_style

    apply_style()
    return plt.subplots(1, ncols, figsize=(width * ncols, 3.6), squeeze=False)


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def duality_gap_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """log-log: G1 = D*_p - V*_p, G2 = V* - D*_p and ||lambda*_p - lambda*|| against nu-hat."""
    if df is None or df.empty or "nu_hat" not in df:
        return []
    rows = df.sort_values("nu_hat")
    fig, ax = _figure(2)
    nu = rows["nu_hat"].to_numpy()
    for name, label in (("G2", "G2 = V* - D*_p"), ("G1", "G1 = D*_p - V*_p")):
        v = rows[name].to_numpy()
        pos = v > 1e-12
        ax[0, 0].loglog(nu[pos], v[pos], "o-", label=label)
        if (~pos).any():
            ax[0, 0].loglog(nu[~pos], np.full((~pos).sum(), 1e-12), "x", label=f"{name} <= 1e-12 (zero gap)")
    ax[0, 0].loglog(nu, nu * rows["G2"].max() / nu.max(), "k:", label="slope 1")
    ax[0, 0].set_xlabel("nu-hat")
    ax[0, 0].set_ylabel("gap")
    ax[0, 0].legend(fontsize=7)
    d = rows["dual_distance"].to_numpy()
    pos = d > 1e-12
    ax[0, 1].loglog(nu[pos], d[pos], "o-", label="||lam*_p - lam*||")
    ax[0, 1].loglog(nu, np.sqrt(nu / nu.max()) * d.max(), "k:", label="slope 1/2")
    ax[0, 1].set_xlabel("nu-hat")
    ax[0, 1].legend(fontsize=7)
    return [_save(fig, Path(outdir) / "constrained_duality_gaps.png")]
