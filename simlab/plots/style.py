"""The one house style for every simlab figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


def apply_style() -> None:
    """seaborn 'whitegrid' with a colour-blind palette and compact fonts."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette="colorblind", context="paper", font_scale=1.1)


FIGURE_DPI = 200


def save_figure(fig, path) -> "Path":
    """Save ``fig`` as PNG (``FIGURE_DPI``) at ``path`` and as PDF beside it, atomically, and close it.

    A file whose bytes would not change is left untouched (no timestamps are embedded), so redrawing an
    unchanged figure keeps tracked files byte-identical.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure.
    path : str or pathlib.Path
        The PNG file; the PDF gets the same stem.

    Returns
    -------
    pathlib.Path
        The PNG path.
    """
    import io
    from pathlib import Path

    import matplotlib.pyplot as plt

    from simlab.experiments.files import atomic_write_bytes

    path = Path(path)
    for suffix, kwargs in ((".png", {"dpi": FIGURE_DPI, "metadata": {"Software": None}}),
                           (".pdf", {"metadata": {"CreationDate": None, "Producer": None, "Creator": None}})):
        buf = io.BytesIO()
        fig.savefig(buf, format=suffix[1:], **kwargs)
        atomic_write_bytes(path.with_suffix(suffix), buf.getvalue())
    plt.close(fig)
    return path


# Axis names in words with the quantity in mathtext; a name not listed shows as itself in monospace.
AXIS_LABELS = {
    "n": r"sample size $n$",
    "d": r"dimension $d$",
    "T": r"iterations $T$",
    "t": r"iteration $t$",
    "eta": r"dual step $\eta$",
    "nu_hat": r"parametrisation gap $\hat\nu$",
    "log_inv_delta": r"inner accuracy $\log(1/\delta)$",
    "err2": r"squared error $\mathbb{E}\|\theta_n-\theta^\star\|^2$",
    "err2_I": r"squared error $\mathbb{E}\|\theta_n-\theta^\star\|_I^2$",
    "err2_H": r"squared error $\mathbb{E}\|\theta_n-\theta^\star\|_H^2$",
    "err2_nominal": r"squared error $\mathbb{E}\|\theta_n-\theta^\star\|^2$ (nominal target)",
    "env_grad2": r"stationarity $\mathbb{E}\|\nabla\varphi_\gamma(\theta_T)\|^2$",
    "avg_env_grad2": r"stationarity $\mathbb{E}\|\nabla\varphi_\gamma(\theta_T)\|^2$ (pooled)",
    "dual_distance": r"dual distance $\|\lambda^\star_p-\lambda^\star\|$",
    "G2": r"duality gap $V^\star-D^\star_p$",
    "gap_t200": r"dual gap $D_p(\lambda_t)-D_p^\star$",
    "inner_iterations": r"inner iterations",
    "floor_e0": r"best-iterate floor",
}


def axis_label(name: str | None) -> str:
    """The axis name of a metric or swept variable (see :data:`AXIS_LABELS`).

    Parameters
    ----------
    name : str or None
        A column name.

    Returns
    -------
    str
        Its label, the name itself when it has none, or ``""`` for None.
    """
    if name is None:
        return ""
    return AXIS_LABELS.get(name, f"{name}")
