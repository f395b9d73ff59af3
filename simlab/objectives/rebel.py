"""REBEL and DRO-REBEL per-iteration objectives over weighted atoms (docs/theory/rebel.md §4.1-4.5).

Residual of one pair (docs/theory/environment.md §1.1): e_theta(z) = (theta - theta_anc)^T dphi / eta - dr~, with the scaled
update u = (theta - theta_anc)/eta and the anchor theta_anc = theta_t (``prev``) or theta_ref (``ref``).
Loss l = e^2;  grad_theta l = (2/eta) e dphi;  Hess_theta l = (2/eta^2) dphi dphi^T.

* REBEL (docs/theory/rebel.md §4.1): min sum_j w_j e_j^2, closed form theta = theta_anc + eta (sum w dphi dphi^T)^+ sum w dphi dr.
* W2-REBEL (docs/theory/rebel.md §4.3): sup_{W2 <= eps} E_Q e^2 = (rms_w(e) + eps ||u||)^2, so the exact update minimises the
  square-root regression rms_w(e) + eps ||theta - theta_anc|| / eta.  The gradient-norm surrogate of the
  code (``WREBELOptimizer``) is F_W = E e^2 + 2 rho0 ||u|| rms(e) (exact - F_W = rho0^2 ||u||^2 at rho0 = eps).
* KL-/chi^2-REBEL (docs/theory/rebel.md §4.4, §4.5): sup over an f-divergence ball of E_Q e^2 by the DRO toolbox
  (``simlab.dro``: constrained KL, penalised KL at fixed tau, exact chi^2, Danskin gradients with exact
  Hessians, and the reference code's non-detached softmax gradient).
* The code's chi^2 variant (``Chi2REBELOptimizer``, docs/theory/rebel.md §4.5, switch ``chi2.dual``): g(zeta) = zeta +
  sqrt(2 rho_chi E_w (l - zeta)_+^2) minimised over the candidates {min l - 1} u {l_j} u {max l + 1};
  weights w_j (l_j - zeta*)_+ / lambda*, lambda* = max(sqrt(2 rho_chi E_w (l - zeta*)_+^2), 1e-6), not
  detached.  It uses sqrt(2 rho_chi) where the exact dual has sqrt(1 + 2 eps).

Every function takes atom arrays (dphi (A, d), dr (A,)) and weights w (A,) (p0 or N/n); a = a' atoms
(dphi = 0) contribute a constant.
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.dro import (kl_penalized_value_grad_hess, non_detached_softmax_gradient,
                        w2_surrogate_value_grad_hess, worst_case_value_grad_hess)
from simlab.dro.chi2_code import chi2_code_loss_gradient
from simlab.validation import check_array, check_choice, check_float, check_linear_atoms, check_weights

ANCHORS = ("prev", "ref")


def _validated(theta, theta_anc, eta, dphi, dr, w=None):
    """(theta, theta_anc, eta, dphi, dr, w) after :func:`simlab.validation.check_linear_atoms`."""
    theta, theta_anc, dphi, dr, w = check_linear_atoms(theta, theta_anc, dphi, dr, w, anchor_name="theta_anc",
                                                       target_name="dr")
    return theta, theta_anc, check_float("eta", eta, 0.0, low_open=True), dphi, dr, w


@kernel
def _residuals_kernel(u: np.ndarray, dphi: np.ndarray, dr: np.ndarray, out: np.ndarray) -> None:
    n, d = dphi.shape
    for j in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[j, k] * u[k]
        out[j] = h - dr[j]


@kernel
def _rebel_vgh_kernel(u: np.ndarray, eta: float, dphi: np.ndarray, dr: np.ndarray, w: np.ndarray,
                      grad: np.ndarray, gram: np.ndarray) -> tuple:
    """(sum w e^2, sum w e dphi into grad, sum w dphi dphi^T into gram, sum w)."""
    n, d = dphi.shape
    grad[:] = 0.0
    gram[:, :] = 0.0
    value = 0.0
    mass = 0.0
    for j in range(n):
        if w[j] == 0.0:
            continue
        e = -dr[j]
        for k in range(d):
            e += dphi[j, k] * u[k]
        value += w[j] * e * e
        mass += w[j]
        for k in range(d):
            grad[k] += w[j] * e * dphi[j, k]
            for m in range(k + 1):
                gram[k, m] += w[j] * dphi[j, k] * dphi[j, m]
    for k in range(d):
        for m in range(k):
            gram[m, k] = gram[k, m]
    return value, mass


def rebel_residuals(theta, theta_anc, eta, dphi, dr) -> np.ndarray:
    """Per-atom residuals e_j = (theta - theta_anc)^T dphi_j / eta - dr_j (docs/theory/rebel.md §4.1)."""
    theta, theta_anc, eta, dphi, dr, _ = _validated(theta, theta_anc, eta, dphi, dr)
    out = np.empty(dphi.shape[0])
    _residuals_kernel((theta - theta_anc) / eta, dphi, dr, out)
    return out


def rebel_losses(theta, theta_anc, eta, dphi, dr) -> np.ndarray:
    """Per-atom REBEL losses l_j = e_j^2."""
    return rebel_residuals(theta, theta_anc, eta, dphi, dr) ** 2


def rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w):
    """(sum w e^2, (2/eta) sum w e dphi, (2/eta^2) sum w dphi dphi^T) (docs/theory/rebel.md §4.1)."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    d = dphi.shape[1]
    grad = np.empty(d)
    gram = np.empty((d, d))
    value, _ = _rebel_vgh_kernel((theta - theta_anc) / eta, eta, dphi, dr, w, grad, gram)
    return value, 2.0 * grad / eta, 2.0 * gram / eta**2


