"""Plain NumPy/SciPy reference of the online REBEL / DRO-REBEL loop with SGD/Adam inner steps
(docs/theory/rebel.md §4.9), for ``bench_rebel.py`` only: the same computation as
``simlab.solvers.rebel.online_rebel_sgd`` written as vectorised NumPy per iteration, with the KL and
chi^2 worst cases from ``reference_dro`` (SciPy root finding)."""
from __future__ import annotations

import numpy as np
from reference_dro import chi2_worst_case_reference, kl_worst_case_reference


def _log_policy(theta, phi):
    z = phi @ theta
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _chi2_code_coef(l, rho):
    n = l.size
    cands = np.concatenate([[l.min() - 1.0], np.unique(l), [l.max() + 1.0]])
    g = np.array([z + np.sqrt(2 * rho * np.mean(np.maximum(l - z, 0.0) ** 2)) for z in cands])
    zeta = cands[np.argmin(g)]
    a = np.maximum(l - zeta, 0.0)
    lam_raw = np.sqrt(2 * rho * np.mean(a**2))
    lam = max(lam_raw, 1e-6)
    L = np.sum(a * l) / (n * lam)
    coef = ((l > zeta) * l + a) / (n * lam)
    if lam_raw > 1e-6:
        coef = coef - L * 2 * rho * a / (n * lam**2)
    return coef


def batch_gradient(theta, anc, eta, dphi, dr, objective, radius, non_detached=False):
    n = dr.size
    v = theta - anc
    e = dphi @ v / eta - dr
    l = e * e
    rms = np.sqrt(l.mean())
    if objective in ("rebel", "w2", "w2_surrogate"):
        coef = np.full(n, 1.0 / n)
    elif objective == "kl_tau":
        q = np.exp((l - l.max()) / radius)
        q /= q.sum()
        coef = q * (1 + (l - q @ l) / radius) if non_detached else q
    elif objective == "kl":
        coef = kl_worst_case_reference(l, np.full(n, 1.0 / n), radius)[1]
    elif objective == "chi2":
        coef = chi2_worst_case_reference(l, np.full(n, 1.0 / n), radius)[1]
    else:
        coef = _chi2_code_coef(l, radius)
    grad = (coef * 2 * e / eta) @ dphi
    if objective in ("w2", "w2_surrogate"):
        nv = np.linalg.norm(v)
        if objective == "w2":
            grad = grad / (2 * rms)
            pen = radius / eta
        else:
            grad = grad * (1 + radius * (nv / eta) / rms)
            pen = 2 * radius * rms / eta
        if nv > 0:
            grad = grad + pen * v / nv
        else:
            gn = np.linalg.norm(grad)
            grad = grad * max(0.0, 1 - pen / gn) if gn > 0 else grad
    return grad


def online_rebel_reference(env, T, n, eta, rng, objective="rebel", radius=0.0, anchor="prev",
                           inner_steps=1, optimizer="adam", lr=1e-2, alphas=(0.0, 0.5, 1.0),
                           betas=(0.9, 0.999), adam_eps=1e-8, log_coverage=True):
    """Returns (theta history, lambda_min per iteration, J per iteration and alpha, KL to pi_ref)."""
    phi, p_x = env.phi, env.p_x
    n_x, n_y, d = phi.shape
    rewards = np.stack([env.reward_of(env.mixture_reward(float(a))) for a in alphas])
    lp_ref = _log_policy(env.theta_ref, phi)
    noise_cdf = np.cumsum(env.noise_probs)
    theta = env.theta_ref.copy()
    m = np.zeros(d)
    s = np.zeros(d)
    step = 0

    def log(theta):
        lp = _log_policy(theta, phi)
        pi = np.exp(lp)
        J = np.einsum("x,xa,kxa->k", p_x, pi, rewards)
        return lp, J, float(p_x @ np.sum(pi * (lp - lp_ref), axis=1))

    lp, J, kl = log(theta)
    hist, lams, Js, kls = [theta.copy()], [], [J], [kl]
    for _ in range(T):
        pi = np.exp(lp)
        if log_coverage:
            mean_phi = np.einsum("xa,xad->xd", pi, phi)
            second = np.einsum("x,xa,xad,xae->de", p_x, pi, phi, phi)
            lams.append(np.linalg.eigvalsh(2 * second - 2 * np.einsum("x,xd,xe->de", p_x, mean_phi, mean_phi))[0])
        x = np.searchsorted(np.cumsum(p_x), rng.random(n))
        cdf = np.cumsum(pi[x], axis=1)
        a = np.minimum((rng.random(n)[:, None] * cdf[:, -1:] > cdf).sum(axis=1), n_y - 1)
        b = np.minimum((rng.random(n)[:, None] * cdf[:, -1:] > cdf).sum(axis=1), n_y - 1)
        xi = env.noise_values[np.minimum(np.searchsorted(noise_cdf, rng.random((n, 2))), noise_cdf.size - 1)]
        dr = env.reward[x, a] + xi[:, 0] - env.reward[x, b] - xi[:, 1]
        dphi = phi[x, a] - phi[x, b]
        anc = theta.copy() if anchor == "prev" else env.theta_ref
        for _ in range(inner_steps):
            g = batch_gradient(theta, anc, eta, dphi, dr, objective, radius)
            step += 1
            if optimizer == "adam":
                m = betas[0] * m + (1 - betas[0]) * g
                s = betas[1] * s + (1 - betas[1]) * g * g
                theta = theta - lr * (m / (1 - betas[0] ** step)) / (np.sqrt(s / (1 - betas[1] ** step)) + adam_eps)
            else:
                theta = theta - lr * g
        lp, J, kl = log(theta)
        hist.append(theta.copy())
        Js.append(J)
        kls.append(kl)
    return np.array(hist), np.array(lams), np.array(Js), np.array(kls)


