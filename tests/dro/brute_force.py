"""Independent primal solves of the DRO problems for the unit tests (scipy SLSQP over the simplex)."""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def primal_worst_case(l, p, radius, divergence):
    """max <q, l> s.t. q >= 0, sum q = 1, D(q||p) <= radius, by SLSQP from several starts."""
    l = np.asarray(l, float)
    p = np.asarray(p, float)

    def div(q):
        if divergence == "kl":
            qq = np.maximum(q, 1e-300)
            return float(np.sum(np.where(q > 0, q * np.log(qq / p), 0.0)))
        return float(0.5 * np.sum((q - p) ** 2 / p))

    cons = [{"type": "eq", "fun": lambda q: np.sum(q) - 1.0},
            {"type": "ineq", "fun": lambda q: radius - div(q)}]
    best = -np.inf
    for start in (p, 0.5 * p + 0.5 * np.exp(l - l.max()) * p / np.sum(np.exp(l - l.max()) * p)):
        res = minimize(lambda q: -q @ l, start, jac=lambda q: -l, method="SLSQP",
                       bounds=[(0.0, 1.0)] * l.size, constraints=cons,
                       options={"ftol": 1e-15, "maxiter": 2000})
        q = np.maximum(res.x, 0)
        q /= q.sum()
        if div(q) <= radius * (1 + 1e-7) + 1e-12:
            best = max(best, float(q @ l))
    return best


def brute_force_w2_margin(m, s, p, radius, ell, split=False):
    """sup of sum_j p_j ell_j(m_j + t_j) over margin shifts with sum p t^2 <= (s radius)^2, by SLSQP
    from several starts.  With ``split`` every atom may split into two pieces (w, t1), (1 - w, t2):
    the Kantorovich worst case, needed when the inner problems are nonconcave."""
    m = np.asarray(m, float)
    n = m.size
    kappa = (s * radius) ** 2
    best = -np.inf
    rng = np.random.default_rng(0)
    if split:
        def unpack(v):
            return v[:n], v[n:2 * n], v[2 * n:]
        obj = lambda v: -np.sum(p * (unpack(v)[2] * ell(m + unpack(v)[0])
                                     + (1 - unpack(v)[2]) * ell(m + unpack(v)[1])))
        cost = lambda v: p @ (unpack(v)[2] * unpack(v)[0] ** 2 + (1 - unpack(v)[2]) * unpack(v)[1] ** 2)
        bounds = [(None, None)] * (2 * n) + [(0.0, 1.0)] * n
    else:
        obj = lambda t: -np.sum(p * ell(m + t))
        cost = lambda t: p @ t**2
        bounds = None
    for k in range(12 if split else 6):
        t0 = rng.standard_normal(n) * np.sqrt(kappa) * 2
        v0 = np.concatenate([t0, -t0, rng.uniform(size=n)]) if split else t0
        v0 = v0 * min(1.0, np.sqrt(kappa / max(cost(v0), 1e-300)))
        res = minimize(obj, v0, method="SLSQP", bounds=bounds,
                       constraints=[{"type": "ineq", "fun": lambda v: kappa - cost(v)}],
                       options={"ftol": 1e-15, "maxiter": 3000})
        if cost(res.x) <= kappa * (1 + 1e-9):
            best = max(best, -res.fun)
    return best
