"""Constrained alignment: duality gaps and the dual distance against the parametrization gap (docs/theory/constrained.md §6, §7.3).

E6 (m = 1, beta = 1), gap knob t on a log grid in [1e-3, 1]. Everything is deterministic and exact:
V* = D* = D(lambda*) by projected Newton (strong duality checked against a direct SLSQP solve over the
probability table), D*_p by projected Newton on D_p (Danskin gradient, multistart inner Newton),
V*_p by multistart SLSQP over theta polished by Newton on the KKT system, nu-hat by the proxy of docs/theory/constrained.md §6.4
over lambda in [0, ||lambda*|| + 1] (a global proxy over 16 random Dirichlet policies is reported as
``nu_global``). Slopes are fitted against the measured nu-hat, never t, on the nu -> 0 regime the claims
are about: the grid points with t <= 0.1 (the slope over the whole grid is reported beside it). Above
t ~ 0.1 the local rate bends upward in an instance-dependent way (2.2 to 4.2 between the last two points),
which made the whole-grid slope vary by sd 0.056 over master seeds (tol/sd 1.8 < 4); on t <= 0.1 the
local rates are 2.00 +- 0.03 on every instance seen (sd of the slope 0.013). The cut was chosen after
that calibration; no verdict depends on it (both slopes are ~2 against the bound 1 - 0.1).

Optimality gaps (the CAID paper's Theorems 3-4; derivation, docs/theory/constrained.md §6.3). On E6 the class
misses the optimal logits log pi_ref + r_lambda/beta only in the tilted utility direction, by O(t) per
context, so nu-hat = Theta(t) (both the l1 and the KL part are first order), while the I-projection error
KL_min(lambda) = min_theta E_x KL(pi_theta || pi*(lambda)) is second order: Theta(t^2) = Theta(nu^2).
D_p = D - beta KL_min then gives:
- G2 = V* - D*_p and ||lambda*_p - lambda*|| (strong convexity of D) are Theta(nu^2): slope 2 (gap_shape);
- multi-shot pi*_p(lambda*_p): E_x E_pi c = D_p'(lambda*_p) = 0 = E_x E_{pi*} c (active constraint, D_p smooth
  at lambda*_p), so U-OPT = 0 exactly, and J_beta(pi) = D_p(lambda*_p) - lambda*_p D_p'(lambda*_p) = D*_p, so
  R-OPT = G2 = Theta(nu^2);
- one-shot pi*_p(lambda*): U-OPT = |D_p'(lambda*)| = beta KL_min'(lambda*) and R-OPT = |beta KL_min(lambda*) -
  lambda* beta KL_min'(lambda*)|, both Theta(nu^2) (with KL_min ~ kappa t^2 lambda^2 to leading order,
  U-OPT ~ 2 G2/lambda* and R-OPT ~ G2, as measured); the one-shot policy violates the constraint by
  beta KL_min'(lambda*) > 0.
The papers' O(sqrt(nu)) (and O(nu) for nu >= 1) are the `upper` rows; the derived slope 2 the `tight` rows.
At beta = 0.1 the t <= 0.1 slopes are ~2.18 (full mode): the nu -> 0 regime starts later there.
Quick mode runs beta = 0.1 only at t = 1, the one point with G1 > 0 (0.0144); there M nu-hat exceeds lim D',
so Theorem 1's bound is infinite and its ratio cannot be judged (inconclusive, not a vacuous pass).
"""
from __future__ import annotations

import numpy as np

from simlab.env.gap import gap_preset, make_gap_env
from simlab.experiments.claims import Measurement
from simlab.experiments.rates import (
    FAIL, INCONCLUSIVE, PASS, as_verdict, fit_rate, verdict_tight, verdict_upper)
from simlab.experiments.scenario import CellSeeds, Claim, Scenario, cached_per_instance
from simlab.objectives.constrained import dual_value_grad_hess, duality_constant, optimal_log_policy, optimality_gaps
from simlab.plots.constrained import duality_gap_figure, optimality_gap_figure
from simlab.policy import log_policy
from simlab.solvers.constrained import (
    MaximizerPool, gap_proxy, global_gap_proxy, minimize_parametrized_dual, solve_dual, solve_primal_distribution,
    solve_primal_theta)