# ---------------------------------------------------------------- DRO-REBEL cells before the speed-up

def fit_rebel_reference(dphi, dr, w, theta_anc, eta, objective, radius, gtol=1e-10, max_iter=30):
    """``simlab.solvers.rebel.fit_rebel`` for objectives rebel / w2 / kl / chi2 as it was before the
    pair collapse and the numba objective kernel: Newton over every atom of positive weight with the
    NumPy value/gradient/Hessian functions (``w2_rebel_value_grad_hess``, ``f_rebel_value_grad_hess``).
    Returns theta (no W2 ridge-path restart: the benchmark's cells never need it)."""
    from simlab.objectives.rebel import f_rebel_value_grad_hess, rebel_ols, w2_rebel_threshold, w2_rebel_value_grad_hess
    from simlab.solvers.exact import NoMinimizerError, newton

    keep = np.flatnonzero(w > 0)
    dphi, dr, w = dphi[keep], dr[keep], w[keep] / w[keep].sum()
    gram = (dphi * w[:, None]).T @ dphi
    ev = np.linalg.eigvalsh(gram)
    if ev[0] <= 1e-12 * max(ev[-1], 1e-300):
        raise NoMinimizerError("rank deficient")
    theta_ols = rebel_ols(theta_anc, eta, dphi, dr, w)
    if objective == "rebel" or radius == 0.0:
        return theta_ols
    if objective in ("kl", "chi2"):
        fgh = lambda th: f_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, objective, radius)[:3]
    else:
        if radius >= w2_rebel_threshold(dphi, dr, w):
            return theta_anc.copy()
        fgh = lambda th: w2_rebel_value_grad_hess(th, theta_anc, eta, dphi, dr, w, radius)
    return newton(fgh, theta_ols, gtol=gtol, max_iter=max_iter).x


def drorebel_sample_cell_reference(study, params, seeds) -> dict:
    """A rate_n / rate_d / tradeoff cell of ``scenarios/drorebel.py`` (module ``study``) as it ran before
    the speed-up: the whole nested-prefix ladder redrawn in the cell and the fit over the uncollapsed
    atoms (:func:`fit_rebel_reference`); the population side (instance, targets, eps0) comes from the
    study's per-process caches, as it did. Returns the metrics the cell's fit determines."""
    from simlab.env.sampling import nested_counts, prefix_ladder

    env_name, div, n, d = params["env"], params["div"], int(params["n"]), int(params["d"])
    _, theta_t, atoms, _ = study._instance(seeds.instance, env_name, d)
    rng = np.random.default_rng(seeds.sample)
    ladder = prefix_ladder(n, start=study.ladder_start(params))  # the study's draws, so the fits compare
    w = nested_counts(atoms.p0, ladder, rng)[n] / n
    obj = study.OBJECTIVE[div]
    if params["experiment"] == "tradeoff":
        n0 = int(params["n0"])
        theta0, eps0, _, _ = study._tradeoff_calibration(seeds.instance, d, div, n0)
        eps_n = eps0 * (n0 / n) ** study.SCHEDULE_POWER[(div, params["schedule"])]
        theta = fit_rebel_reference(atoms.dphi, atoms.dr, w, theta_t, study.ETA, obj, eps_n)
        return {"err2_nominal": float(np.sum((theta - theta0) ** 2))}
    radius = study._radius(div, atoms)
    theta_star, H = study._target(seeds.instance, env_name, d, div, radius)[:2]
    theta = fit_rebel_reference(atoms.dphi, atoms.dr, w, theta_t, study.ETA, obj, radius)
    e = theta - theta_star
    return {"err2": float(e @ e), "err2_H": float(e @ H @ e)}
