"""The robust-minus-nominal figure of the preference-shift study (smoke test on a tiny frame)."""
import numpy as np
import pandas as pd

from simlab.plots.rebel import shift_advantage_figure


def test_shift_advantage_figure(tmp_path):
    assert shift_advantage_figure(pd.DataFrame(), tmp_path) == []
    rng = np.random.default_rng(0)
    rows = []
    for rep in range(4):
        row = {"experiment": "map", "regime": "labelers", "family": "rebel", "alpha0": 0.1, "replicate": rep}
        for k in range(3):
            row[f"dminJ_kl_{k}"] = rng.normal()
            row[f"pop_dminJ_kl_{k}"] = 0.1
        rows.append(row)
    paths = shift_advantage_figure(pd.DataFrame(rows), tmp_path)
    assert len(paths) == 1 and paths[0].exists()
