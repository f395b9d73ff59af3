"""Rate fitting and verdicts (docs/theory/claims.md §7.1).

A rate is the OLS slope of log(mean metric) on log(x) over the grid points at or beyond the
pre-asymptotic cut. Its 95% CI is a percentile bootstrap over seeds (>= 1000 resamples, fixed
seed): replicate indices are resampled jointly across grid points, which is valid for independent
seeds and keeps the pairing when the scenario uses nested prefixes (common random numbers).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

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
        """Local rates log(e_i / e_{i-1}) / log(x_i / x_{i-1}) over all grid points.

        Returns
        -------
        ndarray
            One rate per grid value of ``x_all``; the first is NaN.
        """
        r = np.full(self.x_all.size, np.nan)
        r[1:] = np.diff(np.log(self.mean_all)) / np.diff(np.log(self.x_all))
        return r


def _ols_slope(logx: np.ndarray, logy: np.ndarray) -> np.ndarray:
    """Slopes of OLS fits of each row of logy (..., k) on logx (k,)."""
    xc = logx - logx.mean()
    return ((logy - logy.mean(axis=-1, keepdims=True)) @ xc) / (xc @ xc)


def fit_rate(x: np.ndarray, values: np.ndarray, replicate: np.ndarray, cut: float | None = None,
             resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> RateFit:
    """Fit log(mean values) ~ slope * log(x) over the grid points with x >= cut (docs/theory/claims.md §7.1).

    The 95% CI is a percentile bootstrap that resamples replicates jointly across grid points (valid for
    independent seeds, and it keeps the pairing of nested prefixes). Non-finite values count as failures:
    they are reported per point and excluded from the mean (the verdict layer decides what they mean).

    Parameters
    ----------
    x, values, replicate : ndarray
        Per-cell grid value, metric and replicate index.
    cut : float, optional
        Pre-asymptotic cut: only grid values >= cut enter the fit (default: all).
    resamples : int, default BOOTSTRAP_RESAMPLES
        Bootstrap resamples.
    seed : int, default BOOTSTRAP_SEED
        Seed of the bootstrap (fixed, so a verdict is reproducible).

    Returns
    -------
    RateFit
        Slope, intercept, CI (NaN when too few resamples are finite), the median-based slope and the
        per-point statistics.

    Raises
    ------
    ValueError
        If fewer than 2 grid points lie at or beyond the cut.
    """
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float)
    replicate = np.asarray(replicate)
    fit = _point_fit(x, values, cut)
    # joint bootstrap over replicates
    reps = np.unique(replicate)
    table = _replicate_table(x, values, replicate, reps, fit.x)
    draws = np.random.default_rng(seed).integers(0, reps.size, size=(resamples, reps.size))
    return replace(fit, ci=_percentile_ci(_bootstrap_slopes(np.log(fit.x), table, draws), resamples))


def _point_fit(x: np.ndarray, values: np.ndarray, cut: float | None) -> RateFit:
    """The per-point statistics and the OLS slopes of :func:`fit_rate`, without the CI (NaN)."""
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
    return RateFit(slope, intercept, (float("nan"), float("nan")), slope_median, grid[use], arr["mean"][use], arr["median"][use],
                   arr["q25"][use], arr["q75"][use], arr["se"][use], arr["n"][use], arr["fail"][use],
                   x_all=grid, mean_all=arr["mean"])


def _replicate_table(x, values, replicate, reps, points) -> np.ndarray:
    """(replicates, points) table of per-replicate means: one bootstrap unit per replicate; several rows of a
    replicate at one point (e.g. environment draws) are averaged, which keeps the per-point mean unchanged
    when every replicate has equally many. NaN where a replicate has no finite value at a point."""
    index = {r: i for i, r in enumerate(reps)}
    sums = np.zeros((reps.size, points.size))
    counts = np.zeros((reps.size, points.size))
    for j, g in enumerate(points):
        sel = (x == g) & np.isfinite(values)
        np.add.at(sums[:, j], [index[r] for r in replicate[sel]], values[sel])
        np.add.at(counts[:, j], [index[r] for r in replicate[sel]], 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def _bootstrap_slopes(logx: np.ndarray, table: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The OLS slope of log(mean over the resampled replicates) per resample (NaN where a resample has no
    finite value at a point)."""
    with warnings.catch_warnings():  # a resample without a finite value at a point gives NaN, counted below
        warnings.simplefilter("ignore", RuntimeWarning)
        boot_means = np.nanmean(table[draws], axis=1)      # (resamples, points)
        return _ols_slope(logx, np.log(boot_means))


