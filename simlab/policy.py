"""Log-linear policies pi_theta(a|x) = exp(theta^T phi(x,a)) / Z_theta(x)   (docs/theory/environment.md §1.1, §1.3).

Features are an array ``phi`` of shape (n_x, n_y, d). All functions are vectorised over contexts and
use a max-subtracted log-sum-exp, so they stay finite for any finite theta.
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel


@kernel
def log_policy_kernel(theta: np.ndarray, phi: np.ndarray, out: np.ndarray) -> None:
    """out[x, a] = log pi_theta(a|x) by a max-subtracted log-sum-exp; a kernel, callable from other kernels.

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).
    out : (n_x, n_y) ndarray
        Receives the log-probabilities.
    """
    n_x, n_y, d = phi.shape
    for x in range(n_x):
        m = -np.inf
        for a in range(n_y):
            s = 0.0
            for k in range(d):
                s += phi[x, a, k] * theta[k]
            out[x, a] = s
            if s > m:
                m = s
        z = 0.0
        for a in range(n_y):
            z += np.exp(out[x, a] - m)
        lse = m + np.log(z)
        for a in range(n_y):
            out[x, a] -= lse


def log_policy(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """log pi_theta(a|x) for all (x, a): the stable log-softmax of phi @ theta (docs/theory/environment.md §1.1).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).

    Returns
    -------
    (n_x, n_y) ndarray
        theta^T phi(x, a) - log sum_b exp(theta^T phi(x, b)).
    """
    phi = np.ascontiguousarray(phi, dtype=np.float64)
    out = np.empty(phi.shape[:2])
    log_policy_kernel(np.ascontiguousarray(theta, dtype=np.float64), phi, out)
    return out


def policy(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """pi_theta(a|x) for all (x, a).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).

    Returns
    -------
    (n_x, n_y) ndarray
        exp(log_policy(theta, phi)); each row sums to 1.
    """
    return np.exp(log_policy(theta, phi))


def mean_feature(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """phibar_theta(x) = E_{pi_theta(.|x)} phi(x, .).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).

    Returns
    -------
    (n_x, d) ndarray
        The mean feature per context.
    """
    return np.einsum("xa,xad->xd", policy(theta, phi), phi)


def score(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """s_theta(x, a) = grad_theta log pi_theta(a|x) = phi(x, a) - phibar_theta(x).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).

    Returns
    -------
    (n_x, n_y, d) ndarray
        The score of every (x, a).
    """
    return phi - mean_feature(theta, phi)[:, None, :]


def feature_covariance(theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Cov_theta(x) = -Hessian of log pi_theta(a|x) in theta (the same for every a).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).

    Returns
    -------
    (n_x, d, d) ndarray
        E_{pi_theta(.|x)} s_theta s_theta^T per context.
    """
    s = score(theta, phi)
    return np.einsum("xa,xad,xae->xde", policy(theta, phi), s, s)


def kl_to(theta: np.ndarray, theta_other: np.ndarray, phi: np.ndarray,
          p_x: np.ndarray | None = None) -> float:
    """E_x KL(pi_theta(.|x) || pi_other(.|x)) with contexts weighted by p_x.

    Parameters
    ----------
    theta, theta_other : (d,) ndarray
        Parameters of the two policies.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).
    p_x : (n_x,) ndarray, optional
        Context law (default uniform).

    Returns
    -------
    float
        sum_x p_x(x) sum_a pi_theta(a|x) (log pi_theta(a|x) - log pi_other(a|x)).
    """
    lp = log_policy(theta, phi)
    lq = log_policy(theta_other, phi)
    per_x = np.sum(np.exp(lp) * (lp - lq), axis=1)
    w = np.full(phi.shape[0], 1.0 / phi.shape[0]) if p_x is None else np.asarray(p_x)
    return float(w @ per_x)


def expected_reward(theta: np.ndarray, phi: np.ndarray, reward: np.ndarray,
                    p_x: np.ndarray | None = None) -> float:
    """J(theta; r) = E_x sum_a pi_theta(a|x) r(x, a).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).
    reward : (n_x, n_y) ndarray
        Reward table r(x, a).
    p_x : (n_x,) ndarray, optional
        Context law (default uniform).

    Returns
    -------
    float
        The expected reward of pi_theta.
    """
    w = np.full(phi.shape[0], 1.0 / phi.shape[0]) if p_x is None else np.asarray(p_x)
    return float(w @ np.sum(policy(theta, phi) * reward, axis=1))
