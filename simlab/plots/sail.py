"""Figures of the oracle-robust SAIL study (scenario ``robust_sail``, docs/theory/sail.md §5.6,
docs/theory/claims.md §7.3).

Each takes the scenario's stored rows (possibly empty) and an output directory, and returns the files
written (none when the rows they need are missing). Figures draw stored rows only: no solver calls and
no refitted slopes (the verdict table holds the fits, made with each claim's own cut).
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


def _save(fig, outdir: Path, name: str) -> list[Path]:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    path = outdir / name
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return [path]


def _mean_se(sub: pd.DataFrame, x: str, metric: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    stats = sub.groupby(x)[metric].agg(["mean", "std", "count"])
    se = (stats["std"] / np.sqrt(stats["count"])).fillna(0.0).to_numpy()
    return stats.index.to_numpy(float), stats["mean"].to_numpy(), se


def stationarity_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """P(T) = E||grad env_gamma(theta_t*)||^2 sqrt(T) vs T, one line per (algorithm, E5 instance: its
    ``instance_class`` or ``env_draw``), mean
    over seeds with standard errors, from the stored rows only (no fit: the verdict table holds the
    slopes, fitted with the claim's own cut). Bounded, flattening lines are the O(T^-1/2) rate.

    The envelope gradient is grad env_gamma(theta) = (theta - prox_gamma(theta)) / gamma
    (docs/theory/sail.md §5.4); the rate and the protocol (alpha = 2/sqrt(T)) are in
    docs/theory/sail.md §5.6.

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``robust_sail`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); only rows with
        ``experiment == "stationarity"`` are drawn. May be empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "robust_sail_stationarity.png"]``, or an empty list when there are no such rows
        or they lack a column of ``algorithm``, ``T``, ``env_grad2_sqrtT``.
    """
    rows = _rows(df, "stationarity", ("algorithm", "T", "env_grad2_sqrtT"))
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    instance = next((c for c in ("instance_class", "env_draw") if c in rows.columns), None)
    keys = ["algorithm", "step_rule"] + ([instance] if instance else [])
    for key, sub in sorted(rows.groupby(keys), key=lambda kv: tuple(str(v) for v in kv[0])):
        T, mean, se = _mean_se(sub, "T", "env_grad2_sqrtT")
        per_step = float((sub["samples"] / sub["T"]).mean()) if "samples" in sub.columns else np.nan
        if instance == "instance_class":
            label = f"{key[0]}, {key[2]} minimiser"
        else:
            label = f"{key[0]}, instance {int(key[2])}" if len(key) > 2 else str(key[0])
        if key[1] != "c/sqrtT":
            label += f", alpha = {key[1]}"
        ax.errorbar(T, mean, yerr=se, marker="o", capsize=3, label=f"{label} ({per_step:g} samples/step)")
    ax.set(xscale="log", yscale="log", xlabel="T (iterations, alpha = 2/sqrt(T))",
           ylabel="P(T) = E ||grad env_gamma(theta_t*)||^2 sqrt(T)",
           title="Oracle-robust SAIL: P(T) stays bounded (E5, rho = 0.1, gamma = 0.1)")
    ax.legend(fontsize=7)
    return _save(fig, outdir, "robust_sail_stationarity.png")


def inexact_inner_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Algorithm B with the inner prox solved to duality gap delta in {alpha^2, alpha, rho}: left,
    E||grad env||^2 vs T (mean over seeds, standard errors) with a T^-1/2 guide through the alpha^2
    line's first point; right, inner dual iterations per outer step. Stored rows only.

    Algorithm B is defined in docs/theory/sail.md §5.5.

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``robust_sail`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); only rows with
        ``experiment == "inexact_inner"`` are drawn. May be empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "robust_sail_inexact_inner.png"]``, or an empty list when there are no such rows
        or they lack a column of ``delta_rule``, ``T``, ``env_grad2``, ``inner_per_step``.
    """
    rows = _rows(df, "inexact_inner", ("delta_rule", "T", "env_grad2", "inner_per_step"))
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 4.2))
    for rule, sub in sorted(rows.groupby("delta_rule")):
        T, mean, se = _mean_se(sub, "T", "env_grad2")
        ax.errorbar(T, mean, yerr=se, marker="o", capsize=3, label=f"delta = {rule}")
        T2, it, _ = _mean_se(sub, "T", "inner_per_step")
        ax2.plot(T2, it, marker="o", label=f"delta = {rule}")
    ref = rows[rows["delta_rule"] == "alpha^2"]
    if not ref.empty:
        T, mean, _ = _mean_se(ref, "T", "env_grad2")
        ax.plot(T, mean[0] * (T / T[0]) ** -0.5, color="gray", ls=":", label="T^-1/2 guide")
    ax.set(xscale="log", yscale="log", xlabel="T (alpha = 2/sqrt(T))", ylabel="E ||grad env_gamma(theta_t*)||^2",
           title="Algorithm B, inner duality gap <= delta")
    ax2.set(xscale="log", xlabel="T", ylabel="inner dual iterations per step",
            title="inner work (0 = the kinks were dropped)")
    ax.legend(fontsize=8)
    ax2.legend(fontsize=8)
    return _save(fig, outdir, "robust_sail_inexact_inner.png")


def adversarial_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Per E5 instance, L_SAIL(theta_rho; P_true) - L_SAIL(theta_nom; P_true) (below 0: robustness pays)
    for the oracle adversarial to the nominal solution, the benign opposite sign and E5's random box,
    at each rho / rho_true; means as bars. Stored rows only.

    Individual draws are scattered over each bar with a fixed-seed horizontal jitter (the figure is
    reproducible); the findings are discussed in docs/theory/sail.md §5.6.

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``robust_sail`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); only rows with
        ``experiment == "adversarial"`` are drawn. May be empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "robust_sail_adversarial.png"]``, or an empty list when there are no such rows
        or they lack a column of ``oracle_model``, ``rho_factor``, ``true_gain``.
    """
    rows = _rows(df, "adversarial", ("oracle_model", "rho_factor", "true_gain"))
    if rows.empty:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    models = [m for m in ("adversarial", "random", "benign") if m in set(rows["oracle_model"])]
    factors = sorted(rows["rho_factor"].unique())
    fig, ax = plt.subplots(figsize=(7, 4.2))
    width = 0.8 / max(len(factors), 1)
    rng = np.random.default_rng(0)  # horizontal jitter of the points only
    for i, model in enumerate(models):
        for j, f in enumerate(factors):
            v = rows[(rows["oracle_model"] == model) & (rows["rho_factor"] == f)]["true_gain"].to_numpy(float)
            x = i + (j - (len(factors) - 1) / 2) * width
            ax.bar(x, v.mean() if v.size else np.nan, width=0.9 * width, alpha=0.35, color=f"C{j}",
                   label=f"rho = {f:g} rho_true" if i == 0 else None)
            ax.scatter(x + rng.uniform(-0.25, 0.25, v.size) * width, v, s=10, color=f"C{j}")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(range(len(models)), models)
    ax.set(ylabel="L_SAIL(theta_rho; P_true) - L_SAIL(theta_nom; P_true)",
           title="Does robustness pay on the true oracle? (E5, rho_true = 0.08; < 0: yes)")
    ax.legend(fontsize=8)
    return _save(fig, outdir, "robust_sail_adversarial.png")


def rho_sweep_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Robust solution theta_rho vs the non-robust (rho = 0) one as rho varies, for the adversarial box
    oracle and the style confounder: top, the true-oracle SAIL loss L_SAIL(theta; P_true); bottom, the
    KL-regularised true reward J(theta; r*) - beta KL(pi_theta || pi_ref) with its maximum.

    Values are means over the rows of each (oracle, rho); rho_true is marked when stored
    (docs/theory/sail.md §5.2, findings in §5.6).

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``robust_sail`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); only rows with
        ``experiment == "rho_sweep"`` are drawn. May be empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "robust_sail_rho_sweep.png"]``, or an empty list when there are no such rows
        or they lack a column of ``oracle``, ``rho``, ``true_loss_robust``, ``true_loss_nonrobust``,
        ``reg_reward_robust``, ``reg_reward_nonrobust``.
    """
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
    return _save(fig, outdir, "robust_sail_rho_sweep.png")
