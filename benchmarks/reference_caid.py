"""Plain NumPy/SciPy reference of one CAID run (docs/theory/constrained.md §6.4), the same computation as
``simlab.solvers.constrained.caid``: per dual step, u = mean of c over N prompts x K responses sampled from the
current policy, drawn through their multinomial counts as simlab does (or the exact E_x E_theta c when
n_prompts = 0), lambda <- [lambda - eta u]_+, then the exact
Lagrangian maximiser by scipy ``trust-exact`` from two starts (previous maximiser, projected optimal logits),
keeping the better. Vectorised NumPy throughout; used only by benchmarks/bench_caid.py.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def lagrangian_vgh(theta, phi, p_x, r_lam, theta_ref, beta):
    """L(theta, lambda), its gradient and Hessian (the formulas of simlab.objectives.constrained)."""
    logit = phi @ theta
    logit_ref = phi @ theta_ref
    lp = _log_softmax(logit)
    pi = np.exp(lp)
    lse = logit[:, 0] - lp[:, 0]
    lse_ref = logit_ref[:, 0] - _log_softmax(logit_ref)[:, 0]
    h = r_lam - beta * (logit - logit_ref)
    hbar = np.sum(pi * h, axis=1)
    value = float(p_x @ (hbar + beta * (lse - lse_ref)))
    s = phi - np.einsum("xa,xak->xk", pi, phi)[:, None, :]
    wdh = p_x[:, None] * pi * (h - hbar[:, None])
    grad = np.einsum("xa,xak->k", wdh, s)
    hess = np.einsum("xa,xak,xaj->kj", p_x[:, None] * pi * (h - hbar[:, None] - beta), s, s)
    return value, grad, hess


def maximize(theta0, phi, p_x, r_lam, theta_ref, beta):
    res = minimize(lambda th: tuple(-v for v in lagrangian_vgh(th, phi, p_x, r_lam, theta_ref, beta)[:2]),
                   theta0, jac=True, hess=lambda th: -lagrangian_vgh(th, phi, p_x, r_lam, theta_ref, beta)[2],
                   method="trust-exact", options={"gtol": 1e-11})
    return res.x, -res.fun


def caid_reference(phi, p_x, reward, c, theta_ref, beta, guess0, guess_lam, lam0, theta0, eta, T,
                   n_prompts, n_responses, rng):
    """Returns (lambda history (T+1, m), D_p(lambda_t) history (T+1,), final theta)."""
    n_x, n_y, _ = phi.shape
    lam = lam0.astype(float).copy()
    theta = theta0.astype(float).copy()
    lams, dps = [lam.copy()], []

    def inner(lam_v, warm):
        r_lam = reward + c @ lam_v
        cands = [maximize(warm, phi, p_x, r_lam, theta_ref, beta),
                 maximize(guess0 + guess_lam @ lam_v, phi, p_x, r_lam, theta_ref, beta)]
        return max(cands, key=lambda tv: tv[1])

    theta, dp = inner(lam, theta)
    dps.append(dp)
    for _ in range(T):
        pi = np.exp(_log_softmax(phi @ theta))
        if n_prompts == 0:
            u = p_x @ np.einsum("xa,xai->xi", pi, c)
        else:
            # the sufficient counts of N x K draws: N_x ~ Mult(N, p_x), then Mult(N_x K, pi(.|x)) per context
            prompts = rng.multinomial(n_prompts, p_x)
            counts = np.array([rng.multinomial(k * n_responses, pi[x]) for x, k in enumerate(prompts)])
            u = np.einsum("xa,xai->i", counts, c) / (n_prompts * n_responses)
        lam = np.maximum(lam - eta * u, 0.0)
        theta, dp = inner(lam, theta)
        lams.append(lam.copy())
        dps.append(dp)
    return np.array(lams), np.array(dps), theta
