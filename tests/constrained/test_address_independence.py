"""The constrained Lagrangian kernels give the same bits wherever their arrays lie in memory.

With reassociation allowed, LLVM may vectorise a loop that both stores and sums behind a runtime check on the
arrays' addresses and fall back to a scalar loop that rounds differently (CONTRIBUTING.md, Kernels). The log-ref
form of the parameter-space Lagrangian takes log pi_ref and its outputs as arguments (the Newton ascent and the
CAID inner ascent pass their own buffers), so each case places every array argument at several offsets inside a
larger buffer and requires bit-identical value, gradient and Hessian, and the Newton ascent's result."""
import numpy as np

from simlab.objectives.constrained import lagrangian_theta_logref_kernel
from simlab.policy import log_policy_kernel
from simlab.solvers.exact import DECREMENT_RTOL, newton_ascent_kernel
from tests.placement import placed_copy


def _problems(seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n_x, n_y, d = int(rng.integers(1, 9)), int(rng.integers(2, 12)), int(rng.integers(1, 8))
        phi = rng.normal(size=(n_x, n_y, d))
        p_x = rng.random(n_x) + 0.1
        yield (rng.normal(size=d), phi, p_x / p_x.sum(), rng.normal(size=(n_x, n_y)), rng.normal(size=d) * 0.5,
               float(rng.choice([0.1, 1.0])))


def test_lagrangian_theta_logref_kernel_bits_do_not_depend_on_array_addresses():
    for theta, phi, p_x, r_lam, theta_ref, beta in _problems(2, 60):
        n_x, n_y, d = phi.shape
        log_ref = np.empty((n_x, n_y))
        log_policy_kernel(theta_ref, phi, log_ref)
        g0, h0 = np.empty(d), np.empty((d, d))
        v0 = lagrangian_theta_logref_kernel(theta, phi, p_x, r_lam, log_ref, beta, g0, h0, True)
        t0 = newton_ascent_kernel(theta, phi, p_x, r_lam, theta_ref, beta, 1e-11, 50, DECREMENT_RTOL)
        for offset in (1, 3, 4, 7):
            args = [theta, phi, p_x, r_lam, log_ref]
            for i in range(len(args)):
                placed = list(args)
                placed[i] = placed_copy(args[i], offset)
                g, h = placed_copy(np.empty(d), (offset + 2) % 8), placed_copy(np.empty((d, d)), (offset + 5) % 8)
                v = lagrangian_theta_logref_kernel(*placed, beta, g, h, True)
                assert v == v0 and np.array_equal(g, g0) and np.array_equal(h, h0), (phi.shape, offset, i)
            t = newton_ascent_kernel(placed_copy(theta, offset), placed_copy(phi, (offset + 1) % 8), p_x,
                                     placed_copy(r_lam, (offset + 3) % 8), placed_copy(theta_ref, offset), beta, 1e-11, 50,
                                     DECREMENT_RTOL)
            assert np.array_equal(t[0], t0[0]) and t[1] == t0[1], (phi.shape, offset)
