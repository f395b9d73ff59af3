"""Taylor tests for hand-written gradients: the remainder of the first-order model has slope 2."""
from __future__ import annotations

import numpy as np


def taylor_remainders(f, grad, x, v, steps=None):
    """Return (steps, |f(x+hv)-f(x)|, |f(x+hv)-f(x)-h<g,v>|) for a geometric sequence of h."""
    steps = np.asarray(steps if steps is not None else 2.0 ** -np.arange(8, 16), dtype=float)
    f0 = f(x)
    g = grad(x)
    r0 = np.array([abs(f(x + h * v) - f0) for h in steps])
    r1 = np.array([abs(f(x + h * v) - f0 - h * float(np.dot(g, v))) for h in steps])
    return steps, r0, r1


def assert_taylor(f, grad, x, v=None, steps=None, tol=0.15, rng=None):
    """Assert the zeroth-order remainder decays with slope 1 and the first-order one with slope 2."""
    rng = np.random.default_rng(0) if rng is None else rng
    v = rng.standard_normal(np.shape(x)) if v is None else v
    h, r0, r1 = taylor_remainders(f, grad, x, v, steps)
    s0 = np.polyfit(np.log(h), np.log(r0), 1)[0]
    s1 = np.polyfit(np.log(h), np.log(np.maximum(r1, 1e-300)), 1)[0]
    assert abs(s0 - 1.0) < tol, f"zeroth-order remainder slope {s0:.3f}, expected 1"
    assert abs(s1 - 2.0) < tol, f"first-order remainder slope {s1:.3f}, expected 2"
    return s0, s1
