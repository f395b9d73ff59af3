"""The study figures render from stored-row frames (and return nothing for empty frames)."""
import numpy as np
import pandas as pd

from simlab.plots.constrained import dual_trajectory_figure, duality_gap_figure, slack_figure


def test_figures_render(tmp_path):
    nu = np.geomspace(1e-3, 1, 5)
    gaps = pd.DataFrame({"nu_hat": nu, "G1": np.zeros(5), "G2": nu ** 2, "dual_distance": nu ** 2})
    assert duality_gap_figure(pd.DataFrame(), tmp_path) == []
    assert duality_gap_figure(gaps, tmp_path)[0].exists()
    slack = pd.DataFrame({"q": [0.1, 0.1, 0.3, 0.3], "slack_one": [-0.02, -0.01, -0.03, -0.02],
                          "slack_multi": [0.0, 1e-13, 0.0, -1e-13]})
    assert slack_figure(pd.DataFrame(), tmp_path) == []
    assert slack_figure(slack, tmp_path)[0].exists()
    assert dual_trajectory_figure(pd.DataFrame(), tmp_path)[0].exists()
