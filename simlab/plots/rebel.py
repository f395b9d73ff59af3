"""Figures of the REBEL / DRO-REBEL studies: expected reward against the test mixture (spec §1.7)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simlab.plots.style import apply_style

LABELS = {"dpo": "DPO", "rebel": "REBEL", "rebel_w2": "W2-REBEL", "rebel_kl": "KL-REBEL",
          "rebel_chi2": "chi2-REBEL"}


def reward_vs_alpha_figure(df: pd.DataFrame, outdir: Path, radius: float = 0.1) -> list[Path]:
    """One panel per setting: mean J(theta_T; w(alpha)) over seeds against alpha, one curve per method
    (robust methods at ``radius``), with J of the KL-regularised optimum pi_{theta_ref + w(alpha)/beta}
    dashed (it maximises J - beta KL, not J; the papers' reward-vs-mixture figure). Returns the written paths (none for an empty frame)."""
    if df is None or df.empty or "J_0" not in df.columns:
        return []
    import matplotlib.pyplot as plt

    apply_style()
    cols = sorted((c for c in df.columns if c.startswith("J_")), key=lambda c: int(c[2:]))
    alphas = np.linspace(0.0, 1.0, len(cols))
    settings = sorted(df["setting"].unique())
    fig, axes = plt.subplots(1, len(settings), figsize=(5.0 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings):
        rows = df[df["setting"] == setting]
        for method, label in LABELS.items():
            sel = rows[rows["method"] == method]
            if method.startswith("rebel_"):
                sel = sel[np.isclose(sel["radius"], radius)]
                label = f"{label} (eps={radius:g})"
            if sel.empty:
                continue
            ax.plot(alphas, sel[cols].mean().to_numpy(), "o-", ms=3, lw=1.5, label=label)
        opt = [c.replace("J_", "Jopt_") for c in cols]
        if opt[0] in rows.columns:
            ax.plot(alphas, rows[opt].mean().to_numpy(), "k--", lw=1,
                    label="KL-regularised optimum pi_ref e^{w(alpha)^T phi / beta}")
        ax.set_xlabel("test mixture alpha (w = alpha w_a + (1 - alpha) w_b)")
        ax.set_ylabel("J(theta; w(alpha))")
        ax.set_title(f"setting {setting}", fontsize=10)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(outdir) / "shift_reward_vs_alpha.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]
