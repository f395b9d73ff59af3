"""A toy scenario for engine tests: err = chi^2_4 / (4 n) has slope exactly -1 in expectation."""
import os
import time

import numpy as np

from simlab.experiments.scenario import Claim, Scenario


def cell(params, seeds):
    # SIMLAB_TOY_SLEEP slows the sleeping cells down (never the numbers) for tests that interrupt a sweep
    sleep = float(params.get("sleep", 0.0))
    time.sleep(float(os.environ.get("SIMLAB_TOY_SLEEP", sleep)) if sleep else 0.0)
    rng = np.random.default_rng(seeds.sample)
    n = params["n"]
    err = rng.chisquare(4) / (4 * n)
    return {"err": err, "ratio": err * n, "diff": -err, "instance": float(seeds.instance.generate_state(1)[0])}


SCENARIO = Scenario(
    name="toy", version="1", study="engine test", description="synthetic slope -1",
    cell=cell, fixed={"sleep": 0.0},
    grids={"quick": {"n": [10, 100, 1000, 10000]}, "full": {"n": [10, 100, 1000, 10000], "sleep": [0.05]}},
    seeds={"quick": 40, "full": 30},
    claims=(
        Claim(id="toy.rate", kind="tight", metric="err", x="n", predicted=-1.0, tol=0.15, cut=10,
              paper="none", statement="slope -1", quantity="err"),
        Claim(id="toy.rate", kind="upper", metric="err", x="n", predicted=-0.5, tol=0.1, cut=10,
              paper="none", statement="bound n^-1/2", quantity="err"),
        Claim(id="toy.slow", kind="upper", metric="ratio", x="n", predicted=-0.5, tol=0.1,
              paper="none", statement="a bound that does not hold: ratio is flat in n", quantity="err n"),
        Claim(id="toy.ratio", kind="identity-in-expectation", metric="ratio", predicted=1.0, tol=0.2,
              paper="none", statement="E[err n] = 1", quantity="err n"),
        Claim(id="toy.order", kind="ordering", metric="diff", predicted=0.0, tol=0.0, side="<",
              paper="none", statement="-err < 0", quantity="-err"),
    ),
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    raise SystemExit(scenario_main(SCENARIO))
