"""Oracle-robust SAIL (spec §5, §7.3 robust_sail.*): exact decomposition, certificate, stationarity rates.

World E5 (n_x = 2, n_y = 4, d = 3, beta = 1, theta_ref = 0, B = 3, ||w*|| = 2) with an observed oracle
P_obs misspecified by a pointwise box (rho_true = 0.08, adversarial antisymmetric signs) or a style
confounder (kappa_s = 1, rho_true measured). Everything population-level is exact over the atoms.

The box set and its decomposition are *derived in the spec* (the paper body is not available):
W_rho(P_obs) = {|P - P_obs| <= rho, P(x,a,b) + P(x,b,a) = 1, P in [0, 1]}; the SAIL loss is affine in P
with slope -h and its weights pi_theta(a) pi_theta(b) do not depend on P, so the sup is pointwise at
P = clip(P_obs - rho sign h) and L^W_rho = L_SAIL(.; P_obs) + E[min(rho, P_obs)[h]_+ + min(rho, 1 - P_obs)[-h]_+],
which equals L_SAIL + rho E|h| only when rho <= min(P_obs, 1 - P_obs) everywhere ("interior" regime).

Experiments (the ``experiment`` axis):
- decomposition: max over 200 random theta of |clipped form - brute force| (and interior form where valid).
- certificate: max over 1000 theta in the ball of L_SAIL(theta; P_true) - L^W_rho(theta), rho = f rho_true.
- stationarity: Algorithms A (claim), B, C with alpha = c/sqrt(T), exact ||grad env_gamma||^2 at 32 uniform
  random iterates per run (the random-iterate output rule), gamma = 0.1 < 1/omega_hat, averaged over 8
  E5 draws (the slope is instance dependent).
- deterministic: exact-expectation Algorithm A, alpha = 1/(2 omega_hat); (1/T) sum_t ||grad env(theta_t)||^2,
  slope fitted on the tail T >= 100.
- inner_cost: dual box-QP iterations to gap <= delta on the prox subproblems at iterates of Algorithm A
  runs (rho = 0.1 and rho = 0.5 >= rho_bar, where the prox often sits on a kink).
- rho_sweep (figure, report-only): true-oracle SAIL loss and KL-regularised true reward of the robust vs
  the non-robust solution.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from simlab.env import make_env, preset
from simlab.experiments.claims import Measurement
from simlab.experiments.rates import fit_rate, verdict_upper
from simlab.experiments.scenario import CellSeeds, Claim, Scenario
from simlab.objectives.sail import (feature_bound, penalty_pairs, robust_regime, robust_sail_brute_force,
                                    robust_sail_decomposition, robust_sail_value_grad, sail_value_grad,
                                    sample_ball, weak_convexity_bound, weak_convexity_estimate)
from simlab.plots.sail import rho_sweep_figure, stationarity_figure
from simlab.policy import expected_reward, kl_to
from simlab.solvers.prox import RobustSailProx, box_qp_dual, prox_linear_model
from simlab.solvers.sail_algorithms import deterministic_prox_linear, random_iterate_indices, run_algorithm

PAPER = ("Li, Gaur, Aggarwal, 'Oracle-Robust Online Alignment for Large Language Models' (arXiv 2602.20457), "
         "abstract-level claims; box set, decomposition and constants derived in spec §5")
GAMMA = 0.1          # Moreau parameter (E5, spec §7.2); checked < 1/omega_hat in every cell
RHO = 0.1            # box radius of the rate experiments (< rho_bar)
STEP_C = 2.0         # alpha = c / sqrt(T), c from the pilot reported in spec §5.6
INNER_STEPS_B = 16   # K_in of Algorithm B
N_RANDOM_ITERATES = 32
DET_T = (10, 30, 100, 300, 1000, 3000)
RHO_SWEEP = (0.0, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)


def _seed_key(ss: np.random.SeedSequence) -> tuple:
    return ss.entropy, tuple(ss.spawn_key)


@functools.lru_cache(maxsize=32)
def _world(oracle: str, seed_key: tuple):
    """E5 instance, omega_hat (2000 sampled pairs), and its constants; cached per process."""
    env = make_env(preset("E5", oracle=oracle), np.random.SeedSequence(seed_key[0], spawn_key=seed_key[1]))
    args = (env.phi, env.p_x, env.theta_ref, env.beta, env.P_obs)
    omega_hat = weak_convexity_estimate(*args, RHO, env.spec.radius_B, 2000, np.random.default_rng(0))
    if not GAMMA < 1.0 / omega_hat:
        raise ValueError(f"gamma={GAMMA} must be < 1/omega_hat = {1.0 / omega_hat:.3g}")
    return env, args, omega_hat


def _args(env):
    return env.phi, env.p_x, env.theta_ref, env.beta


@functools.lru_cache(maxsize=64)
def _robust_minimum(oracle: str, seed_key: tuple, rho: float, table: str = "P_obs") -> tuple[np.ndarray, float]:
    """Best of 8 deterministic prox-linear runs (theta_ref + 7 random starts, alpha = 1/(2 omega_hat),
    600 steps) on L^W_rho built from the oracle ``table`` (P_obs, or P_true for the oracle-optimal SAIL
    solution): (theta_rho, min F). F is weakly convex, so this is a multistart, not a certificate."""
    env, args, omega_hat = _world(oracle, seed_key)
    args = (*args[:4], getattr(env, table))
    B = env.spec.radius_B
    starts = np.vstack([env.theta_ref, sample_ball(env.theta_ref, B, 7, np.random.default_rng(1))])
    best = (None, math.inf)
    for th0 in starts:
        th = deterministic_prox_linear(th0, *args, rho, B, 600, 1.0 / (2.0 * omega_hat))[-1]
        f = robust_sail_value_grad(th, *args, rho)[0]
        if f < best[1]:
            best = (th, f)
    return best


# ------------------------------------------------------------------------------------------- cells
def _decomposition(env, args, params, rng) -> dict:
    rho = float(params["rho"])
    B = env.spec.radius_B
    clipped = kernel = 0.0
    interior, overestimate = 0.0, -math.inf
    for theta in sample_ball(env.theta_ref, 2.0 * B, 200, rng):
        brute = robust_sail_brute_force(theta, *args, rho)
        dec = robust_sail_decomposition(theta, *args, rho)
        clipped = max(clipped, abs(dec.value - brute))
        kernel = max(kernel, abs(robust_sail_value_grad(theta, *args, rho)[0] - brute))
        interior = max(interior, abs(dec.interior_value - brute))
        overestimate = max(overestimate, dec.interior_value - brute)
    is_interior = robust_regime(env.P_obs, rho) == "interior"
    return {"clipped_err": max(clipped, kernel), "interior": float(is_interior),
            "interior_err": interior if is_interior else math.nan, "interior_overestimate": overestimate}


def _certificate(env, args, params, rng) -> dict:
    rho_true = env.misspecification()
    rho = float(params["rho_factor"]) * rho_true
    thetas = sample_ball(env.theta_ref, env.spec.radius_B, 1000, rng)
    gap = max(sail_value_grad(th, *_args(env), env.P_true)[0] - robust_sail_value_grad(th, *args, rho)[0]
              for th in thetas)
    return {"cert_gap": gap, "rho": rho, "rho_true": rho_true}


def _step(params) -> float:
    T = int(params["T"])
    if params["step_rule"] == "c/sqrtT":
        return STEP_C / math.sqrt(T)
    if params["step_rule"] == "constant":   # deliberately non-convergent control (tests only)
        return STEP_C
    raise ValueError(f"step_rule must be 'c/sqrtT' or 'constant', got {params['step_rule']!r}")


def _stationarity(env, args, params, rng, omega_hat, seed_key) -> dict:
    T = int(params["T"])
    alg = params["algorithm"]
    B = env.spec.radius_B
    step = _step(params)
    if alg == "B":
        step = min(step, GAMMA)
    idx, inv = random_iterate_indices(T, N_RANDOM_ITERATES, rng)
    run = run_algorithm(alg, env.theta_ref.copy(), *args, RHO, B, T, step, rng, idx, gamma=GAMMA,
                        inner_steps=INNER_STEPS_B, mu_in=1.0 / GAMMA - omega_hat)
    prox = RobustSailProx(*args, RHO, B, GAMMA)
    g2 = prox.envelope_grad_norms2(run.iterates)[inv]
    # reconstructed rate bound 4 L_G sqrt(omega Delta_F / T) (report-only: constants up to absolute factors)
    consts = weak_convexity_bound(env.beta, feature_bound(env.phi), B, RHO)
    delta_F = prox.prox(env.theta_ref).envelope - _robust_minimum(params["oracle"], seed_key, RHO)[1]
    bound = 4.0 * consts.L_G * math.sqrt(consts.omega * max(delta_F, 0.0) / T)
    return {"env_grad2": float(g2.mean()), "env_grad": float(np.sqrt(g2).mean()),
            "env_grad2_sqrtT": float(g2.mean() * math.sqrt(T)), "bound_ratio": float(g2.mean() / bound),
            "step": step, "samples": float(run.samples), "omega_hat": omega_hat,
            "inner_per_step": run.inner_iterations / T if alg == "A" else math.nan}


@functools.lru_cache(maxsize=8)
def _deterministic_curve(oracle: str, seed_key: tuple) -> np.ndarray:
    env, args, omega_hat = _world(oracle, seed_key)
    B = env.spec.radius_B
    its = deterministic_prox_linear(env.theta_ref, *args, RHO, B, max(DET_T) - 1, 1.0 / (2.0 * omega_hat))
    return RobustSailProx(*args, RHO, B, GAMMA).envelope_grad_norms2(its)


@functools.lru_cache(maxsize=8)
def _inner_subproblems(oracle: str, seed_key: tuple, rho: float, n: int):
    """The prox subproblems at n uniformly drawn iterates theta_t of one Algorithm A run (T = 6400,
    alpha = c/sqrt(T), its own fixed stream, box radius ``rho``): the dual box-QP whose solution is
    prox_gamma(theta_t), i.e. the prox-linear model at its fixed point z = prox_gamma(theta_t) with
    zbar = theta_t, kappa = 1/gamma. Also returns how many kinks are active (t_k = 0) at the prox:
    with none active the projected dual ascent identifies the face and stops after finitely many steps;
    with active kinks it converges linearly (the O(log 1/delta) regime)."""
    env, args, omega_hat = _world(oracle, seed_key)
    B, T = env.spec.radius_B, 6400
    rng = np.random.default_rng(2)
    record = np.sort(rng.choice(T, size=n, replace=False))   # uniform random iterates (the output rule)
    run = run_algorithm("A", env.theta_ref.copy(), *args, rho, B, T, STEP_C / math.sqrt(T), rng, record)
    pairs = penalty_pairs(env.phi, env.theta_ref, env.beta, env.P_obs, rho)
    prox = RobustSailProx(*args, rho, B, GAMMA)
    out = []
    for theta in run.iterates:
        z = prox.prox(theta).prox
        t = pairs.rows @ z - pairs.offsets
        active = int(np.sum(np.abs(t) <= 1e-9 * (1.0 + np.abs(pairs.rows) @ np.abs(z))))
        out.append((theta, *prox_linear_model(z, *args, rho, pairs), active))
    return out, pairs


def _inner_cost(env, args, params, replicate, seed_key) -> dict:
    models, pairs = _inner_subproblems(params["oracle"], seed_key, float(params["inner_rho"]), 16)
    theta, g, u_minus, u_plus, active = models[replicate % len(models)]
    delta = float(params["delta"])
    res = box_qp_dual(g, pairs.rows, pairs.offsets, u_minus, u_plus, 1.0 / GAMMA, theta, gap_tol=delta,
                      max_iter=1_000_000)
    return {"inner_iterations": float(res.iterations), "gap_evaluations": float(res.iterations + 1),
            "gap": res.gap, "log_inv_delta": math.log(1.0 / delta), "kink_active": float(active > 0),
            "active_kinks": float(active), "failed": float(not res.converged)}


def _rho_sweep(env, args, params, seed_key) -> dict:
    """Robust solution theta_rho (on P_obs) vs the non-robust one (rho = 0) under the *true* oracle:
    SAIL loss L_SAIL(theta; P_true) and its regret over the P_true-SAIL minimiser, and the KL-regularised
    true reward J(theta; r*) - beta KL(pi_theta || pi_ref) against its maximum at theta_ref + w*/beta."""
    rho = float(params["rho"])
    oracle = params["oracle"]
    theta_rho, f_rho = _robust_minimum(oracle, seed_key, rho)
    theta_0, _ = _robust_minimum(oracle, seed_key, 0.0)
    _, sail_true_min = _robust_minimum(oracle, seed_key, 0.0, "P_true")
    true = lambda th: sail_value_grad(th, *_args(env), env.P_true)[0]
    regularised = lambda th: (expected_reward(th, env.phi, env.reward, env.p_x)
                              - env.beta * kl_to(th, env.theta_ref, env.phi, env.p_x))
    grad = RobustSailProx(*args, rho, env.spec.radius_B, GAMMA).prox(theta_rho).gradient
    return {"true_loss_robust": true(theta_rho), "true_loss_nonrobust": true(theta_0),
            "true_loss_regret_robust": true(theta_rho) - sail_true_min,
            "true_loss_regret_nonrobust": true(theta_0) - sail_true_min,
            "true_loss_gain": true(theta_0) - true(theta_rho), "robust_value": f_rho,
            "reg_reward_robust": regularised(theta_rho), "reg_reward_nonrobust": regularised(theta_0),
            "reg_reward_optimum": regularised(env.theta_ref + env.w_star / env.beta),
            "rho_true": env.misspecification(), "stationarity": float(np.linalg.norm(grad)),
            "shift_from_ref": float(np.linalg.norm(theta_rho - env.theta_ref))}


def cell(params: dict, seeds: CellSeeds) -> dict:
    seed_key = _seed_key(seeds.instance)
    env, args, omega_hat = _world(params["oracle"], seed_key)
    rng = np.random.default_rng(seeds.sample)
    exp = params["experiment"]
    if exp == "decomposition":
        return _decomposition(env, args, params, rng)
    if exp == "certificate":
        return _certificate(env, args, params, rng)
    if exp == "stationarity":
        return _stationarity(env, args, params, rng, omega_hat, seed_key)
    if exp == "deterministic":
        T = int(params["T"])
        return {"avg_env_grad2": float(_deterministic_curve(params["oracle"], seed_key)[:T].mean()),
                "step": 1.0 / (2.0 * omega_hat), "omega_hat": omega_hat}
    if exp == "inner_cost":
        return _inner_cost(env, args, params, seeds.replicate, seed_key)
    if exp == "rho_sweep":
        return _rho_sweep(env, args, params, seed_key)
    raise ValueError(f"unknown experiment {exp!r}")


# ------------------------------------------------------------------------------------------ claims
def evaluate_certificate(rows: pd.DataFrame) -> Measurement:
    """Pass iff L_SAIL(theta; P_true) - L^W_rho(theta) <= 1e-12 at every tested theta whenever
    rho >= rho_true; the control rho = rho_true/2 is reported (a positive max is a counter-example)."""
    if rows.empty:
        return Measurement(math.nan, (math.nan, math.nan), False, "no stored rows")
    covered = rows[rows["rho_factor"] >= 1.0]
    worst = float(covered["cert_gap"].max())
    ok = bool(np.isfinite(covered["cert_gap"]).all()) and worst <= 1e-12
    control = rows[rows["rho_factor"] < 1.0].groupby("oracle")["cert_gap"].max()
    extra = {f"control_max_gap[{o}, rho=rho_true/2]": float(v) for o, v in control.items()}
    note = "" if ok else f"max gap {worst:.3g} > 1e-12 at rho >= rho_true"
    note += ("; " if note else "") + "counter-example below rho_true: " + ", ".join(
        f"{o}: {v:+.3g}" for o, v in control.items())
    return Measurement(worst, (worst, worst), ok, note, None, extra)


def _slope_of(rows: pd.DataFrame, metric: str, cut: float):
    return fit_rate(rows["T"].to_numpy(float), rows[metric].to_numpy(float), rows["replicate"].to_numpy(), cut)


def evaluate_stationarity(rows: pd.DataFrame, cut: float = 1600.0, predicted: float = -0.5,
                          tol: float = 0.15) -> Measurement:
    """upper(-1/2, tol, inf) on E||grad env||^2 vs T for Algorithm A; B, C and the unsquared norm
    (bound slope -1/4) are reported beside it, each with its own fitted slope."""
    a = rows[rows["algorithm"] == "A"]
    if a.empty:
        return Measurement(math.nan, (math.nan, math.nan), False, "no stored rows")
    fit = _slope_of(a, "env_grad2", cut)
    ok, note = verdict_upper(fit.slope, predicted, tol, "inf")
    if fit.failures.sum():
        ok, note = False, note + f"; {int(fit.failures.sum())} failed runs"
    extra = {"slope_median[A]": fit.slope_median}
    for alg in ("A", "B", "C"):
        sub = rows[rows["algorithm"] == alg]
        if sub.empty or sub["T"].nunique() < 2:
            continue
        for metric, label in (("env_grad2", "squared"), ("env_grad", "unsquared")):
            f = _slope_of(sub, metric, cut)
            extra[f"slope[{alg}, {label}]"] = f.slope
            extra[f"ci[{alg}, {label}]"] = list(f.ci)
        extra[f"max E||grad||^2 sqrt(T) [{alg}]"] = float(sub.groupby("T")["env_grad2_sqrtT"].mean().max())
        extra[f"bound_ratio at max T [{alg}]"] = float(sub[sub["T"] == sub["T"].max()]["bound_ratio"].mean())
    return Measurement(fit.slope, fit.ci, ok, note, fit, extra)


def _linear_fit(rows: pd.DataFrame, metric: str) -> tuple[float, float, float, np.ndarray, np.ndarray]:
    """OLS of the mean of ``metric`` over subproblems on log(1/delta): (slope, intercept, R^2, x, y)."""
    mean = rows.groupby("log_inv_delta")[metric].mean()
    x, y = mean.index.to_numpy(float), mean.to_numpy(float)
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss = float((y - y.mean()) @ (y - y.mean()))
    return float(slope), float(intercept), (1.0 - float(resid @ resid) / ss if ss > 0 else 0.0), x, y


def evaluate_inner_cost(rows: pd.DataFrame, r2_min: float = 0.9) -> Measurement:
    """OLS of mean inner iterations (over all subproblems) on log(1/delta): pass iff R^2 >= r2_min and
    the slope is > 0 (iterations linear in log(1/delta)). The kink-active / finitely terminating split
    is reported beside it."""
    if rows.empty:
        return Measurement(math.nan, (math.nan, math.nan), False, "no stored rows")
    slope, intercept, r2, x, y = _linear_fit(rows, "inner_iterations")
    fails = int(rows["failed"].sum())
    ok = r2 >= r2_min and slope > 0 and fails == 0
    per_sub = rows.groupby(["inner_rho", "replicate"])["kink_active"].first()
    note = (f"iterations = {slope:.3g} log(1/delta) + {intercept:.3g}, R^2 = {r2:.3f}; "
            f"{per_sub.mean():.0%} of {per_sub.size} subproblems have an active kink at the prox")
    if fails:
        note += f"; {fails} solves hit max_iter"
    extra = {"slope_iterations_per_log": slope, "intercept": intercept, "R2": r2,
             "iterations_by_delta": {f"{math.exp(-k):.0e}": float(v) for k, v in zip(x, y)},
             "share_kink_active": float(per_sub.mean())}
    for label, sub in (("kink_active", rows[rows["kink_active"] == 1.0]),
                       ("no_active_kink", rows[rows["kink_active"] == 0.0])):
        if sub["log_inv_delta"].nunique() >= 2:
            s2, i2, r22, _, y2 = _linear_fit(sub, "inner_iterations")
            extra[f"slope[{label}]"], extra[f"R2[{label}]"], extra[f"max_mean_iterations[{label}]"] = s2, r22, float(y2.max())
    return Measurement(r2, (r2, r2), ok, note, None, extra)


CLAIMS = (
    Claim(id="robust_sail.decomposition", kind="identity", metric="clipped_err", predicted=0.0, tol=1e-10,
          label="clipped form", paper=PAPER, where={"experiment": "decomposition"},
          statement=("L^W_rho = L_SAIL(.; P_obs) + E[min(rho, P_obs)[h]_+ + min(rho, 1 - P_obs)[-h]_+] (derived: "
                     "the loss is affine in P with slope -h and the weights do not depend on P, so the sup is "
                     "pointwise at P = clip(P_obs - rho sign h))."),
          quantity="max over 200 theta of |clipped form - brute-force sup over box endpoints|, E5 box and "
                   "confounder, rho in {0.01, 0.05, 0.2} (both regimes)"),
    Claim(id="robust_sail.decomposition", kind="identity", metric="interior_err", predicted=0.0, tol=1e-10,
          label="interior form", paper=PAPER, where={"experiment": "decomposition", "interior": 1.0},
          statement="In the interior regime rho <= min(P_obs, 1 - P_obs): L^W_rho = L_SAIL + rho E|h_theta|.",
          quantity="max |interior form - brute force| on interior-regime cells (it overestimates elsewhere: "
                   "column interior_overestimate)"),
    Claim(id="robust_sail.certificate", kind="ordering", metric="cert_gap", predicted=0.0, tol=1e-12,
          paper=PAPER, where={"experiment": "certificate"}, evaluate=evaluate_certificate,
          notes=("30 master seeds (quick): max gap at rho >= rho_true in [-0.0090, -0.0009], never violated; the "
                 "rho_true/2 control found counter-examples in 29/30 box and 21/30 confounder instances "
                 "(tol/sd calibration does not apply to a sign check)"),
          statement="rho >= rho_true implies L_SAIL(theta; P_true) <= L^W_rho(theta) for every theta.",
          quantity="max over 1000 theta in the ball of L_SAIL(theta; P_true) - L^W_rho(theta), rho in "
                   "{1, 1.5} rho_true (box, confounder); control rho_true/2 reported"),
    Claim(id="robust_sail.stationarity_rate", kind="upper", metric="env_grad2", x="T", predicted=-0.5,
          tol=0.15, cut=1600, paper=PAPER, where={"experiment": "stationarity"},
          evaluate=evaluate_stationarity,
          statement=("Projected stochastic composite (prox-linear) updates reach E||grad env_gamma||^2 <= eps "
                     "in O~(eps^-2) oracle calls: E||grad env_gamma(theta_t*)||^2 = O(T^-1/2) with "
                     "alpha ~ 1/sqrt(T) (the unsquared norm decays like T^-1/4)."),
          quantity=("mean over 8 E5 draws x 16 seeds of ||grad env_{0.1}||^2 at 32 uniform random iterates, "
                    "Algorithm A (N_b = 1, alpha = 2/sqrt(T)), T = 1600..102400; B and C (4 seeds per draw) "
                    "and the unsquared norm reported beside it"),
          notes=("faster decay than -1/2 passes (upper bound). Per E5 instance the slope ranges -0.35..-0.55 "
                 "(30 single-instance masters), hence 8 draws; 30 masters: mean -0.465, sd 0.021, range "
                 "-0.50..-0.42")),
    *(Claim(id="robust_sail.deterministic_rate", kind="upper", metric="avg_env_grad2", x="T", predicted=-1.0,
            tol=0.1, cut=100, label=f"{oracle} oracle", paper=PAPER,
            where={"experiment": "deterministic", "oracle": oracle},
            statement=("With exact expectations the prox-linear method has (1/T) sum_t ||grad env(theta_t)||^2 "
                       "= O(1/T)."),
            quantity=(f"(1/T) sum_(t<T) ||grad env_0.1(theta_t)||^2, alpha = 1/(2 omega_hat), T in {{10, ..., 3000}}, "
                      f"fit on T >= 100, {oracle} oracle"),
            notes=("the partial sum still grows at small T (slower local slope); calibration over 30 masters "
                   "without the cut failed once at -0.89, so the fit uses the tail as in spec §5.6"))
      for oracle in ("box", "confounder")),
    Claim(id="robust_sail.inner_cost", kind="tight", metric="inner_iterations", x="log_inv_delta",
          predicted=0.9, tol=0.0, paper=PAPER, where={"experiment": "inner_cost"}, evaluate=evaluate_inner_cost,
          statement="An inexact inner prox solve to accuracy delta costs O(log 1/delta): the tilde in O~(eps^-2).",
          quantity=("R^2 (pass >= 0.9) of the OLS of mean dual box-QP iterations to duality gap <= delta on "
                    "log(1/delta), delta = 1e-2..1e-10, prox subproblems at 16 uniform random iterates of "
                    "Algorithm A runs at rho = 0.1 and rho = 0.5 (>= rho_bar); slope reported"),
          notes=("subproblems without an active kink terminate finitely (O(1)); those with one converge "
                 "linearly, which is where the log(1/delta) cost comes from. 30 master seeds: R^2 in "
                 "[0.931, 0.990], mean 0.974 (tol/sd calibration does not apply to an R^2 threshold)")),
)

_DELTAS = [10.0 ** -k for k in range(2, 11)]
# The stationarity slope varies between E5 instances (30 master seeds, one instance each: slopes -0.35 ..
# -0.55, sd 0.058, seed noise only ~0.03), so the rate claim averages over 8 environment draws.
_DRAWS = list(range(8))

SCENARIO = Scenario(
    name="robust_sail",
    version="6",
    study="Oracle-robust SAIL",
    description="E5 with a box-misspecified or style-confounded oracle: decomposition, certificate, rates.",
    cell=cell,
    grids={
        "quick": [
            {"experiment": ["decomposition"], "oracle": ["box", "confounder"], "rho": [0.01, 0.05, 0.2],
             "seeds": 1},
            {"experiment": ["certificate"], "oracle": ["box", "confounder"], "rho_factor": [0.5, 1.0, 1.5],
             "seeds": 1},
            {"experiment": ["stationarity"], "oracle": ["box"], "algorithm": ["A"], "env_draw": _DRAWS,
             "step_rule": ["c/sqrtT"], "T": [1600, 6400, 25600, 102400], "seeds": 16},
            {"experiment": ["stationarity"], "oracle": ["box"], "algorithm": ["B", "C"], "env_draw": _DRAWS,
             "step_rule": ["c/sqrtT"], "T": [1600, 6400, 25600], "seeds": 4},
            {"experiment": ["deterministic"], "oracle": ["box", "confounder"], "T": list(DET_T), "seeds": 1},
            {"experiment": ["inner_cost"], "oracle": ["box"], "inner_rho": [RHO, 0.5], "delta": _DELTAS,
             "seeds": 16},
            {"experiment": ["rho_sweep"], "oracle": ["box", "confounder"], "rho": list(RHO_SWEEP), "seeds": 1},
        ],
        "full": [
            {"experiment": ["decomposition"], "oracle": ["box", "confounder"],
             "rho": [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4], "seeds": 4},
            {"experiment": ["certificate"], "oracle": ["box", "confounder"], "rho_factor": [0.5, 1.0, 1.5],
             "seeds": 4},
            {"experiment": ["stationarity"], "oracle": ["box"], "algorithm": ["A"], "env_draw": _DRAWS,
             "step_rule": ["c/sqrtT"], "T": [400, 1600, 6400, 25600, 102400]},
            {"experiment": ["stationarity"], "oracle": ["box"], "algorithm": ["B", "C"], "env_draw": _DRAWS,
             "step_rule": ["c/sqrtT"], "T": [400, 1600, 6400, 25600, 102400], "seeds": 16},
            {"experiment": ["deterministic"], "oracle": ["box", "confounder"], "T": list(DET_T), "seeds": 1},
            {"experiment": ["inner_cost"], "oracle": ["box"], "inner_rho": [RHO, 0.5], "delta": _DELTAS,
             "seeds": 16},
            {"experiment": ["rho_sweep"], "oracle": ["box", "confounder"], "rho": list(RHO_SWEEP), "seeds": 1},
        ],
    },
    seeds={"quick": 16, "full": 64},
    shared_seed_axes=("T",),
    claims=CLAIMS,
    figures=(stationarity_figure, rho_sweep_figure),
    crn_note="common random numbers: each replicate uses one sample stream for every T of an algorithm",
)

if __name__ == "__main__":
    from simlab.cli import scenario_main

    raise SystemExit(scenario_main(SCENARIO))
