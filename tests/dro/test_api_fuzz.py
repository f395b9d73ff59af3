"""Fuzz test of the public API of simlab.dro (Hypothesis, profile "ci"): one argument of a valid call is
replaced by a random invalid value (wrong type, shape or length, NaN/inf, out of range, unknown
choice); the call must raise ValueError naming that argument, within a time bound, and never a numba
TypingError, another exception type, a crash or a NaN result.  The valid calls themselves return
finite values."""
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.dro import (chi2_divergence, chi2_worst_case, kl_divergence, kl_penalized, kl_radius_of_tau,
                        kl_worst_case, w2_margin_surrogate, w2_margin_value_grad_hess, w2_margin_worst_case,
                        w2_surrogate_value_grad_hess, w_linear_worst_case, worst_case)

N, D = 5, 3
RNG = np.random.default_rng(0)
L = RNG.standard_normal(N)
P = RNG.dirichlet(np.ones(N))
Y = np.array([0.0, 1.0, 0.5, 0.2, 1.0])
Z = RNG.standard_normal((N, D))
G = RNG.standard_normal(D)

# (function, valid keyword arguments, kind of each argument)
CALLS = {
    "worst_case": (worst_case, dict(losses=L, probs=P, divergence="kl", radius=0.3),
                   dict(losses="vector", probs="probs", divergence="choice", radius="nonneg")),
    "kl_worst_case": (kl_worst_case, dict(losses=L, probs=P, radius=0.3),
                      dict(losses="vector", probs="probs", radius="nonneg")),
    "chi2_worst_case": (chi2_worst_case, dict(losses=L, probs=P, radius=0.3, method="sort"),
                        dict(losses="vector", probs="probs", radius="nonneg", method="choice")),
    "kl_penalized": (kl_penalized, dict(losses=L, probs=P, tau=0.5),
                     dict(losses="vector", probs="probs", tau="positive")),
    "kl_radius_of_tau": (kl_radius_of_tau, dict(losses=L, probs=P, tau=0.5),
                         dict(losses="vector", probs="probs", tau="positive")),
    "kl_divergence": (kl_divergence, dict(q=P, p=P[::-1].copy()), dict(q="weights", p="weights")),
    "chi2_divergence": (chi2_divergence, dict(q=P, p=P[::-1].copy()), dict(q="weights", p="weights")),
    "w2_margin_worst_case": (w2_margin_worst_case,
                             dict(margins=L, slope_norm=1.5, probs=P, radius=0.3, loss="logistic", targets=Y,
                                  max_iter=100),
                             dict(margins="vector", slope_norm="nonneg", probs="probs", radius="nonneg",
                                  loss="choice", targets="labels", max_iter="count")),
    "w2_margin_surrogate": (w2_margin_surrogate,
                            dict(margins=L, slope_norm=1.5, probs=P, radius=0.3, loss="logistic", targets=Y),
                            dict(margins="vector", slope_norm="nonneg", probs="probs", radius="nonneg",
                                 loss="choice", targets="labels")),
    "w_linear_worst_case": (w_linear_worst_case, dict(a=G, z=Z, probs=P, radius=0.3, b=L),
                            dict(a="dvector", z="matrix", probs="probs", radius="nonneg", b="optional vector")),
    "w2_margin_value_grad_hess": (w2_margin_value_grad_hess, dict(g=G, z=Z, targets=Y, probs=P, radius=0.3,
                                                                  loss="logistic"),
                                  dict(g="dvector", z="matrix", targets="labels", probs="probs",
                                       radius="nonneg", loss="choice")),
    "w2_surrogate_value_grad_hess": (w2_surrogate_value_grad_hess, dict(g=G, z=Z, targets=Y, probs=P, radius=0.3,
                                                                        loss="logistic"),
                                     dict(g="dvector", z="matrix", targets="labels", probs="probs",
                                          radius="nonneg", loss="choice")),
}

not_arrays = st.sampled_from([None, "abc", b"xy", {"a": 1.0}, object(), [1.0, "x", 2.0], [[1.0, 2.0], [3.0]],
                              [1 + 2j] * N, np.array([1 + 1j] * N)])
bad_reals = st.sampled_from([np.nan, np.inf, -np.inf])


