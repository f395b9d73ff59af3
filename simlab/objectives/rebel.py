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

Every per-atom quantity above depends on (dphi, dr) only through e^2, e dphi and dphi dphi^T, all
invariant under the sign flip (dphi, dr) -> (-dphi, -dr) (which maps e -> -e; the ordered pair (a, b)
with noises (xi_a, xi_b) and (b, a) with (xi_b, xi_a) are such a pair). :func:`collapse_atoms` merges
atoms that are equal up to that flip and sums their weights: every objective of this module, and each
worst case over a KL / chi^2 ball (whose worst-case weights are a function of the loss and the base
weight of an atom), takes the same value on the collapsed rows, so the minimisers agree exactly (up to
the summation order of round-off).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab._jit import kernel
from simlab.dro import (kl_penalized_value_grad_hess, non_detached_softmax_gradient, w2_surrogate_value_grad_hess,
                        worst_case_value_grad_hess, worst_case_value_grad_hess_kernel)
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
    """Per-atom residuals e_j = (theta - theta_anc)^T dphi_j / eta - dr_j (docs/theory/rebel.md §4.1).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).

    Returns
    -------
    ndarray of float64, shape (A,)
        The residuals e_j.
    """
    theta, theta_anc, eta, dphi, dr, _ = _validated(theta, theta_anc, eta, dphi, dr)
    out = np.empty(dphi.shape[0])
    _residuals_kernel((theta - theta_anc) / eta, dphi, dr, out)
    return out


def rebel_losses(theta, theta_anc, eta, dphi, dr) -> np.ndarray:
    """Per-atom REBEL losses l_j = e_j^2.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).

    Returns
    -------
    ndarray of float64, shape (A,)
        l_j = e_j^2 with e_j of :func:`rebel_residuals` (docs/theory/rebel.md §4.1).
    """
    return rebel_residuals(theta, theta_anc, eta, dphi, dr) ** 2


def rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w):
    """(sum w e^2, (2/eta) sum w e dphi, (2/eta^2) sum w dphi dphi^T) (docs/theory/rebel.md §4.1).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0; p0 for the population, N/n for a sample).

    Returns
    -------
    value : float
        sum_j w_j e_j^2.
    grad : ndarray of float64, shape (d,)
        (2/eta) sum_j w_j e_j dphi_j.
    hess : ndarray of float64, shape (d, d)
        (2/eta^2) sum_j w_j dphi_j dphi_j^T (constant in theta).
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    d = dphi.shape[1]
    grad = np.empty(d)
    gram = np.empty((d, d))
    value, _ = _rebel_vgh_kernel((theta - theta_anc) / eta, eta, dphi, dr, w, grad, gram)
    return value, 2.0 * grad / eta, 2.0 * gram / eta**2


def rebel_ols(theta_anc, eta, dphi, dr, w, check_input: bool = True) -> np.ndarray:
    """REBEL closed form (docs/theory/rebel.md §4.1): theta_anc + eta (sum w dphi dphi^T)^+ sum w dphi dr~.

    Noiseless and realizable with a full-rank design this is theta_anc + eta w* exactly.

    Parameters
    ----------
    theta_anc : array_like of float, shape (d,)
        Regression anchor.
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0; p0 for the population, N/n for a sample).
    check_input : bool, default True
        Validate the inputs. ``False`` is for callers that validated them (float64 C-contiguous arrays of
        matching shapes, eta a float > 0; :func:`simlab.solvers.rebel.fit_rebel`): the same bits.

    Returns
    -------
    ndarray of float64, shape (d,)
        The minimiser of sum_j w_j e_j^2 (the minimum-norm one in u, by the pseudo-inverse, when the
        weighted design is rank deficient).
    """
    if check_input:
        _, theta_anc, eta, dphi, dr, w = _validated(np.zeros(np.shape(dphi)[1]), theta_anc, eta, dphi, dr, w)
    gram = (dphi * w[:, None]).T @ dphi
    return theta_anc + eta * (np.linalg.pinv(gram, hermitian=True) @ (dphi.T @ (w * dr)))


def rebel_fixed_point(theta_anc, eta, w_star) -> np.ndarray:
    """theta_anc + eta w*: the population REBEL minimiser for a realizable reward (docs/theory/rebel.md §4.1); with
    anchor = ref it is the KL-regularised optimum at coefficient 1/eta (docs/theory/rebel.md §4.1, identity 4).

    Parameters
    ----------
    theta_anc : array_like of float, shape (d,)
        Regression anchor.
    eta : float
        Step size.
    w_star : array_like of float, shape (d,)
        Reward parameter w* of the realizable reward r = w*^T phi.

    Returns
    -------
    ndarray of float64, shape (d,)
        theta_anc + eta w*.
    """
    return np.asarray(theta_anc, dtype=np.float64) + eta * np.asarray(w_star, dtype=np.float64)


# ---------------------------------------------------------------- Wasserstein (docs/theory/rebel.md §4.3)

def w2_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, radius):
    """Square-root regression rms_w(e) + radius ||theta - theta_anc|| / eta, its gradient and Hessian.

    Its square is the exact W2 worst case sup_{W2 <= radius} E_Q e^2 (docs/theory/dro.md §2.3, docs/theory/rebel.md §4.3), so both have the
    same minimiser. Gradient: sum w e dphi / (eta rms) + radius v/(eta ||v||), v = theta - theta_anc;
    Hessian: (sum w dphi dphi^T / eta^2 - g_r g_r^T)/rms + radius (I - v v^T/||v||^2)/(eta ||v||).
    Not differentiable at v = 0 (the norm term) or at rms = 0; the smooth parts are returned there.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0; p0 for the population, N/n for a sample).
    radius : float
        Wasserstein radius eps (>= 0).

    Returns
    -------
    value : float
        rms_w(e) + radius ||theta - theta_anc|| / eta, rms_w(e) = sqrt(sum_j w_j e_j^2 / sum_j w_j).
    grad : ndarray of float64, shape (d,)
        Its gradient in theta (above).
    hess : ndarray of float64, shape (d, d)
        Its Hessian in theta (above).
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
    (docs/theory/rebel.md §4.3; the subgradient condition at u = 0).

    Parameters
    ----------
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum).

    Returns
    -------
    float
        ||sum_j w_j dr_j dphi_j|| / sum_j w_j / rms_w(dr), rms_w(dr) = sqrt(sum_j w_j dr_j^2 / sum_j w_j).
    """
    dphi = check_array("dphi", dphi, ndim=2)
    dr = check_array("dr", dr, shape=(dphi.shape[0],))
    w = check_weights("w", w, dphi.shape[0])
    mass = w.sum()
    rms = np.sqrt(w @ dr**2 / mass)
    return float(np.linalg.norm(dphi.T @ (w * dr)) / mass / rms)


def w2_rebel_surrogate_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, rho0):
    """The code's gradient-norm surrogate F_W = E e^2 + 2 rho0 ||u|| rms(e) (docs/theory/rebel.md §4.3, switch
    ``w.objective``) with gradient and Hessian in theta: the toolbox's margin surrogate in g = u,
    chained through u = (theta - theta_anc)/eta. Not differentiable at u = 0.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0; p0 for the population, N/n for a sample).
    rho0 : float
        Surrogate radius (>= 0).

    Returns
    -------
    value : float
        (sum_j w_j) F_W with F_W = E e^2 + 2 rho0 ||u|| rms(e) under the law w / sum w.
    grad : ndarray of float64, shape (d,)
        Its gradient in theta (1/eta times the gradient in u).
    hess : ndarray of float64, shape (d, d)
        Its Hessian in theta (1/eta^2 times the Hessian in u).
    """
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
    ``w`` is normalised to a law. Returns (value, grad, hess, q).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum), normalised to a law.
    divergence : {"kl", "chi2"}
        The ball's divergence.
    radius : float
        The ball's radius eps (>= 0).

    Returns
    -------
    value : float
        The robust value.
    grad : ndarray of float64, shape (d,)
        Its Danskin gradient sum_j q_j (2/eta) e_j dphi_j.
    hess : ndarray of float64, shape (d, d)
        Its exact Hessian in theta (docs/theory/dro.md §2.4).
    q : ndarray of float64, shape (A,)
        The worst-case weights.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, hess_sum = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return worst_case_value_grad_hess(losses, grads, hess_sum, _normalized(w), divergence, radius)


def kl_rebel_penalized_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, tau):
    """tau log E_w e^{e^2/tau} with gradient sum_j softmax_j (2/eta) e_j dphi_j (detached weights) and
    exact Hessian (docs/theory/rebel.md §4.4, fixed tau as in ``KLREBELOptimizer``). Returns (value, grad, hess, q).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum), normalised to a law.
    tau : float
        Temperature (> 0).

    Returns
    -------
    value : float
        tau log sum_j w_j e^{e_j^2/tau}.
    grad : ndarray of float64, shape (d,)
        sum_j q_j (2/eta) e_j dphi_j, q = softmax_w(e^2/tau).
    hess : ndarray of float64, shape (d, d)
        sum_j q_j (2/eta^2) dphi_j dphi_j^T + Cov_q(grad l)/tau.
    q : ndarray of float64, shape (A,)
        The softmax weights q.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, hess_sum = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return kl_penalized_value_grad_hess(losses, grads, hess_sum, _normalized(w), tau)


