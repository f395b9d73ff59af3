"""Small random oracle-robust SAIL instances built directly from arrays (docs/theory/environment.md
docs/theory/environment.md §1.8, docs/theory/claims.md §7.2 E5-like)."""
from __future__ import annotations

import numpy as np


def random_instance(seed: int, n_x: int = 2, n_y: int = 4, d: int = 3, rho_true: float = 0.08,
                    w_norm: float = 2.0, theta_ref_scale: float = 0.3) -> dict:
    """Unit-sphere features, uniform contexts, a random theta_ref, P_true = sigma(dr*) and a box-
    misspecified P_obs = clip(P_true + rho_true * antisymmetric signs, 0, 1)."""
    rng = np.random.default_rng(seed)
    phi = rng.standard_normal((n_x, n_y, d))
    phi /= np.linalg.norm(phi, axis=-1, keepdims=True)
    w = rng.standard_normal(d)
    w *= w_norm / np.linalg.norm(w)
    r = phi @ w
    P_true = 1.0 / (1.0 + np.exp(-(r[:, :, None] - r[:, None, :])))
    upper = np.triu(rng.choice([-1.0, 1.0], size=(n_x, n_y, n_y)), k=1)
    P_obs = np.clip(P_true + rho_true * (upper - upper.transpose(0, 2, 1)), 0.0, 1.0)
    return dict(phi=phi, p_x=np.full(n_x, 1.0 / n_x), theta_ref=theta_ref_scale * rng.standard_normal(d),
                beta=1.0, P_true=P_true, P_obs=P_obs)


def problem(inst: dict, oracle: str = "P_obs") -> tuple:
    """(phi, p_x, theta_ref, beta, P) in the argument order of simlab.objectives.sail."""
    return inst["phi"], inst["p_x"], inst["theta_ref"], inst["beta"], inst[oracle]
