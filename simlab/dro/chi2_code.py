"""The DRO-REBEL reference code's chi^2 "dual" (``Chi2REBELOptimizer``, docs/theory/rebel.md §4.5,
docs/theory/variants.md §9 switch ``chi2.dual``).

The code minimises g(zeta) = zeta + sqrt(2 rho_chi E_p (l - zeta)_+^2) over a candidate scan, where the
exact chi^2 dual (``simlab.dro.chi2``) has the constant sqrt(1 + 2 eps); it lives here, beside the exact
dual, so that the project has one home for dual solvers. For rho_chi > 1/2 the minimum over all zeta is the
exact value at eps = rho_chi - 1/2; for rho_chi < 1/2 g is unbounded below.

One implementation, two entry points: the numba kernels ``chi2_code_dual_kernel`` and
``chi2_code_coefficients_kernel`` (no input checks; called by whole-loop jitted solvers) and the checked
NumPy-facing ``chi2_code_dual`` and ``chi2_code_loss_gradient``, which call them.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simlab._jit import kernel
from simlab.validation import check_array, check_float

CHI2_CODE_LAMBDA_FLOOR = 1e-6


class Chi2CodeDual(NamedTuple):
    """The code's chi^2 dual (``Chi2REBELOptimizer``): g(zeta*), zeta*, lambda*, weights w_j (the
    code's unnormalised (l_j - zeta*)_+ / (n lambda*), here with atom law p in place of 1/n)."""

    value: float
    zeta: float
    lam: float
    weights: np.ndarray


@kernel
def chi2_code_dual_kernel(l: np.ndarray, p: np.ndarray, rho_chi: float, weights: np.ndarray) -> tuple:
    """The code's candidate scan over the support {p > 0}: returns (g(zeta*), zeta*, lambda*, floored)
    and writes weights_j = p_j (l_j - zeta*)_+ / lambda* (0 off the support).

    Candidates max l + 1, every loss value, min l - 1 are visited in decreasing order with prefix sums
    s_k = sum_{l > zeta} p l^k over the decreasing order, so E_p (l - zeta)_+^2 = s_2 - 2 zeta s_1 +
    zeta^2 s_0 costs O(1) per candidate (O(A log A) in all, against the code's O(n^2) scan with the same
    result); among equal g the smallest zeta wins (the code's argmin over increasing candidates).
    lambda* = max(sqrt(2 rho_chi E_p (l - zeta*)_+^2), CHI2_CODE_LAMBDA_FLOOR); ``floored`` says the
    floor was taken.

    Parameters
    ----------
    l : ndarray of float64, shape (A,)
        Finite losses.
    p : ndarray of float64, shape (A,)
        Atom weights >= 0 with a positive sum (the code's 1/n).
    rho_chi : float
        The code's radius, > 0.
    weights : ndarray of float64, shape (A,)
        Output: w_j = p_j (l_j - zeta*)_+ / lambda*.

    Returns
    -------
    tuple of (float, float, float, bool)
        (g(zeta*), zeta*, lambda*, floored).
    """
    n_all = l.size
    m = 0
    for j in range(n_all):
        if p[j] > 0.0:
            m += 1
    ls = np.empty(m)
    ps = np.empty(m)
    i = 0
    for j in range(n_all):
        if p[j] > 0.0:
            ls[i] = l[j]
            ps[i] = p[j]
            i += 1
    order = np.argsort(-ls)
    srt = ls[order]
    pw = ps[order]
    best = np.inf
    zeta = 0.0
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    k = 0
    n_cand = m + 2
    for c in range(n_cand):
        if c == 0:
            z = srt[0] + 1.0
        elif c == n_cand - 1:
            z = srt[m - 1] - 1.0
        else:
            z = srt[c - 1]
        while k < m and srt[k] > z:
            s0 += pw[k]
            s1 += pw[k] * srt[k]
            s2 += pw[k] * srt[k] * srt[k]
            k += 1
        tail = max(s2 - 2.0 * z * s1 + z * z * s0, 0.0)
        g = z + np.sqrt(2.0 * rho_chi * tail)
        if g <= best:
            best = g
            zeta = z
    tail = 0.0
    for j in range(n_all):
        if p[j] > 0.0:
            a = max(l[j] - zeta, 0.0)
            tail += p[j] * a * a
    lam = np.sqrt(2.0 * rho_chi * tail)
    floored = lam <= CHI2_CODE_LAMBDA_FLOOR
    lam = max(lam, CHI2_CODE_LAMBDA_FLOOR)
    for j in range(n_all):
        weights[j] = p[j] * max(l[j] - zeta, 0.0) / lam if p[j] > 0.0 else 0.0
    return best, zeta, lam, floored