def kl_rebel_non_detached_gradient(theta, theta_anc, eta, dphi, dr, w, tau) -> np.ndarray:
    """The reference code's KL-REBEL gradient: autograd of sum_j P_j l_j with P = softmax_w(l/tau) not
    detached, sum_j P_j grad l_j (1 + (l_j - <P, l>)/tau) (docs/theory/dro.md §2.4, switch ``dro.weights``).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum), normalised to a law.
    tau : float
        Temperature (> 0).

    Returns
    -------
    ndarray of float64, shape (d,)
        sum_j P_j (2/eta) e_j dphi_j (1 + (l_j - <P, l>)/tau), P = softmax_w(l/tau), l_j = e_j^2.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, _ = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return non_detached_softmax_gradient(losses, grads, _normalized(w), tau)


def chi2_rebel_code_loss_gradient(theta, theta_anc, eta, dphi, dr, w, rho_chi):
    """``Chi2REBELOptimizer`` on REBEL losses: (sum_j w_j e_j^2 with the code's weights, its gradient).

    Formulas in the module docstring and docs/theory/rebel.md §4.5 (via
    :func:`simlab.dro.chi2_code.chi2_code_loss_gradient`).

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum), normalised to a law.
    rho_chi : float
        The code's chi^2 radius (>= 0).

    Returns
    -------
    L : float
        sum_j w'_j e_j^2 with the code's weights w'_j = w_j (l_j - zeta*)_+ / lambda*.
    grad : ndarray of float64, shape (d,)
        Its autograd gradient with w' and lambda* not detached.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    losses, grads, _ = _loss_parts(theta, theta_anc, eta, dphi, dr)
    return chi2_code_loss_gradient(losses, grads, _normalized(w), rho_chi)


@dataclass(frozen=True)
class CollapsedAtoms:
    """Atoms merged up to the sign flip (dphi, dr) -> (-dphi, -dr) (see the module docstring).

    ``dphi`` (R, d) and ``dr`` (R,) are the distinct rows in a canonical orientation (the first nonzero
    entry of (dphi, dr) positive); ``index`` (A,) maps each original atom to its row."""

    index: np.ndarray
    dphi: np.ndarray
    dr: np.ndarray

    @property
    def size(self) -> int:
        """Number of distinct rows R."""
        return self.dr.size

    def weights(self, w) -> np.ndarray:
        """Row weights: the sum of the weights ``w`` (A,) of the atoms that map to each row.

        Parameters
        ----------
        w : array_like of float, shape (A,)
            Weights of the original atoms (>= 0).

        Returns
        -------
        ndarray of float64, shape (R,)
            sum of w_j over the atoms j with ``index[j] == r``, for each row r.
        """
        w = check_weights("w", w, self.index.size)
        return np.bincount(self.index, weights=w, minlength=self.size)


