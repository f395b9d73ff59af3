"""pytest plugin: every registered claim check becomes a test item.

Registered through the ``pytest11`` entry point, so it is active wherever simlab is installed; it does
nothing unless asked. ``pytest --simlab=quick`` (or ``full``) appends one item per check of every
scenario in the scenario folder (``--simlab-scenarios DIR`` or ``$SIMLAB_SCENARIOS``; default: the
registered studies) to the collected tests; ``-k`` selects among them as usual. An item

- passes when its verdict equals the committed baseline's expectation (``pass`` by default),
- is a strict xfail when the verdict is an expected known finding (the reason is the finding); a known
  finding that starts passing fails (strict),
- fails on a regression, on drift (> 4 calibrated sds from the baseline's measured value), or when the
  claim has no stored rows; the failure message holds the verdict row and the convergence table.

Cells are stored in ``--simlab-store`` (default: ``$SIMLAB_STORE`` or ``results/simlab.sqlite``) and
reused under the same code fingerprint; each scenario is swept once, when its first item runs.
"""
from __future__ import annotations

import os

import pytest

from simlab.experiments.scenario import DEFAULT_MASTER_SEED


def pytest_addoption(parser):
    """Register the options ``--simlab``, ``--simlab-scenarios``, ``--simlab-store``, ``--simlab-workers`` and ``--simlab-master``.

    Parameters
    ----------
    parser : pytest.Parser
        pytest's option parser.
    """
    group = parser.getgroup("simlab", "simlab claim checks")
    group.addoption("--simlab", choices=("quick", "full"), default=None,
                    help="collect every registered simlab claim check as a test item, judged on this grid")
    group.addoption("--simlab-scenarios", default=None, metavar="DIR",
                    help="scenario folder whose claims are collected (default: $SIMLAB_SCENARIOS or the registered studies)")
    group.addoption("--simlab-store", default=None, metavar="FILE",
                    help="results store (default: $SIMLAB_STORE or results/simlab.sqlite)")
    group.addoption("--simlab-workers", type=int, default=None, metavar="N",
                    help="worker processes for the sweeps (default: all cores)")
    group.addoption("--simlab-master", type=int, default=DEFAULT_MASTER_SEED, metavar="SEED",
                    help="master seed (default: %(default)s)")


class ClaimFailure(Exception):
    """A claim item whose verdict does not match the baseline."""


class _Runner:
    """Sweeps each scenario once per session and judges all of its selected checks together."""

    def __init__(self, config):
        self.config = config
        self.rows: dict[str, dict] = {}

    def row(self, sc, claim, pairs):
        from simlab.experiments.claims import calibration_key, check

        if sc.name not in self.rows:
            opt = self.config.getoption
            rows = check(None, opt("simlab"), opt("simlab_workers"), opt("simlab_store"), opt("simlab_master"),
                         progress=False, pairs=[p for p in pairs if p[0].name == sc.name])
            self.rows[sc.name] = {r.key: r for r in rows}
        return self.rows[sc.name][calibration_key(claim)]


class ClaimItem(pytest.Item):
    """One registered claim check as a test item (created by :class:`SimlabClaims`).

    Its outcome follows the baseline: pass when the verdict is the expected one, a strict xfail for a
    known finding, a failure (with the verdict row and convergence table) otherwise.

    Parameters
    ----------
    scenario : Scenario
        The claim's scenario.
    claim : Claim
        The check.
    pairs : list of (Scenario, Claim)
        Every collected check (the scenario's checks are judged together).
    runner : object
        The session's sweep runner (each scenario is swept once).
    **kwargs
        Passed to ``pytest.Item`` (name, parent).
    """
    def __init__(self, *, scenario, claim, pairs, runner, **kwargs):
        super().__init__(**kwargs)
        self.scenario, self.claim, self.pairs, self.runner = scenario, claim, pairs, runner
        self.add_marker(pytest.mark.simlab)

    def runtest(self):
        row = self.runner.row(self.scenario, self.claim, self.pairs)
        self.user_properties.append(("verdict", row.verdict))
        self.user_properties.append(("measured", row.measured))
        if row.status == "known finding":
            pytest.xfail(f"known finding ({row.verdict}): {row.finding}")
        if row.status not in ("ok", "report"):
            raise ClaimFailure(row)

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, ClaimFailure):
            return failure_text(excinfo.value.args[0])
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        return self.path, None, f"simlab claim {self.name}"


def failure_text(row) -> str:
    """The failure message of a claim item: status, verdict row, notes, convergence table.

    Parameters
    ----------
    row : CheckRow
        The failing check.

    Returns
    -------
    str
        The message.
    """
    from simlab.report import convergence_table_text, verdict_table

    lines = [f"{row.key}: {row.status} (verdict {row.verdict}, expected {row.expected})",
             f"claim: {row.statement}", "", verdict_table([row])]
    if row.notes:
        lines += ["", f"notes: {row.notes}"]
    if row.status == "drift":
        lines += ["", f"measured {row.measured!r}, baseline {row.extra.get('baseline_measured')!r} "
                      f"({row.extra.get('drift_sds', float('nan')):.1f} calibrated sds away)"]
    table = convergence_table_text(row)
    if table:
        lines += ["", table]
    return "\n".join(lines)


class SimlabClaims(pytest.Collector):
    """The collector of claim items (one per registered check).

    Parameters
    ----------
    pairs : list of (Scenario, Claim)
        The checks to collect.
    runner : object
        The session's sweep runner.
    **kwargs
        Passed to ``pytest.Collector`` (name, parent).
    """

    def __init__(self, *, pairs, runner, **kwargs):
        super().__init__(**kwargs)
        self.pairs, self.runner = pairs, runner

    def collect(self):
        from simlab.experiments.claims import calibration_key

        for sc, claim in self.pairs:
            yield ClaimItem.from_parent(self, name=calibration_key(claim), scenario=sc, claim=claim,
                                        pairs=self.pairs, runner=self.runner)


def pytest_configure(config):
    """Register the ``simlab`` marker and apply ``--simlab-scenarios``.

    Parameters
    ----------
    config : pytest.Config
        The session's configuration.
    """
    config.addinivalue_line("markers", "simlab: a registered simlab claim check (from --simlab)")
    if config.getoption("simlab_scenarios"):
        os.environ["SIMLAB_SCENARIOS"] = str(config.getoption("simlab_scenarios"))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
    """Append the claim items (with ``--simlab``) before ``-k`` / ``-m`` deselection runs.

    Parameters
    ----------
    session : pytest.Session
        The test session.
    config : pytest.Config
        Its configuration.
    items : list of pytest.Item
        The collected items (extended in place).
    """
    if not config.getoption("simlab"):
        return
    from simlab.experiments.scenario import all_claims

    mode = config.getoption("simlab")
    pairs = [p for p in all_claims() if mode in p[1].modes]
    collector = SimlabClaims.from_parent(session, name="simlab", pairs=pairs, runner=_Runner(config))
    items.extend(collector.collect())
