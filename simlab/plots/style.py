"""The one house style for every simlab figure."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")


def apply_style() -> None:
    """seaborn 'whitegrid' with a colour-blind palette and compact fonts."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette="colorblind", context="paper", font_scale=1.1)