def collapse_atoms(dphi, dr) -> CollapsedAtoms:
    """Merge atoms that are equal up to the sign flip (dphi, dr) -> (-dphi, -dr): an exact
    reformulation of every weighted REBEL / DRO-REBEL objective over the atoms (module docstring), so a
    fit costs O(R) instead of O(A) (the online sampler's A = 4608 atoms at n_x = 32, 6 responses,
    Rademacher noise collapse to R = 1442: unordered pairs times the 3 values of xi_a - xi_b, plus the
    a = b rows).

    Parameters
    ----------
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).

    Returns
    -------
    simlab.objectives.rebel.CollapsedAtoms
        The R distinct rows in canonical orientation and the map ``index`` (A,) from atoms to rows.
    """
    dphi = check_array("dphi", dphi, ndim=2)
    dr = check_array("dr", dr, shape=(dphi.shape[0],))
    rows = np.column_stack([dphi, dr])
    nonzero = rows != 0.0
    first = np.argmax(nonzero, axis=1)
    lead = rows[np.arange(rows.shape[0]), first]
    rows = np.where((lead < 0.0)[:, None], -rows, rows) + 0.0  # + 0.0: no negative zeros
    unique, index = np.unique(rows, axis=0, return_inverse=True)
    return CollapsedAtoms(index=index.reshape(-1).astype(np.int64), dphi=np.ascontiguousarray(unique[:, :-1]),
                          dr=np.ascontiguousarray(unique[:, -1]))


# ---------------------------------------------------------------- one kernel for the Newton fits

ROBUST_OBJECTIVES = ("w2", "kl", "chi2")


@kernel
def robust_rebel_vgh_kernel(code: int, u: np.ndarray, eta: float, dphi: np.ndarray, dr: np.ndarray,
                            w: np.ndarray, radius: float, e: np.ndarray, q: np.ndarray, grad: np.ndarray,
                            hess: np.ndarray) -> float:
    """In-numba value, gradient and exact Hessian in theta of one DRO-REBEL objective over rows with
    weights ``w`` summing to 1 (no input checks; the Newton loop of
    :func:`simlab.solvers.rebel.fit_rebel` calls it after validating once). ``code`` indexes
    ROBUST_OBJECTIVES; u = (theta - theta_anc)/eta; e, q (R,) are work arrays (residuals, worst-case
    weights); writes grad (d,) and hess (d, d), returns the value.

    * w2 (code 0): :func:`w2_rebel_value_grad_hess` (the same sums, ``_rebel_vgh_kernel``).
    * kl / chi2 (codes 1, 2): :func:`f_rebel_value_grad_hess` on the REBEL losses l = e^2
      (grad l = (2/eta) e dphi, Hess l = (2/eta^2) dphi dphi^T): the value, Danskin gradient and exact
      Hessian of docs/theory/dro.md §2.4 from the toolbox kernel
      :func:`simlab.dro.worst_case_value_grad_hess_kernel` (the one home of those formulas), plus
      sum_j omega_j Hess l_j with the per-atom-Hessian weights omega it returns.

    Parameters
    ----------
    code : int
        Index into ``ROBUST_OBJECTIVES``: 0 = w2, 1 = kl, 2 = chi2.
    u : ndarray of float64, shape (d,)
        Scaled update (theta - theta_anc)/eta.
    eta : float
        Step size (> 0).
    dphi : ndarray of float64, shape (R, d)
        Feature differences of the rows.
    dr : ndarray of float64, shape (R,)
        Regression targets of the rows.
    w : ndarray of float64, shape (R,)
        Row weights summing to 1.
    radius : float
        Wasserstein radius (w2) or ball radius eps (kl, chi2), >= 0.
    e : ndarray of float64, shape (R,)
        Work array; overwritten with the residuals (kl, chi2).
    q : ndarray of float64, shape (R,)
        Work array; overwritten with the worst-case weights (kl, chi2).
    grad : ndarray of float64, shape (d,)
        Output: the gradient in theta.
    hess : ndarray of float64, shape (d, d)
        Output: the Hessian in theta.

    Returns
    -------
    float
        The objective's value: rms_w(e) + radius ||u|| (w2) or sup_{D(q||w) <= radius} sum_j q_j e_j^2
        (kl, chi2).
    """
    n, d = dphi.shape
    if code == 0:
        sq, mass = _rebel_vgh_kernel(u, eta, dphi, dr, w, grad, hess)
        rms = np.sqrt(sq / mass)
        nv = 0.0
        for k in range(d):
            nv += u[k] * u[k]
        nv = np.sqrt(nv) * eta
        if rms > 0.0:
            for k in range(d):
                grad[k] = grad[k] / (mass * eta * rms)
            for k in range(d):
                for m in range(d):
                    hess[k, m] = (hess[k, m] / (mass * eta**2) - grad[k] * grad[m]) / rms
        else:
            grad[:] = 0.0
            hess[:, :] = 0.0
        if nv > 0.0 and radius > 0.0:
            for k in range(d):
                vh = u[k] * eta / nv
                grad[k] += radius * vh / eta
                for m in range(d):
                    hess[k, m] += radius * ((1.0 if k == m else 0.0) - vh * u[m] * eta / nv) / (eta * nv)
        return rms + radius * nv / eta
    for j in range(n):
        h = 0.0
        for k in range(d):
            h += dphi[j, k] * u[k]
        e[j] = h - dr[j]
    l = e * e
    grads = np.empty((n, d))  # grad l_j = (2/eta) e_j dphi_j
    for j in range(n):
        g = 2.0 * e[j] / eta
        for k in range(d):
            grads[j, k] = g * dphi[j, k]
    omega = np.empty(n)
    # code - 1 indexes simlab.dro.DIVERGENCES ("kl", "chi2"); w is a law (mass 1.0)
    value = worst_case_value_grad_hess_kernel(l, grads, w, 1.0, code - 1, radius, q, grad, hess, omega)
    hs = 2.0 / eta**2  # Hess l_j = (2/eta^2) dphi_j dphi_j^T: add sum_j omega_j Hess l_j
    for j in range(n):
        if omega[j] == 0.0:
            continue
        s = omega[j] * hs
        for k in range(d):
            for m in range(k + 1):
                hess[k, m] += s * dphi[j, k] * dphi[j, m]
    for k in range(d):
        for m in range(k):
            hess[m, k] = hess[k, m]
    return value


