"""Figures of the oracle-robust SAIL study (scenario ``robust_sail``, spec §5.6, §7.3).

Both take the scenario's stored rows (possibly empty) and an output directory, and return the files
written (none when the rows they need are missing).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simlab.plots.style import apply_style


def _rows(df: pd.DataFrame, experiment: str, needed: tuple[str, ...]) -> pd.DataFrame:
    if df.empty or "experiment" not in df.columns:
        return df.iloc[0:0]
    sub = df[df["experiment"] == experiment]
    return sub if all(c in sub.columns for c in needed) else sub.iloc[0:0]


def stationarity_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """E||grad env_gamma(theta_t*)||^2 vs T for Algorithms A, B, C (mean over seeds and environment draws
    with standard errors, medians dashed), each with its OLS slope over T >= 1600 and its samples per
    step (B spends K_in per step), and the T^-1/2 bound shape."""
    rows = _rows(df, "stationarity", ("algorithm", "T", "env_grad2"))
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for alg, sub in sorted(rows.groupby("algorithm")):
        stats = sub.groupby("T")["env_grad2"].agg(["mean", "median", "std", "count"])
        T = stats.index.to_numpy(float)
        se = stats["std"].to_numpy() / np.sqrt(stats["count"].to_numpy())
        use = T >= 1600
        slope = np.polyfit(np.log(T[use]), np.log(stats["mean"].to_numpy()[use]), 1)[0] if use.sum() >= 2 else np.nan
        per_step = float((sub["samples"] / sub["T"]).mean()) if "samples" in sub.columns else np.nan
        line = ax.errorbar(T, stats["mean"], yerr=se, marker="o", capsize=3,
                           label=f"{alg}: slope {slope:.2f} ({per_step:g} samples/step)")[0]
        ax.plot(T, stats["median"], ls="--", color=line.get_color(), alpha=0.6)
    T_all = np.sort(rows["T"].unique()).astype(float)
    ref = rows[rows["T"] == T_all[0]]["env_grad2"].mean()
    ax.plot(T_all, ref * (T_all / T_all[0]) ** -0.5, color="gray", ls=":", label="T^-1/2 (bound shape)")
    ax.set(xscale="log", yscale="log", xlabel="T (iterations, alpha = c/sqrt(T))",
           ylabel="E ||grad env_gamma(theta_t*)||^2",
           title="Oracle-robust SAIL: Moreau-envelope stationarity (E5, rho = 0.1)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "robust_sail_stationarity.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [path]


def rho_sweep_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Robust solution theta_rho vs the non-robust (rho = 0) one as rho varies, for the adversarial box
    oracle and the style confounder: top, the true-oracle SAIL loss L_SAIL(theta; P_true); bottom, the
    KL-regularised true reward J(theta; r*) - beta KL(pi_theta || pi_ref) with its maximum."""
    rows = _rows(df, "rho_sweep", ("oracle", "rho", "true_loss_robust", "true_loss_nonrobust",
                                   "reg_reward_robust", "reg_reward_nonrobust"))
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    oracles = sorted(rows["oracle"].unique())
    fig, axes = plt.subplots(2, len(oracles), figsize=(5.2 * len(oracles), 7), squeeze=False, sharex=True)
    titles = {"box": "adversarial box oracle", "confounder": "style confounder (kappa_s = 1)"}
    panels = (("true_loss_robust", "true_loss_nonrobust", None, "L_SAIL(theta; P_true)  (lower is better)"),
              ("reg_reward_robust", "reg_reward_nonrobust", "reg_reward_optimum",
               "J(theta; r*) - beta KL  (higher is better)"))
    for j, oracle in enumerate(oracles):
        sub = rows[rows["oracle"] == oracle].groupby("rho").mean(numeric_only=True).sort_index()
        rho = sub.index.to_numpy(float)
        for i, (robust, nonrobust, optimum, ylabel) in enumerate(panels):
            ax = axes[i, j]
            ax.plot(rho, sub[robust], marker="o", label="robust solution theta_rho")
            ax.axhline(sub[nonrobust].iloc[0], color="gray", ls="--", label="non-robust (rho = 0)")
            if optimum is not None and optimum in sub.columns:
                ax.axhline(sub[optimum].iloc[0], color="green", ls="-.", label="KL-optimal policy")
            if "rho_true" in sub.columns:
                ax.axvline(sub["rho_true"].iloc[0], color="black", ls=":", lw=1, label="rho_true")
            ax.set(ylabel=ylabel)
            if i == 0:
                ax.set_title(titles.get(oracle, oracle))
            else:
                ax.set_xlabel("box radius rho")
            ax.legend(fontsize=7)
    fig.tight_layout()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / "robust_sail_rho_sweep.png"
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [path]
