"""Plain NumPy/SciPy reference implementations of the DRO duals (for benchmarks only, docs/theory/dro.md §2).

Same mathematics as ``simlab.dro``, written the obvious vectorised way: the KL dual by scipy
``brentq`` on the radius equation in log(1/tau), the chi^2 dual by the sort-based solve.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import brentq


def kl_worst_case_reference(l: np.ndarray, p: np.ndarray, radius: float) -> tuple[float, np.ndarray]:
    """sup_{KL(q||p) <= radius} <q, l> (non-saturated case) by brentq on K(alpha) = radius."""
    c = l - l.max()

    def excess(log_alpha):
        a = np.exp(log_alpha)
        w = p * np.exp(a * c)
        z = w.sum()
        return a * (w @ c) / z - np.log(z) - radius

    log_alpha = brentq(excess, -30.0, 30.0, xtol=1e-14, rtol=1e-15)
    a = np.exp(log_alpha)
    w = p * np.exp(a * c)
    z = w.sum()
    return float(l.max() + (radius + np.log(z)) / a), w / z


def chi2_worst_case_reference(l: np.ndarray, p: np.ndarray, radius: float) -> tuple[float, np.ndarray]:
    """sup_{D_chi(q||p) <= radius} <q, l> (non-saturated case) by the sort-based exact solve."""
    c2 = 1.0 + 2.0 * radius
    order = np.argsort(-l)
    ls, ps = l[order], p[order]
    mass = np.cumsum(ps)
    m = np.cumsum(ps * ls) / mass
    v = np.maximum(np.cumsum(ps * ls * ls) / mass - m * m, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        zeta = np.where(c2 * mass > 1.0, m - np.sqrt(v / (c2 * mass - 1.0)), np.nan)
    nxt = np.append(ls[1:], -np.inf)
    k = int(np.argmax((c2 * mass > 1.0) & (nxt <= zeta) & (zeta <= ls)))
    z = zeta[k]
    e = np.maximum(l - z, 0.0)
    q = p * e / (p @ e)
    return float(z + np.sqrt(c2) * np.sqrt(p @ e**2)), q


def w2_logistic_reference(m: np.ndarray, y: np.ndarray, p: np.ndarray, s: float,
                          radius: float) -> tuple[float, np.ndarray]:
    """Exact W_2 value of the logistic margin loss (concave inner regime, mu >= 1/8) by brentq on
    log mu of sum p t(mu)^2 = (s radius)^2, each inner root by vectorised bisection.  Returns
    (value, t)."""
    kappa = (s * radius) ** 2

    def inner(mu):
        lo = np.where(1 / (1 + np.exp(-m)) - y < 0, -y / (2 * mu), 0.0)
        hi = np.where(1 / (1 + np.exp(-m)) - y < 0, 0.0, (1 - y) / (2 * mu))
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            r = 1 / (1 + np.exp(-(m + mid))) - y - 2 * mu * mid
            lo, hi = np.where(r > 0, mid, lo), np.where(r > 0, hi, mid)
        return 0.5 * (lo + hi)

    log_mu = brentq(lambda lm: np.log(p @ inner(np.exp(lm)) ** 2) - np.log(kappa),
                    np.log(0.125), np.log(1e6), xtol=1e-13)
    mu = np.exp(log_mu)
    t = inner(mu)
    h = m + t
    loss = np.logaddexp(0, h) - y * h
    return float(mu * kappa + p @ (loss - mu * t * t)), t
