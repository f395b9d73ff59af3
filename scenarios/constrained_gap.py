"""Constrained alignment: duality gaps and the dual distance against the parametrisation gap (spec §6, §7.3).

E6 (m = 1, beta = 1), gap knob t on a log grid in [1e-3, 1]. Everything is deterministic and exact:
V* = D* = D(lambda*) by projected Newton (strong duality checked against a direct SLSQP solve over the
probability table), D*_p by projected Newton on D_p (Danskin gradient, multistart inner Newton),
V*_p by multistart SLSQP over theta polished by Newton on the KKT system, nu-hat by the spec's proxy
over lambda in [0, ||lambda*|| + 1] (a global proxy over 16 random Dirichlet policies is reported as
``nu_global``). Slopes are fitted against the measured nu-hat, never t, on the nu -> 0 regime the claims
are about: the grid points with t <= 0.1 (the slope over the whole grid is reported beside it). Above
t ~ 0.1 the local rate bends upward in an instance-dependent way (2.2 to 4.2 between the last two points),
which made the whole-grid slope vary by sd 0.056 over master seeds (tol/sd 1.8 < 4); on t <= 0.1 the
local rates are 2.00 +- 0.03 on every instance seen (sd of the slope 0.013). The cut was chosen after
that calibration; no verdict depends on it (both slopes are ~2 against the bound 1 - 0.1).
"""
from __future__ import annotations

import functools

import numpy as np

from simlab.env.gap import gap_preset, make_gap_env
from simlab.experiments.claims import Measurement
from simlab.experiments.rates import fit_rate
from simlab.experiments.scenario import CellSeeds, Claim, Scenario
from simlab.objectives.constrained import (
    dual_value_grad_hess, duality_constant, gap_proxy, optimal_log_policy, optimality_gaps, global_gap_proxy)
from simlab.plots.constrained import duality_gap_figure
from simlab.policy import log_policy
from simlab.solvers.dual import (
    MaximiserPool, minimise_parametrised_dual, solve_dual, solve_primal_distribution, solve_primal_theta)

PAPER = ("CAID: Zhang et al., 'Alignment of Large Language Models with Constrained Learning' "
         "(arXiv 2505.19387), Theorems 1-2, Lemma 4")
POSITIVE = 1e-12
ASYMPTOTIC_T = 0.1  # rate fits use the grid points with t <= this (the nu -> 0 regime)


@functools.lru_cache(maxsize=16)
def _strong_duality_error(m: int, beta: float, seed_key: tuple) -> float:
    """|V* (direct SLSQP over the probability table) - D(lambda*)|. The distribution-space problem does not
    depend on t, so it is solved once per instance and process."""
    entropy, spawn_key = seed_key
    env = make_gap_env(gap_preset(m=m, beta=beta), np.random.SeedSequence(entropy, spawn_key=spawn_key))
    return abs(solve_primal_distribution(env).value - solve_dual(env).value)


