"""simlab.linalg: the Householder + Laguerre smallest eigenvalue against LAPACK (numpy.linalg.eigvalsh)."""
import numpy as np
import pytest

from simlab.linalg import MAX_DIM, symmetric_lambda_min, symmetric_lambda_min_kernel


@pytest.mark.parametrize("d", [1, 2, 3, 8, 16, 24])
def test_symmetric_lambda_min_matches_eigvalsh(d):
    rng = np.random.default_rng(d)
    work = [np.empty(d) for _ in range(4)]
    for trial in range(60):
        B = rng.standard_normal((d, d)) * rng.uniform(0.01, 3.0, size=d)
        A = B @ B.T + (rng.uniform(-1, 1) * np.eye(d) if trial % 3 == 0 else 0.0)
        if trial % 4 == 0 and d > 2:  # a near-multiple smallest eigenvalue
            ev, Q = np.linalg.eigh(A)
            ev[:3] = ev[0] * (1 + rng.uniform(0, 1e-6, 3))
            A = (Q * ev) @ Q.T
            A = (A + A.T) / 2
        if trial % 5 == 0 and d > 2:  # rank deficient (a pair design with a null direction)
            A = B[:, : d - 1] @ B[:, : d - 1].T
        ev = np.linalg.eigvalsh(A)
        lam = symmetric_lambda_min_kernel(A.copy(), *work)
        assert abs(lam - ev[0]) <= 1e-14 * np.abs(ev).max()
        assert symmetric_lambda_min(A) == lam  # the checked entry point is the kernel, A untouched


def test_indefinite_and_diagonal_matrices():
    assert symmetric_lambda_min(np.diag([3.0, -2.0, 5.0])) == pytest.approx(-2.0, abs=1e-15)
    A = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert symmetric_lambda_min(A) == pytest.approx(-1.0, abs=1e-15)


@pytest.mark.parametrize("A, match", [
    (np.ones((2, 3)), "square"),
    (np.array([[1.0, 2.0], [0.0, 1.0]]), "symmetric"),
    (np.array([[np.nan]]), "A contains NaN"),
    (np.ones(3), "A must be 2-dimensional"),
])
def test_bad_input_names_the_argument(A, match):
    with pytest.raises(ValueError, match=match):
        symmetric_lambda_min(A)


def test_size_is_bounded_before_allocation():
    with pytest.raises(ValueError, match=r"A.shape\[0\] must be <= 4096"):
        symmetric_lambda_min(np.zeros((MAX_DIM + 1, 1)))
