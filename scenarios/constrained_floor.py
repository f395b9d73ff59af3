"""Constrained alignment: the best-iterate floor of stochastic CAID (docs/theory/constrained.md §6.3 Lemma 8, docs/theory/claims.md §7.3).

E6 with t = 0.3, beta = 1, m = 1. Stochastic CAID: u-dagger is the mean of c over N = 8 prompts x K = 4
responses sampled from the current policy (unbiased for E_x E_theta c); the policy step is exact
(eps_app = 0) or eps_app-optimal (eps_app in {1e-3, 1e-2}: gradient ascent from the previous theta until
L(theta*(lambda), lambda) - L(theta, lambda) <= eps_app). D_p(lambda_s) is exact at every step.
Protocol (design choice): eta_lam = s / L_D with s in {1, 1/2, 1/4, 1/8, 1/16} and T = ceil(20 / (eta_lam
mu_p)) steps (a fixed dual time, so the transient is equally small for every eta; mu_p = curvature of D_p at
lambda*_p). The three eps_app runs of a replicate share their random stream (common random numbers).
Quantity: floor = min_{s <= T} D_p(lambda_s) - D*_p; the Lemma 8 bound is eta S^2/2 + eps_app with
S^2 = E||u-dagger||^2 at theta*(lambda*_p) (exact), reported as a ratio.
D_p(lambda_s) = max_theta L(theta, lambda_s) is evaluated by Newton ascent from the previous maximizer at every step
and, every GUESS_EVERY = 8 steps, also from the projected optimal logits (the better one kept; ``caid``'s
guess_every). On 40 E6 instances x 3 dual steps x eps_app in {0, 1e-2} (168k steps) running both starts at every
step, the second start never found another maximizer (largest value difference 4.4e-16) and took 3.7 Newton steps
per step against 2.5 for the warm start; the skipped starts only re-rounded D_p. guess_gains_* counts the checks
at which it did find a larger maximum (0 expected).
Seeds per eta (quick): 128 / 64 / 48 / 32 / 128 for s = 1 / 1/2 / 1/4 / 1/8 / 1/16. The large-eta counts were
chosen when the eps_app ordering was judged on the mean difference, whose variance lives at large eta where a
replicate is cheapest. The small-eta counts are bought for the eta slope of best_iterate_gaps [tight]: with 12
seeds at s = 1/8 and 1/16 its master-seed sd was 0.115 against tol 0.3 (2.2 sd, pass on 21 of 30 masters), the
spread coming from those two end strata (a replicate there costs 8x and 16x one at s = 1); 32 / 64 seeds cost
2.35x the study's former cell time.
The s = 1/16 count was then doubled (64 -> 128) for the eps_app slope of best_iterate_gaps [upper] (fit over
s <= 1/8): with 32 / 64 seeds its master-seed sd was 0.0995 (mean 0.798, margin 3.996 sd over 30 masters). That
spread is seed noise within the instance, not the environment draw: the slopes of the two halves of each
master's replicates (even / odd) were uncorrelated across the 30 masters (correlation -0.04), and a bootstrap
of the replicates within each master gave a seed sd of 0.087; the per-seed U-OPT is heavy-tailed (CV 1.3 at
eps_app = 1e-3, 1.6 at 1e-2). Pooling env draws would not reduce it; the bootstrap put the s = 1/16 stratum as
the cheapest place to buy it. The Newton-ascent speed-up paid for the extra seeds.
The eps_app ordering is judged on the scale-free paired sign: the mean over eta (equal weights) of the per-eta
mean of sign(floor(1e-2) - floor(0)), a stratified bootstrap CI. The mean difference had a calibration margin of
2.1 master-seed sds, most of it from the environment draw (the floors scale with mu_p and the noise variance),
which no seed count removes; the mean difference stays reported.
"""
from __future__ import annotations

import numpy as np

from simlab.env.gap import gap_preset, make_gap_env
from simlab.experiments.claims import Measurement
from simlab.experiments.rates import (
    BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, FAIL, fit_rate, mean_with_ci, verdict_ordering, verdict_tight, verdict_upper)
from simlab.experiments.scenario import CellSeeds, Claim, Scenario, cached_per_instance
from simlab.objectives.constrained import dual_smoothness_bound, optimal_log_policy, optimality_gaps
from simlab.plots.constrained import best_iterate_figure
from simlab.policy import log_policy, policy
from simlab.solvers.constrained import caid, minimize_parametrized_dual, parametrized_dual, solve_dual

