"""Gate fixture: a rate claim whose grid points past the cut hold only failed (NaN) cells, and a claim
whose rows are filtered away (not run)."""
import numpy as np

from simlab.experiments.scenario import Claim, Scenario


def cell(params, seeds):
    rng = np.random.default_rng(seeds.sample)
    n = params["n"]
    return {"err": np.nan if n >= 1000 else rng.chisquare(4) / (4 * n)}


SCENARIO = Scenario(
    name="edge", version="1", study="gate fixture", description="failed cells past the cut",
    cell=cell, grids={"quick": {"n": [10, 100, 1000, 10000]}, "full": {"n": [10, 100, 1000, 10000]}},
    seeds={"quick": 10, "full": 10},
    claims=(Claim(id="edge.rate", kind="tight", metric="err", x="n", predicted=-1.0, tol=0.15, cut=1000,
                  paper="none", statement="every fit past the cut failed", quantity="err"),
            Claim(id="edge.empty", kind="ordering", metric="err", predicted=0.0, tol=0.0, side="<",
                  where={"n": 7}, paper="none", statement="no cell has n = 7", quantity="err")),
)
