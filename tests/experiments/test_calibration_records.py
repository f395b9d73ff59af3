"""Every recorded calibration must support the claim's current tolerance (tol >= 4 sd)."""
import json
from pathlib import Path

import pytest

RECORD = Path(__file__).resolve().parents[2] / "scenarios" / "calibration.json"


def _entries():
    return sorted(json.loads(RECORD.read_text()).items()) if RECORD.exists() else []


@pytest.mark.parametrize("key, entry", _entries())
def test_record_matches_its_claim(key, entry):
    """A record belongs to a registered check, used >= 30 masters, and its 'calibrated' flag still holds
    for the claim's current tolerance (margin to the decision boundary >= 4 sd): changing a tolerance
    or the rule without recalibrating makes the record stale and this test fail."""
    from simlab.experiments.claims import calibration_key, calibration_margin
    from simlab.experiments.scenario import all_claims

    claims = {calibration_key(c): c for _, c in all_claims()}
    assert key in claims, f"calibration record {key} has no registered claim"
    assert entry["masters"] >= 30
    margin = calibration_margin(claims[key], entry["mean"], entry["sd"])
    assert entry.get("calibrated", margin >= 4) == (margin >= 4), f"{key}: stale record (margin {margin:.2f} sd)"


def test_tight_tolerances_that_are_recorded_are_calibrated():
    """The calibration rule for rate checks (docs/theory/claims.md §7.1): a recorded tight tolerance is >= 4 sd of the fitted slope."""
    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    claims = {calibration_key(c): c for _, c in all_claims()}
    bad = [k for k, e in _entries() if k in claims and claims[k].kind == "tight" and claims[k].tol < 4 * e["sd"]]
    assert not bad, f"tight tolerances below 4 sd: {bad}; buy precision, never widen tol"


def test_registered_checks_are_unique():
    """Every verdict row is told apart by (id, kind, label): calibration records and JSON rely on it."""
    from collections import Counter

    from simlab.experiments.claims import calibration_key
    from simlab.experiments.scenario import all_claims

    counts = Counter(calibration_key(c) for _, c in all_claims())
    assert not [k for k, v in counts.items() if v > 1]