def cell(params: dict, seeds: CellSeeds) -> dict:
    env = make_gap_env(gap_preset(t=float(params["t"]), m=int(params["m"]), beta=float(params["beta"])),
                       seeds.instance)
    dual = solve_dual(env)
    strong_duality_err = _strong_duality_error(env.m, env.beta, (seeds.instance.entropy,
                                                                 tuple(seeds.instance.spawn_key)))
    lam_norm = float(np.linalg.norm(dual.lam))
    # the theta-problems are multimodal at small beta / large t: seed a pool of local maximisers along
    # lambda (forward and backward sweeps) and start every inner and primal solve from it
    pool = MaximiserPool()
    pool.sweep(env, lambda_grid(env.m, 2.0 * (lam_norm + 1.0), points=25))
    dual_p = minimise_parametrised_dual(env, pool=pool)
    primal_p = solve_primal_theta(env, starts=pool.thetas)
    nu = gap_proxy(env, lambda_grid(env.m, lam_norm + 1.0, points=9 if env.m == 1 else 25), starts=pool.thetas)
    nu_global = global_gap_proxy(env, n_policies=16)["nu_global"]
    # lambda*_nu = argmin D(lam) - M nu ||lam||_1 is infinite (Theorem 1 vacuous) iff M nu >= the smallest
    # recession slope of D over the simplex of directions
    m_nu = env.bound_M * nu["nu_hat"]
    unbounded = m_nu >= recession_slope(env)
    lam_nu = None if unbounded else solve_dual(env, linear_offset=m_nu)
    if unbounded:
        c_nu = np.inf
    else:
        c_nu = duality_constant(env, lam_nu.lam) if lam_nu.converged else np.nan
    c_p = duality_constant(env, dual_p.lam)
    mu_d = float(np.linalg.eigvalsh(dual_value_grad_hess(env, dual.lam)[2]).min())
    g1 = dual_p.value - primal_p.value
    g2 = dual.value - dual_p.value
    dist = float(np.linalg.norm(dual_p.lam - dual.lam))
    lp_star = optimal_log_policy(env, dual.lam)
    multi = optimality_gaps(env, log_policy(dual_p.theta, env.phi), lp_star)
    one_theta = pool.evaluate(env, dual.lam).theta  # the one-shot policy theta*_p(lambda*)
    one = optimality_gaps(env, log_policy(one_theta, env.phi), lp_star)
    ok = dual.converged and dual_p.converged and primal_p.converged
    return {
        "nu_hat": nu["nu_hat"], "nu_1": nu["nu_1"], "nu_kl": nu["nu_kl"], "nu_global": nu_global,
        "ratio_G1_global": g1 / (c_nu * nu_global),
        "V_star": dual.value, "D_star_p": dual_p.value, "V_star_p": primal_p.value,
        "G1": g1, "G2": g2, "min_gap": min(g1, g2),
        "strong_duality_err": strong_duality_err,
        "lam_star": lam_norm, "lam_star_p": float(np.linalg.norm(dual_p.lam)), "dual_distance": dist,
        "ratio_G1": g1 / (c_nu * nu["nu_hat"]), "ratio_G2": g2 / (c_p * nu["nu_hat"]),
        "ratio_dual_distance": dist / np.sqrt(2 * c_p * nu["nu_hat"] / mu_d),
        "mu_D": mu_d, "theorem1_vacuous": float(unbounded),
        "multi_r_opt": multi["r_opt"], "multi_u_opt": multi["u_opt_l2"],
        "one_r_opt": one["r_opt"], "one_u_opt": one["u_opt_l2"],
        "failed": 0.0 if ok else 1.0,
    }


def lambda_grid(m: int, radius: float, points: int = 9) -> np.ndarray:
    """``points`` values in [0, radius] for m = 1; for m >= 2 the points of a product grid with
    ceil(points^(1/m)) values per axis on [0, radius]^m inside the ball of that radius."""
    if m == 1:
        return np.linspace(0.0, radius, points)[:, None]
    axis = np.linspace(0.0, radius, int(np.ceil(points ** (1.0 / m))))
    grid = np.stack(np.meshgrid(*([axis] * m), indexing="ij"), axis=-1).reshape(-1, m)
    return grid[np.linalg.norm(grid, axis=1) <= radius * (1 + 1e-12)]


def recession_slope(env) -> float:
    """min over directions u >= 0, ||u||_1 = 1 of lim_s D(s u)/s = E_x max_a u^T c(x, a) (convex in u):
    exact for m = 1, golden-section search on the segment for m = 2."""
    def h(u):
        return float(env.p_x @ (env.constraint @ u).max(axis=1))

    if env.m == 1:
        return h(np.ones(1))
    if env.m != 2:
        raise ValueError(f"recession_slope supports m <= 2, got m = {env.m}")
    lo, hi = 0.0, 1.0
    g = (np.sqrt(5.0) - 1) / 2
    for _ in range(80):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if h(np.array([a, 1 - a])) <= h(np.array([b, 1 - b])):
            hi = b
        else:
            lo = a
    return min(h(np.array([0.5 * (lo + hi), 1 - 0.5 * (lo + hi)])), h(np.array([1.0, 0.0])), h(np.array([0.0, 1.0])))


def per_configuration(evaluate_one):
    """Judge each (m, beta) configuration separately; the claim passes iff every one does. The reported
    value and CI are those of the primary configuration (m = 1, beta = 1, the first in the frame)."""
    def evaluate(df) -> Measurement:
        if df.empty:
            return Measurement(np.nan, (np.nan, np.nan), False, "no stored rows")
        results = [(key, evaluate_one(g)) for key, g in df.groupby(["m", "beta"], sort=False)]
        results.sort(key=lambda kr: (kr[0] != (1, 1.0), kr[0]))
        head = results[0][1]
        notes = "; ".join(f"[m = {int(k[0])}, beta = {k[1]:g}: {'pass' if r.passed else 'FAIL'}] {r.notes}"
                          for k, r in results)
        return Measurement(head.measured, head.ci, all(r.passed for _, r in results), notes, head.fit,
                           {f"m={int(k[0])},beta={k[1]:g}": r.measured for k, r in results})
    return evaluate


