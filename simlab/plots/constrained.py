"""Figures of the constrained-alignment study (docs/theory/constrained.md §6, docs/theory/claims.md §7.3), drawn through the scenario ``figures=`` hook.

- duality gaps G1, G2 and the dual distance vs nu-hat (``constrained_gap`` rows);
- U-OPT and R-OPT of the one-shot and multi-shot policies vs nu-hat (``constrained_gap`` rows);
- dual trajectories, CAID vs primal-dual GDA, as a phase plot lambda vs E_x E_pi c, and the exact-CAID gap
  beside its derived contraction (``constrained_dynamics`` rows: the cells store the trajectories);
- gaps at near-optimal duals vs delta (``constrained_near_optimal`` rows);
- the best-iterate floor and gaps of stochastic CAID vs eta (``constrained_floor`` rows);
- constraint slack and signed violation vs threshold fraction, one-shot vs multi-shot (the CAID paper's
  Figure 1 analogue).

Every number comes from stored rows: nothing here calls a solver.
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
    """log-log: G2 = V* - D*_p (and G1 = D*_p - V*_p where positive) and ||lambda*_p - lambda*|| against
    nu-hat, one line per (m, beta) configuration.

    Dotted guides of slope 1 (the papers' O(nu) bounds, Theorems 1 and 2) and 1/2 (Lemma 4) are drawn
    through the largest measured value; the measured gaps scale like nu-hat^2
    (docs/theory/constrained.md §6.3).

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_gap`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_duality_gaps.png"]``, or an empty list when
        ``df`` is None or empty or has no ``nu_hat`` column.
    """
    if df is None or df.empty or "nu_hat" not in df:
        return []
    keys = ["m", "beta"] if {"m", "beta"} <= set(df.columns) else []
    groups = df.groupby(keys) if keys else [((1, 1.0), df)]
    fig, ax = _figure(2)
    for key, rows in groups:
        rows = rows.sort_values("nu_hat")
        tag = f"m={int(key[0])}, beta={key[1]:g}"
        nu = rows["nu_hat"].to_numpy()
        for name, marker in (("G2", "o-"), ("G1", "s--")):
            v = rows[name].to_numpy()
            pos = v > 1e-12
            if pos.any():
                ax[0, 0].loglog(nu[pos], v[pos], marker, ms=4, label=f"{name} ({tag})")
        d = rows["dual_distance"].to_numpy()
        pos = d > 1e-12
        if pos.any():
            ax[0, 1].loglog(nu[pos], d[pos], "o-", ms=4, label=f"||lam*_p - lam*|| ({tag})")
    nu_all = np.sort(df["nu_hat"].to_numpy())
    ax[0, 0].loglog(nu_all, nu_all * df["G2"].max() / nu_all.max(), "k:", label="slope 1")
    ax[0, 1].loglog(nu_all, np.sqrt(nu_all / nu_all.max()) * df["dual_distance"].max(), "k:", label="slope 1/2")
    ax[0, 0].set_title("G2 = V* - D*_p (G1 = D*_p - V*_p shown where > 1e-12)", fontsize=8)
    for a in ax[0]:
        a.set_xlabel("nu-hat")
        a.legend(fontsize=6)
    ax[0, 0].set_ylabel("gap")
    return [_save(fig, Path(outdir) / "constrained_duality_gaps.png")]


def _history(row, prefix: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t, lambda, E_x E_pi c) stored in a cell as columns ``{prefix}_t_j``, ``{prefix}_lam_j``, ``{prefix}_u_j``."""
    k = 0
    while f"{prefix}_t_{k}" in row.index and np.isfinite(row[f"{prefix}_t_{k}"]):
        k += 1
    return tuple(np.array([row[f"{prefix}_{name}_{j}"] for j in range(k)]) for name in ("t", "lam", "u"))


def dual_trajectory_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Phase plot (lambda_t, E_x E_{pi_t} c) of CAID (50 steps) and GDA (2000 steps, alpha_lam/alpha_theta = 10,
    alpha_theta in {1, 0.3}/L-hat_theta) from (theta_ref, 0), from the trajectories the ``constrained_dynamics``
    GDA cells of the figure draw store; and the D_p gap of exact CAID at the stored checkpoints beside the
    derived geometric contraction (1 - eta mu_p)^(2t).

    The dotted rate line is gap_t0 exp(t log_factor_predicted), the contraction CAID's linear recursion
    predicts (docs/theory/constrained.md §6.4).

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_dynamics`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_dual_trajectories.png"]``, or an empty list when
        ``df`` is None or empty or has no ``experiment`` column.
    """
    if df is None or df.empty or "experiment" not in df:
        return []
    fig, ax = _figure(3)
    gda = df[(df["experiment"] == "gda")]
    stored = gda[gda.filter(like="gda_t_").notna().any(axis=1)] if "gda_t_0" in gda else gda.iloc[0:0]
    drawn_caid = False
    for scale, style in ((1.0, "-"), (0.3, "--")):
        rows = stored[np.isclose(stored["alpha_scale"], scale)]
        if rows.empty:
            continue
        row = rows.iloc[0]
        t, lam, u = _history(row, "gda")
        ax[0, 0].plot(lam, u, style, lw=0.8, label=f"GDA alpha_theta = {scale:g}/L, ratio 10")
        ax[0, 1].semilogx(np.maximum(t, 1), lam, style, lw=0.8, label=f"GDA {scale:g}/L")
        if not drawn_caid:
            t, lam, u = _history(row, "caid")
            ax[0, 0].plot(lam, u, "o-", ms=3, label="CAID (exact inner)")
            ax[0, 1].semilogx(np.maximum(t, 1), lam, "o-", ms=3, label="CAID")
            ax[0, 0].plot([row["lam_star_p"]], [0.0], "k*", ms=10, label="(lambda*_p, 0)")
            ax[0, 1].axhline(row["lam_star_p"], color="k", lw=0.5)
            drawn_caid = True
    ax[0, 0].axhline(0.0, color="k", lw=0.5)
    ax[0, 0].set_xlabel("lambda")
    ax[0, 0].set_ylabel("E_x E_pi c (constraint slack)")
    ax[0, 1].set_xlabel("iteration")
    ax[0, 1].set_ylabel("lambda")
    caid_rows = df[(df["experiment"] == "caid") & (df.get("start") == "zero")] if "start" in df else df.iloc[0:0]
    checks = sorted(int(c[5:]) for c in df.columns if c.startswith("gap_t") and c[5:].isdigit())
    for _, row in caid_rows.iterrows():
        gaps = np.array([row[f"gap_t{t}"] for t in checks])
        pos = gaps > 0
        line = ax[0, 2].semilogy(np.array(checks)[pos], gaps[pos], "o", ms=4,
                                 label=f"m = {int(row['m'])}, draw {int(row['env_draw'])}")[0]
        if "log_factor_predicted" in row and np.isfinite(row["log_factor_predicted"]):
            tt = np.linspace(0, max(checks), 100)
            ax[0, 2].semilogy(tt, row["gap_t0"] * np.exp(row["log_factor_predicted"] * tt), ":",
                              color=line.get_color(), lw=0.8)
    ax[0, 2].set_ylim(1e-16, None)
    ax[0, 2].set_xlabel("CAID iteration t")
    ax[0, 2].set_ylabel("D_p(lambda_t) - D*_p (dotted: derived rate)")
    for a in ax[0]:
        if a.get_legend_handles_labels()[0]:
            a.legend(fontsize=6)
    return [_save(fig, Path(outdir) / "constrained_dual_trajectories.png")]


def optimality_gap_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """log-log: U-OPT and R-OPT of the one-shot pi*_p(lambda*) and the multi-shot pi*_p(lambda*_p) against
    nu-hat (``constrained_gap`` rows), beside slope-1/2 (the papers' bound for nu < 1) and slope-2 (derived)
    guides; multi-shot U-OPT is 0 up to the solver accuracy where D_p is smooth.

    The slope-2 derivation and the U-OPT / R-OPT definitions are in docs/theory/constrained.md §6.3.

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_gap`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_optimality_gaps.png"]``, or an empty list when
        ``df`` is None or empty or has no ``one_u_opt`` column.
    """
    if df is None or df.empty or "one_u_opt" not in df:
        return []
    fig, ax = _figure(2)
    for (m, beta), rows in df.groupby(["m", "beta"]):
        rows = rows.sort_values("nu_hat")
        nu = rows["nu_hat"].to_numpy()
        tag = f"m={int(m)}, beta={beta:g}"
        for k, (quantity, name) in enumerate((("u_opt", "U-OPT"), ("r_opt", "R-OPT"))):
            for who, marker in (("one", "o-"), ("multi", "s--")):
                v = rows[f"{who}_{quantity}"].to_numpy()
                ax[0, k].loglog(nu, np.maximum(v, 1e-16), marker, ms=4, label=f"{who}-shot ({tag})")
            ax[0, k].set_title(name, fontsize=9)
    nu_all = np.sort(df["nu_hat"].to_numpy())
    for k, col in enumerate(("one_u_opt", "one_r_opt")):
        top = df[col].max()
        ax[0, k].loglog(nu_all, top * (nu_all / nu_all.max()) ** 2, "k:", label="slope 2 (derived)")
        ax[0, k].loglog(nu_all, top * np.sqrt(nu_all / nu_all.max()), "k-.", lw=0.7, label="slope 1/2 (paper)")
        ax[0, k].set_xlabel("nu-hat")
        ax[0, k].legend(fontsize=6)
    return [_save(fig, Path(outdir) / "constrained_optimality_gaps.png")]


def near_optimal_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """log-log: U-OPT and the R-OPT excess of pi*_p(lambda*_p + delta u) against delta, mean over draws per
    direction (``constrained_near_optimal`` rows), with the derived linear terms mu_p delta and lambda*_p mu_p
    delta (means over draws).

    U-OPT = mu_p delta + O(delta^2) and the R-OPT excess = lambda*_p mu_p delta + O(delta^2) at
    lambda = lambda*_p + delta u are derived in docs/theory/constrained.md §6.3 ("Near-optimal duals").

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_near_optimal`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_near_optimal_duals.png"]``, or an empty list when
        ``df`` is None or empty or has no ``u_opt`` column.
    """
    if df is None or df.empty or "u_opt" not in df:
        return []
    fig, ax = _figure(2)
    for k, (col, name) in enumerate((("u_opt", "U-OPT"), ("r_opt_excess", "R-OPT excess over multi-shot"))):
        for direction, rows in df.groupby("direction"):
            g = rows.groupby("delta")[col].mean()
            ax[0, k].loglog(g.index, g.to_numpy(), "o-", ms=4, label=f"u = {direction}")
        g = df.groupby("delta")
        d = np.array(sorted(df["delta"].unique()))
        lin = g["mu_p"].mean().to_numpy() * d
        if col == "r_opt_excess":
            lin = lin * g["lam_star_p"].mean().to_numpy()
        ax[0, k].loglog(d, lin, "k:", label="derived linear term")
        ax[0, k].set_title(name, fontsize=9)
        ax[0, k].set_xlabel("delta = |lambda - lambda*_p|")
        ax[0, k].legend(fontsize=7)
    return [_save(fig, Path(outdir) / "constrained_near_optimal_duals.png")]


def best_iterate_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """log-log against eta (``constrained_floor`` rows): the best-iterate floor min_s D_p(lambda_s) - D*_p and the
    U-OPT of pi*_p(lambda_best) for eps_app in {0, 1e-3, 1e-2} (means over replicates), with the derived
    eps_app = 0 predictions and Lemma 8's eta S^2/2.

    The derived floor is E min_s D_p(lambda_s) - D*_p = pi eta sigma^2 / (2 T_eff^2 (2 - eta mu)), the
    ``floor_derived`` column (docs/theory/constrained.md §6.3, "Best-iterate floor"); the right panel's
    guide is the derived best-iterate dual error times the measured ratio U-OPT / dual error at eps_app = 0.

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_floor`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_best_iterate.png"]``, or an empty list when
        ``df`` is None or empty or has no ``best_u_opt_e0`` column.
    """
    if df is None or df.empty or "best_u_opt_e0" not in df:
        return []
    fig, ax = _figure(2)
    g = df.groupby("eta")
    eta = np.array(sorted(df["eta"].unique()))
    for tag, label in (("e0", "eps_app = 0"), ("e1", "eps_app = 1e-3"), ("e2", "eps_app = 1e-2")):
        ax[0, 0].loglog(eta, g[f"floor_{tag}"].mean().to_numpy(), "o-", ms=4, label=label)
        ax[0, 1].loglog(eta, g[f"best_u_opt_{tag}"].mean().to_numpy(), "o-", ms=4, label=label)
    ax[0, 0].loglog(eta, g["floor_derived"].mean().to_numpy(), "k:", label="derived (eps_app = 0)")
    ax[0, 0].loglog(eta, eta * g["S2"].mean().to_numpy() / 2, "k-.", lw=0.7, label="Lemma 8: eta S^2/2")
    mu = (g["best_u_opt_e0"].mean() / g["best_lam_error_e0"].mean()).to_numpy()
    ax[0, 1].loglog(eta, mu * g["best_lam_error_derived"].mean().to_numpy(), "k:", label="derived (eps_app = 0)")
    ax[0, 0].set_ylabel("min_s D_p(lambda_s) - D*_p")
    ax[0, 1].set_ylabel("U-OPT of pi*_p(lambda_best)")
    for a in ax[0]:
        a.set_xlabel("eta_lambda")
        a.legend(fontsize=6)
    return [_save(fig, Path(outdir) / "constrained_best_iterate.png")]


def slack_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Signed constraint slack E_x E_pi c vs threshold fraction q_b: one-shot pi*_p(lambda*) vs multi-shot
    pi*_p(lambda*_p) (mean and quartiles over environment draws; the CAID paper's Figure 1 analogue).
    Negative slack is a violated constraint.

    The multi-shot policy is exactly feasible on an active constraint, the one-shot one violates it by
    beta KL_min'(lambda*) (docs/theory/constrained.md §6.3).

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_multishot`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_slack_vs_threshold.png"]``, or an empty list when
        ``df`` is None or empty or has no ``slack_one`` column.
    """
    if df is None or df.empty or "slack_one" not in df:
        return []
    fig, ax = _figure(1, width=5.2)
    q = np.array(sorted(df["q"].unique()))
    for col, label in (("slack_one", "one-shot pi*_p(lambda*)"), ("slack_multi", "multi-shot pi*_p(lambda*_p)")):
        g = df.groupby("q")[col]
        ax[0, 0].plot(q, g.mean().reindex(q).to_numpy(), "o-", label=label)
        ax[0, 0].fill_between(q, g.quantile(0.25).reindex(q).to_numpy(), g.quantile(0.75).reindex(q).to_numpy(),
                              alpha=0.2)
    ax[0, 0].axhline(0.0, color="k", lw=0.5)
    ax[0, 0].set_xlabel("threshold fraction q_b (b = q_b max_pi E[g - g_ref])")
    ax[0, 0].set_ylabel("constraint slack E_x E_pi c")
    ax[0, 0].legend(fontsize=8)
    return [_save(fig, Path(outdir) / "constrained_slack_vs_threshold.png")]


def violation_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Signed violation -E_x E_pi c on active constraints vs threshold fraction q_b, one-shot vs multi-shot,
    every draw a point (``constrained_multishot`` rows): > 0 is infeasible.

    Only rows with an active constraint (``active == 1``) are drawn; the two policies are offset by
    +-0.005 in q_b so that their points do not overlap (docs/theory/constrained.md §6.3).

    Parameters
    ----------
    df : pandas.DataFrame
        The stored rows of the ``constrained_multishot`` scenario (one row per cell, as
        :meth:`simlab.experiments.store.Store.rows` returns them); may be None or empty.
    outdir : pathlib.Path
        Folder of the figure (created when needed).

    Returns
    -------
    list of pathlib.Path
        ``[outdir / "constrained_signed_violation.png"]``, or an empty list when
        ``df`` is None or empty or has no ``violation_one`` column.
    """
    if df is None or df.empty or "violation_one" not in df:
        return []
    fig, ax = _figure(1, width=5.2)
    rows = df[df["active"] == 1.0]
    for k, (col, label) in enumerate((("violation_one", "one-shot pi*_p(lambda*)"),
                                      ("violation_multi", "multi-shot pi*_p(lambda*_p)"))):
        ax[0, 0].plot(rows["q"] + (k - 0.5) * 0.01, rows[col], "o", ms=3, alpha=0.6, label=label)
    ax[0, 0].axhline(0.0, color="k", lw=0.5)
    ax[0, 0].set_xlabel("threshold fraction q_b")
    ax[0, 0].set_ylabel("signed violation -E_x E_pi c (> 0: infeasible)")
    ax[0, 0].legend(fontsize=8)
    return [_save(fig, Path(outdir) / "constrained_signed_violation.png")]
