"""``PairAtoms``: the exact finite support of one pair sample z (docs/theory/environment.md §1.2).

Every population quantity in simlab is a weighted sum over these atoms with weights ``p0``; the
empirical law of an iid sample of size n is the same support with weights N/n, N ~ Multinomial(n, p0).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairAtoms:
    """All atoms j = (x, a, b, outcome) with probabilities.

    Attributes
    ----------
    p0 : (A,) probabilities, summing to 1.
    x, a, b : (A,) context, first and second action of the ordered pair.
    dphi : (A, d) feature difference phi(x, a) - phi(x, b).
    y : (A,) label, 1 iff a is preferred (BT or deterministic feedback); NaN under reward feedback.
    dr : (A,) observed reward difference r~(x,a) - r~(x,b) including noise (reward feedback);
        equals ``dr_true`` under label feedback.
    dr_true : (A,) true reward difference r*(x,a) - r*(x,b).
    P_true, P_obs : (A,) true and observed probability that a beats b.
    """

    p0: np.ndarray
    x: np.ndarray
    a: np.ndarray
    b: np.ndarray
    dphi: np.ndarray
    y: np.ndarray
    dr: np.ndarray
    dr_true: np.ndarray
    P_true: np.ndarray
    P_obs: np.ndarray

    @property
    def size(self) -> int:
        """Number of atoms A."""
        return self.p0.size

    @property
    def dim(self) -> int:
        """Feature dimension d."""
        return self.dphi.shape[1]

    def sigma(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Pair second moment Sigma = E[dphi dphi^T] under ``weights`` (docs/theory/environment.md §1.2).

        Parameters
        ----------
        weights : (A,) ndarray, optional
            Atom weights (default ``p0``); empirical weights N/n give the sample second moment.

        Returns
        -------
        (d, d) ndarray
            sum_j weights[j] dphi[j] dphi[j]^T.
        """
        w = self.p0 if weights is None else weights
        return (self.dphi * w[:, None]).T @ self.dphi

    def coverage(self, weights: np.ndarray | None = None) -> tuple[float, float]:
        """(lambda_min, lambda_max) of Sigma under ``weights`` (default p0): the coverage of the design.

        Parameters
        ----------
        weights : (A,) ndarray, optional
            Atom weights (default ``p0``).

        Returns
        -------
        tuple of float
            The smallest and the largest eigenvalue of :meth:`sigma`.
        """
        ev = np.linalg.eigvalsh(self.sigma(weights))
        return float(ev[0]), float(ev[-1])

    def support(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The atoms with positive weight: fits over them cost O(#seen atoms) instead of O(A).

        Parameters
        ----------
        weights : (A,) ndarray
            Atom weights, e.g. multinomial counts / n.

        Returns
        -------
        tuple of ndarray
            ``(dphi, y, dr, w)`` restricted to the atoms with ``weights > 0`` (``w`` contiguous).
        """
        keep = np.flatnonzero(weights > 0)
        return self.dphi[keep], self.y[keep], self.dr[keep], np.ascontiguousarray(weights[keep])


def check_pair_atoms(name: str, atoms, labels: bool = False) -> PairAtoms:
    """Return ``atoms`` if it is a :class:`PairAtoms`, else raise ``ValueError`` naming the argument.

    Parameters
    ----------
    name : str
        The argument's name, used in the error message.
    atoms : object
        The value to check.
    labels : bool, default False
        Also require preference labels (feedback ``bt`` or ``deterministic``, not reward feedback).

    Returns
    -------
    PairAtoms
        ``atoms`` itself.

    Raises
    ------
    ValueError
        If ``atoms`` is not a :class:`PairAtoms`, or carries no labels when ``labels`` is set.
    """
    if not isinstance(atoms, PairAtoms):
        raise ValueError(f"{name} must be a PairAtoms (Env.atoms()), got {type(atoms).__name__}")
    if labels and np.any(np.isnan(atoms.y)):
        raise ValueError(f"{name} must carry labels (feedback 'bt' or 'deterministic'), not reward feedback")
    return atoms


def build_pair_atoms(pair_prob: np.ndarray, phi: np.ndarray, reward: np.ndarray,
                     P_true: np.ndarray, P_obs: np.ndarray, feedback: str,
                     noise_values: np.ndarray, noise_probs: np.ndarray) -> PairAtoms:
    """Enumerate the atoms of one pair sample (docs/theory/environment.md §1.2).

    BT labels split each pair into y = 1 (prob P_obs) and y = 0 (1 - P_obs); deterministic labels set
    y = 1[P_obs >= 1/2]; reward feedback splits each pair over the independent per-response noise
    values (xi, xi') with probability noise_probs[i] * noise_probs[j].

    Parameters
    ----------
    pair_prob : (n_x, n_y, n_y) ndarray
        ``pair_prob[x, a, b]``: probability of drawing context x and the ordered pair (a, b).
    phi : (n_x, n_y, d) ndarray
        Features phi(x, a).
    reward : (n_x, n_y) ndarray
        True reward r*(x, a).
    P_true, P_obs : (n_x, n_y, n_y) ndarray
        True and observed probability that a beats b.
    feedback : {"bt", "deterministic", "rewards"}
        The feedback model.
    noise_values, noise_probs : ndarray
        The per-response noise law (reward feedback only; see
        :func:`simlab.env.environment.noise_law`).

    Returns
    -------
    PairAtoms
        The atoms, with ``p0`` normalised to sum to 1.
    """
    n_x, n_y, _ = phi.shape
    xs, as_, bs = np.meshgrid(np.arange(n_x), np.arange(n_y), np.arange(n_y), indexing="ij")
    xs, as_, bs = xs.ravel(), as_.ravel(), bs.ravel()
    pp = pair_prob.ravel()
    pt = P_true[xs, as_, bs]
    po = P_obs[xs, as_, bs]
    dr_true = reward[xs, as_] - reward[xs, bs]
    if feedback == "bt":
        rep = 2
        y = np.tile(np.array([1.0, 0.0]), pp.size)
        p0 = np.stack([pp * po, pp * (1.0 - po)], axis=1).ravel()
        dr = np.repeat(dr_true, rep)
    elif feedback == "deterministic":
        rep = 1
        y = (po >= 0.5).astype(np.float64)
        p0 = pp.copy()
        dr = dr_true.copy()
    else:  # rewards
        k = noise_values.size
        rep = k * k
        xi_a, xi_b = np.meshgrid(noise_values, noise_values, indexing="ij")
        q = np.outer(noise_probs, noise_probs).ravel()
        p0 = (pp[:, None] * q[None, :]).ravel()
        dr = (dr_true[:, None] + (xi_a - xi_b).ravel()[None, :]).ravel()
        y = np.full(p0.size, np.nan)
    idx = np.repeat(np.arange(pp.size), rep)
    xs, as_, bs = xs[idx], as_[idx], bs[idx]
    dphi = phi[xs, as_] - phi[xs, bs]
    p0 = p0 / p0.sum()
    return PairAtoms(p0=p0, x=xs.astype(np.int64), a=as_.astype(np.int64), b=bs.astype(np.int64),
                     dphi=np.ascontiguousarray(dphi), y=y, dr=dr, dr_true=dr_true[idx],
                     P_true=pt[idx], P_obs=po[idx])