def _slope_on_positive(df, metric, t_max=ASYMPTOTIC_T):
    """Rate fit of ``metric`` vs nu-hat over the rows with t <= t_max where it is positive (None if < 2)."""
    rows = df[np.isfinite(df[metric]) & (df[metric] > POSITIVE) & (df["t"] <= t_max * (1 + 1e-9))]
    if len(rows) < 2:
        return None
    return fit_rate(rows["nu_hat"].to_numpy(), rows[metric].to_numpy(), rows["replicate"].to_numpy())


def evaluate_ordering(df) -> Measurement:
    """Deterministic ordering: G1 = D*_p - V*_p >= -1e-9 and G2 = V* - D*_p >= -1e-9 at every t."""
    if df.empty:
        return Measurement(np.nan, (np.nan, np.nan), False, "no stored rows")
    worst = float(df["min_gap"].min())
    ok = worst >= -1e-9 and bool((df["failed"] == 0).all())
    sd = float(df["strong_duality_err"].max())
    note = (f"min over t of min(G1, G2) = {worst:.2e}; max |V*(SLSQP) - D(lambda*)| = {sd:.1e}; "
            f"max G1 = {df['G1'].max():.2e}")
    return Measurement(worst, (worst, worst), ok, note, extra={"max_G1": float(df["G1"].max()),
                                                                "strong_duality_err": sd})


def evaluate_gap_slope(df) -> Measurement:
    """upper(1, 0.1, zero) on the positive gaps vs nu-hat (t <= ASYMPTOTIC_T); G1 identically 0 is reported
    as a zero gap; the whole-grid slopes are reported."""
    if df.empty:
        return Measurement(np.nan, (np.nan, np.nan), False, "no stored rows")
    fit2 = _slope_on_positive(df, "G2")
    fit1 = _slope_on_positive(df, "G1")
    if fit2 is None:
        return Measurement(np.nan, (np.nan, np.nan), False,
                           f"fewer than 2 positive G2 values at t <= {ASYMPTOTIC_T:g}")
    ok = fit2.slope >= 1.0 - 0.1
    whole = _slope_on_positive(df, "G2", t_max=np.inf)
    notes = [f"G2 = V* - D*_p slope {fit2.slope:.3f} vs nu-hat on t <= {ASYMPTOTIC_T:g} "
             f"({whole.slope:.3f} over the whole grid, report only)"]
    extra = {"slope_G2": fit2.slope, "slope_G2_whole_grid": whole.slope}
    n_pos = int((df["G1"] > POSITIVE).sum())
    if n_pos == 0:
        notes.append(f"G1 = D*_p - V*_p is a zero gap (all <= {POSITIVE:g})")
    elif fit1 is None:
        notes.append(f"G1 > {POSITIVE:g} at {n_pos} point(s), fewer than 2 with t <= {ASYMPTOTIC_T:g} (max G1 = "
                     f"{df['G1'].max():.2e} at nu-hat = {df.loc[df['G1'].idxmax(), 'nu_hat']:.3g}); no G1 slope")
    else:
        notes.append(f"G1 slope {fit1.slope:.3f}")
        extra["slope_G1"] = fit1.slope
        ok = ok and fit1.slope >= 0.9
    return Measurement(fit2.slope, fit2.ci, ok, "; ".join(notes), fit2, extra)


def evaluate_theorem1_ratio(df) -> Measurement:
    """Theorem 1 (stated constant): G1 / (C(lambda*_nu) nu-hat) <= 1, gated; the Theorem 2 ratio reported."""
    if df.empty:
        return Measurement(np.nan, (np.nan, np.nan), False, "no stored rows")
    r1 = df["ratio_G1"].to_numpy(dtype=float)
    worst = float(np.nanmax(r1)) if np.isfinite(r1).any() else np.nan
    ok = bool(np.isfinite(r1).all()) and worst <= 1.0
    note = (f"max G1/(C(lam_nu) nu-hat) = {worst:.3g}; Theorem 2 (reconstructed) ratio G2/(C(lam_p) nu-hat) "
            f"max {np.nanmax(df['ratio_G2']):.3g} (report only)")
    if not ok and np.isfinite(worst):
        note = "violated under proxy nu-hat; " + note
    vac = int(df["theorem1_vacuous"].sum())
    if vac:
        note += f"; at {vac} points M nu-hat exceeds lim D' so lambda*_nu = inf and the bound is vacuous (ratio 0)"
    return Measurement(worst, (worst, worst), ok, note, extra={"max_ratio_G2": float(np.nanmax(df["ratio_G2"]))})


