"""Test session set-up: pin BLAS/numba threads to 1 before numpy/numba load."""
import os

from simlab.threads import pin_threads

pin_threads()
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def warm_kernels():
    """Compile (or load from the numba cache) the foundation's kernels once per test session."""
    import numpy as np

    from simlab.env import make_env, preset
    from simlab.env.sampling import AliasTable, sample_atoms
    from simlab.solvers.dpo import fit_dpo_exact, sgd_dpo

    env = make_env(preset("E5"), 0)
    atoms = env.atoms()
    sample_atoms(AliasTable(atoms.p0), 4, np.random.default_rng(0))
    fit_dpo_exact(atoms, atoms.p0, env.theta_ref, env.beta)
    sgd_dpo(atoms, env.theta_ref, env.beta, 4, 0.1, np.random.default_rng(0))


# Hypothesis: the "ci" profile (fixed seed, bounded example counts, no per-example deadline: the
# first example of a suite may load numba kernels) is the default, so the property-based suites are
# reproducible and stay within CI's budget; HYPOTHESIS_PROFILE=dev (or any registered profile) overrides.
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", derandomize=True, max_examples=40, deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=400, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
