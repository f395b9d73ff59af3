"""The in-kernel draws of simlab.env.sampling (the one home of sampling): inverse CDF, guide tables,
alias draws and the conditional-binomial multinomial, against NumPy references."""
import numpy as np
import pytest
from scipy import stats

from simlab.env.sampling import (AliasTable, alias_draw, guide_table, guided_draw, inverse_cdf_draw,
                                 multinomial_into, sample_atoms)


def test_guided_draw_is_the_inverse_cdf_draw():
    rng = np.random.default_rng(0)
    for p in (np.full(32, 1 / 32), rng.dirichlet(np.full(7, 0.3)), np.array([0.0, 0.5, 0.0, 0.5]),
              np.array([1.0])):
        cdf = np.cumsum(p)
        guide = guide_table(cdf)
        us = np.concatenate([rng.random(2000), np.arange(cdf.size + 1) / cdf.size, cdf,
                             np.nextafter(cdf, 0), [0.0, np.nextafter(1.0, 0)]])
        for u in us:
            # the first k with cdf[k] > u (searchsorted side="right"), the last index absorbing round-off
            expected = min(np.searchsorted(cdf, u, side="right"), cdf.size - 1)
            assert guided_draw(cdf, guide, u) == inverse_cdf_draw(cdf, u) == expected


def test_zero_probability_atoms_are_never_drawn():
    cdf = np.cumsum([0.0, 0.5, 0.0, 0.5])
    for u in (0.0, 0.25, 0.5, np.nextafter(1.0, 0)):
        assert inverse_cdf_draw(cdf, u) in (1, 3)


def test_alias_draw_is_the_table_sampler():
    p = np.random.default_rng(1).dirichlet(np.full(9, 0.5))
    table = AliasTable(p)
    a = sample_atoms(table, 500, np.random.default_rng(5))
    rng = np.random.default_rng(5)
    b = np.array([alias_draw(table.prob, table.alias, rng) for _ in range(500)])
    np.testing.assert_array_equal(a, b)


def test_multinomial_into_has_the_multinomial_law():
    p = np.array([0.1, 0.0, 0.25, 0.4, 0.25])
    rng = np.random.default_rng(3)
    out = np.empty(p.size, dtype=np.int64)
    reps, n = 4000, 50
    counts = np.empty((reps, p.size))
    for r in range(reps):
        multinomial_into(n, p, rng, out)
        counts[r] = out
    assert np.all(counts.sum(axis=1) == n) and np.all(counts[:, 1] == 0)
    # each marginal is Binomial(n, p_a): a chi^2 goodness-of-fit on the pooled first cell
    observed = np.bincount(counts[:, 0].astype(int), minlength=n + 1)
    expected = stats.binom.pmf(np.arange(n + 1), n, p[0]) * reps
    keep = expected > 5
    chi2 = np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep])
    assert stats.chi2.sf(chi2, keep.sum() - 1) > 1e-4
    np.testing.assert_allclose(counts.mean(axis=0), n * p, atol=0.2)


@pytest.mark.parametrize("call, name", [
    (lambda: sample_atoms(AliasTable([0.5, 0.5]), 3, 0), "rng"),
    (lambda: sample_atoms(AliasTable([0.5, 0.5]), 2**40, np.random.default_rng(0)), "n must be <="),
    (lambda: sample_atoms([0.5, 0.5], 3, np.random.default_rng(0)), "table"),
])
def test_bad_sampler_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
