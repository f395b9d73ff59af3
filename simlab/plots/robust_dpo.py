"""The robust-DPO radius-shift figure: how far the exact population robust minimiser moves from the
nominal DPO minimiser as the radius grows (docs/theory/dpo.md §3.2, docs/theory/rebel.md §4.8 mechanism: Theta(sqrt eps) for
f-divergences, Theta(eps) for W_2)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simlab.plots.style import apply_style, save_figure

RADIUS_OBJECTIVES = (("wdpo_exact", "WDPO exact $W_2$ ($\\varepsilon$)"),
                     ("wdpo_surrogate", "WDPO paper surrogate ($\\rho_0$)"),
                     ("kldpo_constrained", "KLDPO constrained ($\\varepsilon$)"),
                     ("chi2dpo", "$\\chi^2$-DPO ($\\varepsilon$)"))


def plot_radius_shift(rows: list[dict], outdir: Path, name: str = "robust_dpo_radius_shift") -> list[Path]:
    """Log-log plot of the minimiser shift vs radius with reference slopes 1/2 and 1, from stored rows
    (objective, radius, shift = ||theta*_radius - theta*_DPO||, collapsed) of exact population solves;
    ``kldpo_penalized`` is plotted against 1/tau.

    Collapsed solves (the minimiser is theta_ref, certified) are drawn as open circles. The slope-1/2
    guide goes through the largest shift at the smallest radius, the slope-1 guide through the
    smallest; f-divergence balls move the minimiser by Theta(sqrt eps), W_2 by Theta(eps)
    (docs/theory/rebel.md §4.8).

    Parameters
    ----------
    rows : list of dict
        One dict per exact population solve with keys ``objective`` (a name of ``RADIUS_OBJECTIVES`` or
        ``"kldpo_penalized"``), ``radius`` (float > 0; 1/tau for ``kldpo_penalized``), ``shift``
        (float, ||theta*_radius - theta*_DPO||) and ``collapsed`` (bool).
    outdir : pathlib.Path
        Folder of the figure.
    name : str, default "robust_dpo_radius_shift"
        File name without extension.

    Returns
    -------
    list of pathlib.Path
        The path :func:`simlab.plots.style.save_figure` returns for ``outdir / (name + ".png")``, or an
        empty list when ``rows`` is empty.
    """
    import matplotlib.pyplot as plt

    apply_style()
    outdir = Path(outdir)
    if not rows:
        return []
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    labels = dict(RADIUS_OBJECTIVES) | {"kldpo_penalized": "KLDPO penalised ($1/\\tau$)"}
    for obj, label in labels.items():
        mine = sorted((r["radius"], r["shift"], r["collapsed"]) for r in rows if r["objective"] == obj)
        if not mine:
            continue
        x, y, col = (np.array(v) for v in zip(*mine))
        line, = ax.loglog(x[~col], y[~col], "o-", ms=3.5, label=label)
        if col.any():
            ax.loglog(x[col], y[col], "o", ms=6, mfc="none", color=line.get_color())
    x0 = min(r["radius"] for r in rows)
    y_lo = min(r["shift"] for r in rows if r["radius"] == x0)
    y_hi = max(r["shift"] for r in rows if r["radius"] == x0)
    xr = np.geomspace(x0, 0.3, 2)
    ax.loglog(xr, y_hi * np.sqrt(xr / x0), "k:", lw=1, label="slope 1/2")
    ax.loglog(xr, y_lo * xr / x0, "k--", lw=1, label="slope 1")
    ax.plot([], [], "ko", mfc="none", label="collapsed to $\\theta_{ref}$ (certified)")
    ax.set_xlabel("radius ($\\varepsilon$, $\\rho_0$ or $1/\\tau$)")
    ax.set_ylabel("$\\|\\theta^*_\\varepsilon - \\theta^*_{DPO}\\|$ (exact, population)")
    ax.set_title("Robust DPO minimiser shift vs radius (E1)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return [save_figure(fig, outdir / f"{name}.png")]
