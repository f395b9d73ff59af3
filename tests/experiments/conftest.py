"""Shared fixtures of the engine tests."""
from pathlib import Path

import pytest

from simlab.experiments.scenario import forget_loaded_scenarios

FIXTURES = Path(__file__).parent / "fixture_scenarios"


@pytest.fixture
def fixture_scenarios(monkeypatch):
    """Point ``SIMLAB_SCENARIOS`` at the toy scenarios of ``fixture_scenarios/`` for one test, with
    the scenario cache emptied before and after."""
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(FIXTURES))
    forget_loaded_scenarios()
    yield FIXTURES
    forget_loaded_scenarios()
