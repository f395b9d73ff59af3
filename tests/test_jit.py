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
