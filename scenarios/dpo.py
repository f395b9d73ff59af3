"""DPO baseline: the parametric n^-1 rate, the +1 d-slope at fixed coverage, and the Fisher constant.

docs/theory/dpo.md §3.1 and docs/theory/claims.md §7.3 (dpo.rate_n, dpo.rate_d, dpo.fisher). Targets are exact: theta* is the Newton
minimiser of the population DPO loss over the atoms (and equals theta_ref + w*/beta; the cell
records the difference). The empirical fit uses multinomial atom weights, so its cost does not grow
with n. Common random numbers: each replicate's sample for n is the prefix of one iid stream
(nested multinomial increments on the ladder 2^9, 2^10, ..., n), shared across the n grid.
"""
from __future__ import annotations

import numpy as np

from simlab.env import make_env, preset
from simlab.env.sampling import nested_counts, prefix_ladder
from simlab.experiments.scenario import CellSeeds, Claim, Experiment, Scenario, cached_per_instance
from simlab.objectives.dpo import dpo_fisher, dpo_population_minimizer
from simlab.solvers.dpo import fit_dpo_exact
from simlab.solvers.exact import NoMinimizerError

PAPER = "DPO (Rafailov et al. 2023, arXiv 2305.18290); asymptotics derived in docs/theory/dpo.md §3.1"


@cached_per_instance
def _population(instance: np.random.SeedSequence, experiment: str, d: int):
    """Environment, offline atoms, exact theta* and Fisher information (once per instance)."""
    spec = preset("E4", d=d) if experiment == "rate_d" else preset("E1", d=d)
    env = make_env(spec, instance)
    atoms = env.atoms("offline")
    fit = fit_dpo_exact(atoms, atoms.p0, env.theta_ref, env.beta, gtol=1e-12)
    fisher = dpo_fisher(fit.x, env.theta_ref, env.beta, atoms.dphi, atoms.p0)
    identity_gap = float(np.max(np.abs(fit.x - dpo_population_minimizer(env.theta_ref, env.beta, env.w_star))))
    return env, atoms, fit.x, fisher, identity_gap


def cell(params: dict, seeds: CellSeeds) -> dict:
    experiment, n, d = params["experiment"], int(params["n"]), int(params["d"])
    env, atoms, theta_star, fisher, identity_gap = _population(seeds.instance, experiment, d)
    rng = np.random.default_rng(seeds.sample)
    counts = nested_counts(atoms.p0, prefix_ladder(n), rng)[n]
    lam_min, _ = atoms.coverage()
    out = {"lambda_min": lam_min, "target_identity_gap": identity_gap, "failed": 0.0}
    try:
        fit = fit_dpo_exact(atoms, counts / n, env.theta_ref, env.beta)
    except NoMinimizerError:
        return out | {"failed": 1.0, "err2": np.nan, "err2_I": np.nan, "fisher_ratio": np.nan,
                      "newton_iterations": np.nan}
    e = fit.x - theta_star
    err2_I = float(e @ fisher @ e)
    return out | {"err2": float(e @ e), "err2_I": err2_I, "fisher_ratio": n * err2_I / d,
                  "newton_iterations": float(fit.iterations)}


CLAIMS = (
    Claim(id="dpo.rate_n", kind="tight", metric="err2", x="n", predicted=-1.0, tol=0.15, cut=2**10,
          also=("err2_I",), paper=PAPER,
          statement="The empirical DPO minimiser converges at the parametric rate: E||theta_n - theta*||^2 ~ 1/n.",
          quantity="E||theta_n - theta*||^2 (E1, d = 8; I-norm slope also reported)", experiment="rate_n"),
    Claim(id="dpo.rate_d", kind="tight", metric="err2_I", x="d", predicted=1.0, tol=0.15, paper=PAPER,
          statement="At fixed coverage the I-norm squared error grows linearly in d (n E||.||_I^2 -> d).",
          quantity="E||theta_n - theta*||_I^2 vs d (E4 fixed-coverage design, Sigma = 0.5 I; n fixed)",
          experiment="rate_d"),
    Claim(id="dpo.fisher", kind="identity-in-expectation", metric="fisher_ratio", predicted=1.0, tol=0.10,
          paper=PAPER,
          statement="Asymptotic efficiency: n E||theta_n - theta*||_I^2 / d -> 1 with I the exact Fisher information.",
          quantity="n ||theta_n - theta*||_I^2 / d per seed, mean over seeds (E1)", experiment="fisher"),
)

SCENARIO = Scenario(
    name="dpo",
    version="1",
    study="DPO baseline",
    description="Exact empirical DPO fits on E1/E4 against the exact population minimiser.",
    cell=cell,
    experiments=(
        Experiment("rate_n", quick={"d": [8], "n": [2**10, 2**12, 2**14, 2**16]},
                   full={"d": [8], "n": [2**k for k in range(9, 19)]}),
        Experiment("rate_d", quick={"d": [2, 4, 8, 16], "n": [2**14], "seeds": 256},
                   full={"d": [2, 4, 8, 16, 32, 64], "n": [2**16], "env_draw": [0, 1, 2, 3]}),
        Experiment("fisher", quick={"d": [8], "n": [2**16]}, full={"d": [4, 8, 16], "n": [2**16, 2**18]},
                   seeds={"quick": 512, "full": 1000}),
    ),
    seeds={"quick": 64, "full": 400},
    shared_seed_axes=("n",),
    claims=CLAIMS,
    crn_note="nested prefixes: each replicate's samples for all n are prefixes of one iid stream",
    metrics={
        "err2": "squared Euclidean error ||theta_n - theta*||^2 of the empirical DPO minimiser against the "
                "exact population minimiser theta* (docs/theory/dpo.md §3.1)",
        "err2_I": "squared error in the Fisher norm, (theta_n - theta*)' I (theta_n - theta*), with I the exact "
                  "Fisher information of the population DPO loss at theta*",
        "fisher_ratio": "n err2_I / d: tends to 1 under asymptotic efficiency (dpo.fisher)",
        "lambda_min": "smallest eigenvalue of the offline feature covariance Sigma under p0 (the coverage of "
                      "the environment instance; the same for every cell of an instance)",
        "target_identity_gap": "max |theta* - (theta_ref + w*/beta)|: the Newton population minimiser against "
                               "its closed form (round-off size when both are right)",
        "newton_iterations": "Newton iterations of the empirical fit",
        "failed": "1.0 when the empirical DPO loss has no minimiser (separable sample: the error metrics are "
                  "NaN), else 0.0",
    },
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    raise SystemExit(scenario_main(SCENARIO))
