"""SAIL and oracle-robust SAIL on log-linear policies (docs/theory/sail.md §5.1–5.3; identities 7,
24–28 of docs/theory/identities.md §8).

Inputs are arrays: features ``phi (n_x, n_y, d)``, context law ``p_x (n_x,)``, ``theta_ref (d,)``, the
temperature ``beta`` and an oracle table ``P (n_x, n_y, n_y)`` with ``P[x,a,b] + P[x,b,a] = 1``
(``P[x,a,b]`` = probability that a beats b).

**SAIL** (docs/theory/sail.md §5.1). With the margin h_theta(x,a,b) = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)) and
the soft-label logistic loss l(h; P) = softplus(h) - P h = -log sigma(-h) - P h,

    L_SAIL(theta; P) = E_x sum_{a,b} pi_theta(a|x) pi_theta(b|x) l(h_theta(x,a,b); P(x,a,b)),

where pairs are drawn from the current policy *inside* the objective. Its gradient has an on-policy DPO
term and a sampling-score term (s_theta = phi - phibar_theta):

    grad L_SAIL = E_{x; a,b ~ pi_theta iid}[(sigma(h) - P) beta dphi + l(h; P)(s_theta(x,a) + s_theta(x,b))].

**Oracle-robust SAIL** (docs/theory/sail.md §5.2). Box set W_rho(P_obs) = {P : |P - P_obs| <= rho, P(x,a,b) + P(x,b,a) = 1,
P in [0, 1]}. Derivation (derived in docs/theory/sail.md; checked here against brute force): l is affine in P with
slope -h and the weights pi pi do not depend on P, so the sup is attained pointwise at
P = clip(P_obs - rho sign h, 0, 1) — and the ordered pair (b, a), whose margin is -h and whose observed
probability is 1 - P_obs, asks for exactly the complementary value, so the antisymmetry constraint
does not bind. Hence, with c+ = min(rho, P_obs) and c- = min(rho, 1 - P_obs),

    L^W_rho(theta) = L_SAIL(theta; P_obs) + E_{x; a,b ~ pi_theta}[c+ [h]_+ + c- [-h]_+]      (always valid)
                   = L_SAIL(theta; P_obs) + rho E|h_theta|     iff rho <= min(P_obs, 1 - P_obs) everywhere
                                                              (the "interior" regime; "clipped" otherwise).

R(theta) = E|h_theta| is the oracle sensitivity E|dl/dP| (it includes beta, so lambda = rho). The interior
form overestimates when clipping is active, so the clipped form is the one used everywhere.

**Weak convexity** (docs/theory/sail.md §5.3, derived in docs/theory/sail.md, loose): F = L^W_rho is omega-weakly convex on the ball
||theta - theta_ref|| <= B with omega <= L_sm + rho omega_R, see :func:`weak_convexity_bound`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.policy import log_policy_kernel, policy
from simlab.special import sigmoid, softplus
from simlab.validation import check_array, check_float, check_int, check_probabilities

LOG2 = math.log(2.0)


# --------------------------------------------------------------------------------------------------
# scalar pieces
# --------------------------------------------------------------------------------------------------
def soft_label_loss(h, P):
    """l(h; P) = softplus(h) - P h = -log sigma(-h) - P h (docs/theory/sail.md §5.1, identity 7), elementwise.

    Parameters
    ----------
    h : array_like of float
        Margins.
    P : array_like of float
        Soft labels in [0, 1], broadcast against ``h``.

    Returns
    -------
    ndarray of float64
        softplus(h) - P h, the broadcast shape of ``h`` and ``P``.
    """
    h = np.asarray(h, dtype=np.float64)
    return np.logaddexp(0.0, h) - np.asarray(P, dtype=np.float64) * h


# --------------------------------------------------------------------------------------------------
# exact objective over all (x, a, b): one kernel for SAIL (rho = 0) and the robust objective
# --------------------------------------------------------------------------------------------------
@kernel(ordered=True)
def robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P, rho, c_score, kink_slope, grad):
    """F(theta) = sum_x p_x sum_{a,b} pi_a pi_b [l(h_ab; P_ab) + c+_ab [h_ab]_+ + c-_ab [-h_ab]_+]
    (docs/theory/sail.md §5.2), the jitted entry point behind :func:`sail_value_grad` and
    :func:`robust_sail_value_grad`; callers validate with :func:`check_sail_problem` first.

    Writes into ``grad``::

        sum_x p_x sum_{a,b} pi_a pi_b [(sigma(h) - P + kink_slope * pen'(h)) beta dphi
                                        + c_score (l + pen)(s_a + s_b)],

    with pen'(h) = c+ (h > 0), -c- (h < 0), 0 at h = 0 (a Clarke subgradient). kink_slope = 1 gives a
    subgradient of F; kink_slope = 0 gives g_i of the prox-linear model (docs/theory/sail.md §5.4). rho = 0 gives SAIL.
    Cost O(n_x n_y (n_y + d)): margins are beta (theta - theta_ref)^T phi(x, .), differenced.

    Parameters
    ----------
    theta : ndarray of float64, shape (d,)
        Policy parameter.
    phi : ndarray of float64, shape (n_x, n_y, d)
        Features.
    p_x : ndarray of float64, shape (n_x,)
        Context law.
    theta_ref : ndarray of float64, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0).
    P : ndarray of float64, shape (n_x, n_y, n_y)
        Oracle table (P_obs for the robust objective).
    rho : float
        Box radius in [0, 1]; 0 gives SAIL.
    c_score : float
        Multiplier of the sampling-score term (1: SAIL, 0: on-policy DPO).
    kink_slope : float
        Multiplier of pen'(h) in the gradient (1: Clarke subgradient, 0: smooth part only).
    grad : ndarray of float64, shape (d,)
        Output: overwritten with the gradient above.

    Returns
    -------
    float
        F(theta).
    """
    n_x, n_y, d = phi.shape
    for k in range(d):
        grad[k] = 0.0
    value = 0.0
    logits = np.empty(n_y)
    pi = np.empty(n_y)
    m = np.empty(n_y)
    coef_phi = np.empty(n_y)   # coefficient of beta * phi(x, a) in the gradient
    coef_s = np.empty(n_y)     # coefficient of s(x, a) in the gradient
    for x in range(n_x):
        mx = -np.inf
        for a in range(n_y):
            la = 0.0
            ma = 0.0
            for k in range(d):
                la += phi[x, a, k] * theta[k]
                ma += phi[x, a, k] * (theta[k] - theta_ref[k])
            logits[a] = la
            m[a] = beta * ma
            if la > mx:
                mx = la
        z = 0.0
        for a in range(n_y):
            pi[a] = math.exp(logits[a] - mx)
            z += pi[a]
        for a in range(n_y):
            pi[a] /= z
            coef_phi[a] = 0.0
            coef_s[a] = 0.0
        vx = 0.0
        for a in range(n_y):
            for b in range(n_y):
                w = pi[a] * pi[b]
                h = m[a] - m[b]
                p = P[x, a, b]
                loss = softplus(h) - p * h
                slope = sigmoid(h) - p
                if rho > 0.0:
                    if h > 0.0:
                        cp = min(rho, p)
                        loss += cp * h
                        slope += kink_slope * cp
                    elif h < 0.0:
                        cm = min(rho, 1.0 - p)
                        loss -= cm * h
                        slope -= kink_slope * cm
                vx += w * loss
                coef_phi[a] += w * slope
                coef_phi[b] -= w * slope
                coef_s[a] += w * loss
                coef_s[b] += w * loss
        value += p_x[x] * vx
        # s(x,a) = phi(x,a) - phibar(x); sum_a coef_s[a] s(x,a) = sum_a (coef_s[a] - pi_a C) phi(x,a)
        csum = 0.0
        for a in range(n_y):
            csum += coef_s[a]
        for a in range(n_y):
            c = p_x[x] * (beta * coef_phi[a] + c_score * (coef_s[a] - pi[a] * csum))
            for k in range(d):
                grad[k] += c * phi[x, a, k]
    return value


def check_sail_problem(theta, phi, p_x, theta_ref, beta, P):
    """Validate one (robust) SAIL problem and return it as float64 arrays:
    (theta (d,), phi (n_x, n_y, d), p_x (n_x,) a law, theta_ref (d,), beta > 0, P an oracle table
    (:func:`check_oracle`)). Raises ``ValueError`` naming the offending argument.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0); margins are h = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    P : array_like of float, shape (n_x, n_y, n_y)
        Oracle table.

    Returns
    -------
    tuple
        (theta, phi, p_x, theta_ref, beta, P): float64 arrays of the shapes above and ``beta`` as a float.
    """
    phi = check_array("phi", phi, ndim=3)
    n_x, n_y, d = phi.shape
    theta = check_array("theta", theta, shape=(d,))
    theta_ref = check_array("theta_ref", theta_ref, shape=(d,))
    p_x = check_probabilities("p_x", p_x)
    if p_x.shape != (n_x,):
        raise ValueError(f"p_x must have shape ({n_x},), got {p_x.shape}")
    beta = check_float("beta", beta, low=0.0, low_open=True)
    P = check_oracle("P", P, n_x, n_y)
    return theta, phi, p_x, theta_ref, beta, P


def check_oracle(name: str, P, n_x: int, n_y: int) -> np.ndarray:
    """Validate an oracle table: shape (n_x, n_y, n_y), entries in [0, 1], P[x,a,b] + P[x,b,a] = 1.

    Parameters
    ----------
    name : str
        Argument name used in the error messages.
    P : array_like of float, shape (n_x, n_y, n_y)
        Candidate table; ``P[x, a, b]`` = probability that a beats b in context x.
    n_x : int
        Number of contexts.
    n_y : int
        Number of responses.

    Returns
    -------
    ndarray of float64, shape (n_x, n_y, n_y)
        ``P`` as a float64 array (``ValueError`` naming ``name`` otherwise).
    """
    P = check_array(name, P, shape=(n_x, n_y, n_y))
    if np.any(P < 0.0) or np.any(P > 1.0):
        raise ValueError(f"{name} entries must lie in [0, 1]")
    if np.max(np.abs(P + P.transpose(0, 2, 1) - 1.0)) > 1e-9:
        raise ValueError(f"{name} must satisfy {name}[x,a,b] + {name}[x,b,a] = 1 (tolerance 1e-9)")
    return P


def sail_value_grad(theta, phi, p_x, theta_ref, beta, P, c_score: float = 1.0) -> tuple[float, np.ndarray]:
    """Exact L_SAIL(theta; P) and its gradient (docs/theory/sail.md §5.1), summing over all (x, a, b).

    ``c_score`` multiplies the sampling-score term of the gradient (docs/theory/variants.md §9 switch ``sail.c_score``): 1 is
    SAIL, 0 is on-policy DPO (then the "gradient" ignores the theta-dependence of the sampling).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0); margins are h = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    P : array_like of float, shape (n_x, n_y, n_y)
        Oracle table (:func:`check_oracle`).
    c_score : float, default 1.0
        Multiplier of the sampling-score term.

    Returns
    -------
    value : float
        L_SAIL(theta; P) = E_x sum_{a,b} pi_theta(a|x) pi_theta(b|x) l(h_theta(x,a,b); P(x,a,b)).
    grad : ndarray of float64, shape (d,)
        E_{x; a,b ~ pi_theta}[(sigma(h) - P) beta dphi + c_score l(h; P)(s_theta(x,a) + s_theta(x,b))].
    """
    theta, phi, p_x, theta_ref, beta, P = check_sail_problem(theta, phi, p_x, theta_ref, beta, P)
    c_score = check_float("c_score", c_score)
    grad = np.empty(phi.shape[2])
    value = robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P, 0.0, c_score, 1.0, grad)
    return float(value), grad


def robust_sail_value_grad(theta, phi, p_x, theta_ref, beta, P_obs, rho) -> tuple[float, np.ndarray]:
    """Exact L^W_rho(theta) (clipped decomposition, docs/theory/sail.md §5.2) and a Clarke subgradient (pen'(0) := 0).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0); margins are h = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    value : float
        L^W_rho(theta) = L_SAIL(theta; P_obs) + E_{x; a,b ~ pi_theta}[c+ [h]_+ + c- [-h]_+],
        c+ = min(rho, P_obs), c- = min(rho, 1 - P_obs).
    grad : ndarray of float64, shape (d,)
        A Clarke subgradient (:func:`robust_sail_kernel` with kink_slope = 1).
    """
    theta, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    grad = np.empty(phi.shape[2])
    value = robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 1.0, grad)
    return float(value), grad


# --------------------------------------------------------------------------------------------------
# the decomposition, its regime, and the brute-force sup over the box
# --------------------------------------------------------------------------------------------------
def interior_radius(P_obs) -> float:
    """min over pairs a != b of min(P_obs, 1 - P_obs): the interior form is exact iff rho <= this.

    Parameters
    ----------
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table.

    Returns
    -------
    float
        min over x and a != b of min(P_obs[x,a,b], 1 - P_obs[x,a,b]) (docs/theory/sail.md §5.2).
    """
    P_obs = np.asarray(P_obs, dtype=np.float64)
    off = ~np.eye(P_obs.shape[1], dtype=bool)
    q = P_obs[:, off]
    return float(np.min(np.minimum(q, 1.0 - q)))


def shrinkage_threshold(P_obs) -> float:
    """rho_bar = max over pairs of |P_obs - 1/2| (docs/theory/sail.md §5.2): rho >= rho_bar makes theta_ref stationary.

    Parameters
    ----------
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table.

    Returns
    -------
    float
        rho_bar = max over (x, a, b) of abs(P_obs[x,a,b] - 1/2).
    """
    return float(np.max(np.abs(np.asarray(P_obs, dtype=np.float64) - 0.5)))


def robust_regime(P_obs, rho: float) -> str:
    """``"interior"`` if rho <= min(P_obs, 1 - P_obs) on every pair (then L^W = L_SAIL + rho R), else
    ``"clipped"`` (the box meets 0 or 1 somewhere and only the clipped form is exact).

    Parameters
    ----------
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table.
    rho : float
        Box radius.

    Returns
    -------
    {"interior", "clipped"}
        ``"interior"`` iff rho <= :func:`interior_radius` (P_obs) (docs/theory/sail.md §5.2).
    """
    return "interior" if rho <= interior_radius(P_obs) else "clipped"


@dataclass(frozen=True)
class RobustSailDecomposition:
    """The parts of L^W_rho(theta) (docs/theory/sail.md §5.2).

    value : L^W_rho = sail_value + penalty (exact, clipped form).
    sail_value : L_SAIL(theta; P_obs).
    penalty : E[min(rho, P_obs)[h]_+ + min(rho, 1 - P_obs)[-h]_+].
    sensitivity : R(theta) = E|h_theta| (includes beta).
    interior_value : sail_value + rho * sensitivity (= value in the interior regime, >= value otherwise).
    regime : "interior" or "clipped" (see :func:`robust_regime`).
    """

    value: float
    sail_value: float
    penalty: float
    sensitivity: float
    interior_value: float
    regime: str


def _pair_weights_and_margins(theta, phi, p_x, theta_ref, beta):
    """(W, H): W[x,a,b] = p_x pi(a|x) pi(b|x), H[x,a,b] = h_theta(x,a,b)."""
    pi = policy(theta, phi)
    W = p_x[:, None, None] * pi[:, :, None] * pi[:, None, :]
    m = beta * (phi @ (theta - theta_ref))
    return W, m[:, :, None] - m[:, None, :]


def pair_margins(theta, phi, theta_ref, beta) -> np.ndarray:
    """H[x,a,b] = h_theta(x,a,b) = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)), shape (n_x, n_y, n_y)
    (antisymmetric in (a, b); docs/theory/sail.md §5.1).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0).

    Returns
    -------
    ndarray of float64, shape (n_x, n_y, n_y)
        H[x,a,b] = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    """
    phi = check_array("phi", phi, ndim=3)
    d = phi.shape[2]
    theta = check_array("theta", theta, shape=(d,))
    theta_ref = check_array("theta_ref", theta_ref, shape=(d,))
    beta = check_float("beta", beta, low=0.0, low_open=True)
    m = beta * (phi @ (theta - theta_ref))
    return m[:, :, None] - m[:, None, :]


def shifted_oracle(P, H, rho) -> np.ndarray:
    """clip(P + rho sign(H), 0, 1), an oracle table again when P is one and H is antisymmetric
    (clip(1 - q) = 1 - clip(q)); |result - P| <= rho.

    The box worst case of theta is ``shifted_oracle(P_obs, -H_theta, rho)`` (docs/theory/sail.md §5.2);
    ``shifted_oracle(P_true, H_theta, rho_true)`` is an observed oracle adversarial to theta: the true
    oracle is then theta's worst case in the box of radius rho_true around the observation, wherever
    the clip is inactive (P_true + rho_true <= 1 on the pairs with H > 0).

    Parameters
    ----------
    P : array_like of float, shape (n_x, n_y, n_y)
        Oracle table (:func:`check_oracle`).
    H : array_like of float, shape (n_x, n_y, n_y)
        Antisymmetric table of margins (``ValueError`` otherwise), e.g. :func:`pair_margins`.
    rho : float
        Shift in [0, 1].

    Returns
    -------
    ndarray of float64, shape (n_x, n_y, n_y)
        clip(P + rho sign(H), 0, 1).
    """
    P = np.asarray(P, dtype=np.float64)
    H = check_array("H", H, shape=P.shape)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    if np.max(np.abs(H + H.transpose(0, 2, 1))) > 1e-9 * max(1.0, float(np.max(np.abs(H)))):
        raise ValueError("H must be antisymmetric: H[x,a,b] = -H[x,b,a]")
    P = check_oracle("P", P, P.shape[0], P.shape[1])
    return np.clip(P + rho * np.sign(H), 0.0, 1.0)


def robust_sail_decomposition(theta, phi, p_x, theta_ref, beta, P_obs, rho) -> RobustSailDecomposition:
    """L^W_rho(theta) split as L_SAIL(theta; P_obs) + penalty, with R = E|h| and the regime (docs/theory/sail.md §5.2).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0); margins are h = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    simlab.objectives.sail.RobustSailDecomposition
        value = sail_value + penalty, the penalty E[min(rho, P_obs)[h]_+ + min(rho, 1 - P_obs)[-h]_+],
        the sensitivity R = E abs(h), the interior form sail_value + rho R and the regime.
    """
    theta, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    W, H = _pair_weights_and_margins(theta, phi, p_x, theta_ref, beta)
    sail = float(np.sum(W * soft_label_loss(H, P_obs)))
    pen = np.minimum(rho, P_obs) * np.maximum(H, 0.0) + np.minimum(rho, 1.0 - P_obs) * np.maximum(-H, 0.0)
    penalty = float(np.sum(W * pen))
    sens = float(np.sum(W * np.abs(H)))
    return RobustSailDecomposition(sail + penalty, sail, penalty, sens, sail + rho * sens,
                                   robust_regime(P_obs, rho))


def robust_sail_brute_force(theta, phi, p_x, theta_ref, beta, P_obs, rho) -> float:
    """sup over the box W_rho(P_obs) of L_SAIL(theta; P), by enumeration (test reference, docs/theory/claims.md §7.3).

    Per context and unordered pair {a, b} the contribution pi_a pi_b [l(h; P) + l(-h; 1 - P)] is affine
    in the free value P = P(x,a,b) in [max(P_obs - rho, 0), min(P_obs + rho, 1)] (P(x,b,a) = 1 - P is
    forced), so its max is at one of the two endpoints; both are evaluated and the larger kept.
    Diagonal pairs have h = 0 and contribute pi_a^2 log 2.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter of the log-linear pi_theta.
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0); margins are h = beta (theta - theta_ref)^T (phi(x,a) - phi(x,b)).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    float
        sup over P in W_rho(P_obs) of L_SAIL(theta; P) (equal to :func:`robust_sail_value_grad`'s value,
        docs/theory/sail.md §5.2).
    """
    theta, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    W, H = _pair_weights_and_margins(theta, phi, p_x, theta_ref, beta)
    n_y = phi.shape[1]
    total = LOG2 * float(np.trace(W, axis1=1, axis2=2).sum())
    for a in range(n_y):
        for b in range(a + 1, n_y):
            h, p, w = H[:, a, b], P_obs[:, a, b], W[:, a, b]
            ends = np.stack([np.maximum(p - rho, 0.0), np.minimum(p + rho, 1.0)])
            vals = soft_label_loss(h, ends) + soft_label_loss(-h, 1.0 - ends)
            total += float(np.sum(w * vals.max(axis=0)))
    return total


# --------------------------------------------------------------------------------------------------
# unordered penalty pairs k = (x, {a, b}) used by the prox-linear model (docs/theory/sail.md §5.4)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PenaltyPairs:
    """The kinked part of F over unordered pairs k = (x, {a < b}) (docs/theory/sail.md §5.4).

    F(z) = S(z) + sum_k w_k(z) pen_k(z), w_k = 2 p_x(x) pi_z(a|x) pi_z(b|x),
    pen_k = c+_k [t_k]_+ + c-_k [-t_k]_+, t_k = rows_k^T z - offsets_k = beta dphi_k^T (z - theta_ref).
    """

    x: np.ndarray          # (K,) int64
    a: np.ndarray          # (K,) int64
    b: np.ndarray          # (K,) int64
    rows: np.ndarray       # (K, d) beta * dphi
    offsets: np.ndarray    # (K,) rows @ theta_ref
    c_plus: np.ndarray     # (K,) min(rho, P_obs)
    c_minus: np.ndarray    # (K,) min(rho, 1 - P_obs)


def penalty_pairs(phi, theta_ref, beta, P_obs, rho) -> PenaltyPairs:
    """Enumerate the unordered pairs of :class:`PenaltyPairs` for the box radius ``rho``.

    Parameters
    ----------
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    simlab.objectives.sail.PenaltyPairs
        The K = n_x n_y (n_y - 1) / 2 pairs (x, a < b) in lexicographic order, with rows beta dphi_k,
        offsets rows_k^T theta_ref, c+_k = min(rho, P_obs[x,a,b]) and c-_k = min(rho, 1 - P_obs[x,a,b]).
    """
    phi = check_array("phi", phi, ndim=3)
    n_x, n_y, d = phi.shape
    theta_ref = check_array("theta_ref", theta_ref, shape=(d,))
    beta = check_float("beta", beta, low=0.0, low_open=True)
    P_obs = check_oracle("P_obs", P_obs, n_x, n_y)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    xs, as_, bs = [], [], []
    for x in range(n_x):
        for a in range(n_y):
            for b in range(a + 1, n_y):
                xs.append(x), as_.append(a), bs.append(b)
    x, a, b = (np.asarray(v, dtype=np.int64) for v in (xs, as_, bs))
    rows = np.ascontiguousarray(beta * (phi[x, a] - phi[x, b]))
    p = P_obs[x, a, b]
    return PenaltyPairs(x, a, b, rows, rows @ theta_ref, np.minimum(rho, p), np.minimum(rho, 1.0 - p))


@kernel(ordered=True)
def pair_weights_kernel(theta, phi, p_x, pair_x, pair_a, pair_b, out):
    """w_k(theta) = 2 p_x(x_k) pi_theta(a_k|x_k) pi_theta(b_k|x_k) into ``out`` (K,), for the pairs of
    :class:`PenaltyPairs` (docs/theory/sail.md §5.4); jitted entry point, inputs unchecked.

    Parameters
    ----------
    theta : ndarray of float64, shape (d,)
        Policy parameter.
    phi : ndarray of float64, shape (n_x, n_y, d)
        Features.
    p_x : ndarray of float64, shape (n_x,)
        Context law.
    pair_x, pair_a, pair_b : ndarray of int64, shape (K,)
        Context and responses of each pair (``PenaltyPairs.x``, ``.a``, ``.b``).
    out : ndarray of float64, shape (K,)
        Output: overwritten with w_k(theta).
    """
    logpi = np.empty((phi.shape[0], phi.shape[1]))
    log_policy_kernel(theta, phi, logpi)
    for k in range(pair_x.size):
        x = pair_x[k]
        out[k] = 2.0 * p_x[x] * math.exp(logpi[x, pair_a[k]] + logpi[x, pair_b[k]])


@dataclass(frozen=True)
class KinkStructure:
    """Kinks of F = L^W_rho at a point and the subgradient slack across the active ones
    (docs/theory/sail.md §5.6, :func:`kink_structure`).

    active : indices k (into :func:`penalty_pairs`) with t_k = 0 up to the tolerance;
    multipliers : s_k of the active kinks solving the stationarity system;
    slack : min(u+_k - s_k, s_k + u-_k) ||a_k|| per active kink (the smaller one-sided slope of F across it);
    residual : ||g + sum_k s_k a_k|| of the least-squares solve (0 at a stationary point);
    nearest_inactive : min over inactive kinks of the distance |t_k| / ||a_k|| to its hyperplane.
    """

    active: np.ndarray
    multipliers: np.ndarray
    slack: np.ndarray
    residual: float
    nearest_inactive: float


def kink_structure(theta, phi, p_x, theta_ref, beta, P_obs, rho, active_tol: float = 1e-9) -> KinkStructure:
    """Active kinks of F = L^W_rho at ``theta`` and how far 0 lies inside their subdifferential.

    With F = S + sum_k w_k pen_k (docs/theory/sail.md §5.4) and g = grad S + sum_k pen_k grad w_k, the
    subdifferential at theta is g + sum_k s_k a_k with s_k = u+_k = w_k c+_k (t_k > 0), s_k = -u-_k
    (t_k < 0) and s_k in [-u-_k, u+_k] on the active kinks (t_k = 0). At a stationary point the active
    s solve sum_active s_k a_k = -(g + sum_inactive s_k a_k) (least squares; the residual says how
    stationary theta is). The slack min(u+_k - s_k, s_k + u-_k) ||a_k|| is the smaller of the one-sided
    slopes F'(theta; +-n_k) across kink k along its unit normal n_k when it is the only active kink (with
    several, along the part of n_k orthogonal to the other active normals, scaled by a_k^T d / ||a_k||):
    a small slack makes the kink a shallow V (docs/theory/sail.md §5.6).

    Parameters
    ----------
    theta : array_like, shape (d,)
        The point (typically a minimiser of F).
    phi : array_like, shape (n_x, n_y, d)
        Features.
    p_x : array_like, shape (n_x,)
        Context law.
    theta_ref : array_like, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0).
    P_obs : array_like, shape (n_x, n_y, n_y)
        Observed oracle table.
    rho : float
        Box radius in [0, 1].
    active_tol : float, default 1e-9
        A kink is active when the distance |t_k| / ||a_k|| of theta to its hyperplane is <= active_tol (>= 0).

    Returns
    -------
    simlab.objectives.sail.KinkStructure
        Active kinks, their multipliers and slacks, the stationarity residual and the distance to the
        nearest inactive kink (inf if none).
    """
    theta, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta, phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    active_tol = check_float("active_tol", active_tol, low=0.0)
    pairs = penalty_pairs(phi, theta_ref, beta, P_obs, rho)
    g = np.empty(phi.shape[2])
    robust_sail_kernel(theta, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 0.0, g)
    w = np.empty(pairs.x.size)
    pair_weights_kernel(theta, phi, p_x, pairs.x, pairs.a, pairs.b, w)
    u_plus, u_minus = w * pairs.c_plus, w * pairs.c_minus
    norms = np.linalg.norm(pairs.rows, axis=1)
    t = pairs.rows @ theta - pairs.offsets
    dist = np.abs(t) / norms
    act = dist <= active_tol
    s_inactive = np.where(t > 0, u_plus, -u_minus)[~act]
    rhs = -(g + pairs.rows[~act].T @ s_inactive)
    if act.any():
        s = np.linalg.lstsq(pairs.rows[act].T, rhs, rcond=None)[0]
        residual = float(np.linalg.norm(pairs.rows[act].T @ s - rhs))
    else:
        s, residual = np.empty(0), float(np.linalg.norm(rhs))
    slack = np.minimum(u_plus[act] - s, s + u_minus[act]) * norms[act]
    nearest = float(dist[~act].min()) if (~act).any() else math.inf
    return KinkStructure(np.flatnonzero(act), s, slack, residual, nearest)


# --------------------------------------------------------------------------------------------------
# weak convexity (docs/theory/sail.md §5.3)
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeakConvexityConstants:
    """Derived (loose) constants of docs/theory/sail.md §5.3 on the ball ||theta - theta_ref|| <= B.

    h_max = 2 beta B_phi B; L_sm <= B_phi^2 [18 (h_max + log 2) + 16 beta + beta^2] (smoothness of SAIL);
    omega_R <= beta B_phi^2 (36 B_phi B + 16) (weak convexity of the penalty); omega <= L_sm + rho omega_R;
    L_G = 2 beta B_phi + 4 B_phi (h_max + log 2 + rho h_max) + 2 rho beta B_phi (single-sample ||G||).
    """

    h_max: float
    L_sm: float
    omega_R: float
    omega: float
    L_G: float


def weak_convexity_bound(beta: float, B_phi: float, radius: float, rho: float) -> WeakConvexityConstants:
    """The docs/theory/sail.md §5.3 constants for feature bound B_phi = max ||phi||, ball radius B and box radius rho.

    Parameters
    ----------
    beta : float
        Temperature (> 0).
    B_phi : float
        Feature bound max ||phi(x, a)|| (> 0), e.g. :func:`feature_bound`.
    radius : float
        Ball radius B (> 0).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    simlab.objectives.sail.WeakConvexityConstants
        h_max, L_sm, omega_R, omega = L_sm + rho omega_R and L_G (formulas in
        :class:`simlab.objectives.sail.WeakConvexityConstants`).
    """
    beta = check_float("beta", beta, low=0.0, low_open=True)
    B_phi = check_float("B_phi", B_phi, low=0.0, low_open=True)
    radius = check_float("radius", radius, low=0.0, low_open=True)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    h_max = 2.0 * beta * B_phi * radius
    L_sm = B_phi ** 2 * (18.0 * (h_max + LOG2) + 16.0 * beta + beta ** 2)
    omega_R = beta * B_phi ** 2 * (36.0 * B_phi * radius + 16.0)
    L_G = 2.0 * beta * B_phi + 4.0 * B_phi * (h_max + LOG2 + rho * h_max) + 2.0 * rho * beta * B_phi
    return WeakConvexityConstants(h_max, L_sm, omega_R, L_sm + rho * omega_R, L_G)


def feature_bound(phi) -> float:
    """B_phi = max over (x, a) of ||phi(x, a)||.

    Parameters
    ----------
    phi : array_like of float, shape (n_x, n_y, d)
        Features.

    Returns
    -------
    float
        B_phi, the constant of docs/theory/sail.md §5.3.
    """
    return float(np.max(np.linalg.norm(np.asarray(phi, dtype=np.float64), axis=-1)))


def sample_ball(center, radius: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n points uniform in the ball ||theta - center|| <= radius, shape (n, d).

    Parameters
    ----------
    center : array_like of float, shape (d,)
        Centre of the ball.
    radius : float
        Radius of the ball.
    n : int
        Number of points.
    rng : numpy.random.Generator
        Source of randomness (direction: normalised Gaussian; radius: radius U^(1/d)).

    Returns
    -------
    ndarray of float64, shape (n, d)
        The points.
    """
    center = np.asarray(center, dtype=np.float64)
    d = center.size
    v = rng.standard_normal((n, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = radius * rng.random(n) ** (1.0 / d)
    return center + r[:, None] * v


@kernel(ordered=True)
def project_ball_kernel(theta, center, radius):
    """In-place Euclidean projection onto the ball ||z - center|| <= radius (the jitted entry point of the
    SAIL algorithms' projected steps, docs/theory/sail.md §5.5; inputs unchecked, the checked form is
    :func:`project_ball`).

    Parameters
    ----------
    theta : numpy.ndarray, shape (d,)
        Point to project; overwritten with center + min(1, radius / ||theta - center||) (theta - center).
    center : numpy.ndarray, shape (d,)
        Centre of the ball.
    radius : float
        Radius of the ball (>= 0).
    """
    n2 = 0.0
    for j in range(theta.size):
        n2 += (theta[j] - center[j]) ** 2
    if n2 > radius * radius:
        f = radius / math.sqrt(n2)
        for j in range(theta.size):
            theta[j] = center[j] + f * (theta[j] - center[j])


def project_ball(theta, center, radius: float) -> np.ndarray:
    """Euclidean projection onto the ball ||z - center|| <= radius.

    Parameters
    ----------
    theta : array_like, shape (d,)
        Point to project.
    center : array_like, shape (d,)
        Centre of the ball.
    radius : float
        Radius of the ball (>= 0).

    Returns
    -------
    numpy.ndarray, shape (d,)
        center + min(1, radius / ||theta - center||) (theta - center), a new array (computed by
        :func:`project_ball_kernel`).
    """
    out = check_array("theta", theta, ndim=1).copy()
    center = check_array("center", center, shape=out.shape)
    project_ball_kernel(out, center, check_float("radius", radius, low=0.0))
    return out


def weak_convexity_gaps(theta, theta2, phi, p_x, theta_ref, beta, P_obs, rho) -> np.ndarray:
    """Per pair i: 2 [F(theta_i) + <g_i, theta2_i - theta_i> - F(theta2_i)] / ||theta2_i - theta_i||^2
    (not clipped at 0), g_i the Clarke subgradient at theta_i. F is omega-weakly convex iff all <= omega.

    Parameters
    ----------
    theta : array_like of float, shape (N, d) or (d,)
        First points theta_i.
    theta2 : array_like of float, shape (N, d) or (d,)
        Second points theta2_i (distinct from theta_i).
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter.
    beta : float
        Temperature (> 0).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].

    Returns
    -------
    ndarray of float64, shape (N,)
        The gaps, F = L^W_rho and g_i from :func:`robust_sail_value_grad` (docs/theory/sail.md §5.3).
    """
    theta = np.atleast_2d(check_array("theta", theta))
    theta2 = np.atleast_2d(check_array("theta2", theta2))
    # the problem is validated once (not once per point: the sampled estimate evaluates thousands)
    _, phi, p_x, theta_ref, beta, P_obs = check_sail_problem(theta[0], phi, p_x, theta_ref, beta, P_obs)
    rho = check_float("rho", rho, low=0.0, high=1.0)
    if theta.ndim != 2 or theta.shape[1] != phi.shape[2]:
        raise ValueError(f"theta must have shape (N, {phi.shape[2]}) or ({phi.shape[2]},), got {theta.shape}")
    if theta2.shape != theta.shape:
        raise ValueError(f"theta2 must have the shape of theta {theta.shape}, got {theta2.shape}")
    grad = np.empty(phi.shape[2])
    out = np.empty(theta.shape[0])
    for i, (t1, t2) in enumerate(zip(theta, theta2)):
        f2 = float(robust_sail_kernel(t2, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 1.0, grad))
        f1 = float(robust_sail_kernel(t1, phi, p_x, theta_ref, beta, P_obs, rho, 1.0, 1.0, grad))
        diff = t2 - t1
        out[i] = 2.0 * (f1 + grad @ diff - f2) / float(diff @ diff)
    return out


def weak_convexity_estimate(phi, p_x, theta_ref, beta, P_obs, rho, radius: float, n_pairs: int,
                            rng: np.random.Generator) -> float:
    """omega_hat = max over sampled pairs in the ball of the subgradient-inequality gap (docs/theory/sail.md §5.3), >= 0.

    Half the pairs are global (both ends uniform in the ball), half local (theta2 = theta + r v with
    r log-uniform in [1e-3 B, 0.3 B], projected), since the sup is approached at short distances.

    Parameters
    ----------
    phi : array_like of float, shape (n_x, n_y, d)
        Features.
    p_x : array_like of float, shape (n_x,)
        Context law.
    theta_ref : array_like of float, shape (d,)
        Reference policy parameter, the centre of the ball.
    beta : float
        Temperature (> 0).
    P_obs : array_like of float, shape (n_x, n_y, n_y)
        Observed oracle table (:func:`check_oracle`).
    rho : float
        Box radius in [0, 1].
    radius : float
        Ball radius B (> 0).
    n_pairs : int
        Number of sampled pairs (>= 2).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    float
        max(0, max_i gap_i) over the sampled pairs (:func:`weak_convexity_gaps`), a lower estimate of the
        weak-convexity modulus omega.
    """
    n_pairs = check_int("n_pairs", n_pairs, low=2)
    radius = check_float("radius", radius, low=0.0, low_open=True)
    theta_ref = np.asarray(theta_ref, dtype=np.float64)
    n_glob = n_pairs // 2
    t1 = sample_ball(theta_ref, radius, n_pairs, rng)
    t2 = np.empty_like(t1)
    t2[:n_glob] = sample_ball(theta_ref, radius, n_glob, rng)
    n_loc = n_pairs - n_glob
    v = rng.standard_normal((n_loc, t1.shape[1]))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    r = radius * 10.0 ** rng.uniform(-3.0, math.log10(0.3), n_loc)
    for i in range(n_loc):
        t2[n_glob + i] = project_ball(t1[n_glob + i] + r[i] * v[i], theta_ref, radius)
    keep = np.linalg.norm(t2 - t1, axis=1) > 0
    gaps = weak_convexity_gaps(t1[keep], t2[keep], phi, p_x, theta_ref, beta, P_obs, rho)
    return float(max(0.0, gaps.max()))
