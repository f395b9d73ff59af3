"""Fuzz test of the public solver and environment entry points (issue 12): a random invalid value for one
argument of a valid call must raise ValueError naming that argument, quickly, never a numba TypingError,
an IndexError, a TypeError, a silent NaN or a silent filtering."""
import functools
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.env import EnvSpec, make_env, preset
from simlab.env.sampling import AliasTable, multinomial_counts, nested_counts, sample_atoms
from simlab.linalg import symmetric_lambda_min
from simlab.solvers.checkpoints import log_checkpoints
from simlab.solvers.dpo import fit_dpo_exact, sgd_dpo
from simlab.solvers.rebel import fit_rebel, online_rebel_exact, online_rebel_sgd
from simlab.solvers.robust_dpo import fit_kldpo_code, fit_robust_dpo_exact, sgd_robust_dpo

FUZZ = settings(derandomize=True, max_examples=50, deadline=None)
SECONDS = 2.0  # an invalid call fails in its input checks, before any solve

NAN, INF = float("nan"), float("inf")
JUNK = [None, "x", [1.0, "a"], object()]
POSITIVE = st.one_of(st.sampled_from([0.0, NAN, INF, -INF, True, *JUNK]),
                     st.floats(max_value=0.0, allow_nan=False))
NONNEGATIVE = st.one_of(st.sampled_from([NAN, INF, -INF, True, *JUNK]), st.floats(max_value=-1e-300))
UNIT = st.one_of(st.sampled_from([NAN, INF, True, *JUNK]), st.floats(min_value=1.0 + 1e-12, allow_nan=False),
                 st.floats(max_value=-1e-300))
RNG = st.sampled_from([0, 1.5, None, "rng", np.random.RandomState(0), np.random.SeedSequence(0)])


def ints(low, high=None):
    bad = st.integers(max_value=low - 1)
    if high is not None:
        bad = st.one_of(bad, st.integers(min_value=high + 1, max_value=2**70))
    return st.one_of(bad, st.sampled_from([2.5, True, np.float64(3.0), *JUNK]))


def choices(allowed):
    return st.one_of(st.text(max_size=6).filter(lambda s: s not in allowed), st.sampled_from([None, 3, True]))


def vectors(n, optional=False):
    """Invalid vectors where a finite float vector of length n is expected (None is valid if optional)."""
    junk = JUNK[1:3] if optional else JUNK[:3]
    return st.sampled_from([np.full(n, NAN), np.zeros(n + 1), np.zeros((n, n)), np.full(n, INF), *junk])


def weight_vectors(n):
    neg = np.full(n, 1.0 / n)
    neg[0] = -1e-3
    return st.one_of(vectors(n), st.sampled_from([neg, np.zeros(n)]))


@functools.lru_cache(maxsize=None)
def _worlds():
    dpo_env = make_env(preset("E1", n_x=4, n_y=3, d=2), 0)
    rebel_env = make_env(preset("E2", n_x=4, n_y=3, d=2), 0)
    return dpo_env, dpo_env.atoms("offline"), rebel_env, rebel_env.atoms("online", np.zeros(2))


def _rng():
    return np.random.default_rng(0)