def _vectors(size):
    """Invalid stand-ins for a real vector of length ``size``."""
    return st.one_of(
        not_arrays,
        st.just([]), st.just(np.zeros((size, 2))), st.just(np.float64(1.0)),
        st.integers(0, 8).filter(lambda k: k != size).map(lambda k: np.ones(k)),
        st.tuples(st.integers(0, size - 1), bad_reals).map(lambda t: np.where(np.arange(size) == t[0], t[1], 0.5)),
    )


def _scalars(low_ok: float):
    return st.one_of(bad_reals, st.sampled_from([None, "abc", [1.0, 2.0], 1 + 1j, {}]),
                     st.floats(max_value=low_ok, exclude_max=True, allow_nan=False, allow_infinity=False,
                               min_value=-1e308))


def invalid_values(kind: str):
    if kind == "vector":
        return _vectors(N)
    if kind == "optional vector":  # None is valid (the default)
        return _vectors(N).filter(lambda v: v is not None)
    if kind == "dvector":
        return _vectors(D)
    if kind == "labels":
        return st.one_of(_vectors(N), st.floats(1.0, 1e300, exclude_min=True).map(lambda v: np.r_[Y[:-1], v]),
                         st.floats(-1e300, 0.0, exclude_max=True).map(lambda v: np.r_[v, Y[1:]]))
    if kind in ("probs", "weights"):
        negative = st.floats(-1.0, 0.0, exclude_max=True).map(lambda v: np.r_[v, P[1:]])
        if kind == "weights":
            return st.one_of(_vectors(N), negative)
        return st.one_of(_vectors(N), negative,
                         st.floats(1.0, 1e300, exclude_min=True).map(lambda v: np.r_[v, np.zeros(N - 1)]),
                         st.floats(1e-8, 10.0).map(lambda f: P * (1.0 + f)),
                         st.floats(1e-8, 0.999).map(lambda f: P * (1.0 - f)))
    if kind == "matrix":
        return st.one_of(not_arrays, st.just(np.ones(N)), st.just(np.ones((N, D, 1))), st.just(np.ones((0, D))),
                         st.integers(1, 8).filter(lambda k: k != N).map(lambda k: np.ones((k, D))),
                         bad_reals.map(lambda v: np.where(np.eye(N, D) > 0, v, 0.5)))
    if kind == "nonneg":
        return _scalars(0.0)
    if kind == "positive":
        return st.one_of(_scalars(0.0), st.just(0.0), st.just(-0.0))
    if kind == "choice":
        return st.one_of(st.text(max_size=12).filter(lambda t: t not in ("kl", "chi2", "logistic", "squared",
                                                                            "active_set", "sort", "bisection")),
                         st.sampled_from([None, 1, 2.5, ("kl",)]))
    if kind == "count":
        return st.one_of(st.integers(-10, 0), st.sampled_from([1.5, "3", None, np.nan]))
    raise AssertionError(kind)


@st.composite
def invalid_calls(draw):
    name = draw(st.sampled_from(sorted(CALLS)))
    fn, valid, kinds = CALLS[name]
    arg = draw(st.sampled_from(sorted(kinds)))
    return name, fn, valid, arg, draw(invalid_values(kinds[arg]))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_valid_calls_are_finite(name):
    fn, valid, _ = CALLS[name]
    out = fn(**valid)
    values = out if isinstance(out, tuple) else (out,)
    for v in values:
        if isinstance(v, (float, np.floating, np.ndarray)):
            assert np.all(np.isfinite(v))


@settings(max_examples=300)
@given(call=invalid_calls())
def test_invalid_argument_raises_value_error_naming_it(call):
    name, fn, valid, arg, bad = call
    kwargs = dict(valid, **{arg: bad})
    start = time.perf_counter()
    with pytest.raises(ValueError) as info:
        out = fn(**kwargs)
        # reaching here is a failure: say what came back (and whether it was NaN)
        pytest.fail(f"{name}({arg}={bad!r}) returned {out!r} instead of raising")
    assert time.perf_counter() - start < 5.0, f"{name} took too long to reject {arg}"
    assert arg in str(info.value), f"{name}({arg}={bad!r}): message {info.value!s} does not name {arg!r}"
