"""Plain NumPy reference of one stochastic Algorithm A run for oracle-robust SAIL (docs/theory/sail.md §5.5).

Same computation as ``simlab.solvers.sail_algorithms.run_algorithm("A", ..., batch=1)``, written
step by step with NumPy arrays and a Python loop: each step draws x ~ p_x, a, b ~ pi_theta(.|x) by
inverse CDF and y ~ Bern(P_obs) from ``rng.random()`` in the same order as the kernel (so the two
produce the same trajectory from the same seed), forms G_t without the kink slope, and solves the
one-row prox-linear step min_theta <G, theta> + c+[h]_+ + c-[-h]_+ + ||theta - theta_t||^2/(2 alpha)
over the ball exactly: the 1-D dual s in [-c-, c+] is maximised in closed form, and the ball
multiplier mu is found by bisection. Used only by ``benchmarks/bench_sail.py``; never imported by simlab.
"""
from __future__ import annotations

import numpy as np


def _draw(cdf: np.ndarray, u: float) -> int:
    """Smallest i with u < cdf[i]; the last index absorbs round-off (as in the kernel)."""
    return int(np.searchsorted(cdf[:-1], u, side="right"))


def _one_row_step(g, row, off, c_minus, c_plus, kappa, zbar):
    """argmin_z g.z + c+[row.z - off]_+ + c-[off - row.z]_+ + kappa/2 ||z - zbar||^2."""
    a2 = float(row @ row)
    z0 = zbar - g / kappa
    if a2 == 0.0:
        return z0
    s = np.clip((row @ z0 - off) * kappa / a2, -c_minus, c_plus)
    return z0 - row * s / kappa


def algorithm_a_reference(theta0, phi, p_x, theta_ref, beta, P, rho, radius, step, T, rng, record_at):
    """Iterates of Algorithm A (N_b = 1) at ``record_at``, shape (len(record_at), d)."""
    theta = np.array(theta0, dtype=float)
    cdf_x = np.cumsum(p_x)
    kappa = 1.0 / step
    out = np.empty((len(record_at), theta.size))
    r = 0
    for t in range(T + 1):
        while r < len(record_at) and record_at[r] == t:
            out[r] = theta
            r += 1
        if t == T:
            break
        x = _draw(cdf_x, rng.random())
        logits = phi[x] @ theta
        pi = np.exp(logits - logits.max())
        cdf = np.cumsum(pi) / pi.sum()
        pi = np.diff(cdf, prepend=0.0)
        a = _draw(cdf, rng.random())
        b = _draw(cdf, rng.random())
        row = beta * (phi[x, a] - phi[x, b])
        h = float(row @ (theta - theta_ref))
        p = P[x, a, b]
        y = 1.0 if rng.random() < p else 0.0
        c_plus, c_minus = min(rho, p), min(rho, 1.0 - p)
        pen = c_plus * max(h, 0.0) + c_minus * max(-h, 0.0)
        loss_y = np.logaddexp(0.0, -(2.0 * y - 1.0) * h)
        score_sum = phi[x, a] + phi[x, b] - 2.0 * (pi @ phi[x])
        g = (1.0 / (1.0 + np.exp(-h)) - y) * row + (loss_y + pen) * score_sum
        off = float(row @ theta_ref)
        z = _one_row_step(g, row, off, c_minus, c_plus, kappa, theta)
        if np.linalg.norm(z - theta_ref) > radius:
            lo, hi = 0.0, (kappa * np.linalg.norm(theta - theta_ref) + np.linalg.norm(g)
                           + np.linalg.norm(row) * max(c_plus, c_minus)) / radius * 1.01 + 1e-12
            for _ in range(200):
                mu = 0.5 * (lo + hi)
                if mu <= lo or mu >= hi:
                    break
                zb = (kappa * theta + mu * theta_ref) / (kappa + mu)
                if np.linalg.norm(_one_row_step(g, row, off, c_minus, c_plus, kappa + mu, zb) - theta_ref) > radius:
                    lo = mu
                else:
                    hi = mu
            z = _one_row_step(g, row, off, c_minus, c_plus, kappa + hi, (kappa * theta + hi * theta_ref) / (kappa + hi))
        theta = z
    return out
