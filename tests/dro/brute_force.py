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


def _logistic_inner_sup(m, y, mu, grid=2001):
    """sup_t softplus(m + t) - y (m + t) - mu t^2 for one atom: the maximiser lies in
    [-y/(2 mu), (1 - y)/(2 mu)] (where the derivative changes sign); a dense grid there, then a bounded
    Brent search on the best grid cell and its neighbours (plain NumPy/SciPy, no cancellation-free
    rewriting: the value itself has none)."""
    from scipy.optimize import minimize_scalar

    lo, hi = -y / (2.0 * mu), (1.0 - y) / (2.0 * mu)
    f = lambda t: np.logaddexp(0.0, m + t) - y * (m + t) - mu * t * t  # noqa: E731
    if hi - lo <= 0.0:
        return float(f(0.0))
    ts = np.linspace(lo, hi, grid)
    vals = f(ts)
    k = int(np.argmax(vals))
    a, b = ts[max(k - 1, 0)], ts[min(k + 1, grid - 1)]
    res = minimize_scalar(lambda t: -f(t), bounds=(a, b), method="bounded",
                          options={"xatol": 1e-13 * max(1.0, abs(a), abs(b))})
    return float(max(vals[k], -res.fun))


def brute_force_w2_logistic_dual(m, y, p, s, radius):
    """Exact W_2 worst case of the logistic margin loss by its dual
    inf_{mu > 0} mu (s radius)^2 + sum_j p_j sup_t [ell_j(m_j + t) - mu t^2] (convex in mu), evaluated
    independently of simlab: inner sups by :func:`_logistic_inner_sup`, the outer minimum by a grid on
    log mu over [mu_max e^-40, mu_max] (mu* <= mu_max = 1/(2 s radius) as |ell'| <= 1) and a bounded
    Brent search around the best grid point.  Kantorovich (split atoms) included, as the dual is."""
    from scipy.optimize import minimize_scalar

    m, y, p = (np.asarray(a, float) for a in (m, y, p))
    kappa = (s * radius) ** 2
    keep = p > 0
    m, y, p = m[keep], y[keep], p[keep]
    if kappa == 0.0:
        return float(p @ (np.logaddexp(0.0, m) - y * m))

    def dual(log_mu):
        mu = np.exp(log_mu)
        return mu * kappa + sum(pj * _logistic_inner_sup(mj, yj, mu) for mj, yj, pj in zip(m, y, p))

    top = np.log(0.5 / np.sqrt(kappa)) + 1e-9
    grid = np.linspace(top - 40.0, top, 41)
    vals = [dual(g) for g in grid]
    k = int(np.argmin(vals))
    # golden-section search on the convex dual (which has a kink where an atom switches branch)
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    ratio = (np.sqrt(5.0) - 1.0) / 2.0
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = dual(c), dual(d)
    best = min(vals[k], fc, fd)
    while b - a > 1e-13:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = dual(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = dual(d)
        best = min(best, fc, fd)
    return float(best)