PAPER = ("CAID: Zhang et al., 'Alignment of Large Language Models with Constrained Learning' "
         "(arXiv 2505.19387), Theorems 1-2, Lemma 4")
POSITIVE = 1e-12
ASYMPTOTIC_T = 0.1  # rate fits use the grid points with t <= this (the nu -> 0 regime)
STRONG_DUALITY_MIN_BETA = 0.5


@cached_per_instance(maxsize=16)
def _strong_duality_error(instance: np.random.SeedSequence, m: int, beta: float) -> float:
    """|V* (direct SLSQP over the probability table) - D(lambda*)|. The distribution-space problem does not
    depend on t, so it is solved once per instance and process."""
    env = make_gap_env(gap_preset(m=m, beta=beta), instance)
    return abs(solve_primal_distribution(env).value - solve_dual(env).value)


def cell(params: dict, seeds: CellSeeds) -> dict:
    env = make_gap_env(gap_preset(t=float(params["t"]), m=int(params["m"]), beta=float(params["beta"])),
                       seeds.instance)
    dual = solve_dual(env)
    # the direct SLSQP over the probability table is slow at small beta (optimal probabilities near 0): it runs
    # at beta >= STRONG_DUALITY_MIN_BETA; strong duality at beta = 0.1 is unit-tested (identity 35)
    strong_duality_err = (_strong_duality_error(seeds.instance, env.m, env.beta)
                          if env.beta >= STRONG_DUALITY_MIN_BETA else np.nan)
    lam_norm = float(np.linalg.norm(dual.lam))
    # the theta-problems are multimodal at small beta / large t: seed a pool of local maximizers along
    # lambda (forward and backward sweeps) and start every inner and primal solve from it
    pool = MaximizerPool()
    pool.sweep(env, lambda_grid(env.m, 2.0 * (lam_norm + 1.0), points=25))
    primal_p = solve_primal_theta(env, starts=pool.thetas)
    # the primal solution is a start of every inner maximization (D_p(lambda) >= L(theta_p, lambda)): at beta =
    # 0.1 the primal's SLSQP can reach a branch of L (|theta| ~ 1500) that the pool misses, and D*_p was then
    # 6e-4 low (master 20262125)
    pool.add(primal_p.solution)
    dual_p = minimize_parametrized_dual(env, pool=pool)
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
        "multi_u_opt_linf": multi["u_opt_linf"], "one_u_opt_linf": one["u_opt_linf"],
        "multi_violation": multi["violation"], "one_violation": one["violation"],
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


def per_configuration(evaluate_one, worst=None):
    """Judge each (m, beta) configuration separately; the claim passes iff every judged one does (a
    configuration whose evaluation returns ``None`` is not judged: e.g. no positive G1 there). The reported
    value and CI are those of the first judged configuration (m = 1, beta = 1 when it is judged), or, with
    ``worst`` (a key of a Measurement, larger = closer to failing), those of the worst judged one: a
    deterministic bound must report the configuration that decides it."""
    def evaluate(df) -> Measurement:
        results = [(key, evaluate_one(g)) for key, g in df.groupby(["m", "beta"], sort=False)]
        results.sort(key=lambda kr: (kr[0] != (1, 1.0), kr[0]))
        judged = [(k, r) for k, r in results if r is not None]
        notes = "; ".join(f"[m = {int(k[0])}, beta = {k[1]:g}: "
                          + ("not judged" if r is None else r.verdict.upper())
                          + "]"
                          + ("" if r is None else f" {r.notes}") for k, r in results)
        if not judged:
            return Measurement(np.nan, (np.nan, np.nan), INCONCLUSIVE, "no configuration can be judged; " + notes)
        head = judged[0][1] if worst is None else max((r for _, r in judged), key=worst)
        verdict = combine(r.verdict for _, r in judged)
        return Measurement(head.measured, head.ci, verdict, notes, head.fit,
                           {f"m={int(k[0])},beta={k[1]:g}": r.measured for k, r in judged})
    return evaluate


