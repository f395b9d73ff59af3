"""Gate fixture: a check recorded in the baseline as a known finding (fail) whose data now pass."""
import numpy as np

from simlab.experiments.scenario import Claim, Scenario


def cell(params, seeds):
    rng = np.random.default_rng(seeds.sample)
    return {"diff": -1.0 - rng.random()}


SCENARIO = Scenario(
    name="finding", version="1", study="gate fixture", description="a known finding that now passes",
    cell=cell, grids={"quick": {"k": [0]}, "full": {"k": [0]}}, seeds={"quick": 20, "full": 20},
    claims=(Claim(id="finding.order", kind="ordering", metric="diff", predicted=0.0, tol=0.0, side="<",
                  paper="none", statement="diff < 0", quantity="diff"),),
)
