"""DPO solvers: the exact empirical/population minimiser over weighted atoms and numba SGD (docs/theory/dpo.md §3.1)."""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.env.atoms import PairAtoms, check_pair_atoms
from simlab.env.sampling import AliasTable, alias_draw
from simlab.objectives.dpo import dpo_vgh_unchecked
from simlab.solvers.checkpoints import log_checkpoints
from simlab.solvers.exact import (ARMIJO_C, F_NOISE_RTOL, NEWTON_GTOL, NEWTON_MAX_ITER, STEP_MIN, NewtonResult,
                                  NoMinimizerError, NormLimitError, newton, newton_direction_kernel)
from simlab.special import sigmoid, softplus
from simlab.validation import check_array, check_choice, check_float, check_generator, check_int, check_weights

STEP_SCHEDULES = ("constant", "inv_sqrt")
MAX_STEPS = 2**40  # iterations (nothing is allocated per step)
MAX_SGD_BATCH = 2**24


def fit_dpo_exact(atoms: PairAtoms, weights: np.ndarray, theta_ref: np.ndarray, beta: float,
                  theta0: np.ndarray | None = None, gtol: float = NEWTON_GTOL, max_norm: float = 1e6) -> NewtonResult:
    """argmin_theta sum_j w_j l_DPO,j(theta) by Newton to ||grad|| <= gtol (docs/theory/dpo.md §3.1).

    With ``weights = atoms.p0`` this is the exact population minimiser; with N/n it is the empirical one
    (cost independent of n).

    Parameters
    ----------
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms (feedback ``bt`` or ``deterministic``).
    weights : (A,) ndarray
        Atom weights (>= 0, positive sum).
    theta_ref : (d,) ndarray
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    theta0 : (d,) ndarray, optional
        Newton's start (default ``theta_ref``).
    gtol : float, default 1e-10
        Gradient-norm tolerance.
    max_norm : float, default 1e6
        Newton's iterate must stay in the ball ||theta|| <= max_norm.

    Returns
    -------
    NewtonResult
        The minimiser ``x``, its gradient, Hessian and iteration count.

    Raises
    ------
    NoMinimizerError
        When the weighted design is rank deficient (no unique minimiser) or the sample is separable (no
        finite minimiser).
    NormLimitError
        When the sample is not separable but Newton's iterate left the ball ||theta|| <= ``max_norm``
        (the minimiser theta_ref + w/beta scales like 1/beta: raise max_norm).
    """
    theta_ref = check_array("theta_ref", theta_ref, shape=(check_pair_atoms("atoms", atoms).dim,))
    beta = check_float("beta", beta, 0.0, low_open=True)
    max_norm = check_float("max_norm", max_norm, 0.0, low_open=True)
    dphi, y, w, const = soft_label_rows(atoms, weights)  # also checks the labels and the weights
    if w.size == 0:
        raise NoMinimizerError("no sampled pair has two distinct actions: the DPO loss is constant")
    x0 = theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(atoms.dim,))
    gtol = check_float("gtol", gtol, 0.0, low_open=True)
    x, hess = x0.copy(), np.empty((atoms.dim, atoms.dim))
    converged, value, gnorm, iterations = _dpo_newton_kernel(dphi, y, w, theta_ref, beta, const, x, gtol,
                                                             NEWTON_MAX_ITER, max_norm, hess)
    if converged:
        result = NewtonResult(x, float(value), float(gnorm), int(iterations), True, hess)
    else:  # the same iteration through simlab.solvers.exact.newton says why it stopped
        result = _newton_or_why_not(dphi, y, w, const, theta_ref, beta, x0, gtol, max_norm)
    # The Hessian has the null space of the sampled design: a flat direction means no unique minimiser.
    ev = np.linalg.eigvalsh(result.hess)
    if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
        raise NoMinimizerError(
            f"the sampled pair design is rank deficient (lambda_min = {ev[0]:.2e}): no unique minimiser")
    # On separable data the gradient vanishes only by saturation, i.e. once every margin exceeds
    # ~log(1/gtol) > 20; so a converged fit with all margins below 20 is a genuine minimiser.
    if beta * np.max(np.abs(dphi @ (result.x - theta_ref))) > 20.0 and is_separable(dphi, y, w):
        raise NoMinimizerError("the sample is separable: the DPO loss has no finite minimiser")
    return result