def _slope_on_positive(df, metric, t_max=ASYMPTOTIC_T):
    """Rate fit of ``metric`` vs nu-hat over the rows with t <= t_max where it is positive (None if < 2)."""
    rows = df[np.isfinite(df[metric]) & (df[metric] > POSITIVE) & (df["t"] <= t_max * (1 + 1e-9))]
    if len(rows) < 2:
        return None
    return fit_rate(rows["nu_hat"].to_numpy(), rows[metric].to_numpy(), rows["replicate"].to_numpy())


def combine(verdicts) -> str:
    """fail if any verdict fails, else inconclusive if any is, else pass."""
    verdicts = [as_verdict(v) for v in verdicts]
    return FAIL if FAIL in verdicts else INCONCLUSIVE if INCONCLUSIVE in verdicts else PASS


def judge_slope(fit, kind: str, predicted: float, tol: float, direction: str = "zero") -> tuple[bool, str]:
    """The verdict of a fitted slope by the claim's own kind, predicted value and tolerance."""
    if kind == "tight":
        return verdict_tight(fit.ci, predicted, tol)
    return verdict_upper(fit.ci, predicted, tol, direction)


def evaluate_ordering(df) -> Measurement:
    """Deterministic ordering: G1 = D*_p - V*_p >= -1e-9 and G2 = V* - D*_p >= -1e-9 at every t."""
    worst = float(df["min_gap"].min())
    ok = worst >= -1e-9 and bool((df["failed"] == 0).all())
    sd = float(df["strong_duality_err"].max())
    note = (f"min over t of min(G1, G2) = {worst:.2e}; max |V*(SLSQP) - D(lambda*)| = {sd:.1e}; "
            f"max G1 = {df['G1'].max():.2e}")
    return Measurement(worst, (worst, worst), ok, note, extra={"max_G1": float(df["G1"].max()),
                                                                "strong_duality_err": sd})


def slope_check(metric: str, kind: str, predicted: float, tol: float, what: str, also_g1: bool = False):
    """Judge the slope of ``metric`` vs nu-hat on t <= ASYMPTOTIC_T by (kind, predicted, tol); the whole-grid
    slope is reported. ``also_g1``: G1 is judged by the same rule where it has >= 2 positive values there
    (else reported as a zero gap)."""
    def evaluate_one(df):
        if int((df["t"] <= ASYMPTOTIC_T * (1 + 1e-9)).sum()) < 2:
            return None  # this configuration has no nu -> 0 points (quick beta = 0.1 runs t = 1 only)
        fit = _slope_on_positive(df, metric)
        if fit is None:
            return Measurement(np.nan, (np.nan, np.nan), False,
                               f"fewer than 2 positive {metric} values at t <= {ASYMPTOTIC_T:g}")
        ok, why = judge_slope(fit, kind, predicted, tol)
        whole = _slope_on_positive(df, metric, t_max=np.inf)
        notes = [f"{what} slope {fit.slope:.3f} vs nu-hat on t <= {ASYMPTOTIC_T:g} "
                 f"({whole.slope:.3f} over the whole grid, report only)" + (f": {why}" if why else "")]
        extra = {f"slope_{metric}": fit.slope, f"slope_{metric}_whole_grid": whole.slope}
        if also_g1:
            n_pos = int((df["G1"] > POSITIVE).sum())
            fit1 = _slope_on_positive(df, "G1")
            if n_pos == 0:
                notes.append(f"G1 = D*_p - V*_p is a zero gap (all <= {POSITIVE:g})")
            elif fit1 is None:
                notes.append(f"G1 > {POSITIVE:g} at {n_pos} point(s), fewer than 2 with t <= {ASYMPTOTIC_T:g} "
                             f"(max G1 = {df['G1'].max():.2e} at nu-hat = {df.loc[df['G1'].idxmax(), 'nu_hat']:.3g}); "
                             "no G1 slope")
            else:
                ok1, why1 = judge_slope(fit1, kind, predicted, tol)
                notes.append(f"G1 slope {fit1.slope:.3f}" + (f": {why1}" if why1 else ""))
                extra["slope_G1"] = fit1.slope
                ok = combine((ok, ok1))
        return Measurement(fit.slope, fit.ci, ok, "; ".join(notes), fit, extra)
    return evaluate_one


