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
