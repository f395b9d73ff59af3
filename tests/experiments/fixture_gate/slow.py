"""Gate fixture: an estimator whose error decays like n^-1/2 registered with a tight -1 claim (must fail)."""
import numpy as np

from simlab.experiments.scenario import Claim, Scenario


def cell(params, seeds):
    rng = np.random.default_rng(seeds.sample)
    n = params["n"]
    return {"err": rng.chisquare(4) / (4 * np.sqrt(n))}


SCENARIO = Scenario(
    name="slow", version="1", study="gate fixture", description="error ~ n^-1/2 against a claimed n^-1",
    cell=cell, grids={"quick": {"n": [10, 100, 1000, 10000]}, "full": {"n": [10, 100, 1000, 10000]}},
    seeds={"quick": 40, "full": 40},
    claims=(Claim(id="slow.rate", kind="tight", metric="err", x="n", predicted=-1.0, tol=0.15,
                  paper="none", statement="claims n^-1; the estimator decays like n^-1/2", quantity="err"),),
)
