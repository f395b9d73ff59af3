"""The one numba decorator policy used by every kernel in simlab.

All kernels are compiled lazily (no signatures, so nothing compiles at import) and cached on
disk. ``fastmath`` allows reassociation/contraction for vectorised reductions but never
``nnan``/``ninf``: NaN and inf must propagate so that bad input is visible.

Cache validity: numba keys a cached kernel on its own source file only, so a kernel that calls a
jitted function from another module would keep running stale machine code after that module
changes. simlab therefore keeps its numba cache in a directory named by a fingerprint of the whole
package source (``$XDG_CACHE_HOME/simlab-numba/<fingerprint>``, or ``$NUMBA_CACHE_DIR/simlab-numba/
<fingerprint>`` when ``NUMBA_CACHE_DIR`` is set: a custom cache folder is a base, never a way around the
fingerprint): any source change starts a fresh cache. Only the few most recent fingerprints are kept.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from numba import config, njit

FASTMATH_FLAGS = frozenset({"nsz", "arcp", "contract", "reassoc"})
# For kernels over small arrays whose loops mix stores and sums (``kernel(ordered=True)``): LLVM
# guards the vector version of such a loop with a runtime alias check on the arrays' addresses,
# which small non-overlapping arrays can fail, and the scalar fallback sums in another order; without
# reassociation both versions give the same bits, so results no longer depend on heap addresses.
ORDERED_FASTMATH_FLAGS = FASTMATH_FLAGS - {"reassoc"}
_KEEP_CACHES = 4


def source_fingerprint() -> str:
    """A hash of every simlab source file (path and bytes): the name of the numba cache directory.

    Returns
    -------
    str
        16 hex digits.
    """
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _configure_cache() -> None:
    custom = os.environ.get("NUMBA_CACHE_DIR")
    root = Path(custom) if custom else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    base = root / "simlab-numba"
    target = base / source_fingerprint()
    try:
        target.mkdir(parents=True, exist_ok=True)
        os.utime(target)
        old = sorted((p for p in base.iterdir() if p.is_dir() and p != target),
                     key=lambda p: p.stat().st_mtime, reverse=True)
        for stale in old[_KEEP_CACHES - 1:]:
            shutil.rmtree(stale, ignore_errors=True)
    except OSError:
        return  # unwritable home: numba falls back to __pycache__ next to the sources
    config.CACHE_DIR = str(target)


_configure_cache()


def kernel(func=None, *, parallel: bool = False, ordered: bool = False):
    """Decorate a numba kernel with the project policy ``njit(cache=True, fastmath=FASTMATH_FLAGS, nogil=True)``.

    Usable bare (``@kernel``) or with options (``@kernel(ordered=True)``).

    Parameters
    ----------
    func : callable, optional
        The function to compile (given when used bare).
    parallel : bool, default False
        Passed to ``njit``.
    ordered : bool, default False
        Use ORDERED_FASTMATH_FLAGS (no reassociation: sums keep source order).

    Returns
    -------
    callable
        The numba dispatcher, or a decorator that makes one when ``func`` is not given.
    """
    flags = ORDERED_FASTMATH_FLAGS if ordered else FASTMATH_FLAGS

    def wrap(f):
        return njit(cache=True, fastmath=set(flags), parallel=parallel, nogil=True)(f)

    return wrap(func) if func is not None else wrap