def evaluate_theorem1_ratio(df):
    """Theorem 1 (stated constant): G1 / (C(lambda*_nu) nu-hat) <= 1, gated only where G1 > 0 (elsewhere the
    bound holds trivially: 0 <= anything); the Theorem 2 ratio is reported. None (not judged) if G1 is a zero
    gap at every t."""
    pos = df[(df["G1"] > POSITIVE) & (df["theorem1_vacuous"] == 0)]
    vacuous = df[(df["G1"] > POSITIVE) & (df["theorem1_vacuous"] != 0)]
    note_g2 = (f"Theorem 2 (reconstructed) ratio G2/(C(lam_p) nu-hat) max {np.nanmax(df['ratio_G2']):.3g} "
               "(report only)")
    if pos.empty:
        if vacuous.empty:
            return None
        return Measurement(np.nan, (np.nan, np.nan), INCONCLUSIVE,
                           f"G1 > {POSITIVE:g} only where M nu-hat >= lim D' (t = "
                           + ", ".join(f"{t:.3g}: G1 = {g:.4f}" for t, g in zip(vacuous["t"], vacuous["G1"]))
                           + "): lambda*_nu = inf and Theorem 1's bound is infinite there, so it cannot be judged; "
                           + note_g2)
    r1 = pos["ratio_G1"].to_numpy(dtype=float)
    worst = float(np.nanmax(r1)) if np.isfinite(r1).any() else np.nan
    ok = bool(np.isfinite(r1).all()) and worst <= 1.0
    note = (f"G1 > {POSITIVE:g} at {len(pos)} of {len(df)} points (t = "
            + ", ".join(f"{t:.3g}" for t in pos["t"]) + f"); max G1/(C(lam_nu) nu-hat) there = {worst:.3g}; "
            + note_g2)
    if not ok and np.isfinite(worst):  # noqa: SIM102
        note = "violated under proxy nu-hat; " + note
    if not vacuous.empty:
        note += f"; at {len(vacuous)} more points with G1 > 0, M nu-hat exceeds lim D' (bound infinite, not judged)"
    return Measurement(worst, (worst, worst), ok, note, extra={"max_ratio_G2": float(np.nanmax(df["ratio_G2"])),
                                                               "points_G1_positive": int(len(pos))})


def evaluate_dual_distance(df) -> Measurement:
    """upper(1/2, 0.1, zero) on ||lambda*_p - lambda*|| vs nu-hat (t <= ASYMPTOTIC_T); the whole-grid slope and
    the Lemma 4 ratio are reported."""
    m = slope_check("dual_distance", "upper", 0.5, 0.1, "||lambda*_p - lambda*||")(df)
    if m is None:
        return None
    ratio = float(np.nanmax(df["ratio_dual_distance"]))
    m.notes += f"; max Lemma 4 ratio ||lam_p - lam*|| / sqrt(2 C nu-hat / mu_D) = {ratio:.3g} (report only)"
    m.extra["max_ratio_lemma4"] = ratio
    return m


def evaluate_multishot_uopt_zero(df):
    """Derived: U-OPT of pi*_p(lambda*_p) is 0 wherever D_p is differentiable at an interior lambda*_p (then
    E_x E_{pi*_p(lambda*_p)} c = D_p'(lambda*_p) = 0 = E_x E_{pi*} c by complementary slackness). Judged on
    the points with an active constraint and G1 = 0 (a kink of D_p at lambda*_p is what makes G1 > 0); the
    other points are reported."""
    smooth = df[(df["G1"] <= POSITIVE) & (df["lam_star_p"] > 0)]
    kinked = df[df["G1"] > POSITIVE]
    if smooth.empty:
        return None
    worst = float(smooth["multi_u_opt"].max())
    ok = bool(np.isfinite(worst)) and worst <= MULTI_UOPT_TOL
    note = (f"max U-OPT(pi*_p(lambda*_p)) = {worst:.2e} over {len(smooth)} points with G1 = 0 (l_inf "
            f"{smooth['multi_u_opt_linf'].max():.2e}; signed violation max {smooth['multi_violation'].max():.2e})")
    if not kinked.empty:
        note += ("; where G1 > 0 (a kink of D_p): U-OPT " + ", ".join(f"{u:.2e}@t={t:.3g}" for u, t in
                                                                     zip(kinked["multi_u_opt"], kinked["t"]))
                 + ", signed violation " + ", ".join(f"{v:.2e}" for v in kinked["multi_violation"]))
    return Measurement(worst, (worst, worst), ok, note)


