"""Constrained alignment by Lagrangian duality: exact population objects (docs/theory/constrained.md §6.1, §6.3, §6.4).

Distribution space (all policies)::

    r_lambda = r + lambda^T c
    pi*(a|x; lambda) = pi_ref e^{r_lambda/beta} / Z(x; lambda)
    D(lambda) = beta E_x log Z(x; lambda)
    grad D = E_x E_{pi*} c
    hess D = beta^-1 E_x Cov_{pi*}(c)
    L(pi, lambda) = E_x[E_pi r_lambda - beta KL(pi || pi_ref)] = D(lambda) - beta E_x KL(pi || pi*(lambda))

Parameter space (log-linear pi_theta on phi)::

    L(theta, lambda) = E_x[E_theta h + beta (log Z_theta - log Z_ref)]
    h = r_lambda - beta (theta - theta_ref)^T phi
    grad_theta L = E_x Cov_theta(phi, h)
    hess_theta L = E_x[E_theta s s^T (h - hbar)] - beta E_x Cov_theta(phi),  s = phi - E_theta phi
    D_p(lambda) = max_theta L(theta, lambda) <= D(lambda)
    Danskin: E_x E_{theta*(lambda)} c is in the subdifferential of D_p at lambda

The theta-problem is non-concave (an I-projection of pi*(lambda)). This module holds the objects and the
kernel of L; its maximizer (multistart saddle-free Newton ascent, ``simlab.solvers.exact.newton_ascent``),
D_p and the gap proxies live in ``simlab.solvers.constrained``.
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.env.gap import GapEnv
from simlab.policy import log_policy, log_policy_kernel
from simlab.validation import check_array


# --------------------------------------------------------------------------- distribution space

def _log_normalize(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mx = logits.max(axis=1, keepdims=True)
    lse = mx[:, 0] + np.log(np.exp(logits - mx).sum(axis=1))
    return logits - lse[:, None], lse


def optimal_log_policy(env: GapEnv, lam) -> np.ndarray:
    """log pi*(a|x; lambda) = log pi_ref + r_lambda/beta - log Z(x; lambda), shape (n_x, n_y).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).

    Returns
    -------
    ndarray of float64, shape (n_x, n_y)
        log pi*(a|x; lambda), the Gibbs maximiser of the Lagrangian over all policies
        (docs/theory/constrained.md §6.1), normalised per context by a stable log-sum-exp.
    """
    return _log_normalize(env.log_ref + env.lagrangian_reward(lam) / env.beta)[0]


def dual_value(env: GapEnv, lam) -> float:
    """D(lambda) = beta E_x log E_{pi_ref} e^{r_lambda/beta}   (docs/theory/constrained.md §6.1).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).

    Returns
    -------
    float
        D(lambda) = max_pi L(pi, lambda) = beta sum_x p_x log Z(x; lambda), Z = E_{pi_ref} e^{r_lambda/beta}.
    """
    _, lse = _log_normalize(env.log_ref + env.lagrangian_reward(lam) / env.beta)
    return float(env.beta * (env.p_x @ lse))


def dual_value_grad_hess(env: GapEnv, lam) -> tuple[float, np.ndarray, np.ndarray]:
    """(D, grad D = E_x E_{pi*(lambda)} c, hess D = beta^-1 E_x Cov_{pi*(lambda)}(c)).

    Derived in docs/theory/constrained.md §6.1 by differentiating the log-partition function.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).

    Returns
    -------
    value : float
        D(lambda) (:func:`dual_value`).
    grad : ndarray of float64, shape (m,)
        grad D = E_x E_{pi*(lambda)} c.
    hess : ndarray of float64, shape (m, m)
        hess D = beta^-1 E_x Cov_{pi*(.|x; lambda)}(c), positive semi-definite.
    """
    logp, lse = _log_normalize(env.log_ref + env.lagrangian_reward(lam) / env.beta)
    pi = np.exp(logp)
    mean_c = np.einsum("xa,xai->xi", pi, env.constraint)
    dev = env.constraint - mean_c[:, None, :]
    cov = np.einsum("x,xa,xai,xaj->ij", env.p_x, pi, dev, dev)
    return float(env.beta * (env.p_x @ lse)), env.p_x @ mean_c, cov / env.beta


def dual_smoothness_bound(env: GapEnv) -> float:
    """L_D <= (1/(4 beta)) sum_i range_i^2   (docs/theory/constrained.md §6.1, derived here).

    A variable with range R_i has variance <= R_i^2/4, so ||hess D|| <= tr hess D <= sum_i R_i^2/(4 beta).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.

    Returns
    -------
    float
        L_D = sum_i range_i^2 / (4 beta) with range_i = max_{x,a,a'} |g_i(x,a) - g_i(x,a')|
        (``env.utility_ranges``): a smoothness constant of D.
    """
    return float(np.sum(env.utility_ranges ** 2) / (4.0 * env.beta))


def constraint_value(env: GapEnv, log_pi: np.ndarray) -> np.ndarray:
    """E_x E_pi c, shape (m,) (>= 0 componentwise iff pi is feasible).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    log_pi : ndarray of float64, shape (n_x, n_y)
        A table of log-probabilities log pi(a|x), each row normalised.

    Returns
    -------
    ndarray of float64, shape (m,)
        sum_x p_x sum_a pi(a|x) c_i(x, a) for each constraint i (docs/theory/constrained.md §6.1).
    """
    return env.p_x @ np.einsum("xa,xai->xi", np.exp(log_pi), env.constraint)


def kl_per_context(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """KL(p(.|x) || q(.|x)) for each x, shape (n_x,).

    Parameters
    ----------
    log_p : ndarray of float64, shape (n_x, n_y)
        log p(a|x), rows normalised.
    log_q : ndarray of float64, shape (n_x, n_y)
        log q(a|x), rows normalised (finite wherever p > 0).

    Returns
    -------
    ndarray of float64, shape (n_x,)
        sum_a p(a|x) (log p(a|x) - log q(a|x)).
    """
    return np.sum(np.exp(log_p) * (log_p - log_q), axis=1)


def regularized_reward(env: GapEnv, log_pi: np.ndarray) -> float:
    """J_beta(pi) = E_x[E_pi r - beta KL(pi || pi_ref)].

    The objective of the constrained problem and of R-OPT (docs/theory/constrained.md §6.3, metrics).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    log_pi : ndarray of float64, shape (n_x, n_y)
        A table of log-probabilities log pi(a|x), each row normalised.

    Returns
    -------
    float
        J_beta(pi) = sum_x p_x [sum_a pi(a|x) r(x, a) - beta KL(pi(.|x) || pi_ref(.|x))].
    """
    per_x = np.sum(np.exp(log_pi) * env.reward, axis=1) - env.beta * kl_per_context(log_pi, env.log_ref)
    return float(env.p_x @ per_x)


def lagrangian(env: GapEnv, log_pi: np.ndarray, lam) -> float:
    """L(pi, lambda) = E_x[E_pi r_lambda - beta KL(pi || pi_ref)] for any table of log-probabilities.

    Equal to D(lambda) - beta E_x KL(pi || pi*(lambda)) (the identity of docs/theory/constrained.md §6.1).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    log_pi : ndarray of float64, shape (n_x, n_y)
        A table of log-probabilities log pi(a|x), each row normalised.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).

    Returns
    -------
    float
        L(pi, lambda) = J_beta(pi) + lambda^T E_x E_pi c (:func:`regularized_reward`,
        :func:`constraint_value`).
    """
    return regularized_reward(env, log_pi) + float(constraint_value(env, log_pi) @ env.check_multipliers(lam))


def signed_violation(env: GapEnv, log_pi: np.ndarray) -> float:
    """max_i -E_x E_pi c_i: positive iff pi violates some constraint (by that much), <= 0 iff pi is feasible
    (then minus its smallest slack).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    log_pi : ndarray of float64, shape (n_x, n_y)
        A table of log-probabilities log pi(a|x), each row normalised.

    Returns
    -------
    float
        -min_i E_x E_pi c_i (:func:`constraint_value`).
    """
    return float(-constraint_value(env, log_pi).min())


def optimality_gaps(env: GapEnv, log_pi: np.ndarray, log_pi_star: np.ndarray) -> dict[str, float]:
    """R-OPT = |J_beta(pi*) - J_beta(pi)| and U-OPT = ||E_x[E_{pi*} c - E_pi c]|| in l2 and l_inf
    (docs/theory/constrained.md §6.3 metrics; the U-OPT norm is not confirmed, so both are reported), the
    signed R-OPT J_beta(pi*) - J_beta(pi) (negative when pi earns more regularized reward than pi*, which a
    feasible pi cannot) and the signed violation of pi (:func:`signed_violation`).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    log_pi : ndarray of float64, shape (n_x, n_y)
        A table of log-probabilities log pi(a|x), each row normalised.
    log_pi_star : ndarray of float64, shape (n_x, n_y)
        The reference optimum log pi*(a|x) the gaps are measured against.

    Returns
    -------
    dict of str to float
        ``r_opt`` = abs(J_beta(pi*) - J_beta(pi)), ``r_opt_signed`` = J_beta(pi*) - J_beta(pi),
        ``u_opt_l2`` and ``u_opt_linf`` = the l2 and l_inf norms of E_x[E_{pi*} c - E_pi c], and
        ``violation`` = :func:`signed_violation` of pi.
    """
    du = constraint_value(env, log_pi_star) - constraint_value(env, log_pi)
    r_signed = regularized_reward(env, log_pi_star) - regularized_reward(env, log_pi)
    return {"r_opt": abs(r_signed), "r_opt_signed": float(r_signed),
            "u_opt_l2": float(np.linalg.norm(du)), "u_opt_linf": float(np.abs(du).max()),
            "violation": signed_violation(env, log_pi)}


# --------------------------------------------------------------------------- parameter space kernels

@kernel
def lagrangian_theta_kernel(theta, phi, p_x, r_lam, theta_ref, beta, grad, hess, want_hess):
    """L(theta, lambda) = E_x E_theta[h], h = r_lambda - beta (log pi_theta - log pi_ref), filling grad and
    (if want_hess) hess in place; see the module docstring (h there differs from this one by a constant
    per context, which the centred gradient and Hessian do not see).

    Parameters
    ----------
    theta : ndarray of float64, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : ndarray of float64, shape (n_x, n_y, d)
        Policy features.
    p_x : ndarray of float64, shape (n_x,)
        Context law.
    r_lam : ndarray of float64, shape (n_x, n_y)
        Lagrangian reward r_lambda = r + lambda^T c (C-contiguous).
    theta_ref : ndarray of float64, shape (d,)
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    grad : ndarray of float64, shape (d,)
        Output: overwritten with grad_theta L = E_x Cov_theta(phi, h).
    hess : ndarray of float64, shape (d, d)
        Output: overwritten with hess_theta L = E_x E_theta[s s^T (h - hbar - beta)],
        s = phi - E_theta phi (zeros when ``want_hess`` is false).
    want_hess : bool
        Whether to accumulate the Hessian (O(n_x n_y d^2)).

    Returns
    -------
    float
        L(theta, lambda) = sum_x p_x E_theta[h] (docs/theory/constrained.md §6.1).
    """
    n_x, n_y, _ = phi.shape
    log_ref = np.empty((n_x, n_y))
    log_policy_kernel(theta_ref, phi, log_ref)
    return lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, grad, hess, want_hess)


@kernel
def lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, grad, hess, want_hess):
    """:func:`lagrangian_theta_kernel` with the reference log-policy table given: the form for loops that
    evaluate L at many theta for one pi_ref (Newton ascent, the CAID inner ascent), which compute
    log pi_ref once instead of at every evaluation (the same numbers, so the same value, grad and hess).

    Parameters
    ----------
    theta : ndarray of float64, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : ndarray of float64, shape (n_x, n_y, d)
        Policy features.
    p_x : ndarray of float64, shape (n_x,)
        Context law.
    r_lam : ndarray of float64, shape (n_x, n_y)
        Lagrangian reward r_lambda = r + lambda^T c (C-contiguous).
    log_ref : ndarray of float64, shape (n_x, n_y)
        log pi_ref(a|x) = ``log_policy_kernel(theta_ref, phi)``.
    beta : float
        KL temperature (> 0).
    grad : ndarray of float64, shape (d,)
        Output: overwritten with grad_theta L.
    hess : ndarray of float64, shape (d, d)
        Output: overwritten with hess_theta L (zeros when ``want_hess`` is false).
    want_hess : bool
        Whether to accumulate the Hessian.

    Returns
    -------
    float
        L(theta, lambda) (docs/theory/constrained.md §6.1).
    """
    n_x, n_y, d = phi.shape
    value = 0.0
    grad[:] = 0.0
    hess[:, :] = 0.0
    log_pi = np.empty((n_x, n_y))
    log_policy_kernel(theta, phi, log_pi)
    pi = np.empty(n_y)
    h = np.empty(n_y)
    mean = np.empty(d)
    s = np.empty(d)
    for x in range(n_x):
        mean[:] = 0.0
        hbar = 0.0
        for a in range(n_y):
            pi[a] = np.exp(log_pi[x, a])
            h[a] = r_lam[x, a] - beta * (log_pi[x, a] - log_ref[x, a])
            hbar += pi[a] * h[a]
            for k in range(d):
                mean[k] += pi[a] * phi[x, a, k]
        w = p_x[x]
        value += w * hbar
        for a in range(n_y):
            dh = h[a] - hbar
            for k in range(d):
                s[k] = phi[x, a, k] - mean[k]
                grad[k] += w * pi[a] * s[k] * dh
            if want_hess:
                coef = w * pi[a] * (dh - beta)
                for k in range(d):
                    for j in range(k + 1):
                        hess[k, j] += coef * s[k] * s[j]
    if want_hess:
        for k in range(d):
            for j in range(k):
                hess[j, k] = hess[k, j]
    return value


def lagrangian_theta(env: GapEnv, theta, lam, hessian: bool = True):
    """(L(pi_theta, lambda), grad_theta L, hess_theta L) (the Hessian is None unless ``hessian``).

    The gradient is E_x Cov_theta(phi, r_lambda - beta (theta - theta_ref)^T phi) (docs/theory/constrained.md
    §6.1); computed by :func:`lagrangian_theta_kernel`.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta on ``env.phi``.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).
    hessian : bool, default True
        Whether to compute the Hessian.

    Returns
    -------
    value : float
        L(pi_theta, lambda) = E_x[E_theta r_lambda - beta KL(pi_theta || pi_ref)].
    grad : ndarray of float64, shape (d,)
        grad_theta L.
    hess : ndarray of float64, shape (d, d), or None
        hess_theta L = E_x[E_theta s s^T (h - hbar)] - beta E_x Cov_theta(phi) (module docstring), None
        unless ``hessian``.
    """
    theta = check_array("theta", theta, ndim=1, shape=(env.d,))
    r_lam = np.ascontiguousarray(env.lagrangian_reward(lam))
    grad = np.empty(env.d)
    hess = np.empty((env.d, env.d))
    value = lagrangian_theta_kernel(theta, env.phi, env.p_x, r_lam, env.theta_ref, env.beta, grad, hess, hessian)
    return value, grad, (hess if hessian else None)


def constraint_theta(env: GapEnv, theta) -> tuple[np.ndarray, np.ndarray]:
    """(C(theta) = E_x E_theta c, shape (m,); Jacobian dC/dtheta = E_x Cov_theta(c, phi), shape (m, d)).

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta on ``env.phi``.

    Returns
    -------
    C : ndarray of float64, shape (m,)
        C(theta) = E_x E_theta c, a subgradient of D_p at lambda when theta maximises L(., lambda)
        (Danskin, docs/theory/constrained.md §6.1).
    jac : ndarray of float64, shape (m, d)
        dC/dtheta = E_x Cov_theta(c, phi) (J in the curvature of D_p, docs/theory/constrained.md §6.3).
    """
    theta = check_array("theta", theta, ndim=1, shape=(env.d,))
    lp = log_policy(theta, env.phi)
    pi = np.exp(lp)
    mean_phi = np.einsum("xa,xak->xk", pi, env.phi)
    mean_c = np.einsum("xa,xai->xi", pi, env.constraint)
    jac = np.einsum("x,xa,xai,xak->ik", env.p_x, pi, env.constraint - mean_c[:, None, :],
                    env.phi - mean_phi[:, None, :])
    return env.p_x @ mean_c, jac


def duality_constant(env: GapEnv, lam) -> float:
    """C(lambda) = M + beta + M ||lambda||_1   (docs/theory/constrained.md §6.3).

    The constant of the duality-gap bounds (Theorems 1-2, Lemmas 3-5): gap <= C(lambda) nu.

    Parameters
    ----------
    env : simlab.env.gap.GapEnv
        The constrained-alignment instance (E6): reference log-policy ``log_ref`` (n_x, n_y), reward
        (n_x, n_y), constraint functions c (n_x, n_y, m), context law p_x (n_x,), temperature beta.
    lam : float or array_like of float, shape (m,)
        Lagrange multipliers lambda >= 0 (``ValueError`` otherwise, via ``env.check_multipliers``).

    Returns
    -------
    float
        C(lambda) = M + beta + M ||lambda||_1 with M = ``env.bound_M`` (docs/theory/constrained.md §6.2, A3).
    """
    lam = env.check_multipliers(lam)
    return env.bound_M + env.beta + env.bound_M * float(np.sum(lam))