def _calls():
    """name -> (function, valid keyword arguments (fresh per call), {argument: invalid-value strategy})."""
    dpo_env, atoms, rebel_env, ratoms = _worlds()
    A, d = atoms.size, atoms.dim
    B = ratoms.size
    return {
        "fit_dpo_exact": (fit_dpo_exact,
                          lambda: dict(atoms=atoms, weights=atoms.p0, theta_ref=dpo_env.theta_ref, beta=1.0),
                          dict(atoms=st.sampled_from([atoms.p0, None, ratoms]), weights=weight_vectors(A),
                               theta_ref=vectors(d), beta=POSITIVE, theta0=vectors(d, optional=True), max_norm=POSITIVE,
                               gtol=POSITIVE)),
        "sgd_dpo": (sgd_dpo,
                    lambda: dict(atoms=atoms, theta_ref=dpo_env.theta_ref, beta=1.0, T=5, step=0.1, rng=_rng()),
                    dict(atoms=st.sampled_from([atoms.p0, None, ratoms]), theta_ref=vectors(d), beta=POSITIVE,
                         T=ints(1, 2**40), step=POSITIVE, rng=RNG, schedule=choices(("constant", "inv_sqrt")),
                         batch=ints(1, 2**24), theta0=vectors(d, optional=True), radius=NONNEGATIVE,
                         n_checkpoints=ints(1, 10**5))),
        "fit_rebel": (fit_rebel,
                      lambda: dict(dphi=ratoms.dphi, dr=ratoms.dr, w=ratoms.p0, theta_anc=np.zeros(d), eta=1.0,
                                   objective="w2", radius=0.01),
                      dict(dphi=st.sampled_from([np.full((B, d), NAN), np.zeros(B), *JUNK[:3]]), dr=vectors(B),
                           w=weight_vectors(B), theta_anc=vectors(d), eta=POSITIVE,
                           objective=choices(("rebel", "w2", "w2_surrogate", "kl", "kl_tau", "chi2")),
                           radius=NONNEGATIVE, gtol=POSITIVE, max_iter=ints(1))),
        "online_rebel_exact": (online_rebel_exact,
                               lambda: dict(env=rebel_env, T=1, n=64, eta=1.0, rng=_rng()),
                               dict(env=st.sampled_from([None, dpo_env.spec, "E2"]), T=ints(1, 2**24), n=ints(1),
                                    eta=POSITIVE, rng=RNG, objective=choices(("rebel", "w2", "kl")),
                                    radius=NONNEGATIVE, anchor=choices(("prev", "ref")),
                                    sampler=choices(("online", "online_mixed")), mix=UNIT,
                                    alphas=st.sampled_from([[], [NAN], [1.5], [[0.5]], "x", None]),
                                    theta0=vectors(d, optional=True))),
        "online_rebel_sgd": (online_rebel_sgd,
                             lambda: dict(env=rebel_env, T=1, n=8, eta=1.0, rng=_rng()),
                             dict(env=st.sampled_from([None, dpo_env.spec]), T=ints(1, 2**24), n=ints(2, 2**24),
                                  eta=POSITIVE, rng=RNG, radius=NONNEGATIVE, inner_steps=ints(1),
                                  optimizer=choices(("sgd", "adam")), lr=POSITIVE, weight_decay=NONNEGATIVE,
                                  weights=choices(("detached", "non_detached")),
                                  betas=st.sampled_from([(1.0, 0.999), (0.9, 1.0), (0.9,), (NAN, 0.9), "x", None]),
                                  adam_eps=POSITIVE, log_coverage=st.sampled_from([1, "yes", None]),
                                  alphas=st.sampled_from([[], [NAN], [-0.5], "x"]), theta0=vectors(d, optional=True))),
        "fit_robust_dpo_exact": (fit_robust_dpo_exact,
                                 lambda: dict(objective="chi2dpo", atoms=atoms, weights=atoms.p0,
                                              theta_ref=dpo_env.theta_ref, beta=1.0, radius=0.05),
                                 dict(objective=choices(("dpo", "chi2dpo", "wdpo_exact")),
                                      atoms=st.sampled_from([atoms.p0, None, ratoms]), weights=weight_vectors(A),
                                      theta_ref=vectors(d), beta=POSITIVE, radius=NONNEGATIVE, theta0=vectors(d, optional=True))),
        "fit_kldpo_code": (fit_kldpo_code,
                           lambda: dict(atoms=atoms, weights=atoms.p0, theta_ref=dpo_env.theta_ref, beta=1.0, tau=1.0),
                           dict(atoms=st.sampled_from([atoms.p0, None, ratoms]), weights=weight_vectors(A),
                                theta_ref=vectors(d), beta=POSITIVE, tau=POSITIVE,
                                clip=st.one_of(st.sampled_from([0.0, NAN, -INF, True, *JUNK]),
                                               st.floats(max_value=0.0, allow_nan=False)),  # inf: no clipping
                                theta0=vectors(d, optional=True))),
        "sgd_robust_dpo": (sgd_robust_dpo,
                           lambda: dict(algorithm="wdpo", atoms=atoms, theta_ref=dpo_env.theta_ref, beta=1.0,
                                        radius=0.1, T=5, step=0.1, rng=_rng()),
                           dict(algorithm=choices(("wdpo", "kldpo", "chi2dpo")),
                                atoms=st.sampled_from([atoms.p0, None, ratoms]), theta_ref=vectors(d), beta=POSITIVE,
                                radius=NONNEGATIVE, T=ints(1, 2**40), step=POSITIVE, rng=RNG, batch=ints(1, 2**24),
                                schedule=choices(("constant", "inv_sqrt")), theta0=vectors(d, optional=True),
                                n_checkpoints=ints(1, 10**5))),
        "make_env": (make_env, lambda: dict(spec=dpo_env.spec, seed=0),
                     dict(spec=st.sampled_from([None, "E1", {"d": 2}]), seed=ints(0))),
        "multinomial_counts": (multinomial_counts, lambda: dict(p0=atoms.p0, n=10, rng=_rng()),
                               dict(p0=weight_vectors(A), n=ints(0), rng=RNG)),
        "nested_counts": (nested_counts, lambda: dict(p0=atoms.p0, ns=[1, 4], rng=_rng()),
                          dict(p0=weight_vectors(A), rng=RNG)),
        "sample_atoms": (sample_atoms, lambda: dict(table=AliasTable(atoms.p0), n=5, rng=_rng()),
                         dict(table=st.sampled_from([atoms.p0, None]), n=ints(0, 2**31), rng=RNG)),
        "log_checkpoints": (log_checkpoints, lambda: dict(T=10, k=3), dict(T=ints(1), k=ints(1, 10**5))),
        "symmetric_lambda_min": (symmetric_lambda_min, lambda: dict(A=np.eye(3)),
                                 dict(A=st.sampled_from([np.full((2, 2), NAN), np.ones((2, 3)), np.ones(3),
                                                         np.array([[1.0, 2.0], [0.0, 1.0]]), *JUNK[:3]]))),
    }