PAPER = "CAID: Zhang et al. (arXiv 2505.19387), Lemma 8 and Theorem 6 (stochastic dual descent)"
N_PROMPTS, N_RESPONSES = 8, 4
DUAL_TIME = 20.0
EPS_APP = {"e0": 0.0, "e1": 1e-3, "e2": 1e-2}
GUESS_EVERY = 8  # the second (projected-logits) start of the exact D_p evaluation runs every 8 CAID steps


@cached_per_instance(maxsize=16)
def _instance(instance: np.random.SeedSequence):
    """E6 (t = 0.3), lambda*_p, mu_p, S^2 and the noise variance of u-dagger, pi*, the multi-shot policy and the
    CAID start theta*(0) (one multistart solve per instance instead of one per run)."""
    env = make_gap_env(gap_preset(t=0.3), instance)
    target = minimize_parametrized_dual(env)
    mu_p = float(target.hessian[0, 0])
    lp_star = optimal_log_policy(env, solve_dual(env).lam)
    lp_multi = log_policy(target.theta, env.phi)
    # S^2 = E||u-dagger||^2 = ||E u||^2 + (Var_x m(x) + E_x Var(c | x) / K) / N at theta*(lambda*_p)
    pi = policy(target.theta, env.phi)
    c = env.constraint[:, :, 0]
    m_x = np.sum(pi * c, axis=1)
    var_in = np.sum(pi * (c - m_x[:, None]) ** 2, axis=1)
    mean = env.p_x @ m_x
    s2 = mean ** 2 + (env.p_x @ (m_x - mean) ** 2 + (env.p_x @ var_in) / N_RESPONSES) / N_PROMPTS
    theta0 = parametrized_dual(env, np.zeros(1)).theta
    return env, target, mu_p, float(s2), float(s2 - mean ** 2), lp_star, lp_multi, theta0


def cell(params: dict, seeds: CellSeeds) -> dict:
    env, target, mu_p, s2, var_u, lp_star, lp_multi, theta0 = _instance(seeds.instance)
    eta = float(params["eta_scale"]) / dual_smoothness_bound(env)
    T = int(np.ceil(DUAL_TIME / (eta * mu_p)))
    stream = np.random.SeedSequence(seeds.sample.entropy, spawn_key=tuple(seeds.sample.spawn_key))
    out = {"eta": eta, "T": float(T), "S2": s2, "failed": 0.0 if target.converged else 1.0}
    for tag, eps in EPS_APP.items():  # the same stream for every eps_app
        run = caid(env, eta=eta, T=T, lam0=np.zeros(1), theta0=theta0, n_prompts=N_PROMPTS,
                   n_responses=N_RESPONSES, eps_app=eps, rng=np.random.default_rng(stream), guess_every=GUESS_EVERY)
        floor = float(run.best_dual_p[-1] - target.value)
        out[f"floor_{tag}"] = floor
        out[f"floor_minus_eps_{tag}"] = floor - eps
        out[f"ratio_lemma8_{tag}"] = floor / (eta * s2 / 2 + eps)
        out[f"final_gap_{tag}"] = float(run.dual_p[-1] - target.value)
        out[f"guess_gains_{tag}"] = float(run.guess_gains)
        # the optimality gaps of pi*_p(lambda_best): against pi* = pi*(lambda*) and, for the part that
        # vanishes with eta, against the multi-shot policy pi*_p(lambda*_p)
        lp_best = log_policy(run.theta_best, env.phi)
        star = optimality_gaps(env, lp_best, lp_star)
        multi = optimality_gaps(env, lp_best, lp_multi)
        out[f"best_lam_error_{tag}"] = float(np.abs(run.lam_best - target.lam).max())
        out[f"best_u_opt_{tag}"] = star["u_opt_l2"]
        out[f"best_u_opt_linf_{tag}"] = star["u_opt_linf"]
        out[f"best_r_opt_{tag}"] = star["r_opt"]
        out[f"best_r_opt_multi_{tag}"] = multi["r_opt"]
        out[f"best_violation_{tag}"] = star["violation"]
    pred = derived_floor(eta, mu_p, var_u, T, abs(float(target.lam[0])))
    out["floor_derived"] = pred["floor"]
    out["best_lam_error_derived"] = pred["lam_error"]
    out["ratio_floor_derived_e0"] = out["floor_e0"] / pred["floor"]
    out["diff_e1"] = out["floor_e1"] - out["floor_e0"]
    out["diff_e2"] = out["floor_e2"] - out["floor_e0"]
    return out


