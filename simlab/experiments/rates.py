"""Rate fitting and verdicts (spec §7.1).

A rate is the OLS slope of log(mean metric) on log(x) over the grid points at or beyond the
pre-asymptotic cut. Its 95% CI is a percentile bootstrap over seeds (>= 1000 resamples, fixed
seed): replicate indices are resampled jointly across grid points, which is valid for independent
seeds and keeps the pairing when the scenario uses nested prefixes (common random numbers).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 12345


@dataclass(frozen=True)
class RateFit:
    """A fitted slope with its bootstrap CI and a deal.II-style convergence table."""

    slope: float
    intercept: float
    ci: tuple[float, float]
    slope_median: float
    x: np.ndarray            # grid values used in the fit
    mean: np.ndarray         # per-point mean over seeds
    median: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    stderr: np.ndarray
    seeds: np.ndarray        # replicates per point
    failures: np.ndarray     # non-finite values per point (failed fits; never dropped silently)
    x_all: np.ndarray = field(default_factory=lambda: np.empty(0))   # every grid value (incl. < cut)
    mean_all: np.ndarray = field(default_factory=lambda: np.empty(0))

    def local_rates(self) -> np.ndarray:
        """Local rates log(e_i / e_{i-1}) / log(x_i / x_{i-1}) over all grid points (first is NaN)."""
        r = np.full(self.x_all.size, np.nan)
        r[1:] = np.diff(np.log(self.mean_all)) / np.diff(np.log(self.x_all))
        return r


def _ols_slope(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Slopes of OLS fits of each row of logy (..., k) on logx (k,)."""
    xc = logx - logx.mean()
    return ((logy - logy.mean(axis=-1, keepdims=True)) @ xc) / (xc @ xc)


def fit_rate(x: np.ndarray, values: np.ndarray, replicate: np.ndarray, cut: float | None = None,
             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> RateFit:
    """Fit log(mean values) ~ slope * log(x) over points with x >= cut.

    ``x``, ``values`` and ``replicate`` are per-cell arrays. Non-finite values count as failures: they
    are reported per point and excluded from the mean (the verdict layer decides what they mean).
    """
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float)
    replicate = np.asarray(replicate)
    grid = np.unique(x)
    stats = {k: [] for k in ("mean", "median", "q25", "q75", "se", "n", "fail")}
    for g in grid:
        v = values[x == g]
        ok = v[np.isfinite(v)]
        stats["fail"].append(v.size - ok.size)
        stats["n"].append(v.size)
        stats["mean"].append(ok.mean() if ok.size else np.nan)
        stats["median"].append(np.median(ok) if ok.size else np.nan)
        stats["q25"].append(np.quantile(ok, 0.25) if ok.size else np.nan)
        stats["q75"].append(np.quantile(ok, 0.75) if ok.size else np.nan)
        stats["se"].append(ok.std(ddof=1) / np.sqrt(ok.size) if ok.size > 1 else np.nan)
    arr = {k: np.asarray(v, dtype=float) for k, v in stats.items()}
    use = grid >= (cut if cut is not None else -np.inf)
    if use.sum() < 2:
        raise ValueError(f"rate fit needs >= 2 grid points at or beyond the cut {cut}; have {use.sum()}")
    logx = np.log(grid[use])
    slope = float(_ols_slope(logx, np.log(arr["mean"][use])))
    intercept = float(np.mean(np.log(arr["mean"][use])) - slope * logx.mean())
    slope_median = float(_ols_slope(logx, np.log(arr["median"][use])))

    # joint bootstrap over replicates
    reps = np.unique(replicate)
    index = {r: i for i, r in enumerate(reps)}
    # one unit per replicate; several rows of a replicate at one point (e.g. environment draws)
    # are averaged, which keeps the per-point mean unchanged when every replicate has equally many
    sums = np.zeros((reps.size, use.sum()))
    counts = np.zeros((reps.size, use.sum()))
    for j, g in enumerate(grid[use]):
        sel = (x == g) & np.isfinite(values)
        np.add.at(sums[:, j], [index[r] for r in replicate[sel]], values[sel])
        np.add.at(counts[:, j], [index[r] for r in replicate[sel]], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = sums / counts
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, reps.size, size=(resamples, reps.size))
    boot_means = np.nanmean(table[draws], axis=1)          # (resamples, points)
    boot = _ols_slope(logx, np.log(boot_means))
    boot = boot[np.isfinite(boot)]
    ci = (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975)))
    return RateFit(slope, intercept, ci, slope_median, grid[use], arr["mean"][use], arr["median"][use],
                   arr["q25"][use], arr["q75"][use], arr["se"][use], arr["n"][use], arr["fail"][use],
                   x_all=grid, mean_all=arr["mean"])


def mean_with_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float], int]:
    """(mean, 95% percentile-bootstrap CI, failures) of per-seed values; non-finite ones are failures."""
    v = np.asarray(values, dtype=float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return float("nan"), (float("nan"), float("nan")), int(v.size)
    rng = np.random.default_rng(seed)
    boot = ok[rng.integers(0, ok.size, size=(resamples, ok.size))].mean(axis=1)
    return float(ok.mean()), (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))), int(v.size - ok.size)


# ----------------------------------------------------------------- verdicts

def verdict_tight(slope: float, ci: tuple[float, float], predicted: float, tol: float) -> tuple[bool, str]:
    """``tight(s, tol)``: |slope - s| <= tol and the CI meets [s - tol, s + tol]; inconclusive (fail)
    when the CI half-width exceeds tol."""
    half = 0.5 * (ci[1] - ci[0])
    if half > tol:
        return False, f"inconclusive: CI half-width {half:.3f} > tol {tol}"
    meets = ci[0] <= predicted + tol and ci[1] >= predicted - tol
    ok = abs(slope - predicted) <= tol and meets
    return ok, "" if ok else f"|slope - ({predicted:g})| = {abs(slope - predicted):.3f} > tol {tol}"


def verdict_upper(slope: float, predicted: float, tol: float, direction: str) -> tuple[bool, str]:
    """``upper(s, tol, dir)``: a bound O(knob^s); dir 'inf' passes iff slope <= s + tol (faster decay
    passes), dir 'zero' passes iff slope >= s - tol."""
    if direction == "inf":
        ok = slope <= predicted + tol
        return ok, "" if ok else f"slope {slope:.3f} > bound {predicted:g} + {tol}"
    ok = slope >= predicted - tol
    return ok, "" if ok else f"slope {slope:.3f} < bound {predicted:g} - {tol}"


def verdict_identity_in_expectation(mean: float, rel: float) -> tuple[bool, str]:
    """|mean ratio - 1| <= rel."""
    ok = abs(mean - 1.0) <= rel
    return ok, "" if ok else f"|mean - 1| = {abs(mean - 1.0):.3f} > {rel}"


def verdict_ordering(ci: tuple[float, float], side: str) -> tuple[bool, str]:
    """The 95% CI of the mean difference lies strictly on ``side`` of 0."""
    ok = ci[1] < 0 if side == "<" else ci[0] > 0
    return ok, "" if ok else f"CI [{ci[0]:.3g}, {ci[1]:.3g}] not {side} 0"