def _percentile_ci(boot: np.ndarray, resamples: int) -> tuple[float, float]:
    """95% percentile interval of the finite bootstrap values; NaN when fewer than 90% are finite (a point
    past the cut without finite values: no CI to give)."""
    boot = boot[np.isfinite(boot)]
    if boot.size < 0.9 * resamples:
        return float("nan"), float("nan")
    return float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def fit_group_mean_slope(x: np.ndarray, values: np.ndarray, replicate: np.ndarray, group: np.ndarray,
                         cut: float | None = None, resamples: int = BOOTSTRAP_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float], dict]:
    """The mean over groups (e.g. environment instances) of the per-group :func:`fit_rate` slope, with a
    percentile-bootstrap CI that resamples replicates jointly across grid points and groups.

    Every group weighs the same: pooling the rows into one mean before the log would let the group with
    the largest values decide the slope (docs/theory/claims.md §7.1).

    Parameters
    ----------
    x, values, replicate, group : ndarray
        Per-cell grid value, metric, replicate index and group label.
    cut : float, optional
        Pre-asymptotic cut, as in :func:`fit_rate`.
    resamples : int, default BOOTSTRAP_RESAMPLES
        Bootstrap resamples.
    seed : int, default BOOTSTRAP_SEED
        Seed of the bootstrap.

    Returns
    -------
    tuple
        (mean slope, 95% CI, {group: its slope}).

    Raises
    ------
    ValueError
        If a group has fewer than 2 grid points at or beyond the cut.
    """
    x = np.asarray(x, dtype=float)
    values = np.asarray(values, dtype=float)
    replicate = np.asarray(replicate)
    group = np.asarray(group)
    reps = np.unique(replicate)
    draws = np.random.default_rng(seed).integers(0, reps.size, size=(resamples, reps.size))
    slopes, boots = {}, []
    for g in np.unique(group):
        sel = group == g
        fit = _point_fit(x[sel], values[sel], cut)
        slopes[g.item() if hasattr(g, "item") else g] = fit.slope
        table = _replicate_table(x[sel], values[sel], replicate[sel], reps, fit.x)
        boots.append(_bootstrap_slopes(np.log(fit.x), table, draws))
    mean = float(np.mean(list(slopes.values())))
    return mean, _percentile_ci(np.mean(boots, axis=0), resamples), slopes


def mean_with_ci(values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, tuple[float, float], int]:
    """Mean and 95% percentile-bootstrap CI of per-seed values; non-finite ones are failures.

    Parameters
    ----------
    values : ndarray
        One value per seed.
    resamples : int, default BOOTSTRAP_RESAMPLES
        Bootstrap resamples.
    seed : int, default BOOTSTRAP_SEED
        Seed of the bootstrap.

    Returns
    -------
    mean : float
        Mean of the finite values (NaN if none).
    ci : tuple of float
        The 95% CI.
    failures : int
        Number of non-finite values.
    """
    v = np.asarray(values, dtype=float)
    ok = v[np.isfinite(v)]
    if ok.size == 0:
        return float("nan"), (float("nan"), float("nan")), int(v.size)
    rng = np.random.default_rng(seed)
    boot = ok[rng.integers(0, ok.size, size=(resamples, ok.size))].mean(axis=1)
    return float(ok.mean()), (float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))), int(v.size - ok.size)


# ----------------------------------------------------------------- verdicts
#
# Every verdict is three-valued and judged from the 95% CI, never from the point estimate alone
# (docs/theory/claims.md §7.1 states the same rules):
#
#   kind                     pass                          fail                          else
#   tight / identity-in-exp  CI inside [p - tol, p + tol]  CI misses [p - tol, p + tol]  inconclusive
#   upper, direction "inf"   CI high <= p + tol            CI low > p + tol              inconclusive
#   upper, direction "zero"  CI low >= p - tol             CI high < p - tol             inconclusive
#   ordering, side "<"       CI high < tol                 CI low > tol                  inconclusive
#   ordering, side ">"       CI low > -tol                 CI high < -tol                inconclusive
#   (ordering: tol is 0 unless a deterministic ordering admits ties within round-off)
#
# A CI with a non-finite end is inconclusive (a failed fit is reported by the caller as a failure).

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"
VERDICTS = (PASS, FAIL, INCONCLUSIVE)


def _finite(ci) -> bool:
    return bool(np.isfinite(ci[0]) and np.isfinite(ci[1]))


def verdict_band(ci: tuple[float, float], predicted: float, tol: float) -> tuple[str, str]:
    """Equivalence test of a CI against the band [predicted - tol, predicted + tol].

    pass iff the whole CI lies inside the band, fail iff the CI and the band are disjoint, inconclusive
    otherwise (the data cannot tell: buy precision). Used by ``tight`` (on a slope) and
    ``identity-in-expectation`` (on a mean ratio).

    Parameters
    ----------
    ci : tuple of float
        The 95% CI (low, high) of the measured value.
    predicted : float
        Centre of the band.
    tol : float
        Half-width of the band.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    lo, hi = predicted - tol, predicted + tol
    if not _finite(ci):
        return INCONCLUSIVE, "no finite CI"
    if lo <= ci[0] and ci[1] <= hi:
        return PASS, ""
    if ci[1] < lo or ci[0] > hi:
        return FAIL, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] outside the band {predicted:g} +/- {tol:g}"
    return INCONCLUSIVE, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] straddles an edge of the band {predicted:g} +/- {tol:g}"


def verdict_tight(ci: tuple[float, float], predicted: float, tol: float) -> tuple[str, str]:
    """``tight(s, tol)``: the slope's CI lies in [s - tol, s + tol] (see :func:`verdict_band`).

    Parameters
    ----------
    ci : tuple of float
        The 95% CI (low, high) of the measured value.
    predicted : float
        Centre of the band.
    tol : float
        Half-width of the band.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    return verdict_band(ci, predicted, tol)