def rebel_ols(theta_anc, eta, dphi, dr, w) -> np.ndarray:
    """REBEL closed form (docs/theory/rebel.md §4.1): theta_anc + eta (sum w dphi dphi^T)^+ sum w dphi dr~.

    Noiseless and realizable with a full-rank design this is theta_anc + eta w* exactly.
    """
    _, theta_anc, eta, dphi, dr, w = _validated(np.zeros(np.shape(dphi)[1]), theta_anc, eta, dphi, dr, w)
    gram = (dphi * w[:, None]).T @ dphi
    return theta_anc + eta * (np.linalg.pinv(gram, hermitian=True) @ (dphi.T @ (w * dr)))


def rebel_fixed_point(theta_anc, eta, w_star) -> np.ndarray:
    """theta_anc + eta w*: the population REBEL minimiser for a realizable reward (docs/theory/rebel.md §4.1); with
    anchor = ref it is the KL-regularised optimum at coefficient 1/eta (docs/theory/rebel.md §4.1, identity 4)."""
    return np.asarray(theta_anc, dtype=np.float64) + eta * np.asarray(w_star, dtype=np.float64)


# ---------------------------------------------------------------- Wasserstein (docs/theory/rebel.md §4.3)

def w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius):
    """Square-root regression rms_w(e) + radius ||theta - theta_anc|| / eta, its gradient and Hessian.

    Its square is the exact W2 worst case sup_{W2 <= radius} E_Q e^2 (docs/theory/dro.md §2.3, docs/theory/rebel.md §4.3), so both have the
    same minimiser. Gradient: sum w e dphi / (eta rms) + radius v/(eta ||v||), v = theta - theta_anc;
    Hessian: (sum w dphi dphi^T / eta^2 - g_r g_r^T)/rms + radius (I - v v^T/||v||^2)/(eta ||v||).
    Not differentiable at v = 0 (the norm term) or at rms = 0; the smooth parts are returned there.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    radius = check_float("radius", radius, 0.0)
    d = dphi.shape[1]
    v = theta - theta_anc
    grad = np.empty(d)
    gram = np.empty((d, d))
    sq, mass = _rebel_vgh_kernel(v / eta, eta, dphi, dr, w, grad, gram)
    rms = np.sqrt(sq / mass)
    hess = np.zeros((d, d))
    if rms > 0:
        g_r = grad / (mass * eta * rms)
        hess = (gram / (mass * eta**2) - np.outer(g_r, g_r)) / rms
    else:
        g_r = np.zeros(d)
    nv = float(np.linalg.norm(v))
    value = rms + radius * nv / eta
    if nv > 0 and radius > 0:
        vh = v / nv
        g_r = g_r + radius * vh / eta
        hess = hess + radius * (np.eye(d) - np.outer(vh, vh)) / (eta * nv)
    return float(value), g_r, hess


def w2_rebel_threshold(dphi, dr, w) -> float:
    """||E_w[dr dphi]|| / rms_w(dr): theta_anc is the exact W2-REBEL minimiser iff radius >= this
    (docs/theory/rebel.md §4.3; the subgradient condition at u = 0)."""
    dphi = check_array("dphi", dphi, ndim=2)
    dr = check_array("dr", dr, shape=(dphi.shape[0],))
    w = check_weights("w", w, dphi.shape[0])
    mass = w.sum()
    rms = np.sqrt(w @ dr**2 / mass)
    return float(np.linalg.norm(dphi.T @ (w * dr)) / mass / rms)


def w2_rebel_surrogate_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, rho0):
    """The code's gradient-norm surrogate F_W = E e^2 + 2 rho0 ||u|| rms(e) (docs/theory/rebel.md §4.3, switch
    ``w.objective``) with gradient and Hessian in theta: the toolbox's margin surrogate in g = u,
    chained through u = (theta - theta_anc)/eta. Not differentiable at u = 0."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    rho0 = check_float("rho0", rho0, 0.0)
    mass = w.sum()
    value, grad, hess = w2_surrogate_value_grad_hess((theta - theta_anc) / eta, dphi, dr, w / mass,
                                                    rho0, loss="squared")
    return mass * value, mass * grad / eta, mass * hess / eta**2


