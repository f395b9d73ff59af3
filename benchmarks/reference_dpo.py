"""Plain NumPy/SciPy reference implementations of the foundation's hot paths (benchmarks only)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit


def sample_pairs_numpy(p0: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n atom indices by numpy's inverse-CDF ``Generator.choice``."""
    return rng.choice(p0.size, size=n, p=p0)


def dpo_value_grad_numpy(theta, theta_ref, beta, dphi, y, w):
    h = beta * dphi @ (theta - theta_ref)
    value = np.sum(w * (np.logaddexp(0.0, h) - y * h))
    grad = beta * dphi.T @ (w * (expit(h) - y))
    return value, grad


def fit_dpo_lbfgs(dphi, y, w, theta_ref, beta):
    """SciPy L-BFGS-B on the same weighted atoms (gtol 1e-10)."""
    res = minimize(dpo_value_grad_numpy, theta_ref.copy(), args=(theta_ref, beta, dphi, y, w), jac=True,
                   method="L-BFGS-B", options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000})
    return res.x


def fit_dpo_lbfgs_pairs(dphi_pairs, y_pairs, theta_ref, beta):
    """SciPy L-BFGS-B on the n sampled pairs themselves (cost grows with n)."""
    w = np.full(y_pairs.size, 1.0 / y_pairs.size)
    return fit_dpo_lbfgs(dphi_pairs, y_pairs, w, theta_ref, beta)


def sgd_dpo_numpy(dphi, y, p0, theta_ref, beta, T, step, rng):
    """Per-step Python SGD with inverse-sqrt steps (the same update as simlab.solvers.dpo.sgd_dpo)."""
    theta = theta_ref.copy()
    idx = rng.choice(p0.size, size=T, p=p0)
    for t in range(T):
        j = idx[t]
        h = beta * dphi[j] @ (theta - theta_ref)
        theta -= step / np.sqrt(t + 1.0) * beta * (expit(h) - y[j]) * dphi[j]
    return theta


def collapse_pairs_numpy(x, a, b, y, dphi, w):
    """Weighted label atoms onto unordered pairs with soft labels, by ``np.unique`` (the same rows, in
    the same order, as simlab.solvers.dpo.soft_label_rows); (dphi, ybar, W, const)."""
    keep = w > 0
    x, a, b, y, wk, rows = x[keep], a[keep], b[keep], y[keep], w[keep], np.flatnonzero(keep)
    diag = a == b
    const = float(wk[diag].sum() * np.log(2.0))
    x, a, b, y, wk, rows = x[~diag], a[~diag], b[~diag], y[~diag], wk[~diag], rows[~diag]
    flip = a > b
    lo, hi = np.where(flip, b, a), np.where(flip, a, b)
    n_y = int(max(a.max(), b.max())) + 1
    uniq, first, inverse = np.unique((x * n_y + lo) * n_y + hi, return_index=True, return_inverse=True)
    W = np.bincount(inverse, weights=wk, minlength=uniq.size)
    Y = np.bincount(inverse, weights=np.where(flip, 1.0 - y, y) * wk, minlength=uniq.size) / W
    return dphi[rows[first]] * np.where(flip[first], -1.0, 1.0)[:, None], Y, W, const


def fit_dpo_newton_numpy(dphi, y, w, theta_ref, beta, gtol=1e-10, max_iter=200):
    """Vectorised NumPy Newton with Armijo backtracking (constant 1e-4) on weighted (collapsed) atoms:
    the same algorithm as simlab.solvers.dpo.fit_dpo_exact, without its input checks."""
    def vgh(theta):
        h = beta * (dphi @ (theta - theta_ref))
        s = expit(h)
        value = np.sum(w * (np.logaddexp(0.0, h) - y * h))
        grad = beta * (dphi.T @ (w * (s - y)))
        hess = (dphi.T * (w * beta * beta * s * (1.0 - s))) @ dphi
        return value, grad, hess

    theta = np.array(theta_ref, dtype=float)
    f, g, H = vgh(theta)
    for _ in range(max_iter):
        if np.linalg.norm(g) <= gtol:
            return theta
        step = -np.linalg.solve(H, g)
        t, slope = 1.0, g @ step
        while True:
            f_new, g_new, H_new = vgh(theta + t * step)
            if f_new <= f + 1e-4 * t * slope or t < 1e-12:
                break
            t *= 0.5
        theta, f, g, H = theta + t * step, f_new, g_new, H_new
    raise RuntimeError("Newton did not converge")
