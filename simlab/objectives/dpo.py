"""DPO over weighted atoms (docs/theory/dpo.md §3.1).

Pointwise loss l = -y log sigma(h) - (1 - y) log sigma(-h) = softplus(h) - y h with the margin
h = beta (theta - theta_ref)^T dphi (h includes beta, docs/theory/environment.md §1.1). Derivatives:
dl/dh = sigma(h) - y;  grad_theta l = beta (sigma(h) - y) dphi;
Hess_theta l = beta^2 sigma(h)(1 - sigma(h)) dphi dphi^T;  grad_dphi l = beta (sigma(h) - y)(theta - theta_ref).
Objectives are sums over atoms with weights w (p0 for the population, N/n for a sample).
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.special import sigmoid, softplus
from simlab.validation import check_float, check_linear_atoms


@kernel
def _dpo_value_grad_kernel(delta: np.ndarray, beta: float, dphi: np.ndarray, y: np.ndarray,
                           w: np.ndarray, grad: np.ndarray, curvature: np.ndarray) -> float:
    """Value, gradient, and per-atom curvature w_j beta^2 sigma(h_j)(1 - sigma(h_j))."""
    n, d = dphi.shape
    grad[:] = 0.0
    value = 0.0
    for j in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[j, k] * delta[k]
        h *= beta
        s = sigmoid(h)
        value += w[j] * (softplus(h) - y[j] * h)
        gj = w[j] * beta * (s - y[j])
        curvature[j] = w[j] * beta * beta * s * (1.0 - s)
        for k in range(d):
            grad[k] += gj * dphi[j, k]
    return value


def dpo_vgh_unchecked(delta: np.ndarray, beta: float, dphi: np.ndarray, y: np.ndarray,
                      w: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(value, grad, Hessian) of sum_j w_j l_j at delta = theta - theta_ref, without input checks (solver inner loops).

    The Hessian sum_j c_j dphi_j dphi_j^T with c_j = w_j beta^2 sigma(h_j)(1 - sigma(h_j)) is one BLAS
    product.

    Parameters
    ----------
    delta : (d,) ndarray
        theta - theta_ref.
    beta : float
        KL temperature.
    dphi : (A, d) ndarray
        Feature differences (C-contiguous float64).
    y : (A,) ndarray
        Labels in [0, 1].
    w : (A,) ndarray
        Atom weights.

    Returns
    -------
    value : float
        sum_j w_j (softplus(h_j) - y_j h_j).
    grad : (d,) ndarray
        sum_j w_j beta (sigma(h_j) - y_j) dphi_j.
    hess : (d, d) ndarray
        sum_j w_j beta^2 sigma(h_j)(1 - sigma(h_j)) dphi_j dphi_j^T.
    """
    grad = np.empty(dphi.shape[1])
    curvature = np.empty(dphi.shape[0])
    value = _dpo_value_grad_kernel(delta, beta, dphi, y, w, grad, curvature)
    return value, grad, (dphi.T * curvature) @ dphi


@kernel
def _dpo_losses_kernel(delta: np.ndarray, beta: float, dphi: np.ndarray, y: np.ndarray,
                       out: np.ndarray) -> None:
    n, d = dphi.shape
    for j in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[j, k] * delta[k]
        h *= beta
        out[j] = softplus(h) - y[j] * h


def _validated(theta, theta_ref, beta, dphi, y, w=None):
    """(theta - theta_ref, beta, dphi, y, w) after :func:`simlab.validation.check_linear_atoms`."""
    theta, theta_ref, dphi, y, w = check_linear_atoms(theta, theta_ref, dphi, y, w, labels=True)
    return theta - theta_ref, check_float("beta", beta, 0.0, low_open=True), dphi, y, w


def dpo_value_grad_hess(theta, theta_ref, beta, dphi, y, w):
    """(sum_j w_j l_j, its gradient, its Hessian) over weighted atoms (docs/theory/dpo.md §3.1).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    theta_ref : (d,) ndarray
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    dphi : (A, d) ndarray
        Feature differences of the atoms.
    y : (A,) ndarray
        Labels in [0, 1].
    w : (A,) ndarray
        Atom weights (>= 0, positive sum).

    Returns
    -------
    value : float
        The weighted DPO loss.
    grad : (d,) ndarray
        Its gradient in theta.
    hess : (d, d) ndarray
        Its Hessian in theta.
    """
    delta, beta, dphi, y, w = _validated(theta, theta_ref, beta, dphi, y, w)
    return dpo_vgh_unchecked(delta, beta, dphi, y, w)


def dpo_losses(theta, theta_ref, beta, dphi, y, check_input: bool = True) -> np.ndarray:
    """Per-atom DPO losses l_j = softplus(h_j) - y_j h_j with h_j = beta (theta - theta_ref)^T dphi_j.

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    theta_ref : (d,) ndarray
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    dphi : (A, d) ndarray
        Feature differences of the atoms.
    y : (A,) ndarray
        Labels in [0, 1].
    check_input : bool, default True
        Validate the inputs. ``False`` is for callers that validated them already (float64 C-contiguous
        arrays of matching shapes, beta a float > 0): the Newton loops of the robust DPO objectives, which
        evaluate the losses at every step; the values are the same to the bit.

    Returns
    -------
    (A,) ndarray
        The losses.
    """
    if check_input:
        delta, beta, dphi, y, _ = _validated(theta, theta_ref, beta, dphi, y)
    else:
        delta = theta - theta_ref
    out = np.empty(dphi.shape[0])
    _dpo_losses_kernel(delta, beta, dphi, y, out)
    return out


def dpo_fisher(theta, theta_ref, beta, dphi, w) -> np.ndarray:
    """Fisher information I = beta^2 sum_j w_j sigma(h_j)(1 - sigma(h_j)) dphi_j dphi_j^T (docs/theory/claims.md §7.3).

    Parameters
    ----------
    theta : (d,) ndarray
        Policy parameter.
    theta_ref : (d,) ndarray
        Reference policy parameter.
    beta : float
        KL temperature (> 0).
    dphi : (A, d) ndarray
        Feature differences of the atoms.
    w : (A,) ndarray
        Atom weights.

    Returns
    -------
    (d, d) ndarray
        The Hessian of the weighted DPO loss, which does not depend on the labels.
    """
    y = np.zeros(np.shape(dphi)[0])
    return dpo_value_grad_hess(theta, theta_ref, beta, dphi, y, w)[2]


def dpo_population_minimizer(theta_ref, beta, w_star) -> np.ndarray:
    """theta* = theta_ref + w*/beta: the DPO population minimiser under BT labels from r* = w*^T phi with Sigma > 0.

    Derived in docs/theory/dpo.md §3.1; the identity is tested against the Newton solve on the atoms.

    Parameters
    ----------
    theta_ref : (d,) array_like
        Reference policy parameter.
    beta : float
        KL temperature.
    w_star : (d,) array_like
        True reward vector w*.

    Returns
    -------
    (d,) ndarray
        theta*.
    """
    return np.asarray(theta_ref, dtype=np.float64) + np.asarray(w_star, dtype=np.float64) / beta