def with_report(check, columns):
    """``check`` plus the report-only maxima of ``columns`` on t <= ASYMPTOTIC_T (signed violation etc.)."""
    def evaluate_one(df):
        m = check(df)
        if m is None:
            return None
        small = df[df["t"] <= ASYMPTOTIC_T * (1 + 1e-9)]
        m.notes += "; " + ", ".join(f"{c} in [{small[c].min():.2e}, {small[c].max():.2e}]" for c in columns)
        return m
    return evaluate_one


T_QUICK = [float(v) for v in np.geomspace(1e-3, 1.0, 8)]
T_FULL = [float(v) for v in np.geomspace(1e-3, 1.0, 16)]
MULTI_UOPT_TOL = 1e-9
SHAPE_TOL = 0.1
STATEMENT_GAP = ("Weak duality over theta and the gap bounds: 0 <= D*_p - V*_p <= C(lambda*_nu) nu and "
                 "V*_p <= D*_p <= D* = V*; the gaps vanish at least linearly in the parametrization gap nu.")
QUANTITY_GAP = ("G1 = D*_p - V*_p and G2 = V* - D*_p vs measured nu-hat (E6, t in [1e-3, 1]; m = 1 with beta = 1 "
                "and beta = 0.1, full mode adds m = 2; each configuration judged separately)")
PAPER_OPT = ("CAID: Zhang et al. (arXiv 2505.19387), Theorem 3 (multi-shot pi*_p(lambda*_p)) and Theorem 4 "
             "(one-shot pi*_p(lambda*))")
DERIVATION = ("derived (docs/theory/constrained.md §6.3): on E6 the class misses the optimal logits by O(t) "
              "in the tilted direction, so nu-hat = Theta(t) while KL_min(lambda) = min_theta E_x KL(pi_theta || "
              "pi*(lambda)) = Theta(t^2) = Theta(nu^2); D - D_p = beta KL_min gives G2 and ||lambda*_p - lambda*|| "
              "= Theta(nu^2); multi-shot: U-OPT = |D_p'(lambda*_p)| = 0 and R-OPT = G2; one-shot: U-OPT = "
              "|D_p'(lambda*)| = beta KL_min'(lambda*) and R-OPT = |beta KL_min - lambda* beta KL_min'|, both "
              "Theta(nu^2)")

