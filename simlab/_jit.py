"""The one numba decorator policy used by every kernel in simlab.

All kernels are compiled lazily (no signatures, so nothing compiles at import) and cached on
disk. ``fastmath`` allows reassociation/contraction for vectorised reductions but never
``nnan``/``ninf``: NaN and inf must propagate so that bad input is visible.
"""
from __future__ import annotations

from numba import njit

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "reassoc"})


def kernel(func=None, *, parallel: bool = False):
    """Decorate a numba kernel with the project policy ``njit(cache=True, fastmath=FASTMATH_FLAGS)``."""

    def wrap(f):
        return njit(cache=True, fastmath=set(FASTMATH_FLAGS), parallel=parallel, nogil=True)(f)

    return wrap(func) if func is not None else wrap
