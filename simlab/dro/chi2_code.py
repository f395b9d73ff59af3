"""The DRO-REBEL reference code's chi^2 "dual" (``Chi2REBELOptimizer``, spec §4.5, §9 switch ``chi2.dual``).

The code minimises g(zeta) = zeta + sqrt(2 rho_chi E_p (l - zeta)_+^2) over a candidate scan, where the
exact chi^2 dual (``simlab.dro.chi2``) has the constant sqrt(1 + 2 eps); it lives here, beside the exact
dual, so that the project has one home for dual solvers. For rho_chi > 1/2 the minimum over all zeta is the
exact value at eps = rho_chi - 1/2; for rho_chi < 1/2 g is unbounded below.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from simlab.validation import check_array, check_float

CHI2_CODE_LAMBDA_FLOOR = 1e-6


class Chi2CodeDual(NamedTuple):
    """The code's chi^2 dual (``Chi2REBELOptimizer``): g(zeta*), zeta*, lambda*, weights w_j (the
    code's unnormalised (l_j - zeta*)_+ / (n lambda*), here with atom law p in place of 1/n)."""

    value: float
    zeta: float
    lam: float
    weights: np.ndarray


def chi2_code_dual(losses, probs, rho_chi) -> Chi2CodeDual:
    """g(zeta) = zeta + sqrt(2 rho_chi E_p (l - zeta)_+^2) minimised over the code's candidate set
    {min l - 1} u unique(l) u {max l + 1} (spec §4.5). Evaluated for all candidates at once by sorting
    (O(A log A); the code's scan is O(n^2) with the same result). For rho_chi > 1/2 the minimum of g
    over all zeta equals the exact chi^2 value at radius rho_chi - 1/2, but the candidate scan only
    returns an upper bound of it (exact when zeta* happens to be a loss value); for rho_chi < 1/2 g is
    unbounded below and the scan returns zeta* = min l - 1."""
    l = check_array("losses", losses, ndim=1)
    p = check_array("probs", probs, shape=l.shape)
    rho_chi = check_float("rho_chi", rho_chi, 0.0, low_open=True)
    keep = p > 0
    cands = np.concatenate([[l[keep].min() - 1.0], np.unique(l[keep]), [l[keep].max() + 1.0]])
    order = np.argsort(-l[keep])
    ls, ps = l[keep][order], p[keep][order]
    # for zeta = cands[i], the active set is {l > zeta}: a prefix of the decreasing order
    m0, m1, m2 = (np.concatenate([[0.0], np.cumsum(ps * ls**k)]) for k in (0, 1, 2))
    k = np.searchsorted(-ls, -cands, side="left")  # number of l strictly greater than zeta
    s2 = np.maximum(m2[k] - 2 * cands * m1[k] + cands**2 * m0[k], 0.0)
    g = cands + np.sqrt(2.0 * rho_chi * s2)
    i = int(np.argmin(g))
    zeta = float(cands[i])
    lam = max(float(np.sqrt(2.0 * rho_chi * s2[i])), CHI2_CODE_LAMBDA_FLOOR)
    weights = p * np.maximum(l - zeta, 0.0) / lam
    return Chi2CodeDual(float(g[i]), zeta, lam, weights)


def chi2_code_loss_gradient(losses, grads, probs, rho_chi) -> tuple[float, np.ndarray]:
    """The code's chi^2 loss L = sum_j w_j l_j and its autograd gradient with w and lambda* not detached
    (zeta* held constant; spec §4.5): with a_j = (l_j - zeta*)_+,
    dL = sum_j c_j grad l_j, c_j = p_j [1(l_j > zeta*) l_j + a_j]/lambda* - L 2 rho_chi p_j a_j/lambda*^2
    (the last term is absent when lambda* sits at its floor)."""
    dual = chi2_code_dual(losses, probs, rho_chi)
    l = np.asarray(losses, dtype=np.float64)
    p = np.asarray(probs, dtype=np.float64)
    grads = check_array("grads", grads, shape=(l.size, None))
    a = np.maximum(l - dual.zeta, 0.0)
    L = float(dual.weights @ l)
    coef = p * ((l > dual.zeta) * l + a) / dual.lam
    if dual.lam > CHI2_CODE_LAMBDA_FLOOR:
        coef = coef - L * 2.0 * rho_chi * p * a / dual.lam**2
    return L, coef @ grads