CLAIMS = (
    Claim(id="constrained.duality_gap", kind="ordering", metric="min_gap", predicted=0.0, tol=1e-9,
          side=">", paper=PAPER, statement=STATEMENT_GAP,
          quantity=QUANTITY_GAP + "; min(G1, G2) >= -1e-9, reported for the configuration with the smallest margin",
          evaluate=per_configuration(evaluate_ordering, worst=lambda m: -m.measured),
          notes=("G1 >= 0 is weak duality, and every inner maximization of D_p has the primal solution among its "
                 "starts (D_p(lambda) >= L(theta_p, lambda) >= V*_p), so G1 checks the outer minimization over "
                 "lambda and the primal's feasibility, not that the inner maximization is global; G2 >= 0 (D*_p "
                 "below the exact unparametrized optimum V*) is the independent half. The seeding was added when "
                 "master 20262125 gave G1 = -6.0e-4: its primal reached a branch at |theta| ~ 1500 that the "
                 "maximizer pool missed")),
    Claim(id="constrained.duality_gap", kind="upper", metric="G2", x="nu_hat", predicted=1.0, tol=0.1,
          direction="zero", paper=PAPER, statement=STATEMENT_GAP,
          quantity=QUANTITY_GAP + f"; log-log slope of each positive gap on t <= {ASYMPTOTIC_T:g}",
          evaluate=per_configuration(slope_check("G2", "upper", 1.0, 0.1, "G2 = V* - D*_p", also_g1=True)),
          notes="its tight partner is constrained.gap_shape [G2] (derived slope 2 on E6)"),
    Claim(id="constrained.duality_gap", kind="identity", metric="ratio_G1", predicted=1.0, tol=1.0,
          paper=PAPER, statement="Theorem 1 (constant stated): D*_p - V*_p <= C(lambda*_nu) nu.",
          quantity=("max of G1 / (C(lambda*_nu) nu-hat) <= 1 over the points where G1 > 1e-12 (gated there only; "
                    "nu-hat is a local proxy); quick mode runs beta = 0.1 at t = 1, where G1 = 0.0144"),
          evaluate=per_configuration(evaluate_theorem1_ratio)),
    Claim(id="constrained.dual_distance", kind="upper", metric="dual_distance", x="nu_hat", predicted=0.5,
          tol=0.1, direction="zero", paper=PAPER,
          statement="Lemma 4: ||lambda*_p - lambda*|| = O(sqrt(nu)) (shape sqrt(2 C(lambda*_p) nu / mu_D) derived here).",
          quantity=(f"||lambda*_p - lambda*|| vs nu-hat on t <= {ASYMPTOTIC_T:g}; whole-grid slope and "
                    "Lemma 4 ratio reported"),
          evaluate=per_configuration(evaluate_dual_distance),
          notes="its tight partner is constrained.gap_shape [dual_distance] (derived slope 2 on E6)"),
    Claim(id="constrained.gap_shape", kind="tight", metric="G2", x="nu_hat", predicted=2.0, tol=SHAPE_TOL,
          label="G2", paper=PAPER, statement="V* - D*_p = beta KL_min = Theta(nu^2) on E6 (" + DERIVATION + ").",
          quantity=f"slope of G2 = V* - D*_p vs nu-hat on t <= {ASYMPTOTIC_T:g} (the papers' bound: >= 1)",
          evaluate=per_configuration(slope_check("G2", "tight", 2.0, SHAPE_TOL, "G2"))),
    Claim(id="constrained.gap_shape", kind="tight", metric="dual_distance", x="nu_hat", predicted=2.0,
          tol=SHAPE_TOL, label="dual_distance", paper=PAPER,
          statement="||lambda*_p - lambda*|| = Theta(nu^2) on E6 (" + DERIVATION + ").",
          quantity=f"slope of ||lambda*_p - lambda*|| vs nu-hat on t <= {ASYMPTOTIC_T:g} (the papers' bound: >= 1/2)",
          evaluate=per_configuration(slope_check("dual_distance", "tight", 2.0, SHAPE_TOL, "dual distance"))),
    Claim(id="constrained.uopt_scaling", kind="upper", metric="one_u_opt", x="nu_hat", predicted=0.5, tol=0.1,
          direction="zero", label="one-shot", paper=PAPER_OPT,
          statement="Theorem 4: U-OPT of the one-shot policy pi*_p(lambda*) = O(sqrt(nu)).",
          quantity=(f"slope of U-OPT = ||E_x[E_pi* c - E_pi c]||_2 of pi*_p(lambda*) vs nu-hat on t <= "
                    f"{ASYMPTOTIC_T:g}; l_inf and signed violation max_i -E_x E_pi c_i reported"),
          evaluate=per_configuration(with_report(slope_check("one_u_opt", "upper", 0.5, 0.1, "U-OPT one-shot"),
                                                 ("one_u_opt_linf", "one_violation")))),
    Claim(id="constrained.uopt_scaling", kind="tight", metric="one_u_opt", x="nu_hat", predicted=2.0,
          tol=SHAPE_TOL, label="one-shot", paper=PAPER_OPT,
          statement="U-OPT of pi*_p(lambda*) = beta KL_min'(lambda*) = Theta(nu^2) on E6 (" + DERIVATION + ").",
          quantity=f"slope of U-OPT (l2) of pi*_p(lambda*) vs nu-hat on t <= {ASYMPTOTIC_T:g}",
          evaluate=per_configuration(slope_check("one_u_opt", "tight", 2.0, SHAPE_TOL, "U-OPT one-shot"))),
    Claim(id="constrained.uopt_scaling", kind="identity", metric="multi_u_opt", predicted=0.0,
          tol=MULTI_UOPT_TOL, label="multi-shot", paper=PAPER_OPT,
          statement=("Theorem 3: U-OPT of the multi-shot policy pi*_p(lambda*_p) = O(sqrt(nu)); derived: it is "
                     "exactly 0 where D_p is differentiable at an interior lambda*_p (Danskin + complementary "
                     "slackness), so the O(sqrt(nu)) bound holds with nothing to fit."),
          quantity=(f"max U-OPT of pi*_p(lambda*_p) over the points with G1 = 0 and lambda*_p > 0 (<= "
                    f"{MULTI_UOPT_TOL:g}, the bisection accuracy); the points with G1 > 0 reported"),
          evaluate=per_configuration(evaluate_multishot_uopt_zero, worst=lambda m: m.measured)),
    Claim(id="constrained.ropt_scaling", kind="upper", metric="one_r_opt", x="nu_hat", predicted=0.5, tol=0.1,
          direction="zero", label="one-shot", paper=PAPER_OPT,
          statement="Theorem 4: R-OPT of pi*_p(lambda*) = O(sqrt(nu)) for nu < 1 (O(nu) for nu >= 1).",
          quantity=(f"slope of R-OPT = |J_beta(pi*) - J_beta(pi)| of pi*_p(lambda*) vs nu-hat on t <= "
                    f"{ASYMPTOTIC_T:g} (nu-hat < 1 there)"),
          evaluate=per_configuration(slope_check("one_r_opt", "upper", 0.5, 0.1, "R-OPT one-shot"))),
    Claim(id="constrained.ropt_scaling", kind="tight", metric="one_r_opt", x="nu_hat", predicted=2.0,
          tol=SHAPE_TOL, label="one-shot", paper=PAPER_OPT,
          statement="R-OPT of pi*_p(lambda*) = |beta KL_min - lambda* beta KL_min'| = Theta(nu^2) on E6 ("
                    + DERIVATION + ").",
          quantity=f"slope of R-OPT of pi*_p(lambda*) vs nu-hat on t <= {ASYMPTOTIC_T:g}",
          evaluate=per_configuration(slope_check("one_r_opt", "tight", 2.0, SHAPE_TOL, "R-OPT one-shot"))),
    Claim(id="constrained.ropt_scaling", kind="upper", metric="multi_r_opt", x="nu_hat", predicted=0.5, tol=0.1,
          direction="zero", label="multi-shot", paper=PAPER_OPT,
          statement="Theorem 3: R-OPT of pi*_p(lambda*_p) = O(sqrt(nu)) for nu < 1 (O(nu) for nu >= 1).",
          quantity=f"slope of R-OPT of pi*_p(lambda*_p) vs nu-hat on t <= {ASYMPTOTIC_T:g} (nu-hat < 1 there)",
          evaluate=per_configuration(slope_check("multi_r_opt", "upper", 0.5, 0.1, "R-OPT multi-shot"))),
    Claim(id="constrained.ropt_scaling", kind="tight", metric="multi_r_opt", x="nu_hat", predicted=2.0,
          tol=SHAPE_TOL, label="multi-shot", paper=PAPER_OPT,
          statement="R-OPT of pi*_p(lambda*_p) = V* - D*_p = G2 = Theta(nu^2) on E6 (" + DERIVATION + ").",
          quantity=f"slope of R-OPT of pi*_p(lambda*_p) vs nu-hat on t <= {ASYMPTOTIC_T:g}",
          evaluate=per_configuration(slope_check("multi_r_opt", "tight", 2.0, SHAPE_TOL, "R-OPT multi-shot"))),
)

