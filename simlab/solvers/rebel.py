"""REBEL / DRO-REBEL solvers: exact per-iteration minimisers and the online loop (spec §4.1-§4.5, §4.9).

``fit_rebel`` minimises one iteration's objective over weighted atoms exactly (w = p0: the population
robust minimiser; w = N/n: the empirical one):

* ``"rebel"``: the OLS closed form;
* ``"w2"``: exact W2, square-root regression with an update-size penalty (the anchor if the radius is
  above the threshold ||E[dr dphi]||/rms(dr), else Newton from the OLS point);
* ``"w2_surrogate"``: the code's gradient-norm surrogate (Newton from the OLS point);
* ``"kl"`` (constrained ball), ``"kl_tau"`` (fixed temperature), ``"chi2"`` (exact dual): Newton with the
  toolbox's Danskin gradients and exact Hessians, from the OLS point, to ||grad|| <= gtol.

``online_rebel_exact`` runs the online loop of spec §4.9 with an exact inner solve; ``online_rebel_sgd``
runs the same loop with SGD/Adam inner steps on each fresh batch, the whole loop in one numba call.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.dro.chi2 import chi2_worst_case_kernel
from simlab.dro.kl import kl_worst_case_kernel
from simlab.env.environment import Env
from simlab.env.sampling import multinomial_counts
from simlab.dro.chi2_code import CHI2_CODE_LAMBDA_FLOOR
from simlab.objectives.rebel import (check_anchor, f_rebel_value_grad_hess,
                                     kl_rebel_penalized_value_grad_hess, rebel_ols,
                                     w2_rebel_surrogate_value_grad_hess, w2_rebel_threshold,
                                     w2_rebel_value_grad_hess)
from simlab.policy import kl_to, log_policy_kernel, policy
from simlab.solvers.exact import NoMinimizerError, newton
from simlab.validation import check_array, check_choice, check_float, check_int

OBJECTIVES = ("rebel", "w2", "w2_surrogate", "kl", "kl_tau", "chi2")


@dataclass(frozen=True)
class RebelFit:
    """An exact per-iteration minimiser: x, objective value, final gradient norm, Newton iterations
    (0 for a closed form) and whether the stopping test was met."""

    x: np.ndarray
    fun: float
    grad_norm: float
    iterations: int
    converged: bool


def fit_rebel(dphi, dr, w, theta_anc, eta, objective: str = "rebel", radius: float = 0.0,
              gtol: float = 1e-10, max_iter: int = 30) -> RebelFit:
    """argmin_theta of one REBEL/DRO-REBEL iteration's objective over atoms with weights ``w``.

    ``radius`` is eps for w2/kl/chi2, rho0 for w2_surrogate and tau for kl_tau (spec §4.3-§4.5).
    Raises :class:`NoMinimizerError` on a rank-deficient weighted design or when Newton does not reach
    gtol in ``max_iter`` steps (observed for KL/chi^2 at large radii, eps ~ 1, where the empirical robust
    objective is pinned at the theta-independent loss (xi_a - xi_b)^2 of a = a' pairs and is not smooth).
    """
    check_choice("objective", objective, OBJECTIVES)
    dphi = check_array("dphi", dphi, ndim=2)
    w = check_array("w", w, shape=(dphi.shape[0],))
    keep = np.flatnonzero(w > 0)
    dphi, dr, w = dphi[keep], np.asarray(dr, dtype=np.float64)[keep], w[keep] / w[keep].sum()
    radius = check_float("radius", radius, 0.0)
    gram = (dphi * w[:, None]).T @ dphi
    ev = np.linalg.eigvalsh(gram)
    if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
        raise NoMinimizerError(f"the weighted pair design is rank deficient (lambda_min = {ev[0]:.2e})")
    theta_ols = rebel_ols(theta_anc, eta, dphi, dr, w)
    theta_anc = np.asarray(theta_anc, dtype=np.float64)
    if objective == "rebel" or (radius == 0.0 and objective != "kl_tau"):
        return RebelFit(theta_ols, float("nan"), 0.0, 0, True)
    if objective == "kl_tau":
        if radius == 0.0:
            raise ValueError("radius (tau) must be > 0 for objective 'kl_tau'")
        fgh = lambda th: kl_rebel_penalized_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)[:3]
    elif objective in ("kl", "chi2"):
        fgh = lambda th: f_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, objective, radius)[:3]
    elif objective == "w2_surrogate":
        fgh = lambda th: w2_rebel_surrogate_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    else:
        if radius >= w2_rebel_threshold(dphi, dr, w):
            return RebelFit(theta_anc.copy(), float(np.sqrt(w @ dr**2)), 0.0, 0, True)
        fgh = lambda th: w2_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    res = newton(fgh, theta_ols, gtol=gtol, max_iter=max_iter)
    return RebelFit(res.x, res.fun, res.grad_norm, res.iterations, res.converged)


def population_hessian(dphi, dr, w, theta, theta_anc, eta, objective: str, radius: float) -> np.ndarray:
    """Exact Hessian of the population objective at ``theta`` (the H of the H-norm, spec §7.1)."""
    check_choice("objective", objective, OBJECTIVES)
    w = np.asarray(w, dtype=np.float64)
    if objective == "rebel" or radius == 0.0:
        return 2.0 * (dphi * w[:, None]).T @ dphi / eta**2
    if objective == "w2":
        return w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "w2_surrogate":
        return w2_rebel_surrogate_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    if objective == "kl_tau":
        return kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius)[2]
    return f_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, objective, radius)[2]


@dataclass(frozen=True)
class OnlineLog:
    """Per-iteration record of an online run (spec §4.9): iterates theta_0..theta_T (T+1, d);
    lambda_min of the pair second moment under the sampler at theta_t (T,); expected reward
    J(theta_t; w(alpha)) for every alpha of the grid (T+1, n_alpha); E_x KL(pi_theta_t || pi_ref) (T+1,);
    the number of iterations whose exact update failed (theta kept; 0 for the SGD loop)."""

    theta: np.ndarray
    lambda_min: np.ndarray
    alphas: np.ndarray
    reward: np.ndarray
    kl_ref: np.ndarray
    failures: int = 0


def policy_metrics(env: Env, theta: np.ndarray, alphas: np.ndarray) -> tuple[np.ndarray, float]:
    """(J(theta; w(alpha)) for each alpha (linear reward, spec §1.7), E_x KL(pi_theta || pi_ref))."""
    pi = policy(theta, env.phi)
    mean_phi = np.einsum("x,xa,xad->d", env.p_x, pi, env.phi)
    ws = np.array([env.mixture_reward(float(a)) for a in alphas])
    return ws @ mean_phi, kl_to(theta, env.theta_ref, env.phi, env.p_x)


def online_rebel_exact(env: Env, T: int, n: int, eta: float, rng: np.random.Generator,
                       objective: str = "rebel", radius: float = 0.0, anchor: str = "prev",
                       sampler: str = "online", mix: float = 0.5, alphas=(0.0, 0.5, 1.0),
                       theta0: np.ndarray | None = None) -> OnlineLog:
    """The online loop of spec §4.9 with the exact per-iteration minimiser (``fit_rebel``).

    Each iteration draws N ~ Multinomial(n, p0(theta_t)) over the atoms of ``sampler`` ("online" or
    "online_mixed") and sets theta_{t+1} = argmin of the empirical objective with anchor theta_t (prev) or
    theta_ref (ref). A failed update (rank-deficient batch or Newton failure) keeps theta_{t+1} = theta_t
    and is counted in ``failures``.
    """
    T = check_int("T", T, 1)
    n = check_int("n", n, 1)
    check_anchor(anchor)
    check_choice("sampler", sampler, ("online", "online_mixed"))
    alphas = np.asarray(alphas, dtype=np.float64)
    theta = env.theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(env.spec.d,)).copy()
    thetas, lam, rew, kls, failures = [theta.copy()], [], [], [], 0
    r0, k0 = policy_metrics(env, theta, alphas)
    rew.append(r0)
    kls.append(k0)
    for _ in range(T):
        atoms = env.atoms(sampler, theta, mix)
        lam.append(atoms.coverage()[0])
        counts = multinomial_counts(atoms.p0, n, rng)
        anc = theta if anchor == "prev" else env.theta_ref
        try:
            theta = fit_rebel(atoms.dphi, atoms.dr, counts / n, anc, eta, objective, radius).x
        except NoMinimizerError:
            theta = theta.copy()
            failures += 1
        thetas.append(theta.copy())
        r, k = policy_metrics(env, theta, alphas)
        rew.append(r)
        kls.append(k)
    return OnlineLog(np.array(thetas), np.array(lam), alphas, np.array(rew), np.array(kls), failures)


# ---------------------------------------------------------------- numba online loop with SGD/Adam inner steps

SGD_OBJECTIVES = ("rebel", "w2", "w2_surrogate", "kl_tau", "kl", "chi2", "chi2_code")
OPTIMIZERS = ("sgd", "adam")
WEIGHTS = ("detached", "non_detached")
_SGD_CODE = {name: k for k, name in enumerate(SGD_OBJECTIVES)}
EXP_CUTOFF = -40.0


@kernel
def _chi2_code_coef_kernel(l: np.ndarray, rho: float, coef: np.ndarray) -> None:
    """Gradient coefficients of the code's chi^2 loss on a uniform batch (objectives.rebel.
    chi2_code_loss_gradient): zeta* from the candidate scan, lambda* and w not detached."""
    n = l.size
    srt = np.sort(l)[::-1]
    best = np.inf
    zeta = 0.0
    # candidates: min l - 1, every l value, max l + 1; prefix sums over the decreasing order
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    k = 0
    n_cand = n + 2
    for c in range(n_cand):
        if c == 0:
            z = srt[0] + 1.0
        elif c == n_cand - 1:
            z = srt[n - 1] - 1.0
        else:
            z = srt[c - 1]
        while k < n and srt[k] > z:
            s0 += 1.0
            s1 += srt[k]
            s2 += srt[k] * srt[k]
            k += 1
        tail = max(s2 - 2.0 * z * s1 + z * z * s0, 0.0) / n
        g = z + np.sqrt(2.0 * rho * tail)
        if g < best:
            best = g
            zeta = z
    tail = 0.0
    for j in range(n):
        a = max(l[j] - zeta, 0.0)
        tail += a * a / n
    lam = np.sqrt(2.0 * rho * tail)
    floor = lam <= CHI2_CODE_LAMBDA_FLOOR
    lam = max(lam, CHI2_CODE_LAMBDA_FLOOR)
    L = 0.0
    for j in range(n):
        L += max(l[j] - zeta, 0.0) * l[j] / (n * lam)
    for j in range(n):
        a = max(l[j] - zeta, 0.0)
        ind = 1.0 if l[j] > zeta else 0.0
        coef[j] = (ind * l[j] + a) / (n * lam)
        if not floor:
            coef[j] -= L * 2.0 * rho * a / (n * lam * lam)


@kernel
def _draw(cdf: np.ndarray, u: float) -> int:
    """Inverse-CDF draw: the first k with cdf[k] >= u (the last index if none), i.e. the number of
    cdf[:-1] entries below u. Counted without branches: a data-dependent early exit mispredicts on
    every draw and cost about twice the whole pair-sampling step."""
    k = 0
    for j in range(cdf.size - 1):
        k += cdf[j] < u
    return k


@kernel
def _guide_table(cdf: np.ndarray) -> np.ndarray:
    """Index guide of a fixed CDF (Chen's method): guide[j] = the inverse-CDF draw _draw(cdf, j / m) for
    m = cdf.size cells, so that a draw for u in [j/m, (j+1)/m) only scans forward from guide[j]."""
    m = cdf.size
    guide = np.empty(m, dtype=np.int64)
    for j in range(m):
        guide[j] = _draw(cdf, j / m)
    return guide


@kernel
def _guided_draw(cdf: np.ndarray, guide: np.ndarray, u: float) -> int:
    """_draw(cdf, u) (the same index) by a scan from guide[floor(u m)]: O(1) expected steps. The
    backward step only runs if u m rounded up across a cell boundary; it keeps the result exact."""
    m = cdf.size
    k = guide[min(int(u * m), m - 1)]
    while k > 0 and cdf[k - 1] >= u:
        k -= 1
    while k < m - 1 and cdf[k] < u:
        k += 1
    return k


@kernel
def _policy_pass(theta: np.ndarray, phi: np.ndarray, p_x: np.ndarray, mix: float, logpi_ref: np.ndarray,
                 reward_weights: np.ndarray, logpi: np.ndarray, pi: np.ndarray, cdf_a: np.ndarray,
                 cdf_b: np.ndarray, mean_phi: np.ndarray, J: np.ndarray) -> float:
    """One pass over the atoms at theta: log pi_theta, pi_theta, the per-context CDFs of a ~ pi and
    b ~ (1 - mix) pi + mix uniform, and the logged metrics J[i] = w_i . E_x E_{a ~ pi} phi(x, a) for each
    linear reward w_i (rows of ``reward_weights``, spec §1.7; the formula of ``policy_metrics``).
    Returns E_x KL(pi_theta || pi_ref). mean_phi: (d,) work."""
    log_policy_kernel(theta, phi, logpi)
    n_x, n_y, d = phi.shape
    mean_phi[:] = 0.0
    kl = 0.0
    for x in range(n_x):
        acc = 0.0
        for a in range(n_y):
            pi[x, a] = np.exp(logpi[x, a])
            acc += pi[x, a]
            cdf_a[x, a] = acc
            cdf_b[x, a] = (1.0 - mix) * acc + mix * (a + 1.0) / n_y
            w = p_x[x] * pi[x, a]
            kl += w * (logpi[x, a] - logpi_ref[x, a])
            for k in range(d):
                mean_phi[k] += w * phi[x, a, k]
    for i in range(reward_weights.shape[0]):
        J[i] = 0.0
        for k in range(d):
            J[i] += reward_weights[i, k] * mean_phi[k]
    return kl


@kernel
def _tridiagonalize(A: np.ndarray, diag: np.ndarray, off: np.ndarray, v: np.ndarray, p: np.ndarray) -> None:
    """Householder reduction of the symmetric A (overwritten) to the tridiagonal (diag, off) with the same
    eigenvalues: A <- H A H, H = I - beta v v^T per column (Golub & Van Loan, Alg. 8.3.1); v, p work."""
    n = A.shape[0]
    for k in range(n - 2):
        m = n - k - 1
        xn = 0.0
        for i in range(m):
            v[i] = A[k + 1 + i, k]
            xn += v[i] * v[i]
        xn = np.sqrt(xn)
        alpha = -xn if v[0] >= 0.0 else xn
        v[0] -= alpha
        vv = 0.0
        for i in range(m):
            vv += v[i] * v[i]
        if vv == 0.0:
            off[k] = A[k + 1, k]
            continue
        off[k] = alpha
        beta = 2.0 / vv
        vp = 0.0
        for i in range(m):
            acc = 0.0
            for j in range(m):
                acc += A[k + 1 + i, k + 1 + j] * v[j]
            p[i] = beta * acc
            vp += v[i] * p[i]
        half = 0.5 * beta * vp
        for i in range(m):
            p[i] -= half * v[i]
        for i in range(m):
            for j in range(m):
                A[k + 1 + i, k + 1 + j] -= v[i] * p[j] + p[i] * v[j]
    for i in range(n):
        diag[i] = A[i, i]
    off[n - 2] = A[n - 1, n - 2]


@kernel
def _tridiagonal_lambda_min(diag: np.ndarray, off: np.ndarray) -> float:
    """Smallest eigenvalue of the symmetric tridiagonal (diag, off): Laguerre's iteration on
    det(T - s I) = prod_i q_i (Sturm pivots q_i = diag_i - s - off_{i-1}^2 / q_{i-1}) started at the
    Gershgorin lower bound; for a real-rooted polynomial it increases monotonically to the smallest root
    (cubically for a simple root). G = sum_j 1/(lam_j - s) = -sum q_i'/q_i and
    H = sum_j 1/(lam_j - s)^2 = -sum (q_i'' q_i - q_i'^2)/q_i^2 come from the differentiated recurrence.
    Stops when the step is below 2e-16 ||T|| or a pivot turns non-positive (s has reached lam_min in
    round-off)."""
    n = diag.size
    s = np.inf
    top = 0.0
    for i in range(n):
        r = (abs(off[i - 1]) if i > 0 else 0.0) + (abs(off[i]) if i < n - 1 else 0.0)
        s = min(s, diag[i] - r)
        top = max(top, abs(diag[i]) + r)
    s -= 1e-300 + 4e-16 * top
    for _ in range(100):
        q = diag[0] - s
        dq = -1.0
        ddq = 0.0
        ok = q > 0.0
        G = 0.0
        H = 0.0
        for i in range(n):
            if i > 0:
                e2 = off[i - 1] * off[i - 1]
                qp, dqp, ddqp = q, dq, ddq
                q = diag[i] - s - e2 / qp
                dq = -1.0 + e2 * dqp / (qp * qp)
                ddq = e2 * (ddqp * qp - 2.0 * dqp * dqp) / (qp * qp * qp)
                ok = q > 0.0
            if not ok:
                break
            G -= dq / q
            H -= (ddq * q - dq * dq) / (q * q)
        if not ok:
            break
        step = n / (G + np.sqrt(max((n - 1.0) * (n * H - G * G), 0.0)))
        s += step
        if step <= 2e-16 * top:
            break
    return s


@kernel
def _symmetric_lambda_min(A: np.ndarray, diag: np.ndarray, off: np.ndarray, v: np.ndarray,
                          p: np.ndarray) -> float:
    """lambda_min of the symmetric A (overwritten): Householder tridiagonalisation + Laguerre.
    Agrees with LAPACK's eigvalsh to ~1e-16 ||A|| and costs about a quarter of it at d = 16."""
    if A.shape[0] == 1:
        return A[0, 0]
    _tridiagonalize(A, diag, off, v, p)
    return _tridiagonal_lambda_min(diag, off)


@kernel
def _pair_lambda_min(pi: np.ndarray, phi: np.ndarray, p_x: np.ndarray, mix: float, X: np.ndarray,
                     M: np.ndarray, S: np.ndarray, C: np.ndarray, diag: np.ndarray, off: np.ndarray,
                     v: np.ndarray, p: np.ndarray) -> float:
    """lambda_min of E[dphi dphi^T] for a ~ pi, b ~ (1 - mix) pi + mix uniform (mix = 0: online):
    sum_x p_x [E_a phi phi^T + E_b phi phi^T - m_a m_b^T - m_b m_a^T] = X^T X - C - C^T with the rows
    X[x, a] = sqrt(p_x (pi_a + pi_b)) phi(x, a) and C = sum_x p_x m_a(x) m_b(x)^T (two BLAS products).
    Work arrays: X (n_x n_y, d), M (2 n_x, d), S and C (d, d), diag, off, v, p (d,)."""
    n_x, n_y, d = phi.shape
    for x in range(n_x):
        M[x, :] = 0.0
        M[n_x + x, :] = 0.0
        for a in range(n_y):
            pa = pi[x, a]
            pb = (1.0 - mix) * pa + mix / n_y
            w = np.sqrt(p_x[x] * (pa + pb))
            for k in range(d):
                f = phi[x, a, k]
                M[x, k] += p_x[x] * pa * f
                M[n_x + x, k] += pb * f
                X[x * n_y + a, k] = w * f
    np.dot(X.T, X, S)
    np.dot(M[:n_x].T, M[n_x:], C)
    for k in range(d):
        for l in range(d):
            S[k, l] -= C[k, l] + C[l, k]
    return _symmetric_lambda_min(S, diag, off, v, p)


@kernel
def _batch_gradient_kernel(theta: np.ndarray, anc: np.ndarray, eta: float, dphi: np.ndarray,
                           dr: np.ndarray, code: int, radius: float, non_detached: bool, e: np.ndarray,
                           l: np.ndarray, coef: np.ndarray, unif: np.ndarray, grad: np.ndarray) -> None:
    """Gradient of one batch objective (uniform weights) at theta into ``grad``; ``code`` indexes
    SGD_OBJECTIVES. e, l, coef are work arrays (residuals, losses, per-pair gradient weights)."""
    n, d = dphi.shape
    # residuals, losses and the mean gradient pieces
    sq = 0.0
    un = 0.0
    for k in range(d):
        un += (theta[k] - anc[k]) ** 2
    un = np.sqrt(un) / eta
    for i in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[i, k] * (theta[k] - anc[k])
        e[i] = h / eta - dr[i]
        l[i] = e[i] * e[i]
        sq += l[i] / n
    rms = np.sqrt(sq)
    # per-atom weights c_i so that grad = sum_i c_i (2/eta) e_i dphi_i (+ norm terms)
    if code == 0 or code == 1 or code == 2:
        coef[:] = 1.0 / n
    elif code == 3:
        lmax = l.max()
        z = 0.0
        for i in range(n):
            # weights below e^-40 of the largest do not change the normaliser in double precision;
            # setting them to 0 avoids libm's slow path for very negative arguments (~20x slower)
            arg = (l[i] - lmax) / radius
            coef[i] = np.exp(arg) if arg > EXP_CUTOFF else 0.0
            z += coef[i]
        pl = 0.0
        for i in range(n):
            coef[i] /= z
            pl += coef[i] * l[i]
        for i in range(n):
            coef[i] = coef[i] * (1.0 + (l[i] - pl) / radius) if non_detached else coef[i]
    elif code == 4:
        kl_worst_case_kernel(l, unif, radius, coef)
    elif code == 5:
        chi2_worst_case_kernel(l, unif, radius, coef)
    else:
        _chi2_code_coef_kernel(l, radius, coef)
    for k in range(d):
        grad[k] = 0.0
    for i in range(n):
        c = coef[i] * 2.0 * e[i] / eta
        for k in range(d):
            grad[k] += c * dphi[i, k]
    if code == 1 or code == 2:
        # grad holds (2/eta) E[e dphi]; add the update-size terms (min-norm subgradient at u = 0)
        if code == 1:
            for k in range(d):
                grad[k] /= 2.0 * rms if rms > 0.0 else 1.0
            pen = radius / eta
        else:
            for k in range(d):
                grad[k] *= 1.0 + (radius * un / rms if rms > 0.0 else 0.0)
            pen = 2.0 * radius * rms / eta
        if un > 0.0:
            for k in range(d):
                grad[k] += pen * (theta[k] - anc[k]) / (eta * un)
        else:
            gn = 0.0
            for k in range(d):
                gn += grad[k] * grad[k]
            gn = np.sqrt(gn)
            shrink = max(0.0, 1.0 - pen / gn) if gn > 0.0 else 0.0
            for k in range(d):
                grad[k] *= shrink


@kernel
def _online_sgd_kernel(phi: np.ndarray, p_x: np.ndarray, reward: np.ndarray, noise_values: np.ndarray,
                       noise_cdf: np.ndarray, theta_ref: np.ndarray, theta0: np.ndarray, eta: float,
                       T: int, n: int, k_in: int, lr: float, adam: bool, beta1: float, beta2: float,
                       adam_eps: float, weight_decay: float, code: int, radius: float,
                       non_detached: bool, anchor_ref: bool, mix: float, reward_weights: np.ndarray,
                       log_coverage: bool, rng: np.random.Generator, theta_hist: np.ndarray, lam_hist: np.ndarray,
                       J_hist: np.ndarray, kl_hist: np.ndarray) -> None:
    n_x, n_y, d = phi.shape
    theta = theta0.copy()
    anc = np.empty(d)
    logpi = np.empty((n_x, n_y))
    logpi_ref = np.empty((n_x, n_y))
    log_policy_kernel(theta_ref, phi, logpi_ref)
    x_cdf = np.cumsum(p_x)
    x_guide = _guide_table(x_cdf)
    pi = np.empty((n_x, n_y))
    cdf_a = np.empty((n_x, n_y))
    cdf_b = np.empty((n_x, n_y))
    dphi = np.empty((n, d))
    dr = np.empty(n)
    e = np.empty(n)
    l = np.empty(n)
    coef = np.empty(n)
    unif = np.full(n, 1.0 / n)
    u = np.empty(5 * n)
    grad = np.empty(d)
    X = np.empty((n_x * n_y, d))
    M = np.empty((2 * n_x, d))
    S = np.empty((d, d))
    C = np.empty((d, d))
    diag = np.empty(d)
    off = np.empty(d)
    v = np.empty(d)
    p = np.empty(d)
    m_adam = np.zeros(d)
    v_adam = np.zeros(d)
    step = 0
    J = np.empty(reward_weights.shape[0])
    mean_phi = np.empty(d)
    kl_hist[0] = _policy_pass(theta, phi, p_x, mix, logpi_ref, reward_weights, logpi, pi, cdf_a, cdf_b,
                              mean_phi, J)
    J_hist[0, :] = J
    theta_hist[0, :] = theta
    for t in range(T):
        if log_coverage:
            lam_hist[t] = _pair_lambda_min(pi, phi, p_x, mix, X, M, S, C, diag, off, v, p)
        else:
            lam_hist[t] = np.nan
        # fresh pairs from the current policy (a ~ pi_t, b ~ (1 - mix) pi_t + mix uniform)
        for j in range(5 * n):
            u[j] = rng.random()
        for i in range(n):
            x = _guided_draw(x_cdf, x_guide, u[5 * i])
            a = _draw(cdf_a[x], u[5 * i + 1] * cdf_a[x, n_y - 1])
            b = _draw(cdf_b[x], u[5 * i + 2] * cdf_b[x, n_y - 1])
            xi_a = noise_values[_draw(noise_cdf, u[5 * i + 3])]
            xi_b = noise_values[_draw(noise_cdf, u[5 * i + 4])]
            dr[i] = reward[x, a] + xi_a - reward[x, b] - xi_b
            for k in range(d):
                dphi[i, k] = phi[x, a, k] - phi[x, b, k]
        for k in range(d):
            anc[k] = theta_ref[k] if anchor_ref else theta[k]
        for _ in range(k_in):
            _batch_gradient_kernel(theta, anc, eta, dphi, dr, code, radius, non_detached, e, l, coef,
                                   unif, grad)
            step += 1
            if adam:
                b1c = 1.0 - beta1**step
                b2c = 1.0 - beta2**step
                for k in range(d):
                    m_adam[k] = beta1 * m_adam[k] + (1.0 - beta1) * grad[k]
                    v_adam[k] = beta2 * v_adam[k] + (1.0 - beta2) * grad[k] * grad[k]
                    theta[k] -= lr * (weight_decay * theta[k]
                                      + (m_adam[k] / b1c) / (np.sqrt(v_adam[k] / b2c) + adam_eps))
            else:
                for k in range(d):
                    theta[k] -= lr * (grad[k] + weight_decay * theta[k])
        kl_hist[t + 1] = _policy_pass(theta, phi, p_x, mix, logpi_ref, reward_weights, logpi, pi, cdf_a,
                                      cdf_b, mean_phi, J)
        J_hist[t + 1, :] = J
        theta_hist[t + 1, :] = theta


def online_rebel_sgd(env: Env, T: int, n: int, eta: float, rng: np.random.Generator,
                     objective: str = "rebel", radius: float = 0.0, anchor: str = "prev",
                     sampler: str = "online", mix: float = 0.5, inner_steps: int = 1,
                     optimizer: str = "adam", lr: float = 1e-2, weights: str = "detached",
                     weight_decay: float = 0.0, betas: tuple = (0.9, 0.999), adam_eps: float = 1e-8,
                     alphas=(0.0, 0.5, 1.0), theta0: np.ndarray | None = None,
                     log_coverage: bool = True) -> OnlineLog:
    """The online loop of spec §4.9 with ``inner_steps`` SGD or Adam(W) steps per fresh batch, all in one
    numba call (switch ``rebel.inner``; the DRO-REBEL code takes one AdamW step per batch of 128).

    ``objective`` in {rebel, w2, w2_surrogate, kl_tau, kl, chi2, chi2_code}; ``radius`` is eps (w2, kl,
    chi2), rho0 (w2_surrogate), tau (kl_tau) or rho_chi (chi2_code). Batch objectives and gradients:
    rebel (2/eta) mean e dphi; w2 the exact sqrt-regression gradient (min-norm subgradient at u = 0);
    w2_surrogate the code's F_W; kl_tau softmax(l/tau) weights, detached or not (``weights``, switch
    ``dro.weights``); kl / chi2 the toolbox's exact worst-case weights (Danskin); chi2_code the
    ``Chi2REBELOptimizer`` gradient. Adam state persists across iterations (one optimizer, as in a
    trainer); weight_decay is decoupled (AdamW) for Adam and L2 for SGD. ``log_coverage=False`` skips the
    per-iteration lambda_min (a d x d second moment over the atoms and its smallest eigenvalue, about a
    third of an iteration at d = 16; NaN logged). Pairs are drawn by inverse CDF: x from p_x (guide
    table), a from pi_theta(.|x), b from the sampler's mixture, one noise index per response.
    """
    check_choice("objective", objective, SGD_OBJECTIVES)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    check_choice("weights", weights, WEIGHTS)
    check_anchor(anchor)
    check_choice("sampler", sampler, ("online", "online_mixed"))
    T = check_int("T", T, 1)
    n = check_int("n", n, 2)
    inner_steps = check_int("inner_steps", inner_steps, 1)
    eta = check_float("eta", eta, 0.0, low_open=True)
    lr = check_float("lr", lr, 0.0, low_open=True)
    radius = check_float("radius", radius, 0.0)
    mix = check_float("mix", mix, 0.0, 1.0) if sampler == "online_mixed" else 0.0
    weight_decay = check_float("weight_decay", weight_decay, 0.0)
    beta1 = check_float("betas[0]", betas[0], 0.0, 1.0)
    beta2 = check_float("betas[1]", betas[1], 0.0, 1.0)
    if objective in ("kl_tau", "chi2_code") and radius == 0.0:
        raise ValueError(f"radius must be > 0 for objective {objective!r} (tau or rho_chi)")
    alphas = np.asarray(alphas, dtype=np.float64)
    reward_weights = np.array([env.mixture_reward(float(a)) for a in alphas])
    d = env.spec.d
    theta0 = env.theta_ref.copy() if theta0 is None else check_array("theta0", theta0, shape=(d,)).copy()
    theta_hist = np.empty((T + 1, d))
    lam = np.empty(T)
    J = np.empty((T + 1, alphas.size))
    kls = np.empty(T + 1)
    _online_sgd_kernel(env.phi, env.p_x, env.reward, env.noise_values, np.cumsum(env.noise_probs),
                       np.ascontiguousarray(env.theta_ref), theta0, eta, T, n, inner_steps, lr,
                       optimizer == "adam", beta1, beta2, float(adam_eps), weight_decay,
                       _SGD_CODE[objective], radius, weights == "non_detached", anchor == "ref", mix,
                       reward_weights, bool(log_coverage), rng, theta_hist, lam, J, kls)
    return OnlineLog(theta_hist, lam, alphas, J, kls)
