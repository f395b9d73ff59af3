"""The kernel decorator policy (simlab/_jit.py)."""
from simlab._jit import FASTMATH_FLAGS, ORDERED_FASTMATH_FLAGS, kernel


def test_flag_sets():
    assert {"nnan", "ninf", "fast"}.isdisjoint(FASTMATH_FLAGS)
    assert ORDERED_FASTMATH_FLAGS == FASTMATH_FLAGS - {"reassoc"}


def test_ordered_kernels_do_not_reassociate():
    """The oracle-robust SAIL kernels (small arrays, loops that mix stores and sums) are compiled
    without reassociation, so their sums do not depend on which loop version LLVM's runtime alias
    check picks from the heap addresses."""
    from simlab.objectives import sail
    from simlab.solvers import prox, sail_algorithms

    def plain(x):
        return x

    assert "reassoc" in kernel(plain).targetoptions["fastmath"]
    assert "reassoc" not in kernel(ordered=True)(plain).targetoptions["fastmath"]
    for mod in (sail, prox, sail_algorithms):
        for name, obj in vars(mod).items():
            if hasattr(obj, "targetoptions") and obj.__module__ == mod.__name__:
                assert "reassoc" not in obj.targetoptions["fastmath"], f"{mod.__name__}.{name}"


def test_a_custom_numba_cache_folder_still_keys_the_cache_by_the_source_fingerprint(tmp_path):
    """numba re-checks a cached kernel against its own file only; with NUMBA_CACHE_DIR honoured as
    given, a kernel that inlines an edited kernel of another module ran stale (a helper saw the old
    Newton ascent inside the CAID kernel). The custom folder is a base under which the fingerprint
    decides."""
    import os
    import subprocess
    import sys

    from simlab._jit import source_fingerprint

    code = "import numba.core.config as c, simlab._jit; print(c.CACHE_DIR)"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path)),
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(tmp_path / "simlab-numba" / source_fingerprint())