SCENARIO = Scenario(
    name="constrained_gap", version="5", study="Constrained alignment",
    description="Duality gaps, dual distance and the optimality gaps of the multi-shot and one-shot policies vs "
                "the parametrization gap nu-hat on E6 (deterministic, exact).",
    cell=cell, fixed={"m": 1, "beta": 1.0, "env_draw": 0},
    grids={"quick": [{"t": T_QUICK}, {"t": [1.0], "beta": [0.1]}],
           "full": [{"t": T_FULL}, {"t": T_QUICK, "m": [2]}, {"t": T_QUICK, "beta": [0.1]}]},
    seeds={"quick": 1, "full": 1}, claims=CLAIMS, figures=(duality_gap_figure, optimality_gap_figure),
    metrics={
        "nu_hat": "parametrization-gap proxy nu-hat = max(nu_1, nu_kl) over lambda in [0, ||lambda*|| + 1] "
                  "(docs/theory/constrained.md §6.4); the x axis of every rate fit",
        "nu_1": "L1 part of nu-hat: max over the lambda grid and contexts of ||pi_theta*(lambda) - pi*(lambda)||_1",
        "nu_kl": "KL part of nu-hat: max over the lambda grid and contexts of |KL(pi*(lambda) || pi_ref) - "
                 "KL(pi_theta*(lambda) || pi_ref)|",
        "nu_global": "global gap proxy: the same max(L1, KL) errors over 16 random Dirichlet policies (reported)",
        "V_star": "V* = D* = D(lambda*): exact optimal value of the constrained problem over all policies "
                  "(projected Newton on the distribution-space dual)",
        "D_star_p": "D*_p = min_lambda D_p(lambda): exact parametrized dual optimum",
        "V_star_p": "V*_p: optimal value of the constrained problem over the log-linear class (multistart SLSQP "
                    "polished by KKT Newton)",
        "G1": "duality gap G1 = D*_p - V*_p of the parametrized problem (Theorem 1)",
        "G2": "G2 = V* - D*_p: the parametrized dual against the unparametrized optimum (Theorem 2; derived "
              "Theta(nu^2))",
        "min_gap": "min(G1, G2)",
        "strong_duality_err": "|V* (direct SLSQP over the probability table) - D(lambda*)|: strong duality of the "
                              "distribution-space problem (NaN at beta < 0.5, where the direct solve is not run)",
        "lam_star": "||lambda*||_2 of the distribution-space dual optimum",
        "lam_star_p": "||lambda*_p||_2 of the parametrized dual optimum",
        "dual_distance": "||lambda*_p - lambda*||_2 (Lemma 4; derived Theta(nu^2))",
        "ratio_G1": "G1 / (C(lambda*_nu) nu-hat), C(lambda) = M + beta + M ||lambda||_1, lambda*_nu = argmin D(lambda) "
                    "- M nu-hat ||lambda||_1: G1 against Theorem 1's bound (<= 1 when it holds; 0 when the bound is "
                    "infinite, see theorem1_vacuous; NaN when lambda*_nu did not converge)",
        "ratio_G1_global": "G1 / (C(lambda*_nu) nu_global): ratio_G1 with the global proxy",
        "ratio_G2": "G2 / (C(lambda*_p) nu-hat): G2 against Theorem 2's bound (<= 1 when it holds)",
        "ratio_dual_distance": "||lambda*_p - lambda*|| / sqrt(2 C(lambda*_p) nu-hat / mu_D): the dual distance "
                               "against Lemma 4's bound",
        "mu_D": "smallest eigenvalue of the Hessian of D at lambda* (strong convexity of the dual)",
        "theorem1_vacuous": "1.0 when M nu-hat >= the recession slope of D, so lambda*_nu is infinite and Theorem "
                            "1's bound is vacuous, else 0.0",
        "multi_r_opt": "R-OPT |J_beta(pi*(lambda*)) - J_beta(pi)| of the multi-shot policy pi*_p(lambda*_p) "
                       "(derived = G2)",
        "multi_u_opt": "U-OPT ||E_x[E_{pi*} c - E_pi c]||_2 of the multi-shot policy pi*_p(lambda*_p) (derived 0 "
                       "on an active constraint)",
        "multi_u_opt_linf": "U-OPT in the l_inf norm of the multi-shot policy",
        "multi_violation": "signed violation max_i -E_x E_pi c_i of the multi-shot policy (> 0 infeasible)",
        "one_r_opt": "R-OPT |J_beta(pi*(lambda*)) - J_beta(pi)| of the one-shot policy pi*_p(lambda*)",
        "one_u_opt": "U-OPT ||E_x[E_{pi*} c - E_pi c]||_2 of the one-shot policy pi*_p(lambda*) (derived "
                     "beta KL_min'(lambda*))",
        "one_u_opt_linf": "U-OPT in the l_inf norm of the one-shot policy",
        "one_violation": "signed violation max_i -E_x E_pi c_i of the one-shot policy (> 0 infeasible)",
        "failed": "1.0 when the dual, parametrized-dual or parametrized-primal solve did not converge, else 0.0",
    },
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    scenario_main(SCENARIO)
