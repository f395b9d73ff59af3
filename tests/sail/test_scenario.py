"""The robust_sail scenario's checks are real checks: the stationarity `upper` verdict fails on a
deliberately non-convergent (constant) step size and passes on alpha = c/sqrt(T)."""
from __future__ import annotations

import pandas as pd
import pytest

from simlab.experiments.scenario import DEFAULT_MASTER_SEED, load_scenario


@pytest.fixture(scope="module")
def scenario():
    return load_scenario("robust_sail")


def _rows(scenario, step_rule: str, seeds: int = 6) -> pd.DataFrame:
    out = []
    for T in (1600, 6400, 25600):
        params = {"experiment": "stationarity", "oracle": "box", "algorithm": "A", "step_rule": step_rule, "T": T}
        for r in range(seeds):
            metrics = scenario.cell(dict(params), scenario.seeds_for(params, r, DEFAULT_MASTER_SEED))
            out.append(params | metrics | {"replicate": r})
    return pd.DataFrame(out)


def _claim(scenario, cid):
    return next(c for c in scenario.claims if c.id == cid)


def test_stationarity_check_fails_for_constant_step(scenario):
    claim = _claim(scenario, "robust_sail.stationarity_rate")
    m = claim.evaluate(_rows(scenario, "constant"))
    assert not m.passed, f"a constant step must not pass the O(T^-1/2) check (slope {m.measured:.3f})"
    assert m.measured > claim.predicted + claim.tol


def test_stationarity_check_passes_for_decaying_step(scenario):
    claim = _claim(scenario, "robust_sail.stationarity_rate")
    m = claim.evaluate(_rows(scenario, "c/sqrtT"))
    assert m.passed, m.notes


def test_certificate_evaluation_flags_a_violation(scenario):
    claim = _claim(scenario, "robust_sail.certificate")
    ok = pd.DataFrame({"oracle": ["box"] * 3, "rho_factor": [0.5, 1.0, 1.5], "cert_gap": [0.02, -1e-3, -2e-3]})
    bad = ok.assign(cert_gap=[0.02, 1e-6, -2e-3])
    assert claim.evaluate(ok).passed and not claim.evaluate(bad).passed


def test_figures_skip_missing_rows(tmp_path):
    from simlab.plots.sail import rho_sweep_figure, stationarity_figure

    assert stationarity_figure(pd.DataFrame(), tmp_path) == []
    assert rho_sweep_figure(pd.DataFrame({"experiment": ["decomposition"]}), tmp_path) == []
