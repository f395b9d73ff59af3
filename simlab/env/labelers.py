"""Heterogeneous-labeler worlds: preference shift as an exact reweighting of the training law.

Each pair is labelled by one of two labelers, a latent g in {a, b} with P(g = a) = alpha, independent of
the pair; labeler g has the linear reward w_g^T phi (+ kappa_m v(x, a) if the reward is misspecified).
DPO-family methods see Bradley-Terry labels y ~ Bern(sigma(dr_g)); REBEL-family methods see the noisy
reward difference dr_g + xi - xi'. The atoms are (x, a, b, g, outcome) and the law of the pair sampler
is the same for every alpha, so the test law Q_alpha is the training law Q_alpha0 reweighted by
alpha/alpha0 on g = a and (1 - alpha)/(1 - alpha0) on g = b. Its divergences are closed-form:

    KL(Q_alpha || Q_alpha0) = KL(Bern(alpha) || Bern(alpha0)),
    D_chi(Q_alpha || Q_alpha0) = 1/2 (alpha - alpha0)^2 / (alpha0 (1 - alpha0))       (1/2 convention),

and, as a loss never depends on g except through the observed outcome, the divergence between the
observed (g-marginal) laws is at most these (data processing). Expected rewards are linear in alpha:
J(theta; alpha) = E_x E_{pi_theta} w(alpha)^T phi with w(alpha) = alpha w_a + (1 - alpha) w_b.
Derivation: docs/theory/environment.md §1.7 (mixtures) and docs/theory/dro.md §2.1-§2.2 (balls).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simlab.env.atoms import PairAtoms, build_pair_atoms
from simlab.env.environment import Env
from simlab.validation import check_choice, check_float

FEEDBACKS = ("bt", "rewards")


@dataclass(frozen=True)
class LabelerAtoms:
    """Atoms of a two-labeler world: ``atoms`` (PairAtoms with p0 = the law at ``alpha``), ``group``
    (A,) 1.0 for labeler a and 0.0 for labeler b, and ``base`` (A,) the within-labeler probabilities
    (pair sampler x outcome), so that p0 = (alpha group + (1 - alpha)(1 - group)) base."""

    atoms: PairAtoms
    group: np.ndarray
    base: np.ndarray
    alpha: float

    def law(self, alpha: float) -> np.ndarray:
        """Atom weights of the test law Q_alpha (same atoms, labelers mixed with weight alpha).

        Parameters
        ----------
        alpha : float
            Share of labeler a, in [0, 1].

        Returns
        -------
        (A,) ndarray
            (alpha group + (1 - alpha)(1 - group)) base.
        """
        alpha = check_float("alpha", alpha, 0.0, 1.0)
        return (alpha * self.group + (1.0 - alpha) * (1.0 - self.group)) * self.base

    def density_ratio(self, alpha: float) -> np.ndarray:
        """dQ_alpha/dQ_alpha0 per atom (alpha0 = ``self.alpha``).

        Parameters
        ----------
        alpha : float
            Share of labeler a under the test law, in [0, 1].

        Returns
        -------
        (A,) ndarray
            alpha/alpha0 on the atoms of labeler a, (1 - alpha)/(1 - alpha0) on those of labeler b.
        """
        alpha = check_float("alpha", alpha, 0.0, 1.0)
        a0 = self.alpha
        return alpha / a0 * self.group + (1.0 - alpha) / (1.0 - a0) * (1.0 - self.group)


def _open_unit(name: str, value) -> float:
    out = check_float(name, value, 0.0, 1.0, low_open=True)
    if out >= 1.0:
        raise ValueError(f"{name} must be < 1, got {out!r}")
    return out


def kl_bernoulli(alpha: float, alpha0: float) -> float:
    """KL(Bern(alpha) || Bern(alpha0)) = KL(Q_alpha || Q_alpha0), with 0 log 0 = 0.

    Parameters
    ----------
    alpha : float
        Test share of labeler a, in [0, 1].
    alpha0 : float
        Training share, in (0, 1).

    Returns
    -------
    float
        alpha log(alpha/alpha0) + (1 - alpha) log((1 - alpha)/(1 - alpha0)).
    """
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    alpha0 = _open_unit("alpha0", alpha0)
    out = 0.0
    if alpha > 0:
        out += alpha * np.log(alpha / alpha0)
    if alpha < 1:
        out += (1.0 - alpha) * np.log((1.0 - alpha) / (1.0 - alpha0))
    return float(out)


def chi2_bernoulli(alpha: float, alpha0: float) -> float:
    """D_chi(Q_alpha || Q_alpha0) = 1/2 (alpha - alpha0)^2 / (alpha0 (1 - alpha0)) (1/2 convention).

    Parameters
    ----------
    alpha : float
        Test share of labeler a, in [0, 1].
    alpha0 : float
        Training share, in (0, 1).

    Returns
    -------
    float
        The chi-square divergence of the two labeler mixtures.
    """
    alpha = check_float("alpha", alpha, 0.0, 1.0)
    alpha0 = _open_unit("alpha0", alpha0)
    return float(0.5 * (alpha - alpha0) ** 2 / (alpha0 * (1.0 - alpha0)))


def labeler_rewards(env: Env) -> tuple[np.ndarray, np.ndarray]:
    """Reward tables of labelers a and b: w_g^T phi + kappa_m v (the environment's misspecification).

    Parameters
    ----------
    env : simlab.env.environment.Env
        An environment with base reward vectors ``w_a`` and ``w_b``.

    Returns
    -------
    tuple of (n_x, n_y) ndarray
        The rewards of labeler a and of labeler b.
    """
    extra = env.spec.kappa_m * env.misspec_feature
    return env.phi @ env.w_a + extra, env.phi @ env.w_b + extra


def _sigmoid(t):
    return 0.5 * (1.0 + np.tanh(0.5 * t))


def labeler_atoms(env: Env, alpha: float, feedback: str, sampler: str = "offline",
                  theta: np.ndarray | None = None) -> LabelerAtoms:
    """The exact support of one labelled pair in the two-labeler world built on ``env``.

    Parameters
    ----------
    env : simlab.env.environment.Env
        Must have independent base rewards (``mixture=True``); its noise law is used for reward feedback.
    alpha : float
        Training share of labeler a, in (0, 1).
    feedback : {"bt", "rewards"}
        ``"bt"``: labels y ~ Bern(sigma(r_g(x, a) - r_g(x, b))); ``"rewards"``: noisy reward differences.
    sampler : str, default "offline"
        The pair sampler of :meth:`simlab.env.environment.Env.pair_probs`.
    theta : (d,) ndarray, optional
        Policy parameter of the online samplers.

    Returns
    -------
    LabelerAtoms
        The atoms of both labelers with p0 the law at ``alpha``.
    """
    alpha = _open_unit("alpha", alpha)
    check_choice("feedback", feedback, FEEDBACKS)
    if not env.spec.mixture:
        raise ValueError("env must have mixture=True (two independent labeler rewards w_a, w_b)")
    pair = env.pair_probs(sampler, theta)
    parts = []
    for r in labeler_rewards(env):
        dr = r[:, :, None] - r[:, None, :]
        P = _sigmoid(dr)
        parts.append(build_pair_atoms(pair, env.phi, r, P, P, feedback, env.noise_values, env.noise_probs))
    a, b = parts
    group = np.concatenate([np.ones(a.size), np.zeros(b.size)])
    base = np.concatenate([a.p0, b.p0])
    p0 = (alpha * group + (1.0 - alpha) * (1.0 - group)) * base
    fields = {}
    for name in ("x", "a", "b", "dphi", "y", "dr", "dr_true", "P_true", "P_obs"):
        fields[name] = np.ascontiguousarray(np.concatenate([getattr(a, name), getattr(b, name)]))
    return LabelerAtoms(PairAtoms(p0=p0 / p0.sum(), **fields), group, base, alpha)


__all__ = ["FEEDBACKS", "LabelerAtoms", "chi2_bernoulli", "kl_bernoulli", "labeler_atoms", "labeler_rewards"]
