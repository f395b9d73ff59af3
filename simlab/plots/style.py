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

    A file whose bytes would not change is left untouched (no timestamps are embedded), so redrawing
    an unchanged figure keeps tracked files byte-identical."""
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
