"""Convergence plots for rate claims: per-seed spread, fitted line with CI, predicted slope."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from simlab.experiments.rates import RateFit
from simlab.plots.style import apply_style, save_figure


def plot_rate(fit: RateFit, path: Path, title: str, xlabel: str, ylabel: str,
              predicted: float | None = None, cut: float | None = None) -> Path:
    """Log-log plot: median and inter-quartile band over seeds, per-point means, the OLS fit (slope
    and 95% CI in the legend) and the predicted slope as a reference line through the first fitted mean."""
    import matplotlib.pyplot as plt

    apply_style()
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    ax.fill_between(fit.x, fit.q25, fit.q75, alpha=0.25, label="inter-quartile band (seeds)")
    ax.plot(fit.x, fit.median, "s--", ms=4, lw=1, label="median over seeds")
    ax.plot(fit.x_all, fit.mean_all, "o", ms=5, label="mean over seeds")
    xx = np.geomspace(fit.x.min(), fit.x.max(), 50)
    ax.plot(xx, np.exp(fit.intercept) * xx**fit.slope, "-", lw=2,
            label=f"fit: slope {fit.slope:.3f} [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]")
    if predicted is not None:
        x0, y0 = fit.x[0], fit.mean[0]
        ax.plot(xx, y0 * (xx / x0) ** predicted, ":", color="k", lw=1.5, label=f"predicted slope {predicted:g}")
    if cut is not None and cut > fit.x_all.min():
        ax.axvline(cut, color="grey", lw=0.8, ls="-.", label="pre-asymptotic cut")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return save_figure(fig, path)
