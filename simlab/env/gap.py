"""E6: the constrained-alignment environment with a parametrisation-gap knob (docs/theory/constrained.md §6.1, §6.4, §7.2).

Contexts x in {0..n_x-1} (uniform law), actions a in {0..n_y-1}. Reward/utility features
psi(x, a) in R^{d_psi} are iid uniform on the unit sphere; the reward is r = w_r^T psi and the m
utilities are g_i = w_{g,i}^T psi. The policy class is log-linear on phi = U(t)^T psi (dimension d),

    U(t) = [Q, cos t * q + sin t * q_perp],

where [Q, q] is an orthonormal basis (d columns) whose span contains span{w_r, w_g1..w_gm}: Q holds
w_r, w_g1..w_g(m-1) (orthonormalised) and d - 1 - m random directions, q is the part of w_gm orthogonal
to them and q_perp is a further direction orthogonal to all of [Q, q]. t = 0 is the realizable case
(r + lambda^T c in span phi, so D_p = D); t > 0 tilts the w_gm direction out of the class.

pi_ref has logits v_ref^T psi with v_ref in span(Q), so pi_ref = pi_{theta_ref}, theta_ref = U(t)^T v_ref,
lies in the class for every t and the distribution-space problem (D, V*, lambda*) does not depend on t.
Utility directions have cosine -``conflict`` with w_r (default 0.5), so the constraints bind.
Thresholds b_i = q_b * E_x[max_a g_i(x, a) - E_{pi_ref} g_i(x, .)] (q_b = ``threshold_fraction``), and the
constraint functions are c_i(x, a) = g_i(x, a) - E_{pi_ref(.|x)} g_i - b_i, so a constraint reads
E_x E_pi c_i >= 0. Every random draw depends on the seed only, never on t, so sweeping t changes nothing
but the class.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.policy import log_policy
from simlab.validation import check_array, check_float, check_int

_COMPONENTS = ("features", "reward", "utilities", "basis", "reference")


@dataclass(frozen=True)
class GapSpec:
    """Validated description of an E6 instance (docs/theory/claims.md §7.2, preset E6).

    Parameters
    ----------
    n_x, n_y : int
        Contexts (>= 1) and actions (>= 2).
    d_psi : int
        Reward-feature dimension (>= m + 2).
    d : int
        Policy-feature dimension, m + 1 <= d <= d_psi - 1 (the knob needs one spare direction).
    m : int
        Number of constraints (>= 1).
    beta : float
        KL temperature (> 0).
    t : float
        Gap knob, the tilt angle in [0, pi/2]; 0 is realizable.
    threshold_fraction : float
        q_b in [0, 1): b_i = q_b * max_pi E_x[E_pi g_i - E_ref g_i].
    reward_norm, utility_norm : float
        ||w_r|| (>= 0) and ||w_g,i|| (> 0).
    ref_norm : float
        ||v_ref|| (>= 0), the size of the reference logits ("theta_ref small random").
    conflict : float
        In [0, 1); each w_g,i has cosine -conflict with w_r (a design choice so that the constraints
        bind: with independent directions about one draw in six has lambda* = 0).

    Raises
    ------
    ValueError
        Naming the field and its allowed range.
    """

    n_x: int = 8
    n_y: int = 6
    d_psi: int = 6
    d: int = 5
    m: int = 1
    beta: float = 1.0
    t: float = 0.0
    threshold_fraction: float = 0.3
    reward_norm: float = 2.0
    utility_norm: float = 2.0
    ref_norm: float = 0.5
    conflict: float = 0.5

    def __post_init__(self):
        check_int("n_x", self.n_x, 1)
        check_int("n_y", self.n_y, 2)
        m = check_int("m", self.m, 1)
        d_psi = check_int("d_psi", self.d_psi, m + 2)
        check_int("d", self.d, m + 1, d_psi - 1)
        check_float("beta", self.beta, 0.0, low_open=True)
        check_float("t", self.t, 0.0, np.pi / 2)
        check_float("threshold_fraction", self.threshold_fraction, 0.0, 1.0 - 1e-12)
        check_float("reward_norm", self.reward_norm, 0.0)
        check_float("utility_norm", self.utility_norm, 0.0, low_open=True)
        check_float("ref_norm", self.ref_norm, 0.0)
        check_float("conflict", self.conflict, 0.0, 1.0 - 1e-12)


def gap_preset(**overrides) -> GapSpec:
    """Preset E6 of docs/theory/claims.md §7.2 (n_x = 8, n_y = 6, d_psi = 6, d = 5, m = 1, beta = 1, q_b = 0.3).

    Parameters
    ----------
    **overrides
        Fields of :class:`GapSpec` that differ from the preset.

    Returns
    -------
    GapSpec
        The validated specification.
    """
    return GapSpec(**overrides)


@dataclass(frozen=True)
class GapEnv:
    """An E6 instance. Arrays: psi (n_x, n_y, d_psi); phi (n_x, n_y, d); U (d_psi, d); p_x (n_x,);
    w_r (d_psi,); W_g (m, d_psi); v_ref (d_psi,); theta_ref (d,); reward (n_x, n_y);
    utility (n_x, n_y, m); b (m,); log_ref (n_x, n_y) = log pi_ref; constraint (n_x, n_y, m) = c."""

    spec: GapSpec
    psi: np.ndarray
    phi: np.ndarray
    U: np.ndarray
    p_x: np.ndarray
    w_r: np.ndarray
    W_g: np.ndarray
    v_ref: np.ndarray
    theta_ref: np.ndarray
    reward: np.ndarray
    utility: np.ndarray
    b: np.ndarray
    log_ref: np.ndarray
    constraint: np.ndarray

    @property
    def beta(self) -> float:
        """The KL temperature beta of the spec."""
        return self.spec.beta

    @property
    def m(self) -> int:
        """The number of constraints m."""
        return self.spec.m

    @property
    def d(self) -> int:
        """The policy-feature dimension d."""
        return self.spec.d

    @property
    def bound_M(self) -> float:
        """M = max_{i,x,a} max(|c_i(x, a)|, |r(x, a)|)   (docs/theory/constrained.md §6.2, A3)."""
        return float(max(np.abs(self.constraint).max(), np.abs(self.reward).max()))

    @property
    def utility_ranges(self) -> np.ndarray:
        """range_i = max_{x,a,a'} |g_i(x,a) - g_i(x,a')|, shape (m,)."""
        return (self.utility.max(axis=1) - self.utility.min(axis=1)).max(axis=0)

    def check_multipliers(self, lam) -> np.ndarray:
        """``lam`` as a float64 vector of shape (m,) with lam >= 0, else ``ValueError`` naming ``lam``.

        Parameters
        ----------
        lam : float or array_like
            Lagrange multipliers, one per constraint.

        Returns
        -------
        (m,) ndarray
            The validated multipliers.
        """
        lam = check_array("lam", np.atleast_1d(np.asarray(lam, dtype=np.float64)), ndim=1, shape=(self.m,))
        if np.any(lam < 0):
            raise ValueError(f"lam must be >= 0 componentwise, got {lam}")
        return lam

    def lagrangian_reward(self, lam) -> np.ndarray:
        """r_lambda(x, a) = r(x, a) + lambda^T c(x, a) (docs/theory/constrained.md §6.1).

        Parameters
        ----------
        lam : float or array_like
            Lagrange multipliers (m,), >= 0.

        Returns
        -------
        (n_x, n_y) ndarray
            The Lagrangian reward table.
        """
        return self.reward + self.constraint @ self.check_multipliers(lam)

    def realizable_theta(self, lam) -> np.ndarray:
        """theta*(lambda) = U^T (v_ref + (w_r + W_g^T lambda)/beta) of the realizable case (docs/theory/constrained.md §6.1).

        For t > 0 it is the projection of the optimal logits onto the class (a good inner start).

        Parameters
        ----------
        lam : float or array_like
            Lagrange multipliers (m,), >= 0.

        Returns
        -------
        (d,) ndarray
            The policy parameter.
        """
        lam = self.check_multipliers(lam)
        return self.U.T @ (self.v_ref + (self.w_r + self.W_g.T @ lam) / self.beta)


def _conflicting_directions(rng: np.random.Generator, w_r: np.ndarray, m: int, conflict: float) -> np.ndarray:
    """m unit vectors with cosine -conflict to w_r: -conflict * w_r/||w_r|| + sqrt(1 - conflict^2) z_i,
    z_i random unit vectors orthogonal to w_r (design choice: utility and reward pull apart, so the
    constraints bind at the unconstrained optimum)."""
    d_psi = w_r.shape[0]
    z = rng.standard_normal((m, d_psi))
    norm_r = np.linalg.norm(w_r)
    if norm_r == 0.0:
        return z / np.linalg.norm(z, axis=1, keepdims=True)
    u = w_r / norm_r
    z -= np.outer(z @ u, u)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    return -conflict * u[None, :] + np.sqrt(1.0 - conflict ** 2) * z


def gap_basis(w_r: np.ndarray, W_g: np.ndarray, d: int, rng: np.random.Generator) -> tuple:
    """Orthonormal (Q, q, q_perp) of the gap knob.

    span(Q) contains w_r, w_g1..w_g(m-1) plus random directions (d - 1 columns in all), q is the part of
    w_gm orthogonal to Q, q_perp is orthogonal to all of them.

    Parameters
    ----------
    w_r : (d_psi,) ndarray
        Reward direction.
    W_g : (m, d_psi) ndarray
        Utility directions.
    d : int
        Policy-feature dimension.
    rng : numpy.random.Generator
        Draws the random completion of the basis.

    Returns
    -------
    tuple of ndarray
        ``Q`` (d_psi, d - 1), ``q`` (d_psi,) and ``q_perp`` (d_psi,).
    """
    d_psi = w_r.shape[0]
    m = W_g.shape[0]
    lead = np.column_stack([w_r, *W_g[: m - 1]]) if m > 1 else w_r[:, None]
    extra = rng.standard_normal((d_psi, d_psi))
    basis, _ = np.linalg.qr(np.column_stack([lead, W_g[m - 1], extra]))
    # columns 0..m-1 span lead, column m is the new part of w_gm; then random completions
    Q = np.column_stack([basis[:, :m], basis[:, m + 1: d]])
    q = basis[:, m]
    q_perp = basis[:, d]
    return Q, q, q_perp


def knob_matrix(Q: np.ndarray, q: np.ndarray, q_perp: np.ndarray, t: float) -> np.ndarray:
    """U(t) = [Q, cos t q + sin t q_perp].

    Parameters
    ----------
    Q, q, q_perp : ndarray
        The basis of :func:`gap_basis`.
    t : float
        Tilt angle in [0, pi/2].

    Returns
    -------
    (d_psi, d) ndarray
        The feature map of the policy class, phi = U(t)^T psi.
    """
    return np.column_stack([Q, np.cos(t) * q + np.sin(t) * q_perp])


def make_gap_env(spec: GapSpec, seed) -> GapEnv:
    """Draw an E6 instance; each random component has its own child seed (t never changes a draw).

    Parameters
    ----------
    spec : GapSpec
        The instance's specification.
    seed : numpy.random.SeedSequence or int
        The instance seed; a reused SeedSequence gives the same instance.

    Returns
    -------
    GapEnv
        Features, rewards, utilities, thresholds and the reference policy.
    """
    if not isinstance(spec, GapSpec):
        raise ValueError(f"spec must be a GapSpec, got {type(spec).__name__}")
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(check_int("seed", seed, 0))
    # children by spawn key, not ss.spawn(): spawning mutates ss, and a reused SeedSequence must give
    # the same instance (e.g. one draw at several t)
    rngs = {name: np.random.default_rng(np.random.SeedSequence(ss.entropy, spawn_key=(*ss.spawn_key, i)))
            for i, name in enumerate(_COMPONENTS)}
    n_x, n_y, d_psi, d, m = spec.n_x, spec.n_y, spec.d_psi, spec.d, spec.m

    psi = rngs["features"].standard_normal((n_x, n_y, d_psi))
    psi /= np.linalg.norm(psi, axis=2, keepdims=True)
    w_r = rngs["reward"].standard_normal(d_psi)
    w_r *= spec.reward_norm / np.linalg.norm(w_r)
    W_g = _conflicting_directions(rngs["utilities"], w_r, m, spec.conflict) * spec.utility_norm
    Q, q, q_perp = gap_basis(w_r if spec.reward_norm > 0 else rngs["reward"].standard_normal(d_psi),
                             W_g, d, rngs["basis"])
    v_ref = Q @ rngs["reference"].standard_normal(Q.shape[1])
    v_ref *= spec.ref_norm / max(np.linalg.norm(v_ref), 1e-300)
    U = knob_matrix(Q, q, q_perp, spec.t)

    phi = np.ascontiguousarray(psi @ U)
    theta_ref = U.T @ v_ref
    log_ref = log_policy(theta_ref, phi)
    p_x = np.full(n_x, 1.0 / n_x)
    reward = psi @ w_r
    utility = np.ascontiguousarray(np.einsum("xak,ik->xai", psi, W_g))
    ref_mean = np.einsum("xa,xai->xi", np.exp(log_ref), utility)  # E_{pi_ref(.|x)} g_i
    b = spec.threshold_fraction * (p_x @ (utility.max(axis=1) - ref_mean))
    constraint = np.ascontiguousarray(utility - ref_mean[:, None, :] - b[None, None, :])
    return GapEnv(spec=spec, psi=psi, phi=phi, U=U, p_x=p_x, w_r=w_r, W_g=W_g, v_ref=v_ref,
                  theta_ref=theta_ref, reward=reward, utility=utility, b=b, log_ref=log_ref,
                  constraint=constraint)
