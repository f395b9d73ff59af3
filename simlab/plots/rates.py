"""Convergence plots for rate claims: CI band of the mean, seed spread, fitted line with its CI,
predicted slope (all from the rate fit a check produced)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np

from simlab.experiments.rates import RateFit
from simlab.plots.style import apply_style, axis_label, save_figure

Z95 = 1.959963984540054


def plot_rate(fit: RateFit, path: Path, title: str, xlabel: str, ylabel: str,
              predicted: float | None = None, cut: float | None = None) -> Path:
    """Log-log convergence plot of a rate fit, saved as PNG (200 dpi) and PDF.

    It shows the mean over seeds with its 95% CI band (mean +/- 1.96 standard errors, the quantity the
    fit uses), the seeds' inter-quartile range (lighter), the OLS fit with the slope's bootstrap CI, and
    the predicted slope drawn through the first fitted mean. The legend sits below the axes so it never
    covers data.

    Parameters
    ----------
    fit : RateFit
        The fit (:func:`simlab.experiments.rates.fit_rate`).
    path : pathlib.Path
        The PNG file.
    title : str
        Figure title.
    xlabel, ylabel : str
        Column names of the swept variable and the metric (labelled by
        :func:`simlab.plots.style.axis_label`).
    predicted : float, optional
        The predicted slope to draw.
    cut : float, optional
        The pre-asymptotic cut, marked on the x axis.

    Returns
    -------
    pathlib.Path
        The PNG path.
    """
    import matplotlib.pyplot as plt

    apply_style()
    fig, ax = plt.subplots(figsize=(5.6, 4.6))
    lo = np.maximum(fit.mean - Z95 * fit.stderr, fit.mean * 1e-3)
    hi = fit.mean + Z95 * fit.stderr
    ax.fill_between(fit.x, fit.q25, fit.q75, alpha=0.12, color="C0", lw=0, label="seeds: inter-quartile range")
    ax.fill_between(fit.x, lo, hi, alpha=0.35, color="C0", lw=0, label="mean: 95% CI")
    ax.plot(fit.x_all, fit.mean_all, "o", ms=5, color="C0", label="mean over seeds")
    xx = np.geomspace(fit.x.min(), fit.x.max(), 50)
    ax.plot(xx, np.exp(fit.intercept) * xx**fit.slope, "-", lw=2, color="C1",
            label=f"fit: slope {fit.slope:.3f}, 95% CI [{fit.ci[0]:.3f}, {fit.ci[1]:.3f}]")
    if predicted is not None:
        x0, y0 = fit.x[0], fit.mean[0]
        ax.plot(xx, y0 * (xx / x0) ** predicted, ":", color="k", lw=1.5, label=f"predicted slope {predicted:g}")
    if cut is not None and cut > fit.x_all.min():
        ax.axvline(cut, color="grey", lw=0.8, ls="-.", label="pre-asymptotic cut")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(axis_label(xlabel))
    ax.set_ylabel(axis_label(ylabel))
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, frameon=False)
    fig.tight_layout()
    return save_figure(fig, path)
