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
    """log-log: G2 = V* - D*_p (and G1 = D*_p - V*_p where positive) and ||lambda*_p - lambda*|| against
    nu-hat, one line per (m, beta) configuration."""
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


def dual_trajectory_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Phase plot (lambda_t, E_x E_{pi_t} c) of CAID (50 steps) and GDA (2000 steps, alpha_lam/alpha_theta
    = 10, alpha_theta = 1/L-hat_theta) from (theta_ref, 0) on E6 draw 0 (t = 0.3); recomputed, not stored."""
    from simlab.env.gap import gap_preset, make_gap_env
    from simlab.objectives.constrained import dual_smoothness_bound
    from simlab.solvers.dual import caid, gradient_descent_ascent, lagrangian_curvature_at_solution, minimise_parametrised_dual

    env = make_gap_env(gap_preset(t=0.3), 0)
    target = minimise_parametrised_dual(env)
    L_theta = lagrangian_curvature_at_solution(env)
    fig, ax = _figure(2)
    for scale, style in ((1.0, "-"), (0.3, "--")):
        gda = gradient_descent_ascent(env, scale / L_theta, 10 * scale / L_theta, T=2000, n_checkpoints=400)
        ax[0, 0].plot(gda.lam[:, 0], gda.constraint[:, 0], style, lw=0.8,
                      label=f"GDA alpha_theta = {scale:g}/L, ratio 10")
        ax[0, 1].semilogx(np.maximum(gda.t, 1), gda.lam[:, 0], style, lw=0.8, label=f"GDA {scale:g}/L")
    run = caid(env, eta=1.0 / dual_smoothness_bound(env), T=50, lam0=np.zeros(1), theta0=env.theta_ref,
               n_checkpoints=50)
    ax[0, 0].plot(run.lam[:, 0], run.constraint[:, 0], "o-", ms=3, label="CAID (exact inner)")
    ax[0, 1].semilogx(np.maximum(run.t, 1), run.lam[:, 0], "o-", ms=3, label="CAID")
    ax[0, 0].axhline(0.0, color="k", lw=0.5)
    ax[0, 1].axhline(target.lam[0], color="k", lw=0.5)
    ax[0, 0].plot([target.lam[0]], [0.0], "k*", ms=10, label="(lambda*_p, 0)")
    ax[0, 0].set_xlabel("lambda")
    ax[0, 0].set_ylabel("E_x E_pi c (constraint slack)")
    ax[0, 1].set_xlabel("iteration")
    ax[0, 1].set_ylabel("lambda")
    ax[0, 0].legend(fontsize=7)
    ax[0, 1].legend(fontsize=7)
    return [_save(fig, Path(outdir) / "constrained_dual_trajectories.png")]


def slack_figure(df: pd.DataFrame, outdir: Path) -> list[Path]:
    """Signed constraint slack E_x E_pi c vs threshold fraction q_b: one-shot pi*_p(lambda*) vs multi-shot
    pi*_p(lambda*_p) (mean and quartiles over environment draws; the CAID paper's Figure 1 analogue).
    Negative slack is a violated constraint."""
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
