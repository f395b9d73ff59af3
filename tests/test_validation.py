"""simlab.validation: every check raises ValueError naming the argument and the allowed range."""
import numpy as np
import pytest

from simlab.validation import (check_float, check_generator, check_int, check_labels, check_linear_atoms,
                               check_weights)


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_check_float_rejects_bools_like_check_int(value):
    """Defect 9: check_float accepted True as 1.0 while check_int rejected it."""
    with pytest.raises(ValueError, match="radius must be a real number"):
        check_float("radius", value)
    with pytest.raises(ValueError, match="n must be an integer"):
        check_int("n", value)


def test_ranges_are_named():
    with pytest.raises(ValueError, match=r"step must be > 0.0"):
        check_float("step", 0.0, 0.0, low_open=True)
    with pytest.raises(ValueError, match=r"d must be <= 8"):
        check_int("d", 9, 1, 8)
    assert check_float("x", np.float32(0.5), 0.0, 1.0) == 0.5 and check_int("k", np.int64(3), 1) == 3


def test_weights_labels_generator():
    with pytest.raises(ValueError, match=r"w \(atom weights\) must be >= 0"):
        check_weights("w", [0.5, -0.1, 0.6], 3)
    with pytest.raises(ValueError, match="positive sum"):
        check_weights("w", [0.0, 0.0], 2)
    with pytest.raises(ValueError, match=r"w must have shape \(3,\)"):
        check_weights("w", [0.5, 0.5], 3)
    with pytest.raises(ValueError, match=r"y \(labels\) must lie in \[0, 1\]"):
        check_labels("y", [0.0, 1.5], 2)
    for bad in (0, None, np.random.RandomState(0)):
        with pytest.raises(ValueError, match="rng must be a numpy.random.Generator"):
            check_generator("rng", bad)


def test_linear_atoms_names_each_argument():
    dphi = np.ones((4, 2))
    ok = (np.zeros(2), np.zeros(2), dphi, np.zeros(4), np.full(4, 0.25))
    check_linear_atoms(*ok)
    for i, name in enumerate(["theta", "theta_anc", "dphi", "dr", "w"]):
        args = list(ok)
        args[i] = np.full(7, np.nan)
        with pytest.raises(ValueError, match=name):
            check_linear_atoms(*args, anchor_name="theta_anc", target_name="dr")