def derived_floor(eta: float, mu: float, var_u: float, T: int, distance0: float) -> dict[str, float]:
    """The best-iterate floor of stochastic dual descent with exact inner maximization, derived for a locally
    quadratic D_p (curvature mu) and dual-gradient noise of variance var_u (docs/theory/constrained.md §6.3).

    Near lambda*_p the error e_s = lambda_s - lambda*_p is the AR(1) process e_{s+1} = (1 - eta mu) e_s -
    eta xi_s with stationary sd s = sigma sqrt(eta / (mu (2 - eta mu))) and density p0 = 1/(sqrt(2 pi) s) at
    0. Each step moves e by ~ eta sigma, much more than the closest approach to 0, so the visits of
    [-a, a] are a Poisson stream of rate 2 a p0 per step: P(min_s |e_s| > a) = exp(-2 a T_eff p0), the
    closest approach is exponential with mean 1/(2 T_eff p0) and
        E min_s D_p(lambda_s) - D*_p = (mu/2) E min e^2 = mu / (4 T_eff^2 p0^2)
                                     = pi eta sigma^2 / (2 T_eff^2 (2 - eta mu)).
    With T = 20/(eta mu) steps (a fixed dual time) this is ~ eta^3 (and E min|e| ~ eta^(3/2)): the floor
    vanishes much faster than Lemma 8's eta S^2/2. T_eff = T - t_0 discounts the deterministic approach from
    distance0 to the noise scale s, t_0 = log(distance0 / s) / (-log(1 - eta mu)).
    Returns floor (the mean D_p floor) and lam_error (E min_s |e_s|)."""
    s = np.sqrt(eta * var_u / (mu * (2.0 - eta * mu)))
    p0 = 1.0 / (np.sqrt(2.0 * np.pi) * s)
    t0 = max(0.0, np.log(max(distance0, s) / s) / -np.log1p(-eta * mu))
    t_eff = max(T - t0, 1.0)
    return {"floor": mu / (4.0 * t_eff ** 2 * p0 ** 2), "lam_error": 1.0 / (2.0 * t_eff * p0)}


def stratified_mean_with_ci(values, strata, resamples: int = BOOTSTRAP_RESAMPLES,
                            seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float], int]:
    """(mean over strata of the per-stratum means, 95% percentile-bootstrap CI resampling seeds within
    each stratum, failures). Equals the pooled mean and ``mean_with_ci`` in law when every stratum has
    equally many seeds; stays an equal-weight mean when they do not."""
    v = np.asarray(values, dtype=float)
    strata = np.asarray(strata)
    fails = int(np.sum(~np.isfinite(v)))
    groups = [v[(strata == s) & np.isfinite(v)] for s in np.unique(strata)]
    groups = [g for g in groups if g.size]
    if not groups:
        return float("nan"), (float("nan"), float("nan")), fails
    rng = np.random.default_rng(seed)
    boot = np.mean([g[rng.integers(0, g.size, size=(resamples, g.size))].mean(axis=1) for g in groups], axis=0)
    mean = float(np.mean([g.mean() for g in groups]))
    return mean, (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))), fails


