"""Small dense linear algebra as numba kernels (layer 0): the smallest eigenvalue of a symmetric matrix.

Whole-loop jitted solvers log lambda_min of a d x d second moment every iteration; LAPACK is not
callable from inside a kernel without an object-mode hop, so this module holds a Householder
tridiagonalisation followed by Laguerre's iteration on the characteristic polynomial of the
tridiagonal matrix (Golub & Van Loan, Alg. 8.3.1; Laguerre: cubic, monotone from below for a
real-rooted polynomial).  ``symmetric_lambda_min`` is the checked public entry point;
``symmetric_lambda_min_kernel`` is the in-kernel one (work arrays passed in, nothing allocated).
"""
from __future__ import annotations

import numpy as np

from simlab._jit import kernel
from simlab.validation import check_array, check_int

# symmetric_lambda_min allocates d x d work; larger matrices belong to LAPACK (numpy.linalg.eigvalsh)
MAX_DIM = 4096


@kernel
def tridiagonalize_kernel(A: np.ndarray, diag: np.ndarray, off: np.ndarray, v: np.ndarray,
                          p: np.ndarray) -> None:
    """Householder reduction of the symmetric A (overwritten) to the tridiagonal (diag, off); a kernel.

    The tridiagonal has the same eigenvalues: A <- H A H, H = I - beta v v^T per column (Golub & Van
    Loan, Alg. 8.3.1).

    Parameters
    ----------
    A : (n, n) ndarray
        Symmetric matrix, n >= 2; overwritten.
    diag : (n,) ndarray
        Receives the diagonal.
    off : (>= n - 1,) ndarray
        Receives the off-diagonal.
    v, p : (n,) ndarray
        Work arrays.
    """
    n = A.shape[0]
    for k in range(n - 2):
        m = n - k - 1
        xn = 0.0
        for i in range(m):
            v[i] = A[k + 1 + i, k]
            xn += v[i] * v[i]
        xn = np.sqrt(xn)
        alpha = -xn if v[0] >= 0.0 else xn
        v[0] -= alpha
        vv = 0.0
        for i in range(m):
            vv += v[i] * v[i]
        if vv == 0.0:
            off[k] = A[k + 1, k]
            continue
        off[k] = alpha
        beta = 2.0 / vv
        vp = 0.0
        for i in range(m):
            acc = 0.0
            for j in range(m):
                acc += A[k + 1 + i, k + 1 + j] * v[j]
            p[i] = beta * acc
            vp += v[i] * p[i]
        half = 0.5 * beta * vp
        for i in range(m):
            p[i] -= half * v[i]
        for i in range(m):
            for j in range(m):
                A[k + 1 + i, k + 1 + j] -= v[i] * p[j] + p[i] * v[j]
    for i in range(n):
        diag[i] = A[i, i]
    off[n - 2] = A[n - 1, n - 2]


@kernel
def tridiagonal_lambda_min_kernel(diag: np.ndarray, off: np.ndarray) -> float:
    """Smallest eigenvalue of the symmetric tridiagonal (diag, off) by Laguerre's iteration; a kernel.

    The iteration runs on det(T - s I) = prod_i q_i (Sturm pivots q_i = diag_i - s - off_{i-1}^2 / q_{i-1})
    started at the Gershgorin lower bound; for a real-rooted polynomial it increases monotonically to the
    smallest root (cubically for a simple root). G = sum_j 1/(lam_j - s) = -sum q_i'/q_i and
    H = sum_j 1/(lam_j - s)^2 = -sum (q_i'' q_i - q_i'^2)/q_i^2 come from the differentiated recurrence.
    It stops when the step is below 2e-16 ||T|| or a pivot turns non-positive (s has reached lam_min in
    round-off).

    Parameters
    ----------
    diag : (n,) ndarray
        Diagonal.
    off : (>= n - 1,) ndarray
        Off-diagonal.

    Returns
    -------
    float
        lambda_min(T).
    """
    n = diag.size
    s = np.inf
    top = 0.0
    for i in range(n):
        r = (abs(off[i - 1]) if i > 0 else 0.0) + (abs(off[i]) if i < n - 1 else 0.0)
        s = min(s, diag[i] - r)
        top = max(top, abs(diag[i]) + r)
    s -= 1e-300 + 4e-16 * top
    for _ in range(100):
        q = diag[0] - s
        dq = -1.0
        ddq = 0.0
        ok = q > 0.0
        G = 0.0
        H = 0.0
        for i in range(n):
            if i > 0:
                e2 = off[i - 1] * off[i - 1]
                qp, dqp, ddqp = q, dq, ddq
                q = diag[i] - s - e2 / qp
                dq = -1.0 + e2 * dqp / (qp * qp)
                ddq = e2 * (ddqp * qp - 2.0 * dqp * dqp) / (qp * qp * qp)
                ok = q > 0.0
            if not ok:
                break
            G -= dq / q
            H -= (ddq * q - dq * dq) / (q * q)
        if not ok:
            break
        step = n / (G + np.sqrt(max((n - 1.0) * (n * H - G * G), 0.0)))
        s += step
        if step <= 2e-16 * top:
            break
    return s


@kernel
def symmetric_lambda_min_kernel(A: np.ndarray, diag: np.ndarray, off: np.ndarray, v: np.ndarray,
                                p: np.ndarray) -> float:
    """lambda_min of the symmetric A (overwritten): Householder tridiagonalisation + Laguerre; a kernel.

    Agrees with LAPACK's eigvalsh to ~1e-16 ||A|| and costs about a quarter of it at d = 16.

    Parameters
    ----------
    A : (n, n) ndarray
        Symmetric matrix; overwritten.
    diag, off, v, p : (n,) ndarray
        Work arrays.

    Returns
    -------
    float
        The smallest eigenvalue of A.
    """
    if A.shape[0] == 1:
        return A[0, 0]
    tridiagonalize_kernel(A, diag, off, v, p)
    return tridiagonal_lambda_min_kernel(diag, off)


def symmetric_lambda_min(A) -> float:
    """Smallest eigenvalue of the symmetric matrix ``A`` (not modified), by :func:`symmetric_lambda_min_kernel`.

    Parameters
    ----------
    A : (n, n) array_like
        Square, finite, symmetric to 1e-12 relative, n <= MAX_DIM.

    Returns
    -------
    float
        lambda_min(A).

    Raises
    ------
    ValueError
        If ``A`` is not a finite square symmetric matrix of allowed size.
    """
    A = check_array("A", A, ndim=2)
    n = check_int("A.shape[0]", A.shape[0], 1, MAX_DIM)
    if A.shape[1] != n:
        raise ValueError(f"A must be square, got shape {A.shape}")
    if np.max(np.abs(A - A.T), initial=0.0) > 1e-12 * max(np.max(np.abs(A), initial=0.0), 1e-300):
        raise ValueError("A must be symmetric (|A - A^T| <= 1e-12 max|A|)")
    work = [np.empty(n) for _ in range(4)]
    return float(symmetric_lambda_min_kernel(A.copy(), *work))