@kernel
def chi2_code_coefficients_kernel(l: np.ndarray, p: np.ndarray, rho_chi: float, coef: np.ndarray) -> float:
    """Gradient coefficients of the code's chi^2 loss L = sum_j w_j l_j (w and lambda* not detached,
    zeta* held constant): writes coef with dL = sum_j coef_j grad l_j and returns L. With
    a_j = (l_j - zeta*)_+, coef_j = p_j [1(l_j > zeta*) l_j + a_j]/lambda* - L 2 rho_chi p_j a_j/lambda*^2
    (the last term is absent when lambda* sits at its floor).

    Parameters
    ----------
    l, p, rho_chi
        As :func:`chi2_code_dual_kernel`.
    coef : ndarray of float64, shape (A,)
        Output: the coefficients c_j of grad l_j.

    Returns
    -------
    float
        The code's loss L = sum_j w_j l_j.
    """
    _, zeta, lam, floored = chi2_code_dual_kernel(l, p, rho_chi, coef)
    L = 0.0
    for j in range(l.size):
        L += coef[j] * l[j]
    for j in range(l.size):
        a = max(l[j] - zeta, 0.0)
        ind = 1.0 if (l[j] > zeta and p[j] > 0.0) else 0.0
        coef[j] = p[j] * (ind * l[j] + a) / lam
        if not floored:
            coef[j] -= L * 2.0 * rho_chi * p[j] * a / (lam * lam)
    return L


def _check_inputs(losses, probs, rho_chi):
    l = check_array("losses", losses, ndim=1)
    if l.size == 0:
        raise ValueError("losses must be non-empty")
    p = check_array("probs", probs, shape=l.shape)
    if np.any(p < 0.0) or not p.sum() > 0.0:
        raise ValueError("probs must be >= 0 with a positive sum")
    rho_chi = check_float("rho_chi", rho_chi, 0.0, low_open=True)
    return l, p, rho_chi


def chi2_code_dual(losses, probs, rho_chi) -> Chi2CodeDual:
    """g(zeta) = zeta + sqrt(2 rho_chi E_p (l - zeta)_+^2) minimised over the code's candidate set
    {min l - 1} u unique(l) u {max l + 1} (docs/theory/rebel.md §4.5), by :func:`chi2_code_dual_kernel`.
    For rho_chi > 1/2 the minimum of g over all zeta equals the exact chi^2 value at radius
    rho_chi - 1/2, but the candidate scan only returns an upper bound of it (exact when zeta* happens
    to be a loss value); for rho_chi < 1/2 g is unbounded below and the scan returns zeta* = min l - 1.

    Parameters
    ----------
    losses : array_like of float, shape (A,)
        Finite losses.
    probs : array_like of float, shape (A,)
        Atom weights >= 0 with a positive sum.
    rho_chi : float
        The code's radius, > 0.

    Returns
    -------
    Chi2CodeDual
        (value, zeta, lam, weights) of the candidate scan.

    Raises
    ------
    ValueError
        Naming ``losses``, ``probs`` or ``rho_chi`` on bad input.
    """
    l, p, rho_chi = _check_inputs(losses, probs, rho_chi)
    weights = np.empty_like(l)
    value, zeta, lam, _ = chi2_code_dual_kernel(l, p, rho_chi, weights)
    return Chi2CodeDual(float(value), float(zeta), float(lam), weights)


def chi2_code_loss_gradient(losses, grads, probs, rho_chi) -> tuple[float, np.ndarray]:
    """The code's chi^2 loss L = sum_j w_j l_j and its autograd gradient with w and lambda* not detached
    (zeta* held constant; docs/theory/rebel.md §4.5): sum_j c_j grad l_j with the coefficients of
    :func:`chi2_code_coefficients_kernel`.

    Parameters
    ----------
    losses, probs, rho_chi
        As :func:`chi2_code_dual`.
    grads : array_like of float, shape (A, d)
        Per-atom gradients grad l_j.

    Returns
    -------
    L : float
        The code's loss sum_j w_j l_j.
    grad : ndarray of float64, shape (d,)
        Its gradient with w and lambda* not detached.

    Raises
    ------
    ValueError
        Naming the argument on bad input.
    """
    l, p, rho_chi = _check_inputs(losses, probs, rho_chi)
    grads = check_array("grads", grads, shape=(l.size, None))
    coef = np.empty_like(l)
    L = chi2_code_coefficients_kernel(l, p, rho_chi, coef)
    return float(L), coef @ grads