# ---------------------------------------------------------------- f-divergences (docs/theory/rebel.md §4.4, §4.5)

def _loss_parts(theta, theta_anc, eta, dphi, dr):
    e = np.empty(dphi.shape[0])
    _residuals_kernel((theta - theta_anc) / eta, dphi, dr, e)
    grads = (2.0 / eta) * e[:, None] * dphi
    scale = 2.0 / eta**2

    def hess_sum(q):
        return scale * ((dphi * q[:, None]).T @ dphi)

    return e * e, grads, hess_sum


def _normalized(w):
    mass = w.sum()
    if not mass > 0:
        raise ValueError("w (atom weights) must have a positive sum")
    return w / mass


def f_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, divergence: str, radius):
    """sup_{D(q||w) <= radius} sum q e^2 for divergence "kl" (constrained) or "chi2" (exact dual,
    c = sqrt(1 + 2 radius)), its Danskin gradient and exact Hessian (docs/theory/rebel.md §4.4, §4.5; toolbox docs/theory/dro.md §2).
    ``w`` is normalised to a law. Returns (value, grad, hess, q)."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, hess_sum = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return worst_case_value_grad_hess(losses, grads, hess_sum, _normalized(w), divergence, radius)


def kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, tau):
    """tau log E_w e^{e^2/tau} with gradient sum_j softmax_j (2/eta) e_j dphi_j (detached weights) and
    exact Hessian (docs/theory/rebel.md §4.4, fixed tau as in ``KLREBELOptimizer``). Returns (value, grad, hess, q)."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, hess_sum = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return kl_penalized_value_grad_hess(losses, grads, hess_sum, _normalized(w), tau)


def kl_rebel_non_detached_gradient(theta, theta_anc, eta, dphi, dr, w, tau) -> np.ndarray:
    """The reference code's KL-REBEL gradient: autograd of sum_j P_j l_j with P = softmax_w(l/tau) not
    detached, sum_j P_j grad l_j (1 + (l_j - <P, l>)/tau) (docs/theory/dro.md §2.4, switch ``dro.weights``)."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, _ = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return non_detached_softmax_gradient(losses, grads, _normalized(w), tau)


def chi2_rebel_code_loss_gradient(theta, theta_anc, eta, dphi, dr, w, rho_chi):
    """``Chi2REBELOptimizer`` on REBEL losses: (sum_j w_j e_j^2 with the code's weights, its gradient)."""
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, _ = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return chi2_code_loss_gradient(losses, grads, _normalized(w), rho_chi)


def check_anchor(anchor: str) -> str:
    """Validate the regression anchor switch ``rebel.anchor`` (prev | ref)."""
    return check_choice("anchor", anchor, ANCHORS)
