"""Samplers over the atoms of a :class:`~simlab.env.atoms.PairAtoms` (docs/theory/environment.md §1.2).

Two ways to draw an iid sample of size n:

- ``multinomial_counts``: the counts N ~ Multinomial(n, p0). Exact empirical objectives only need N,
  so a fit costs O(#atoms) whatever n (n up to 2^20 is cheap).
- ``sample_atoms``: n individual atom indices from a Vose alias table, O(1) per draw after an O(A)
  set-up; stochastic solvers use this.

The in-kernel draws that whole-loop jitted solvers call live here too (one home for sampling):
``alias_draw`` (one alias-table draw), ``inverse_cdf_draw`` / ``guide_table`` / ``guided_draw``
(inverse-CDF draws, plain or with Chen's index guide) and ``multinomial_into`` (counts by the
conditional-binomial chain).

Both take a ``numpy.random.Generator``; seeds come from ``numpy.random.SeedSequence`` per cell.
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.validation import check_generator, check_int, check_probabilities

MAX_SAMPLE = 2**31  # sample_atoms allocates n int64 indices


@kernel
def _build_alias_kernel(p: np.ndarray, prob: np.ndarray, alias: np.ndarray) -> None:
    """Vose's alias method: prob[i] is the chance to keep column i, alias[i] the fallback atom."""
    n = p.size
    scaled = p * n
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        nl -= 1
        g = large[nl]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            small[ns] = g
            ns += 1
        else:
            large[nl] = g
            nl += 1
    for k in range(nl):
        prob[large[k]] = 1.0
        alias[large[k]] = large[k]
    for k in range(ns):
        prob[small[k]] = 1.0
        alias[small[k]] = small[k]


@kernel
def alias_draw(prob: np.ndarray, alias: np.ndarray, rng: np.random.Generator) -> int:
    """One draw from an alias table (``AliasTable.prob``, ``AliasTable.alias``); a kernel.

    One uniform u, column floor(u A), kept with probability prob[col] (the fractional part decides),
    else its alias.

    Parameters
    ----------
    prob : (A,) ndarray
        Probability of keeping each column.
    alias : (A,) int64 ndarray
        Fallback atom of each column.
    rng : numpy.random.Generator
        Source of the uniform.

    Returns
    -------
    int
        The atom index.
    """
    n_atoms = prob.size
    u = rng.random() * n_atoms
    col = min(int(u), n_atoms - 1)
    return col if (u - col) < prob[col] else alias[col]


@kernel
def _sample_alias_kernel(prob: np.ndarray, alias: np.ndarray, rng: np.random.Generator,
                         out: np.ndarray) -> None:
    for i in range(out.size):
        out[i] = alias_draw(prob, alias, rng)


@kernel
def inverse_cdf_draw(cdf: np.ndarray, u: float) -> int:
    """Inverse-CDF draw: the first k with cdf[k] > u (the last index if none); a kernel.

    That is the number of cdf[:-1] entries <= u, so an atom of probability 0 is never drawn. Counted
    without branches: a data-dependent early exit mispredicts on every draw (it cost about twice the
    whole pair-sampling step of the online REBEL loop).

    Parameters
    ----------
    cdf : (A,) ndarray
        Non-decreasing cumulative probabilities.
    u : float
        A uniform draw in [0, 1).

    Returns
    -------
    int
        The atom index.
    """
    k = 0
    for j in range(cdf.size - 1):
        k += cdf[j] <= u
    return k


@kernel
def guide_table(cdf: np.ndarray) -> np.ndarray:
    """Index guide of a fixed CDF (Chen's method); a kernel.

    guide[j] = inverse_cdf_draw(cdf, j / m) for m = cdf.size cells, so that a draw for u in
    [j/m, (j+1)/m) only scans forward from guide[j].

    Parameters
    ----------
    cdf : (m,) ndarray
        Non-decreasing cumulative probabilities.

    Returns
    -------
    (m,) int64 ndarray
        The guide.
    """
    m = cdf.size
    guide = np.empty(m, dtype=np.int64)
    for j in range(m):
        guide[j] = inverse_cdf_draw(cdf, j / m)
    return guide


@kernel
def guided_draw(cdf: np.ndarray, guide: np.ndarray, u: float) -> int:
    """``inverse_cdf_draw(cdf, u)`` (the same index) by a scan from guide[floor(u m)]; a kernel.

    O(1) expected steps. The backward step only runs if u m rounded up across a cell boundary; it keeps
    the result exact.

    Parameters
    ----------
    cdf : (m,) ndarray
        Non-decreasing cumulative probabilities.
    guide : (m,) int64 ndarray
        Its :func:`guide_table`.
    u : float
        A uniform draw in [0, 1).

    Returns
    -------
    int
        The atom index.
    """
    m = cdf.size
    k = guide[min(int(u * m), m - 1)]
    while k > 0 and cdf[k - 1] > u:
        k -= 1
    while k < m - 1 and cdf[k] <= u:
        k += 1
    return k


