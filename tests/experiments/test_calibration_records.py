"""Every recorded calibration must support the claim's current tolerance (tol >= 4 sd)."""
import json
from pathlib import Path

import pytest

RECORD = Path(__file__).resolve().parents[2] / "scenarios" / "calibration.json"


def _entries():
    return sorted(json.loads(RECORD.read_text()).items()) if RECORD.exists() else []


@pytest.mark.parametrize("key, entry", _entries())
def test_tolerance_is_at_least_four_sd(key, entry):
    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    claims = {calibration_key(c): c for _, c in all_claims()}
    assert key in claims, f"calibration record {key} has no registered claim"
    assert entry["masters"] >= 30
    assert claims[key].tol >= 4 * entry["sd"], (
        f"{key}: tol {claims[key].tol} < 4 sd = {4 * entry['sd']:.3f}; buy precision, do not widen tol")


def test_registered_checks_are_unique():
    """Every verdict row is told apart by (id, kind, label): calibration records and JSON rely on it."""
    from collections import Counter

    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    counts = Counter(calibration_key(c) for _, c in all_claims())
    assert not [k for k, v in counts.items() if v > 1]