# the message names the argument as the user passed it; a few name the quantity it carries
ALIASES = {("multinomial_counts", "p0"): "p0", ("nested_counts", "p0"): "p0", ("make_env", "spec"): "spec",
           ("online_rebel_sgd", "betas"): "betas", ("symmetric_lambda_min", "A"): "A"}

CASES = [(name, arg) for name, (_, _, args) in _calls().items() for arg in args]


@pytest.mark.parametrize("name, arg", CASES, ids=[f"{n}-{a}" for n, a in CASES])
def test_invalid_argument_raises_value_error_naming_it(name, arg):
    fn, valid, args = _calls()[name]
    fn(**valid())  # the baseline is valid (and compiles what it needs before the timed calls)

    @FUZZ
    @given(bad=args[arg])
    def check(bad):
        kwargs = valid()
        kwargs[arg] = bad
        start = time.perf_counter()
        with pytest.raises(ValueError) as info:
            fn(**kwargs)
        assert time.perf_counter() - start < SECONDS
        assert ALIASES.get((name, arg), arg) in str(info.value), (arg, bad, str(info.value))

    check()


@FUZZ
@given(field=st.sampled_from(sorted(EnvSpec.__dataclass_fields__)), bad=st.sampled_from([NAN, -1, "zz", None, 10**9]))
def test_preset_overrides_are_validated_by_field(field, bad):
    """preset(name, **overrides) with an invalid value names the field (or accepts a value that is valid)."""
    try:
        spec = preset("E2", **{field: bad})
    except ValueError as exc:
        assert field in str(exc)
        return
    assert getattr(spec, field) == bad or bad is None  # accepted only if valid for that field


def test_unknown_preset_override_is_a_value_error():
    with pytest.raises(ValueError, match="'dd'"):
        preset("E1", dd=3)