def robust_rebel_value_grad_hess(theta, theta_anc, eta, dphi, dr, w, objective: str, radius):
    """(value, gradient, Hessian) of the W2 (square-root form), KL or chi^2 DRO-REBEL objective over atoms
    with weights ``w`` (normalised to a law) by :func:`robust_rebel_vgh_kernel`: the values of
    :func:`w2_rebel_value_grad_hess` and :func:`f_rebel_value_grad_hess` (docs/theory/rebel.md §4.3-§4.5)
    in one numba pass.

    Parameters
    ----------
    theta : array_like of float, shape (d,)
        Policy parameter.
    theta_anc : array_like of float, shape (d,)
        Regression anchor (theta_t for ``prev``, theta_ref for ``ref``).
    eta : float
        Step size (> 0); the scaled update is u = (theta - theta_anc)/eta.
    dphi : array_like of float, shape (A, d)
        Feature differences of the atoms.
    dr : array_like of float, shape (A,)
        Regression targets dr~ (reward differences, possibly noisy).
    w : array_like of float, shape (A,)
        Atom weights (>= 0, positive sum), normalised to a law.
    objective : {"w2", "kl", "chi2"}
        The DRO-REBEL objective (``ROBUST_OBJECTIVES``).
    radius : float
        Wasserstein radius (w2) or ball radius eps (kl, chi2), >= 0.

    Returns
    -------
    value : float
        rms_w(e) + radius ||theta - theta_anc|| / eta (w2) or sup_{D(q||w) <= radius} sum_j q_j e_j^2
        (kl, chi2).
    grad : ndarray of float64, shape (d,)
        Its gradient in theta.
    hess : ndarray of float64, shape (d, d)
        Its exact Hessian in theta.
    """
    theta, theta_anc, eta, dphi, dr, w = _validated(theta, theta_anc, eta, dphi, dr, w)
    check_choice("objective", objective, ROBUST_OBJECTIVES)
    radius = check_float("radius", radius, 0.0)
    n, d = dphi.shape
    grad, hess = np.empty(d), np.empty((d, d))
    value = robust_rebel_vgh_kernel(ROBUST_OBJECTIVES.index(objective), (theta - theta_anc) / eta, eta, dphi,
                                    dr, _normalized(w), radius, np.empty(n), np.empty(n), grad, hess)
    return float(value), grad, hess


def check_anchor(anchor: str) -> str:
    """Validate the regression anchor switch ``rebel.anchor`` (prev | ref).

    Parameters
    ----------
    anchor : {"prev", "ref"}
        The anchor switch value.

    Returns
    -------
    str
        ``anchor`` unchanged (``ValueError`` naming ``anchor`` if it is not in ``ANCHORS``).
    """
    return check_choice("anchor", anchor, ANCHORS)
