"""The law of the nested-prefix ladder (simlab.env.sampling.nested_counts): the counts at every rung are
Multinomial(n, p) and the increments are independent, i.e. the counts are the prefixes of one iid stream."""
import itertools
import math

import numpy as np
from scipy import stats

from simlab.env.sampling import nested_counts

P = np.array([0.5, 0.3, 0.2])


def _multinomial_pmf(counts, p):
    n = int(sum(counts))
    return math.factorial(n) / math.prod(math.factorial(c) for c in counts) * math.prod(
        q**c for q, c in zip(p, counts))


def _compositions(n, k):
    """All count vectors of length k summing to n."""
    for cut in itertools.combinations(range(n + k - 1), k - 1):
        edges = (-1,) + cut + (n + k - 1,)
        yield tuple(edges[i + 1] - edges[i] - 1 for i in range(k))


def test_nested_counts_joint_law_by_chi_square():
    """(N_2, N_5) against the exact joint pmf of the 2- and 5-prefixes of one iid stream, enumerated:
    P(N_2 = a, N_5 = b) = Mult(a; 2, p) Mult(b - a; 3, p)."""
    cells = {}
    for a in _compositions(2, 3):
        for inc in _compositions(3, 3):
            b = tuple(x + y for x, y in zip(a, inc))
            cells[(a, b)] = cells.get((a, b), 0.0) + _multinomial_pmf(a, P) * _multinomial_pmf(inc, P)
    assert abs(sum(cells.values()) - 1.0) < 1e-12
    index = {key: i for i, key in enumerate(cells)}
    draws = 8000
    rng = np.random.default_rng(20261207)
    observed = np.zeros(len(cells))
    for _ in range(draws):
        c = nested_counts(P, [2, 5], rng)
        observed[index[(tuple(c[2]), tuple(c[5]))]] += 1  # a KeyError would be an impossible outcome
    expected = draws * np.array(list(cells.values()))
    chi2 = np.sum((observed - expected) ** 2 / expected)
    p_value = stats.chi2.sf(chi2, len(cells) - 1)
    assert p_value > 1e-3, f"chi-square {chi2:.1f} on {len(cells) - 1} dof, p = {p_value:.2e}"


def test_nested_counts_exact_moments():
    """E N_n = n p and Cov(N_m, N_n) = min(m, n) (diag p - p p^T) (nested prefixes), within 5 standard errors."""
    ns, draws = (3, 8, 20), 4000
    rng = np.random.default_rng(7)
    samples = np.array([np.concatenate([c for _, c in sorted(nested_counts(P, ns, rng).items())])
                        for _ in range(draws)], dtype=float)          # (draws, 3 rungs x 3 atoms)
    base = np.diag(P) - np.outer(P, P)
    mean = np.concatenate([n * P for n in ns])
    cov = np.block([[min(m, n) * base for n in ns] for m in ns])
    se_mean = np.sqrt(np.diag(cov) / draws)
    assert np.all(np.abs(samples.mean(axis=0) - mean) <= 5 * se_mean)
    centred = samples - mean
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(axis=0, ddof=1) / np.sqrt(draws)
    assert np.all(np.abs(products.mean(axis=0) - cov) <= 5 * se_cov + 1e-12)


def test_single_rung_is_one_multinomial_draw():
    """A one-rung ladder is the single draw Multinomial(n, p) of the generator (the rate_d sample of the
    DRO-REBEL study), bit for bit."""
    p = np.random.default_rng(3).dirichlet(np.ones(50))
    for n in (1, 17, 2**14):
        got = nested_counts(p, [n], np.random.default_rng(11))[n]
        np.testing.assert_array_equal(got, np.random.default_rng(11).multinomial(n, p / p.sum()))
