"""The study figures render from stored-row frames (and return nothing for empty frames); no figure calls a solver."""
import ast
from pathlib import Path

import numpy as np
import pandas as pd

from simlab.plots import constrained as P


def test_figures_render(tmp_path):
    nu = np.geomspace(1e-3, 1, 5)
    gaps = pd.DataFrame({"nu_hat": nu, "G1": np.zeros(5), "G2": nu ** 2, "dual_distance": nu ** 2,
                         "m": 1, "beta": 1.0, "one_u_opt": 2 * nu ** 2, "multi_u_opt": np.full(5, 1e-12),
                         "one_r_opt": nu ** 2, "multi_r_opt": nu ** 2})
    for fn in (P.duality_gap_figure, P.optimality_gap_figure, P.slack_figure, P.violation_figure,
               P.dual_trajectory_figure, P.near_optimal_figure, P.best_iterate_figure):
        assert fn(pd.DataFrame(), tmp_path) == []
    assert P.duality_gap_figure(gaps, tmp_path)[0].exists()
    assert P.optimality_gap_figure(gaps, tmp_path)[0].exists()
    slack = pd.DataFrame({"q": [0.1, 0.1, 0.3, 0.3], "slack_one": [-0.02, -0.01, -0.03, -0.02],
                          "slack_multi": [0.0, 1e-13, 0.0, -1e-13], "active": 1.0})
    slack["violation_one"], slack["violation_multi"] = -slack["slack_one"], -slack["slack_multi"]
    assert P.slack_figure(slack, tmp_path)[0].exists()
    assert P.violation_figure(slack, tmp_path)[0].exists()
    traj = {f"{who}_{name}_{j}": float(j) for who in ("gda", "caid") for name in ("t", "lam", "u") for j in range(4)}
    dyn = pd.DataFrame([{"experiment": "gda", "alpha_scale": 1.0, "lam_star_p": 1.0, **traj},
                        {"experiment": "caid", "start": "zero", "m": 1, "env_draw": 0, "gap_t0": 1.0,
                         "gap_t10": 1e-3, "gap_t20": 1e-6, "log_factor_predicted": -0.7}])
    assert P.dual_trajectory_figure(dyn, tmp_path)[0].exists()
    delta = np.geomspace(1e-4, 1e-1, 4)
    near = pd.DataFrame({"delta": np.tile(delta, 2), "direction": ["up"] * 4 + ["down"] * 4, "u_opt": np.tile(delta, 2),
                         "r_opt_excess": np.tile(delta, 2), "mu_p": 1.0, "lam_star_p": 1.0})
    assert P.near_optimal_figure(near, tmp_path)[0].exists()
    eta = np.geomspace(0.03, 0.5, 5)
    floor = pd.DataFrame({"eta": eta, "S2": 0.02, "floor_derived": eta ** 3, "best_lam_error_derived": eta ** 1.5,
                          **{f"{q}_{e}": eta ** 3 for q in ("floor", "best_u_opt", "best_lam_error")
                             for e in ("e0", "e1", "e2")}})
    assert P.best_iterate_figure(floor, tmp_path)[0].exists()


def test_plots_never_import_solvers():
    """Figures are drawn from stored rows only: the constrained figures import nothing from simlab.solvers
    (nor the objectives or environment layers)."""
    for path in (Path(P.__file__),):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("simlab.solvers", "simlab.objectives", "simlab.env")) for n in names), \
                f"{path.name} imports {names}"
