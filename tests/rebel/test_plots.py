"""The reward-vs-alpha figure of the preference-shift study (smoke test on a tiny frame)."""
import numpy as np
import pandas as pd

from simlab.plots.rebel import reward_vs_alpha_figure


def test_reward_vs_alpha_figure(tmp_path):
    assert reward_vs_alpha_figure(pd.DataFrame(), tmp_path) == []
    rows = []
    for setting in ("E1", "E2"):
        for method, radius in (("dpo", 0.0), ("rebel", 0.0), ("rebel_kl", 0.1), ("rebel_w2", 0.3)):
            for rep in range(2):
                row = {"setting": setting, "method": method, "radius": radius, "replicate": rep}
                row |= {f"J_{k}": float(np.sin(k + rep)) for k in range(11)}
                row |= {f"Jopt_{k}": 1.0 for k in range(11)}
                rows.append(row)
    paths = reward_vs_alpha_figure(pd.DataFrame(rows), tmp_path)
    assert len(paths) == 1 and paths[0].exists() and paths[0].stat().st_size > 0