def evaluate_dual_distance(df) -> Measurement:
    """upper(1/2, 0.1, zero) on ||lambda*_p - lambda*|| vs nu-hat (t <= ASYMPTOTIC_T); the whole-grid slope and
    the Lemma 4 ratio are reported."""
    if df.empty:
        return Measurement(np.nan, (np.nan, np.nan), False, "no stored rows")
    fit = _slope_on_positive(df, "dual_distance")
    if fit is None:
        return Measurement(np.nan, (np.nan, np.nan), False,
                           f"fewer than 2 positive distances at t <= {ASYMPTOTIC_T:g}")
    ok = fit.slope >= 0.5 - 0.1
    whole = _slope_on_positive(df, "dual_distance", t_max=np.inf)
    ratio = float(np.nanmax(df["ratio_dual_distance"]))
    return Measurement(fit.slope, fit.ci, ok,
                       f"slope on t <= {ASYMPTOTIC_T:g}; {whole.slope:.3f} over the whole grid (report only); "
                       f"max Lemma 4 ratio ||lam_p - lam*|| / sqrt(2 C nu-hat / mu_D) = {ratio:.3g} (report only)",
                       fit, {"max_ratio_lemma4": ratio, "slope_whole_grid": whole.slope})


T_QUICK = [float(v) for v in np.geomspace(1e-3, 1.0, 8)]
T_FULL = [float(v) for v in np.geomspace(1e-3, 1.0, 16)]
STATEMENT_GAP = ("Weak duality over theta and the gap bounds: 0 <= D*_p - V*_p <= C(lambda*_nu) nu and "
                 "V*_p <= D*_p <= D* = V*; the gaps vanish at least linearly in the parametrisation gap nu.")
QUANTITY_GAP = ("G1 = D*_p - V*_p and G2 = V* - D*_p vs measured nu-hat (E6, m = 1, beta = 1, t in [1e-3, 1]; "
                "full mode adds m = 2 and beta = 0.1, each judged separately)")

CLAIMS = (
    Claim(id="constrained.duality_gap", kind="ordering", metric="min_gap", predicted=0.0, tol=1e-9,
          side=">", paper=PAPER, statement=STATEMENT_GAP, quantity=QUANTITY_GAP + "; min(G1, G2) >= -1e-9",
          evaluate=per_configuration(evaluate_ordering)),
    Claim(id="constrained.duality_gap", kind="upper", metric="G2", x="nu_hat", predicted=1.0, tol=0.1,
          direction="zero", paper=PAPER, statement=STATEMENT_GAP,
          quantity=QUANTITY_GAP + f"; log-log slope of each positive gap on t <= {ASYMPTOTIC_T:g}",
          evaluate=per_configuration(evaluate_gap_slope)),
    Claim(id="constrained.duality_gap", kind="identity", metric="ratio_G1", predicted=1.0, tol=1.0,
          paper=PAPER, statement="Theorem 1 (constant stated): D*_p - V*_p <= C(lambda*_nu) nu.",
          quantity="max over t of G1 / (C(lambda*_nu) nu-hat) <= 1 (gated; nu-hat is a local proxy)",
          evaluate=per_configuration(evaluate_theorem1_ratio)),
    Claim(id="constrained.dual_distance", kind="upper", metric="dual_distance", x="nu_hat", predicted=0.5,
          tol=0.1, direction="zero", paper=PAPER,
          statement="Lemma 4: ||lambda*_p - lambda*|| = O(sqrt(nu)) (shape sqrt(2 C(lambda*_p) nu / mu_D) derived here).",
          quantity=(f"||lambda*_p - lambda*|| vs nu-hat on t <= {ASYMPTOTIC_T:g} (E6, m = 1); whole-grid slope and "
                    "Lemma 4 ratio reported"),
          evaluate=per_configuration(evaluate_dual_distance)),
)

SCENARIO = Scenario(
    name="constrained_gap", version="5", study="Constrained alignment",
    description="Duality gaps and dual distance vs the parametrisation gap nu-hat on E6 (deterministic, exact).",
    cell=cell, fixed={"m": 1, "beta": 1.0, "env_draw": 0},
    grids={"quick": {"t": T_QUICK},
           "full": [{"t": T_FULL}, {"t": T_QUICK, "m": [2]}, {"t": T_QUICK, "beta": [0.1]}]},
    seeds={"quick": 1, "full": 1}, claims=CLAIMS, figures=(duality_gap_figure,),
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    scenario_main(SCENARIO)