@kernel
def multinomial_into(n: int, probs: np.ndarray, rng: np.random.Generator, out: np.ndarray) -> None:
    """out ~ Multinomial(n, probs) by the conditional-binomial chain; a kernel.

    out[a] ~ Bin(n - sum_{b<a} out[b], probs[a] / (1 - sum_{b<a} probs[b])); the last entry takes the rest.

    Parameters
    ----------
    n : int
        Number of draws.
    probs : (k,) ndarray
        Probabilities summing to 1.
    rng : numpy.random.Generator
        Source of the binomial draws.
    out : (k,) int64 ndarray
        Receives the counts.
    """
    k = probs.shape[0]
    rem_n = n
    rem_p = 1.0
    for a in range(k - 1):
        if rem_n == 0 or rem_p <= 0.0:
            out[a] = 0
            continue
        q = min(max(probs[a] / rem_p, 0.0), 1.0)
        out[a] = rng.binomial(rem_n, q)
        rem_n -= out[a]
        rem_p -= probs[a]
    out[k - 1] = rem_n


class AliasTable:
    """Alias table for O(1) draws from a discrete law (Vose's method).

    Parameters
    ----------
    p : (A,) array_like
        Probabilities: entries in [0, 1] summing to 1.

    Attributes
    ----------
    prob : (A,) ndarray
        Probability of keeping each column.
    alias : (A,) int64 ndarray
        Fallback atom of each column.
    """

    def __init__(self, p: np.ndarray):
        p = check_probabilities("p", p)
        self.prob = np.empty(p.size)
        self.alias = np.empty(p.size, dtype=np.int64)
        _build_alias_kernel(p / p.sum(), self.prob, self.alias)


def sample_atoms(table: AliasTable, n: int, rng: np.random.Generator) -> np.ndarray:
    """n iid atom indices drawn from ``table``.

    Parameters
    ----------
    table : AliasTable
        The law of one draw.
    n : int
        Sample size, in [0, 2^31].
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    (n,) int64 ndarray
        The atom indices.
    """
    if not isinstance(table, AliasTable):
        raise ValueError(f"table must be an AliasTable, got {type(table).__name__}")
    n = check_int("n", n, 0, MAX_SAMPLE)
    rng = check_generator("rng", rng)
    out = np.empty(n, dtype=np.int64)
    _sample_alias_kernel(table.prob, table.alias, rng, out)
    return out


def multinomial_counts(p0: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """N ~ Multinomial(n, p0).

    Parameters
    ----------
    p0 : (A,) array_like
        Atom probabilities.
    n : int
        Sample size (>= 0).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    (A,) int64 ndarray
        The counts, summing to n.
    """
    n = check_int("n", n, 0)
    p = check_probabilities("p0", p0)
    rng = check_generator("rng", rng)
    return rng.multinomial(n, p / p.sum()).astype(np.int64)


def nested_counts(p0: np.ndarray, ns, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Counts of the first n draws of one iid stream, for every n in ``ns`` (common random numbers).

    Built from independent multinomial increments, so counts[n2] - counts[n1] ~ Multinomial(n2 - n1)
    independently of counts[n1]: exactly the law of nested prefixes of one sample.

    Parameters
    ----------
    p0 : (A,) array_like
        Atom probabilities.
    ns : iterable of int
        Prefix lengths (>= 0).
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    dict of int to (A,) int64 ndarray
        Prefix length -> counts.
    """
    ns = sorted({check_int("ns entries", n, 0) for n in ns})
    p = check_probabilities("p0", p0)
    rng = check_generator("rng", rng)
    p = p / p.sum()
    out, total, prev = {}, np.zeros(p.size, dtype=np.int64), 0
    for n in ns:
        total = total + rng.multinomial(n - prev, p)
        out[n] = total.copy()
        prev = n
    return out


def prefix_ladder(n: int, start: int = 2**9) -> list[int]:
    """The nested-prefix ladder start, 2 start, 4 start, ..., n (every n of a replicate shares it).

    ``nested_counts(p0, prefix_ladder(n), rng)[n]`` is then the n-prefix of one iid stream whatever the grid.

    Parameters
    ----------
    n : int
        The last prefix (>= 1).
    start : int, default 2**9
        The first rung (>= 1).

    Returns
    -------
    list of int
        The rungs below n, then n.
    """
    n = check_int("n", n, 1)
    start = check_int("start", start, 1)
    ladder = [start]
    while ladder[-1] < n:
        ladder.append(2 * ladder[-1])
    return [m for m in ladder if m < n] + [n]
