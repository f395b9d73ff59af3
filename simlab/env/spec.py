"""The validated environment specification (docs/theory/environment.md §1).

An :class:`EnvSpec` is a pure description; :func:`simlab.env.make_env` draws an instance from it with a
seed. Every field is checked at construction and errors name the field and its allowed range.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from simlab.validation import check_choice, check_float, check_int, check_probabilities

DESIGNS = ("sphere", "coverage")
NOISES = ("none", "rademacher", "skewed", "uniform", "truncnorm")
FEEDBACKS = ("bt", "deterministic", "rewards")
ORACLES = ("none", "confounder", "box", "flips")
SAMPLERS = ("offline", "online", "online_mixed", "uniform")
# size limits, checked before anything is allocated: the pair atoms hold n_x n_y^2 x (outcomes) rows of
# d features, so their product is bounded too (2^26 float64 entries = 512 MiB per atom array)
MAX_CONTEXTS = 2**16
MAX_ACTIONS = 2**10
MAX_DIM = 2**12
MAX_ATOM_ENTRIES = 2**26


@dataclass(frozen=True)
class EnvSpec:
    """A finite contexts x actions world with linear rewards and a (possibly misspecified) oracle.

    Parameters
    ----------
    n_x, n_y, d : int
        Contexts (>= 1), actions (>= 2), feature dimension (>= 1).
    p_x : tuple of float, optional
        Context law (None = uniform); entries in [0, 1] summing to 1.
    design : {"sphere", "coverage"}
        ``"sphere"``: phi iid uniform on the unit sphere, ||phi|| = 1 (the papers' assumption).
        ``"coverage"``: Gaussian features whitened so that the pair second moment under uniform pairs is
        exactly ``coverage * I``, whatever d (the fixed-coverage design of docs/theory/environment.md
        §1.6; breaks ||phi|| <= 1).
    coverage : float
        lambda_min of Sigma for the coverage design (> 0).
    theta_ref_norm : float
        ||theta_ref|| (random direction); 0 gives theta_ref = 0.
    beta : float
        DPO/KL temperature (> 0).
    radius_B : float
        Radius of the parameter ball Theta = {||theta|| <= B} (> 0).
    w_norm : float
        ||w_a|| = ||w_b|| of the base reward vectors (>= 0).
    mixture : bool
        If True, w_a and w_b are independent directions and the training reward is
        w* = alpha_train w_a + (1 - alpha_train) w_b (preference shift, docs/theory/environment.md §1.7);
        else w_b = w_a.
    alpha_train : float
        Mixture weight in [0, 1].
    kappa_m : float
        Reward misspecification r* = w*^T phi + kappa_m v(x, a), v ~ N(0, 1)
        (docs/theory/environment.md §1.8.4).
    noise : {"none", "rademacher", "skewed", "uniform", "truncnorm"}
        Per-response reward noise, a discrete law so that the atoms stay finite
        (docs/theory/environment.md §1.5): none; rademacher (+-sigma); skewed (-sigma w.p. 3/4, +3 sigma
        w.p. 1/4); uniform (``noise_points`` equispaced points on [-sigma sqrt(3), sigma sqrt(3)]);
        truncnorm (``noise_points`` equispaced points on [-2.5 sigma, 2.5 sigma] weighted by the Gaussian
        density). All have mean 0; the variance is reported by the environment.
    sigma : float
        Scale of the noise law (>= 0).
    noise_points : int
        Support size of the uniform and truncnorm laws, in [2, 64].
    feedback : {"bt", "deterministic", "rewards"}
        ``"bt"``: labels y ~ Bern(P_obs); ``"deterministic"``: labels y = 1[P_obs >= 1/2];
        ``"rewards"``: noisy rewards r* + xi per response (REBEL).
    oracle : {"none", "confounder", "box", "flips"}
        Observed-oracle misspecification (docs/theory/environment.md §1.8): ``"confounder"``
        P_obs = sigma(dr* + kappa_s dv) with v ~ U[0, 1]; ``"box"`` P_obs = clip(P_true + delta) with an
        antisymmetric delta of size rho_true; ``"flips"`` P_obs = (1 - f) P_true + f (1 - P_true).
    kappa_s, rho_true, flip : float
        Strengths of the three oracle models (rho_true and flip in [0, 1]).

    Raises
    ------
    ValueError
        Naming the field and its allowed range, for any field out of range, and when the pair atoms would
        hold more than ``MAX_ATOM_ENTRIES`` feature entries.
    """

    n_x: int = 32
    n_y: int = 6
    d: int = 8
    p_x: tuple | None = None
    design: str = "sphere"
    coverage: float = 0.5
    theta_ref_norm: float = 0.0
    beta: float = 1.0
    radius_B: float = 6.0
    w_norm: float = 3.0
    mixture: bool = False
    alpha_train: float = 1.0
    kappa_m: float = 0.0
    noise: str = "none"
    sigma: float = 0.0
    noise_points: int = 5
    feedback: str = "bt"
    oracle: str = "none"
    kappa_s: float = 0.0
    rho_true: float = 0.0
    flip: float = 0.0

    def __post_init__(self):
        check_int("n_x", self.n_x, 1, MAX_CONTEXTS)
        check_int("n_y", self.n_y, 2, MAX_ACTIONS)
        check_int("d", self.d, 1, MAX_DIM)
        if self.p_x is not None:
            p = check_probabilities("p_x", self.p_x)
            if p.size != self.n_x:
                raise ValueError(f"p_x must have n_x = {self.n_x} entries, got {p.size}")
            object.__setattr__(self, "p_x", tuple(float(v) for v in p))
        check_choice("design", self.design, DESIGNS)
        check_float("coverage", self.coverage, 0.0, low_open=True)
        check_float("theta_ref_norm", self.theta_ref_norm, 0.0)
        check_float("beta", self.beta, 0.0, low_open=True)
        check_float("radius_B", self.radius_B, 0.0, low_open=True)
        check_float("w_norm", self.w_norm, 0.0)
        if not isinstance(self.mixture, bool):
            raise ValueError(f"mixture must be True or False, got {self.mixture!r}")
        check_float("alpha_train", self.alpha_train, 0.0, 1.0)
        check_float("kappa_m", self.kappa_m, 0.0)
        check_choice("noise", self.noise, NOISES)
        check_float("sigma", self.sigma, 0.0)
        check_int("noise_points", self.noise_points, 2, 64)
        check_choice("feedback", self.feedback, FEEDBACKS)
        check_choice("oracle", self.oracle, ORACLES)
        check_float("kappa_s", self.kappa_s, 0.0)
        check_float("rho_true", self.rho_true, 0.0, 1.0)
        check_float("flip", self.flip, 0.0, 1.0)
        if self.noise != "none" and self.feedback != "rewards":
            raise ValueError(f"noise={self.noise!r} needs feedback='rewards' (labels come from the oracle)")
        entries = self.n_x * self.n_y**2 * self.outcomes_per_pair * max(self.d, 1)
        if entries > MAX_ATOM_ENTRIES:
            raise ValueError(f"n_x * n_y^2 * outcomes * d = {self.n_x} * {self.n_y}^2 * {self.outcomes_per_pair} "
                             f"* {self.d} = {entries} pair-atom feature entries exceeds {MAX_ATOM_ENTRIES}; "
                             "reduce n_x, n_y, d or noise_points")

    @property
    def outcomes_per_pair(self) -> int:
        """Atoms per ordered pair (x, a, b): 2 BT labels, 1 deterministic label, or (noise law size)^2."""
        if self.feedback == "bt":
            return 2
        if self.feedback == "deterministic":
            return 1
        if self.noise == "none" or self.sigma == 0.0:
            return 1
        k = {"rademacher": 2, "skewed": 2}.get(self.noise, self.noise_points)
        return k * k

    def to_dict(self) -> dict:
        """Plain-dict form (for provenance records).

        Returns
        -------
        dict
            Field name -> value.
        """
        return asdict(self)
