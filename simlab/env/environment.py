"""Drawing an environment instance from an :class:`EnvSpec` (docs/theory/environment.md §1.3–1.8).

Each random component (features, theta_ref, reward directions, misspecification feature, confounder,
box signs) has its own child of the instance seed, so switching one option on or off never changes the
others: a (spec, seed) pair always gives the same instance.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.env.atoms import PairAtoms, build_pair_atoms
from simlab.env.spec import SAMPLERS, EnvSpec
from simlab.policy import policy
from simlab.validation import check_array, check_choice, check_float, check_int

_COMPONENTS = ("features", "theta_ref", "rewards", "misspec", "confounder", "box")


def noise_law(kind: str, sigma: float, points: int) -> tuple[np.ndarray, np.ndarray]:
    """Discrete per-response noise law with mean 0 (docs/theory/environment.md §1.5).

    Parameters
    ----------
    kind : {"none", "rademacher", "skewed", "uniform", "truncnorm"}
        The law: +-sigma; -sigma w.p. 3/4 and 3 sigma w.p. 1/4; ``points`` equispaced values on
        [-sqrt(3) sigma, sqrt(3) sigma]; or a Gaussian truncated to [-2.5 sigma, 2.5 sigma] on ``points``
        equispaced values weighted by the Gaussian density (``truncnorm``).
    sigma : float
        Scale; ``sigma = 0`` gives the point mass at 0.
    points : int
        Number of support points of the ``uniform`` and Gaussian laws.

    Returns
    -------
    values, probs : ndarray
        Support points and their probabilities.
    """
    if kind == "none" or sigma == 0.0:
        return np.zeros(1), np.ones(1)
    if kind == "rademacher":
        return np.array([-sigma, sigma]), np.array([0.5, 0.5])
    if kind == "skewed":
        return np.array([-sigma, 3.0 * sigma]), np.array([0.75, 0.25])
    if kind == "uniform":
        half = sigma * np.sqrt(3.0)
        return np.linspace(-half, half, points), np.full(points, 1.0 / points)
    # truncated Gaussian on [-2.5 sigma, 2.5 sigma], discretised on equispaced points
    z = np.linspace(-2.5, 2.5, points)
    w = np.exp(-0.5 * z * z)
    return sigma * z, w / w.sum()


def _sphere_features(rng: np.random.Generator, n_x: int, n_y: int, d: int) -> np.ndarray:
    g = rng.standard_normal((n_x, n_y, d))
    return g / np.linalg.norm(g, axis=2, keepdims=True)


def _coverage_features(rng: np.random.Generator, n_x: int, n_y: int, d: int,
                       coverage: float) -> np.ndarray:
    """Gaussian N(0, 1/2) features whitened so that E_uniform pairs[dphi dphi^T] = coverage * I."""
    phi = rng.normal(0.0, np.sqrt(0.5), size=(n_x, n_y, d))
    centred = phi - phi.mean(axis=1, keepdims=True)
    # uniform iid pairs: E[dphi dphi^T] = 2 E_x Cov_uniform(phi(x, .))
    sigma = 2.0 * np.einsum("xad,xae->de", centred, centred) / (n_x * n_y)
    evals, evecs = np.linalg.eigh(sigma)
    if evals[0] <= 1e-12 * evals[-1]:
        raise ValueError(f"coverage design needs n_x * (n_y - 1) >= d; got n_x={n_x}, n_y={n_y}, d={d}")
    whiten = evecs @ np.diag(np.sqrt(coverage / evals)) @ evecs.T
    return phi @ whiten


def _random_direction(rng: np.random.Generator, d: int, norm: float) -> np.ndarray:
    v = rng.standard_normal(d)
    return norm * v / np.linalg.norm(v)


@dataclass(frozen=True)
class Env:
    """One instance: features, reference policy, rewards and the true/observed oracles."""

    spec: EnvSpec
    phi: np.ndarray          # (n_x, n_y, d)
    p_x: np.ndarray          # (n_x,)
    theta_ref: np.ndarray    # (d,)
    w_a: np.ndarray          # (d,) base reward vectors of the preference-shift family
    w_b: np.ndarray
    w_star: np.ndarray       # training reward vector w(alpha_train)
    reward: np.ndarray       # (n_x, n_y) true reward r* = w*^T phi + kappa_m v
    misspec_feature: np.ndarray  # (n_x, n_y) v(x, a) of the reward misspecification
    P_true: np.ndarray       # (n_x, n_y, n_y) sigma(r*(x,a) - r*(x,b))
    P_obs: np.ndarray        # (n_x, n_y, n_y) observed oracle
    noise_values: np.ndarray
    noise_probs: np.ndarray

    @property
    def beta(self) -> float:
        """The KL-regularisation strength beta of the spec."""
        return self.spec.beta

    @property
    def noise_variance(self) -> float:
        """Variance sigma_xi^2 of the per-response noise law."""
        return float(self.noise_probs @ self.noise_values**2)

    def misspecification(self) -> float:
        """Realised max |P_obs - P_true| over all (x, a, b).

        Returns
        -------
        float
            The largest distance between the observed and the true preference oracle.
        """
        return float(np.max(np.abs(self.P_obs - self.P_true)))

    def reward_of(self, w: np.ndarray) -> np.ndarray:
        """Reward table w^T phi(x, a) of a linear reward.

        Parameters
        ----------
        w : (d,) ndarray
            Reward vector.

        Returns
        -------
        (n_x, n_y) ndarray
            ``phi @ w``.
        """
        return self.phi @ w

    def mixture_reward(self, alpha: float) -> np.ndarray:
        """w(alpha) = alpha w_a + (1 - alpha) w_b (docs/theory/environment.md §1.7).

        Parameters
        ----------
        alpha : float
            Mixture weight in [0, 1].

        Returns
        -------
        (d,) ndarray
            The reward vector of the preference-shift family at ``alpha``.
        """
        alpha = check_float("alpha", alpha, 0.0, 1.0)
        return alpha * self.w_a + (1.0 - alpha) * self.w_b

    def pair_probs(self, sampler: str = "offline", theta: np.ndarray | None = None,
                   mix: float = 0.5) -> np.ndarray:
        """P(x, a, b) of the pair sampler (docs/theory/environment.md §1.4).

        offline: a, b iid ~ pi_ref; online: iid ~ pi_theta; online_mixed: a ~ pi_theta,
        b ~ (1 - mix) pi_theta + mix * uniform; uniform: a, b iid uniform.

        Parameters
        ----------
        sampler : {"offline", "online", "online_mixed", "uniform"}
            The pair sampler.
        theta : (d,) ndarray, optional
            The current policy parameter (required by ``online`` and ``online_mixed``).
        mix : float, default 0.5
            Uniform share of the second action under ``online_mixed``, in [0, 1].

        Returns
        -------
        (n_x, n_y, n_y) ndarray
            p_x(x) times the probabilities of the first and the second action.
        """
        check_choice("sampler", sampler, SAMPLERS)
        mix = check_float("mix", mix, 0.0, 1.0)
        n_y = self.spec.n_y
        if sampler == "uniform":
            first = second = np.full((self.spec.n_x, n_y), 1.0 / n_y)
        elif sampler == "offline":
            first = second = policy(self.theta_ref, self.phi)
        else:
            if theta is None:
                raise ValueError(f"sampler={sampler!r} needs theta (the current policy parameter)")
            theta = check_array("theta", theta, shape=(self.spec.d,))
            first = policy(theta, self.phi)
            second = first if sampler == "online" else (1.0 - mix) * first + mix / n_y
        return self.p_x[:, None, None] * first[:, :, None] * second[:, None, :]

    def atoms(self, sampler: str = "offline", theta: np.ndarray | None = None,
              mix: float = 0.5) -> PairAtoms:
        """The exact support of one pair sample under ``sampler`` (see :meth:`pair_probs`).

        Parameters
        ----------
        sampler : {"offline", "online", "online_mixed", "uniform"}
            The pair sampler.
        theta : (d,) ndarray, optional
            The current policy parameter (online samplers).
        mix : float, default 0.5
            Uniform share of the second action under ``online_mixed``.

        Returns
        -------
        PairAtoms
            Atoms built by :func:`simlab.env.atoms.build_pair_atoms` with the instance's oracles and noise.
        """
        return build_pair_atoms(self.pair_probs(sampler, theta, mix), self.phi, self.reward,
                                self.P_true, self.P_obs, self.spec.feedback,
                                self.noise_values, self.noise_probs)


def _sigmoid(t: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def make_env(spec: EnvSpec, seed: np.random.SeedSequence | int = 0) -> Env:
    """Draw the instance of ``spec`` determined by ``seed`` (docs/theory/environment.md §1.3).

    Parameters
    ----------
    spec : simlab.env.spec.EnvSpec
        The environment's specification.
    seed : numpy.random.SeedSequence or int, default 0
        The instance seed; each random component draws from its own child, so a (spec, seed) pair
        always gives the same instance.

    Returns
    -------
    Env
        Features, reference policy, rewards and the true and observed oracles.
    """
    if not isinstance(spec, EnvSpec):
        raise ValueError(f"spec must be an EnvSpec, got {type(spec).__name__}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_int("seed", seed, 0))
    rngs = dict(zip(_COMPONENTS, (np.random.default_rng(c) for c in ss.spawn(len(_COMPONENTS)))))
    n_x, n_y, d = spec.n_x, spec.n_y, spec.d

    if spec.design == "sphere":
        phi = _sphere_features(rngs["features"], n_x, n_y, d)
    else:
        phi = _coverage_features(rngs["features"], n_x, n_y, d, spec.coverage)
    p_x = np.full(n_x, 1.0 / n_x) if spec.p_x is None else np.asarray(spec.p_x, dtype=np.float64)
    theta_ref = (_random_direction(rngs["theta_ref"], d, spec.theta_ref_norm)
                 if spec.theta_ref_norm > 0 else np.zeros(d))

    w_a = _random_direction(rngs["rewards"], d, spec.w_norm) if spec.w_norm > 0 else np.zeros(d)
    w_b_draw = _random_direction(rngs["rewards"], d, spec.w_norm) if spec.w_norm > 0 else np.zeros(d)
    w_b = w_b_draw if spec.mixture else w_a
    w_star = spec.alpha_train * w_a + (1.0 - spec.alpha_train) * w_b

    v_m = rngs["misspec"].standard_normal((n_x, n_y))
    reward = phi @ w_star + spec.kappa_m * v_m
    dr = reward[:, :, None] - reward[:, None, :]
    P_true = _sigmoid(dr)

    if spec.oracle == "none":
        P_obs = P_true.copy()
    elif spec.oracle == "confounder":
        v_s = rngs["confounder"].uniform(0.0, 1.0, size=(n_x, n_y))
        P_obs = _sigmoid(dr + spec.kappa_s * (v_s[:, :, None] - v_s[:, None, :]))
    elif spec.oracle == "box":
        signs = rngs["box"].choice([-1.0, 1.0], size=(n_x, n_y, n_y))
        upper = np.triu(signs, k=1)
        antisym = upper - np.transpose(upper, (0, 2, 1))
        P_obs = np.clip(P_true + spec.rho_true * antisym, 0.0, 1.0)
    else:  # flips
        P_obs = (1.0 - spec.flip) * P_true + spec.flip * (1.0 - P_true)

    values, probs = noise_law(spec.noise, spec.sigma, spec.noise_points)
    return Env(spec=spec, phi=np.ascontiguousarray(phi), p_x=p_x, theta_ref=theta_ref, w_a=w_a,
               w_b=w_b, w_star=w_star, reward=reward, misspec_feature=v_m, P_true=P_true,
               P_obs=P_obs, noise_values=values, noise_probs=probs)