def _newton_or_why_not(dphi, y, w, const, theta_ref, beta, x0, gtol, max_norm) -> NewtonResult:
    """:func:`simlab.solvers.exact.newton` on the DPO rows; its errors explained (separable sample,
    minimiser beyond max_norm)."""
    def fgh(theta):
        value, grad, hess = dpo_vgh_unchecked(theta - theta_ref, beta, dphi, y, w)
        return value + const, grad, hess

    try:
        return newton(fgh, x0, gtol=gtol, max_norm=max_norm)
    except NoMinimizerError as exc:
        if is_separable(dphi, y, w):
            raise NoMinimizerError("the sample is separable: the DPO loss has no finite minimiser") from None
        if isinstance(exc, NormLimitError):
            raise NormLimitError(
                f"Newton's iterate left the ball ||theta|| <= max_norm = {max_norm:g} (||theta|| = "
                f"{exc.norm:.3g}) although the sample is not separable: the minimiser lies beyond max_norm "
                f"(it scales like 1/beta, beta = {beta:g}); pass a larger max_norm", max_norm, exc.norm) from None
        raise


@kernel(ordered=True)  # small arrays, loops that store and sum: no reassociation
def _dpo_rows_vgh(dphi: np.ndarray, y: np.ndarray, w: np.ndarray, theta_ref: np.ndarray, beta: float,
                  const: float, theta: np.ndarray, grad: np.ndarray, hess: np.ndarray) -> float:
    """The DPO loss sum_k W_k (softplus(h_k) - Ybar_k h_k) + const over the rows, h_k = beta dphi_k^T
    (theta - theta_ref), its gradient and its Hessian (docs/theory/dpo.md §3.1), in one pass."""
    n, d = dphi.shape
    grad[:] = 0.0
    hess[:, :] = 0.0
    value = 0.0
    for j in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[j, k] * (theta[k] - theta_ref[k])
        h *= beta
        s = sigmoid(h)
        value += w[j] * (softplus(h) - y[j] * h)
        gj = w[j] * beta * (s - y[j])
        cj = w[j] * beta * beta * s * (1.0 - s)
        for k in range(d):
            grad[k] += gj * dphi[j, k]
        for k in range(d):  # whole rows: element-wise updates that vectorise without reassociation
            ck = cj * dphi[j, k]
            for m in range(d):
                hess[k, m] += ck * dphi[j, m]
    for k in range(d):  # exactly symmetric: the lower triangle
        for m in range(k):
            hess[m, k] = hess[k, m]
    return value + const


@kernel(ordered=True)  # small arrays, loops that store and sum: no reassociation
def _dpo_newton_kernel(dphi: np.ndarray, y: np.ndarray, w: np.ndarray, theta_ref: np.ndarray, beta: float,
                       const: float, x: np.ndarray, gtol: float, max_iter: int, max_norm: float,
                       hess: np.ndarray):
    """The iteration of :func:`simlab.solvers.exact.newton` on the DPO rows, in one call: its Newton step
    (:func:`simlab.solvers.exact.newton_direction_kernel`), its Armijo backtracking, round-off acceptance
    rule and stopping rule (the constants of :mod:`simlab.solvers.exact`) and the max_norm ball.
    Updates ``x`` and ``hess`` in place; returns (converged, f, ||grad||, iterations). When it does not
    converge the caller reruns exact.newton, which says why. (A generic numba Newton loop taking the
    objective as a jitted function cost 3-12% of this fit and defeats numba's disk cache: see
    :mod:`simlab.solvers.exact`.)"""
    d = x.size
    g = np.empty(d)
    x_new = np.empty(d)
    g_new = np.empty(d)
    h_new = np.empty((d, d))
    chol = np.zeros((d, d))
    step = np.empty(d)
    f = _dpo_rows_vgh(dphi, y, w, theta_ref, beta, const, x, g, hess)
    gnorm = 0.0
    for it in range(max_iter + 1):
        acc = 0.0
        for k in range(d):
            acc += g[k] * g[k]
        gnorm = np.sqrt(acc)
        if not (np.isfinite(f) and np.isfinite(gnorm)):
            return False, f, gnorm, it
        if gnorm <= gtol:
            return True, f, gnorm, it
        if it == max_iter:
            break
        newton_direction_kernel(hess, g, chol, step)
        slope = 0.0
        for k in range(d):
            slope += g[k] * step[k]
        t = 1.0
        while True:
            for k in range(d):
                x_new[k] = x[k] + t * step[k]
            f_new = _dpo_rows_vgh(dphi, y, w, theta_ref, beta, const, x_new, g_new, h_new)
            if f_new <= f + ARMIJO_C * t * slope:
                break
            if f_new <= f + F_NOISE_RTOL * max(abs(f), 1.0):
                acc = 0.0
                for k in range(d):
                    acc += g_new[k] * g_new[k]
                if np.sqrt(acc) < gnorm:
                    break
            if t < STEP_MIN:
                return False, f, gnorm, it
            t *= 0.5
        x[:] = x_new
        g[:] = g_new
        hess[:, :] = h_new
        f = f_new
        acc = 0.0
        for k in range(d):
            acc += x[k] * x[k]
        if np.sqrt(acc) > max_norm:
            return False, f, gnorm, it
    return False, f, gnorm, max_iter