def evaluate_eps_ordering(df) -> Measurement:
    """ordering: 2 P(floor(eps_app = 1e-2) > floor(eps_app = 0)) - 1 > 0 over paired replicates (common
    random numbers), the mean over eta (equal weights) of the per-eta mean of sign(floor_1e-2 - floor_0)
    (stratified bootstrap CI). The sign is scale-free: the floors scale like eta^3 and with the instance
    (mu_p, the noise variance), so the mean difference (reported) is carried by the largest eta and by the
    environment draw. Over 30 master seeds the mean difference had a margin of 2.1 sd, of which the
    instance part alone (sd ~3.5e-7 against a mean 9.4e-7) leaves < 3 sd at any seed count; the sign statistic
    was chosen after seeing that calibration. The eps_app = 1e-3 contrast and the log ratio are reported."""
    strata = df["eta"].to_numpy()
    sign = np.sign((df["floor_e2"] - df["floor_e0"]).to_numpy(dtype=float))
    mean, ci, fails = stratified_mean_with_ci(sign, strata)
    d_mean, d_ci, _ = stratified_mean_with_ci(df["diff_e2"].to_numpy(dtype=float), strata)
    m1, ci1, _ = stratified_mean_with_ci(df["diff_e1"].to_numpy(dtype=float), strata)
    by_eta = df.groupby("eta")[["floor_e0", "floor_e1", "floor_e2"]].mean()
    share = (df["floor_e2"] > df["floor_e0"]).groupby(df["eta"]).mean()
    seeds = df.groupby("eta").size()
    rows = "; ".join(f"eta {e:.3g} ({seeds[e]} seeds): {r.floor_e0:.1e} / {r.floor_e1:.1e} / {r.floor_e2:.1e}, "
                     f"share raised {share[e]:.2f}" for e, r in by_eta.iterrows())
    ok = FAIL if fails else verdict_ordering(ci, ">")[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        log_ratio = np.log(np.maximum(df["floor_e2"], 1e-300) / np.maximum(df["floor_e0"], 1e-300)).to_numpy()
    lr_mean, lr_ci, _ = mean_with_ci(log_ratio)
    note = (f"mean floor by eta for eps_app 0 / 1e-3 / 1e-2: {rows}; mean difference floor_1e-2 - floor_0 "
            f"{d_mean:.2e}, CI [{d_ci[0]:.2e}, {d_ci[1]:.2e}] (report only); eps_app = 1e-3 minus 0: mean "
            f"{m1:.2e}, CI [{ci1[0]:.2e}, {ci1[1]:.2e}] (report only); mean log(floor_1e-2 / floor_0) = "
            f"{lr_mean:.2f}, CI [{lr_ci[0]:.2f}, {lr_ci[1]:.2f}] (report only); max Lemma 8 ratio "
            f"{df[['ratio_lemma8_e0', 'ratio_lemma8_e1', 'ratio_lemma8_e2']].max().max():.2e}")
    return Measurement(mean, ci, ok, note, extra={"diff_e2_mean": d_mean, "diff_e2_ci": list(d_ci),
                                                  "diff_e1_mean": m1, "diff_e1_ci": list(ci1),
                                                  "log_ratio_e2_mean": lr_mean, "log_ratio_e2_ci": list(lr_ci),
                                                  "seeds_by_eta": {float(e): int(n) for e, n in seeds.items()}})


def evaluate_eps_slope(df) -> Measurement:
    """upper(1/2, 0.1, zero): slope of the best-iterate U-OPT in eps_app over eps_app in {1e-3, 1e-2} at the two
    smallest dual steps (where the eta part of the gap is smallest), bootstrapped over replicates (paired:
    the eps_app runs of a replicate share their random stream)."""
    rows = df[df["eta_scale"] <= EPS_FIT_MAX_SCALE]
    x = np.concatenate([np.full(len(rows), EPS_APP["e1"]), np.full(len(rows), EPS_APP["e2"])])
    values = np.concatenate([rows["best_u_opt_e1"].to_numpy(), rows["best_u_opt_e2"].to_numpy()])
    units = np.concatenate([rows["replicate"].to_numpy() * 100 + rows["eta_scale"].rank(method="dense")] * 2)
    fit = fit_rate(x, values, units)
    ok, why = verdict_upper(fit.ci, 0.5, 0.1, "zero")
    m0 = float(rows["best_u_opt_e0"].mean())
    note = (f"mean best-iterate U-OPT at eta_scale <= {EPS_FIT_MAX_SCALE:g}: eps_app 0 / 1e-3 / 1e-2 = {m0:.2e} / "
            f"{fit.mean[0]:.2e} / {fit.mean[1]:.2e}; slope over eps_app in [1e-3, 1e-2] {fit.slope:.3f}"
            + (f": {why}" if why else ""))
    return Measurement(fit.slope, fit.ci, ok, note, fit)


def evaluate_eps_gap_ordering(df) -> Measurement:
    """ordering: U-OPT of pi*_p(lambda_best) at eps_app = 1e-2 minus at eps_app = 0 > 0 (paired by common random
    numbers), mean over eta of the per-eta means (stratified bootstrap)."""
    diff = (df["best_u_opt_e2"] - df["best_u_opt_e0"]).to_numpy(dtype=float)
    mean, ci, fails = stratified_mean_with_ci(diff, df["eta"].to_numpy())
    ok, why = verdict_ordering(ci, ">")
    ok = FAIL if fails else ok
    return Measurement(mean, ci, ok, why, extra={"failures": fails})


def evaluate_floor_shape(df) -> Measurement:
    """tight(3): the slope of the mean best-iterate floor (eps_app = 0) vs eta, against the derived eta^3
    (``derived_floor``); the measured / derived floor ratio per eta is reported."""
    fit = fit_rate(df["eta"].to_numpy(), df["floor_e0"].to_numpy(), df["replicate"].to_numpy())
    ok, why = verdict_tight(fit.ci, 3.0, FLOOR_SHAPE_TOL)
    pred = fit_rate(df["eta"].to_numpy(), df["floor_derived"].to_numpy(), df["replicate"].to_numpy())
    ratio = df.groupby("eta")["ratio_floor_derived_e0"].mean()
    note = (f"slope {fit.slope:.3f}" + (f": {why}" if why else "")
            + f"; slope of the derived floor (with the transient T_eff) {pred.slope:.3f}; mean measured / derived "
            "floor by eta: " + ", ".join(f"{e:.3g}: {r:.2f}" for e, r in ratio.items()))
    return Measurement(fit.slope, fit.ci, ok, note, fit, {"derived_slope": pred.slope,
                                                          "ratio_by_eta": {float(e): float(r) for e, r in ratio.items()}})


def evaluate_best_gap_shape(df) -> Measurement:
    """tight(3/2): slope of the mean U-OPT of pi*_p(lambda_best) (eps_app = 0) vs eta; derived: U-OPT =
    |D_p'(lambda_best)| = mu_p E min_s |lambda_s - lambda*_p| = mu_p / (2 T_eff p0) ~ eta^(3/2)
    (``derived_floor``). The R-OPT excess over the multi-shot policy and the measured / derived ratio are
    reported."""
    fit = fit_rate(df["eta"].to_numpy(), df["best_u_opt_e0"].to_numpy(), df["replicate"].to_numpy())
    ok, why = verdict_tight(fit.ci, 1.5, BEST_GAP_TOL)
    r_fit = fit_rate(df["eta"].to_numpy(), df["best_r_opt_multi_e0"].to_numpy(), df["replicate"].to_numpy())
    ratio = (df.groupby("eta")["best_lam_error_e0"].mean() / df.groupby("eta")["best_lam_error_derived"].mean())
    note = (f"U-OPT slope {fit.slope:.3f}" + (f": {why}" if why else "")
            + f"; R-OPT vs the multi-shot policy: slope {r_fit.slope:.3f} CI [{r_fit.ci[0]:.3f}, {r_fit.ci[1]:.3f}]; "
            f"R-OPT vs pi* saturates at G2 (mean {df['best_r_opt_e0'].mean():.4f}); signed violation in "
            f"[{df['best_violation_e0'].min():.1e}, {df['best_violation_e0'].max():.1e}]; measured / derived "
            "E min|lambda_s - lambda*_p| by eta: " + ", ".join(f"{e:.3g}: {r:.2f}" for e, r in ratio.items()))
    return Measurement(fit.slope, fit.ci, ok, note, fit, {"slope_r_opt_multi": r_fit.slope,
                                                          "ci_r_opt_multi": list(r_fit.ci)})


FLOOR_SHAPE_TOL = 1.0
BEST_GAP_TOL = 0.3
EPS_FIT_MAX_SCALE = 0.125
PAPER_BEST = "CAID: Zhang et al. (arXiv 2505.19387), Theorem 6 (optimality gaps of pi*_p(lambda_best))"
STATEMENT_BEST = ("Theorem 6: R-OPT and U-OPT of pi*_p(lambda_best) scale like sqrt(nu), sqrt(eps_app) and "
                  "sqrt(eta).")
CLAIMS = (
    Claim(id="constrained.stochastic_floor", kind="upper", metric="floor_e0", x="eta", predicted=1.0, tol=0.1,
          direction="zero", paper=PAPER, also=("ratio_lemma8_e0",),
          statement=("Lemma 8: some iterate of stochastic dual descent has D_p(lambda_best) <= D*_p + eta S^2/2 "
                     "+ eps_app, so the best-iterate floor vanishes at least linearly in the dual step."),
          quantity=("min_s D_p(lambda_s) - D*_p vs eta_lam (eps_app = 0; N x K = 8 x 4; T = 20/(eta mu_p)); "
                    "ratio to eta S^2/2 reported")),
    Claim(id="constrained.stochastic_floor", kind="tight", metric="floor_e0", x="eta", predicted=3.0,
          tol=FLOOR_SHAPE_TOL, paper=PAPER, evaluate=evaluate_floor_shape,
          statement=("Derived (docs/theory/constrained.md §6.3, ``derived_floor``): with T = 20/(eta mu_p) steps "
                     "the best-iterate floor is pi eta sigma^2 / (2 T_eff^2 (2 - eta mu_p)) ~ eta^3: the closest "
                     "approach of the AR(1) dual error to lambda*_p among ~eta^(-1/2) visits of a step-sized "
                     "window around it."),
          quantity="slope of the mean min_s D_p(lambda_s) - D*_p vs eta (eps_app = 0); measured / derived ratio "
                   "reported",
          notes="precision-limited: the per-seed floor is a squared exponential variable (CV ~ 2.2)"),
    Claim(id="constrained.stochastic_floor", kind="ordering", metric="diff_e2", predicted=0.0, tol=0.0,
          side=">", paper=PAPER, evaluate=evaluate_eps_ordering,
          statement="The floor grows additively with the approximation error eps_app of the policy step.",
          quantity=("2 P(floor(eps_app = 1e-2) > floor(eps_app = 0)) - 1 over paired replicates (common random "
                    "numbers): mean over eta of the per-eta mean sign of the difference; the mean difference is "
                    "reported")),
    Claim(id="constrained.best_iterate_gaps", kind="upper", metric="best_u_opt_e0", x="eta", predicted=0.5,
          tol=0.1, direction="zero", label="eta", paper=PAPER_BEST, statement=STATEMENT_BEST,
          also=("best_r_opt_multi_e0", "best_u_opt_linf_e0"),
          quantity=("slope of U-OPT = |E_x E_pi* c - E_x E_pi c| of pi*_p(lambda_best) vs eta (eps_app = 0, E6 "
                    "t = 0.3); R-OPT against the multi-shot policy pi*_p(lambda*_p) and l_inf reported")),
    Claim(id="constrained.best_iterate_gaps", kind="tight", metric="best_u_opt_e0", x="eta", predicted=1.5,
          tol=BEST_GAP_TOL, label="eta", paper=PAPER_BEST, evaluate=evaluate_best_gap_shape,
          statement=("Derived: U-OPT(pi*_p(lambda_best)) = mu_p E min_s |lambda_s - lambda*_p| = mu_p / (2 T_eff "
                     "p0) ~ eta^(3/2) with T = 20/(eta mu_p) (``derived_floor``); R-OPT against pi* does not "
                     "vanish with eta: it tends to G2 = V* - D*_p (the nu part)."),
          quantity="slope of the mean U-OPT of pi*_p(lambda_best) vs eta (eps_app = 0)"),
    Claim(id="constrained.best_iterate_gaps", kind="upper", metric="best_u_opt_e2", x="eps_app", predicted=0.5,
          tol=0.1, direction="zero", label="eps_app", paper=PAPER_BEST, statement=STATEMENT_BEST,
          evaluate=evaluate_eps_slope,
          quantity=(f"slope of U-OPT of pi*_p(lambda_best) vs eps_app in {{1e-3, 1e-2}} at eta_scale <= "
                    f"{EPS_FIT_MAX_SCALE:g} (paired replicates)")),
    Claim(id="constrained.best_iterate_gaps", kind="ordering", metric="best_u_opt_e2", predicted=0.0, tol=0.0,
          side=">", label="eps_app", paper=PAPER_BEST, evaluate=evaluate_eps_gap_ordering,
          statement="An eps_app-optimal policy step leaves a larger U-OPT at lambda_best than the exact step.",
          quantity="U-OPT(eps_app = 1e-2) - U-OPT(eps_app = 0) at lambda_best, mean over eta of per-eta means",
          notes=("no derived exponent in eps_app: the truncated inner ascent leaves theta stale inside a dead zone "
                 "|lambda - lambda'| < sqrt(2 eps_app / mu_p) whose dynamics this project has not derived")),
)

SCENARIO = Scenario(
    name="constrained_floor", version="2", study="Constrained alignment",
    description="Best-iterate floor of stochastic CAID vs dual step and approximation error on E6 (t = 0.3).",
    cell=cell, fixed={"env_draw": 0},
    grids={"quick": [{"eta_scale": [1.0], "seeds": 128}, {"eta_scale": [0.5], "seeds": 64},
                     {"eta_scale": [0.25], "seeds": 48}, {"eta_scale": [0.125], "seeds": 32},
                     {"eta_scale": [0.0625], "seeds": 128}],
           "full": [{"eta_scale": [1.0], "seeds": 256}, {"eta_scale": [0.5], "seeds": 128},
                    {"eta_scale": [0.25], "seeds": 96}, {"eta_scale": [0.125], "seeds": 64},
                    {"eta_scale": [0.0625], "seeds": 128}]},
    seeds={"quick": 12, "full": 64}, shared_seed_axes=("eta_scale",), claims=CLAIMS,
    figures=(best_iterate_figure,),
    metrics={
        "eta": "dual step eta_lam = eta_scale / L_D (L_D the dual smoothness bound of the instance)",
        "T": "number of stochastic CAID steps, ceil(20 / (eta mu_p)) (a fixed dual time)",
        "S2": "S^2 = E||u-dagger||^2 of the N x K = 8 x 4 dual-gradient estimate at theta*(lambda*_p) (exact, per "
              "instance): the noise term of Lemma 8's bound eta S^2/2 + eps_app",
        **{k.format(tag=tag): v.format(eps=f"{eps:g}") for tag, eps in EPS_APP.items() for k, v in {
            "floor_{tag}": "best-iterate floor min_{{s <= T}} D_p(lambda_s) - D*_p of stochastic CAID with eps_app = "
                           "{eps} (D_p exact at every step; docs/theory/constrained.md §6.3)",
            "floor_minus_eps_{tag}": "floor minus eps_app = {eps}",
            "ratio_lemma8_{tag}": "floor / (eta S^2/2 + eps_app), eps_app = {eps}: the floor against Lemma 8's bound "
                                  "(<= 1 when the bound holds)",
            "final_gap_{tag}": "last-iterate dual gap D_p(lambda_T) - D*_p, eps_app = {eps}",
            "guess_gains_{tag}": "CAID steps (of the every-GUESS_EVERY checks) at which the projected-logits start "
                                 "of the D_p evaluation found a larger maximum than the warm start, eps_app = {eps} "
                                 "(0 expected: the warm start tracks the maximizer)",
            "best_lam_error_{tag}": "max |lambda_best - lambda*_p| of the best iterate, eps_app = {eps}",
            "best_u_opt_{tag}": "U-OPT ||E_x[E_{{pi*}} c - E_pi c]||_2 of pi*_p(lambda_best) against the exact "
                                "constrained optimum pi*(lambda*), eps_app = {eps}",
            "best_u_opt_linf_{tag}": "U-OPT in the l_inf norm of pi*_p(lambda_best), eps_app = {eps}",
            "best_r_opt_{tag}": "R-OPT |J_beta(pi*) - J_beta(pi*_p(lambda_best))| against pi*(lambda*) (tends to "
                                "G2 = V* - D*_p > 0), eps_app = {eps}",
            "best_r_opt_multi_{tag}": "R-OPT |J_beta(pi*_p(lambda*_p)) - J_beta(pi*_p(lambda_best))| against the "
                                      "multi-shot policy (the part that vanishes with eta), eps_app = {eps}",
            "best_violation_{tag}": "signed violation -E_x E_pi c of pi*_p(lambda_best) (> 0 infeasible), "
                                    "eps_app = {eps}",
        }.items()},
        "floor_derived": "derived mean floor pi eta sigma^2 / (2 T_eff^2 (2 - eta mu_p)) of the AR(1) dual error "
                         "(derived_floor, eps_app = 0)",
        "best_lam_error_derived": "derived E min_s |lambda_s - lambda*_p| = 1 / (2 T_eff p0) (derived_floor)",
        "ratio_floor_derived_e0": "floor_e0 / floor_derived: measured against derived floor (eps_app = 0)",
        "diff_e1": "floor_e1 - floor_e0: floor increase from eps_app = 1e-3 (paired: common random numbers)",
        "diff_e2": "floor_e2 - floor_e0: floor increase from eps_app = 1e-2 (paired: common random numbers)",
        "failed": "1.0 when the exact parametrized dual target lambda*_p did not converge, else 0.0",
    },
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    scenario_main(SCENARIO)