def verdict_upper(ci: tuple[float, float], predicted: float, tol: float, direction: str) -> tuple[str, str]:
    """``upper(s, tol, dir)``: a bound O(knob^s), judged on the CI.

    Direction ``"inf"`` (the quantity decays as the knob grows; a faster decay satisfies the bound):
    pass iff CI high <= s + tol, fail iff CI low > s + tol, else inconclusive. Direction ``"zero"`` (the
    knob shrinks to 0; a larger exponent is a faster decay): pass iff CI low >= s - tol, fail iff
    CI high < s - tol, else inconclusive.

    Parameters
    ----------
    ci : tuple of float
        The 95% CI (low, high) of the measured value.
    predicted : float
        The bound's exponent s.
    tol : float
        Tolerance on the exponent.
    direction : {"inf", "zero"}
        Where the knob goes.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    if direction not in ("inf", "zero"):
        raise ValueError(f"direction must be 'inf' or 'zero', got {direction!r}")
    if not _finite(ci):
        return INCONCLUSIVE, "no finite CI"
    if direction == "inf":
        edge = predicted + tol
        if ci[1] <= edge:
            return PASS, ""
        if ci[0] > edge:
            return FAIL, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] above the bound {predicted:g} + {tol:g}"
        return INCONCLUSIVE, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] straddles the bound {predicted:g} + {tol:g}"
    edge = predicted - tol
    if ci[0] >= edge:
        return PASS, ""
    if ci[1] < edge:
        return FAIL, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] below the bound {predicted:g} - {tol:g}"
    return INCONCLUSIVE, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] straddles the bound {predicted:g} - {tol:g}"


def verdict_identity_in_expectation(ci: tuple[float, float], predicted: float, tol: float) -> tuple[str, str]:
    """The CI of the mean ratio lies in [predicted - tol, predicted + tol] (see :func:`verdict_band`).

    Parameters
    ----------
    ci : tuple of float
        The 95% CI (low, high) of the measured value.
    predicted : float
        Centre of the band.
    tol : float
        Half-width of the band.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    return verdict_band(ci, predicted, tol)


def verdict_ordering(ci: tuple[float, float], side: str, tol: float = 0.0) -> tuple[str, str]:
    """Sign of a mean difference, judged on its CI.

    Side ``"<"`` passes iff the CI lies strictly below ``tol`` and fails iff it lies strictly above it
    (mirror for ``">"`` with the boundary ``-tol``); a CI that contains the boundary is inconclusive.

    Parameters
    ----------
    ci : tuple of float
        The 95% CI (low, high) of the measured value.
    side : {"<", ">"}
        The claimed side of the boundary.
    tol : float, default 0.0
        Admits ties within round-off for deterministic orderings.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    if side not in ("<", ">"):
        raise ValueError(f"side must be '<' or '>', got {side!r}")
    if not _finite(ci):
        return INCONCLUSIVE, "no finite CI"
    edge = tol if side == "<" else -tol
    below, above = ci[1] < edge, ci[0] > edge
    if (below and side == "<") or (above and side == ">"):
        return PASS, ""
    if below or above:
        return FAIL, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] lies on the wrong side of {edge:g} (claimed {side} {edge:g})"
    return INCONCLUSIVE, f"CI [{ci[0]:.4g}, {ci[1]:.4g}] contains {edge:g}"


def verdict_identity(worst: float, tol: float) -> tuple[str, str]:
    """Deterministic identity: pass iff the largest absolute error is finite and <= tol, else fail.

    Parameters
    ----------
    worst : float
        max over cells of the absolute error.
    tol : float
        Allowed error.

    Returns
    -------
    verdict : str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.
    note : str
        Why, when the verdict is not ``pass`` (empty otherwise).
    """
    if np.isfinite(worst) and worst <= tol:
        return PASS, ""
    return FAIL, f"max |error| = {worst:.3g} > {tol:g}"


def as_verdict(value) -> str:
    """Normalise a verdict given as a bool (True = pass) or one of :data:`VERDICTS`.

    Parameters
    ----------
    value : bool or str
        The verdict.

    Returns
    -------
    str
        ``"pass"``, ``"fail"`` or ``"inconclusive"``.

    Raises
    ------
    ValueError
        For anything else.
    """
    if isinstance(value, (bool, np.bool_)):
        return PASS if value else FAIL
    if value in VERDICTS:
        return value
    raise ValueError(f"verdict must be a bool or one of {VERDICTS}, got {value!r}")