def soft_label_rows(atoms: PairAtoms, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The weighted label atoms collapsed onto unordered pairs with soft labels, in one pass (numba).

    Atoms (x, a, b, y) and (x, b, a, 1 - y) have the same loss, softplus(-h) + h = softplus(h), and both
    labels of a pair share dphi; so sum_j w_j l_j = sum_k W_k (softplus(h_k) - Ybar_k h_k) + c over
    unordered pairs k = (x, {a < b}) with total weight W_k > 0, soft label Ybar_k (the weight on 'a beats
    b' in canonical orientation divided by W_k) and c = (weight of the a = b atoms) * log 2: an exact
    rewrite with 4x to 5x fewer rows (docs/theory/dpo.md §3.1). Rows come in the order of the sorted pair
    ids, as a ``np.unique`` rewrite would give them (the NumPy reference in the benchmarks), without the sort.

    Parameters
    ----------
    atoms : simlab.env.atoms.PairAtoms
        Label atoms (feedback 'bt' or 'deterministic').
    weights : (A,) ndarray
        Atom weights, finite and >= 0 with a positive sum (p0, or counts / n).

    Returns
    -------
    dphi : (K, d) ndarray
        dphi_k of each unordered pair k = (x, {a < b}) with W_k > 0, oriented a - b, in increasing
        (x, a, b).
    ybar : (K,) ndarray
        The weight on 'a beats b' over W_k.
    w : (K,) ndarray
        W_k, the total weight of the pair's atoms.
    const : float
        (weight of the a = b atoms) * log 2.

    Raises
    ------
    ValueError
        Naming ``atoms`` (not PairAtoms, no labels) or ``weights`` (wrong shape, not finite,
        negative, zero sum): the checks of :func:`simlab.env.atoms.check_pair_atoms` and
        :func:`simlab.validation.check_weights`, made in the same pass.
    """
    check_pair_atoms("atoms", atoms)
    if not (isinstance(weights, np.ndarray) and weights.dtype == np.float64 and weights.shape == (atoms.size,)
            and weights.flags.c_contiguous):
        check_pair_atoms("atoms", atoms, labels=True)  # the atoms are named first, as everywhere
        weights = check_weights("weights", weights, atoms.size)
    dphi, y, w, diag, valid = _soft_label_rows_kernel(atoms.x, atoms.a, atoms.b, atoms.y, weights, atoms.dphi)
    if not valid:  # the checkers name what is wrong
        check_pair_atoms("atoms", atoms, labels=True)
        check_weights("weights", weights, atoms.size)
        raise ValueError("weights must be finite and >= 0 with a positive sum, and atoms must carry labels")
    return dphi, y, w, float(diag * np.log(2.0))


@kernel
def _soft_label_rows_kernel(x: np.ndarray, a: np.ndarray, b: np.ndarray, y: np.ndarray, w: np.ndarray,
                            dphi: np.ndarray):
    n_atoms, d = dphi.shape
    n_x, n_y = 0, 0
    valid = True
    positive = False
    for j in range(n_atoms):
        n_x = max(n_x, x[j] + 1)
        n_y = max(n_y, a[j] + 1, b[j] + 1)
        if not (np.isfinite(w[j]) and w[j] >= 0.0) or np.isnan(y[j]):
            valid = False
        positive = positive or w[j] > 0.0
    if not (valid and positive):
        return np.empty((0, d)), np.empty(0), np.empty(0), 0.0, False
    slots = n_x * n_y * n_y
    total = np.zeros(slots)
    wins = np.zeros(slots)
    first = np.full(slots, -1, dtype=np.int64)
    diag = 0.0
    for j in range(n_atoms):
        if not w[j] > 0.0:
            continue
        if a[j] == b[j]:
            diag += w[j]
            continue
        if a[j] > b[j]:
            k = (x[j] * n_y + b[j]) * n_y + a[j]
            wins[k] += (1.0 - y[j]) * w[j]
        else:
            k = (x[j] * n_y + a[j]) * n_y + b[j]
            wins[k] += y[j] * w[j]
        total[k] += w[j]
        if first[k] < 0:
            first[k] = j
    rows = 0
    for k in range(slots):
        if first[k] >= 0:
            rows += 1
    out_dphi = np.empty((rows, d))
    out_y = np.empty(rows)
    out_w = np.empty(rows)
    r = 0
    for k in range(slots):
        j = first[k]
        if j < 0:
            continue
        sign = -1.0 if a[j] > b[j] else 1.0
        for c in range(d):
            out_dphi[r, c] = sign * dphi[j, c]
        out_w[r] = total[k]
        out_y[r] = wins[k] / total[k]
        r += 1
    return out_dphi, out_y, out_w, diag, True


def is_separable(dphi: np.ndarray, y: np.ndarray, w: np.ndarray) -> bool:
    """Whether the weighted labelled atoms are separable: then the logistic loss has no finite minimiser.

    True iff some v != 0 has (2y_j - 1) dphi_j^T v >= 0 on every weighted atom with a strict inequality
    somewhere (the loss then decreases forever along v). Decided by the LP max sum_j c_j^T v
    s.t. c_j^T v >= 0, -1 <= v <= 1, c_j = w_j (2y_j - 1) dphi_j (atoms with 0 < y < 1 constrain both
    signs).

    Parameters
    ----------
    dphi : (A, d) ndarray
        Feature differences of the atoms.
    y : (A,) ndarray
        Labels (or soft labels) in [0, 1].
    w : (A,) ndarray
        Atom weights.

    Returns
    -------
    bool
        True iff such a direction exists.
    """
    from scipy.optimize import linprog

    sgn = 2.0 * y - 1.0
    hard = (y == 0.0) | (y == 1.0)
    rows = [-(sgn[hard, None] * dphi[hard])]
    soft = ~hard
    if np.any(soft):
        rows += [dphi[soft], -dphi[soft]]
    A_ub = np.vstack(rows)
    c = -np.sum((w[hard] * sgn[hard])[:, None] * dphi[hard], axis=0)
    res = linprog(c, A_ub=A_ub, b_ub=np.zeros(A_ub.shape[0]), bounds=[(-1.0, 1.0)] * dphi.shape[1],
                  method="highs")
    return bool(res.status == 0 and -res.fun > 1e-9 * max(1.0, float(np.abs(c).sum())))


@kernel
def _sgd_dpo_kernel(theta0: np.ndarray, theta_ref: np.ndarray, beta: float, dphi: np.ndarray,
                    y: np.ndarray, prob: np.ndarray, alias: np.ndarray, T: int, batch: int,
                    step: float, inv_sqrt: bool, radius: float, checkpoints: np.ndarray,
                    rng: np.random.Generator, history: np.ndarray) -> None:
    d = theta0.size
    theta = theta0.copy()
    grad = np.zeros(d)
    c = 0
    for t in range(T):
        grad[:] = 0.0
        for _ in range(batch):
            j = alias_draw(prob, alias, rng)
            h = 0.0
            for k in range(d):
                h += dphi[j, k] * (theta[k] - theta_ref[k])
            g = beta * (sigmoid(beta * h) - y[j]) / batch
            for k in range(d):
                grad[k] += g * dphi[j, k]
        lr = step / np.sqrt(t + 1.0) if inv_sqrt else step
        for k in range(d):
            theta[k] -= lr * grad[k]
        if radius > 0.0:
            nrm = 0.0
            for k in range(d):
                nrm += theta[k] * theta[k]
            nrm = np.sqrt(nrm)
            if nrm > radius:
                for k in range(d):
                    theta[k] *= radius / nrm
        while c < checkpoints.size and checkpoints[c] == t + 1:
            history[c, :] = theta
            c += 1


def sgd_dpo(atoms: PairAtoms, theta_ref: np.ndarray, beta: float, T: int, step: float,
            rng: np.random.Generator, schedule: str = "inv_sqrt", batch: int = 1,
            theta0: np.ndarray | None = None, radius: float = 0.0,
            n_checkpoints: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Minibatch SGD on the DPO loss with pairs drawn afresh from ``atoms.p0`` at every step.

    theta_{t+1} = Proj_{||theta|| <= radius}(theta_t - a_t g_t), a_t = step (constant) or
    step / sqrt(t + 1) (inv_sqrt); radius = 0 means no projection. The whole loop is one numba call.

    Parameters
    ----------
    atoms : simlab.env.atoms.PairAtoms
        Labelled pair atoms; pairs are drawn from ``atoms.p0``.
    theta_ref : (d,) ndarray
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    T : int
        Number of steps, in [1, MAX_STEPS].
    step : float
        Step size a (> 0).
    rng : numpy.random.Generator
        Source of the pair draws.
    schedule : {"constant", "inv_sqrt"}, default "inv_sqrt"
        Step-size schedule.
    batch : int, default 1
        Pairs per step, in [1, MAX_SGD_BATCH].
    theta0 : (d,) ndarray, optional
        Start (default ``theta_ref``).
    radius : float, default 0.0
        Projection radius (0: no projection).
    n_checkpoints : int, default 20
        Maximum number of recorded iterates (log-spaced, see
        :func:`simlab.solvers.checkpoints.log_checkpoints`).

    Returns
    -------
    checkpoints : int64 ndarray
        Iteration counts.
    history : (len(checkpoints), d) ndarray
        history[i] is the iterate after checkpoints[i] steps.

    Raises
    ------
    ValueError
        For invalid inputs, or when the iterates overflow (step too large).
    """
    check_pair_atoms("atoms", atoms, labels=True)
    T = check_int("T", T, 1, MAX_STEPS)
    batch = check_int("batch", batch, 1, MAX_SGD_BATCH)
    step = check_float("step", step, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0)
    check_choice("schedule", schedule, STEP_SCHEDULES)
    beta = check_float("beta", beta, 0.0, low_open=True)
    rng = check_generator("rng", rng)
    table = AliasTable(atoms.p0)
    cps = log_checkpoints(T, n_checkpoints, "n_checkpoints")
    history = np.empty((cps.size, atoms.dim))
    theta_ref = check_array("theta_ref", theta_ref, shape=(atoms.dim,))
    x0 = theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(atoms.dim,)).copy()
    _sgd_dpo_kernel(x0, theta_ref, beta, atoms.dphi, atoms.y, table.prob, table.alias, T, batch,
                    step, schedule == "inv_sqrt", radius, cps, rng, history)
    check_finite_iterates(history, cps, step)
    return cps, history


def check_finite_iterates(history: np.ndarray, checkpoints: np.ndarray, step: float) -> None:
    """Raise ``ValueError`` naming ``step`` if an SGD run overflowed (a non-finite recorded iterate).

    A step too large for the data sends the iterates to inf and then NaN; this reports it instead of
    returning them silently.

    Parameters
    ----------
    history : (k, d) ndarray
        Recorded iterates.
    checkpoints : (k,) ndarray
        Their iteration counts.
    step : float
        The step size, named in the message.

    Raises
    ------
    ValueError
        If a recorded iterate is not finite.
    """
    bad = ~np.all(np.isfinite(history), axis=1)
    if np.any(bad):
        t = int(checkpoints[np.argmax(bad)])
        raise ValueError(f"step = {step:g} is too large: the iterates overflowed to inf/NaN by iteration {t}; "
                         "choose a step for which step * ||gradient|| stays finite")
