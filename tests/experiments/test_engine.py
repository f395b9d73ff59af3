"""The experiment engine: seeds, store, resume, workers, rate fits, verdicts, CLI."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simlab.experiments.claims import check
from simlab.experiments.rates import (as_verdict, fit_group_mean_slope, fit_rate, verdict_identity, verdict_identity_in_expectation,
                                      verdict_ordering, verdict_tight, verdict_upper)
from simlab.experiments.scenario import Claim, Scenario, load_scenario, select_claims
from simlab.experiments.store import Store
from simlab.experiments.sweep import run_scenario

FIXTURES = Path(__file__).parent / "fixture_scenarios"


pytestmark = pytest.mark.usefixtures("fixture_scenarios")  # tests/experiments/conftest.py


def _cells(store_path):
    st = Store(store_path)
    try:
        return sorted((r["cell_key"], r["replicate"], r["err"], r["instance"]) for r in st.rows("toy"))
    finally:
        st.close()


def test_rate_fit_recovers_a_known_slope():
    rng = np.random.default_rng(0)
    x = np.repeat([10, 100, 1000, 10000], 200)
    rep = np.tile(np.arange(200), 4)
    y = 3.0 * x**-0.75 * rng.lognormal(0, 0.3, x.size)
    fit = fit_rate(x, y, rep, cut=100)
    assert abs(fit.slope + 0.75) < 0.03 and fit.ci[0] < -0.75 < fit.ci[1]
    assert fit.x.tolist() == [100, 1000, 10000]
    assert np.isnan(fit.local_rates()[0]) and abs(fit.local_rates()[-1] + 0.75) < 0.1


def test_group_mean_slope_weighs_every_group_equally():
    """Two groups with exact power laws of very different scale: the mean of their slopes, where one pooled mean
    would follow the large group; one group alone reproduces fit_rate's slope and CI to the bit; the
    bootstrap CI covers the mean slope of noisy data and resamples replicates jointly across groups."""
    x = np.repeat([2.0 ** 18, 2.0 ** 20], 6)
    rep = np.tile(np.arange(6), 2)
    xs, ys = np.concatenate([x, x]), np.concatenate([100.0 * x ** -0.4, 1e-3 * x ** -0.6])
    reps, groups = np.concatenate([rep, rep]), np.repeat(["a", "b"], x.size)
    mean, ci, slopes = fit_group_mean_slope(xs, ys, reps, groups)
    assert slopes["a"] == pytest.approx(-0.4, abs=1e-12) and slopes["b"] == pytest.approx(-0.6, abs=1e-12)
    assert mean == pytest.approx(-0.5, abs=1e-12) and ci == pytest.approx((-0.5, -0.5), abs=1e-12)
    assert fit_rate(xs, ys, reps).slope == pytest.approx(-0.4, abs=1e-3)  # the pooled mean follows group a
    rng = np.random.default_rng(1)
    x = np.repeat([10.0, 100.0, 1000.0], 300)
    rep = np.tile(np.arange(300), 3)
    y = x ** -0.75 * rng.lognormal(0, 0.3, x.size)
    one = fit_rate(x, y, rep, cut=100)
    mean, ci, _ = fit_group_mean_slope(x, y, rep, np.zeros(x.size, dtype=int), cut=100)
    assert (mean, ci) == (one.slope, one.ci)
    y2 = 5.0 * x ** -0.25 * rng.lognormal(0, 0.3, x.size)
    mean, ci, slopes = fit_group_mean_slope(np.concatenate([x, x]), np.concatenate([y, y2]),
                                            np.concatenate([rep, rep]), np.repeat([0, 1], x.size))
    assert ci[0] < -0.5 < ci[1] and mean == pytest.approx(np.mean(list(slopes.values())))


@settings(max_examples=40, deadline=None)
@given(scales=st.lists(st.floats(1e-6, 1e6), min_size=2, max_size=4), seed=st.integers(0, 2 ** 16))
def test_group_mean_slope_is_invariant_to_each_groups_scale(scales, seed):
    """Multiplying one group's values by a positive constant moves no slope, so neither the mean nor its CI."""
    rng = np.random.default_rng(seed)
    x = np.repeat([10.0, 100.0, 1000.0], 8)
    rep = np.tile(np.arange(8), 3)
    k = len(scales)
    xs, reps, groups = np.tile(x, k), np.tile(rep, k), np.repeat(np.arange(k), x.size)
    ys = xs ** -0.5 * rng.lognormal(0, 0.5, xs.size)
    mean, ci, _ = fit_group_mean_slope(xs, ys, reps, groups, resamples=200)
    scaled = fit_group_mean_slope(xs, ys * np.repeat(scales, x.size), reps, groups, resamples=200)
    assert scaled[0] == pytest.approx(mean, abs=1e-9) and scaled[1] == pytest.approx(ci, abs=1e-9)


@pytest.mark.parametrize("ci, expected", [
    ((-1.05, -0.95), "pass"),          # inside the band -1 +/- 0.15
    ((-1.20, -1.16), "fail"),          # entirely below it
    ((-0.80, -0.70), "fail"),          # entirely above it
    ((-1.20, -1.00), "inconclusive"),  # straddles the lower edge
    ((-1.50, -0.50), "inconclusive"),  # wider than the band
    ((float("nan"), -1.0), "inconclusive"),
])
def test_tight_verdict_is_judged_on_the_ci(ci, expected):
    assert verdict_tight(ci, -1.0, 0.15)[0] == expected
    assert verdict_identity_in_expectation(tuple(c + 2.0 for c in ci), 1.0, 0.15)[0] == expected


@pytest.mark.parametrize("ci, direction, expected", [
    ((-1.05, -0.95), "inf", "pass"),       # whole CI at or below -0.5 + 0.1
    ((-0.35, -0.20), "inf", "fail"),       # whole CI above the bound
    ((-0.50, -0.30), "inf", "inconclusive"),
    ((1.20, 1.60), "zero", "pass"),        # whole CI at or above 1 - 0.1
    ((0.50, 0.80), "zero", "fail"),
    ((0.85, 1.10), "zero", "inconclusive"),
])
def test_upper_verdict_is_judged_on_the_ci(ci, direction, expected):
    predicted = -0.5 if direction == "inf" else 1.0
    assert verdict_upper(ci, predicted, 0.1, direction)[0] == expected


@pytest.mark.parametrize("ci, side, expected", [
    ((-0.3, -0.1), "<", "pass"), ((0.1, 0.3), "<", "fail"), ((-0.1, 0.1), "<", "inconclusive"),
    ((0.1, 0.3), ">", "pass"), ((-0.3, -0.1), ">", "fail"), ((-0.1, 0.1), ">", "inconclusive"),
])
def test_ordering_verdict_is_judged_on_the_ci(ci, side, expected):
    assert verdict_ordering(ci, side)[0] == expected


def test_identity_verdict_and_verdict_normalisation():
    assert verdict_identity(1e-13, 1e-12)[0] == "pass"
    assert verdict_identity(1e-11, 1e-12)[0] == "fail"
    assert verdict_identity(float("nan"), 1e-12)[0] == "fail"
    assert as_verdict(True) == "pass" and as_verdict(False) == "fail" and as_verdict("inconclusive") == "inconclusive"
    with pytest.raises(ValueError, match="verdict"):
        as_verdict("maybe")


def test_rate_fit_without_finite_values_past_the_cut_has_no_ci():
    x = np.repeat([10, 100, 1000], 5)
    y = np.where(x >= 100, np.nan, 1.0 / x)
    fit = fit_rate(x, y, np.tile(np.arange(5), 3), cut=100)
    assert np.isnan(fit.ci[0]) and fit.failures.sum() == 10


def test_check_judges_real_data_and_a_false_bound_fails(tmp_path):
    rows = check(None, "quick", workers=1, store_path=tmp_path / "s.sqlite", progress=False)
    got = {(r.id, r.kind): r for r in rows}
    assert got[("toy.rate", "tight")].verdict == "pass"
    assert got[("toy.rate", "upper")].verdict == "pass"
    assert got[("toy.slow", "upper")].verdict == "fail"      # flat curve vs a -1/2 bound
    assert got[("toy.slow", "upper")].status == "known finding"   # recorded in the fixture's baseline
    assert got[("toy.ratio", "identity-in-expectation")].verdict == "pass"
    assert got[("toy.order", "ordering")].verdict == "pass"
    row = got[("toy.rate", "tight")].to_json()
    for key in ("id", "kind", "predicted", "measured", "ci", "verdict", "seconds"):
        assert key in row
    assert len(row["ci"]) == 2 and row["table"][0]["x"] == 10


def test_resume_skips_finished_cells_and_workers_do_not_change_numbers(tmp_path):
    sc = load_scenario("toy")
    one, two = tmp_path / "one.sqlite", tmp_path / "two.sqlite"
    s1 = run_scenario(sc, "quick", workers=1, store=Store(one), progress=False)
    assert s1.ran == 160
    again = run_scenario(sc, "quick", workers=1, store=Store(one), progress=False)
    assert again.ran == 0 and again.skipped == 160
    run_scenario(sc, "quick", workers=2, store=Store(two), progress=False)
    assert _cells(one) == _cells(two)


def test_same_master_same_numbers_other_master_other_numbers(tmp_path):
    sc = load_scenario("toy")
    p = sc.cells("quick")[5]
    a = sc.seeds_for(*p, master=1).sample.generate_state(4)
    b = sc.seeds_for(*p, master=1).sample.generate_state(4)
    c = sc.seeds_for(*p, master=2).sample.generate_state(4)
    assert (a == b).all() and not (a == c).all()


def test_kill_minus_9_loses_only_cells_in_flight(tmp_path):
    store = tmp_path / "kill.sqlite"
    env = dict(os.environ, SIMLAB_SCENARIOS=str(FIXTURES))
    cmd = [sys.executable, "-m", "simlab.cli", "run", "toy", "--full", "--workers", "2", "--store",
           str(store), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        time.sleep(0.3)
        if store.exists() and len(_cells(store)) >= 20:
            break
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(_cells(store))
    assert 0 < partial < 120
    subprocess.run(cmd, env=env, check=True, timeout=120)
    after = _cells(store)
    assert len(after) == 120 and len({(k, r) for k, r, _, _ in after}) == 120
    clean = tmp_path / "clean.sqlite"
    subprocess.run([*cmd[:-3], "--store", str(clean), "--no-progress"], env=env, check=True, timeout=120)
    assert _cells(clean) == after


def test_bad_scenarios_and_ids_fail_clearly(monkeypatch):
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        load_scenario("nope")
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(Path(__file__).parent / "fixture_broken"))
    with pytest.raises(ValueError, match="must define SCENARIO"):
        load_scenario("broken")
    with pytest.raises(ValueError, match="unknown scenario 'not_a_scenario'"):   # skipped, never executed
        load_scenario("not_a_scenario")
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(FIXTURES))
    with pytest.raises(ValueError, match="unknown claim id"):
        select_claims(["toy.missing"])
    cell = lambda p, s: {}
    with pytest.raises(ValueError, match="non-empty list"):
        Scenario("x", "1", "s", "d", cell, grids={"quick": {"n": []}, "full": {"n": [1]}}, seeds={"quick": 1, "full": 1})
    with pytest.raises(ValueError, match="mode 'full'"):
        Scenario("x", "1", "s", "d", cell, grids={"quick": {"n": [1]}}, seeds={"quick": 1, "full": 1})
    with pytest.raises(ValueError, match="seeds"):
        Scenario("x", "1", "s", "d", cell, grids={"quick": {"n": [1]}, "full": {"n": [1]}}, seeds={"quick": 0, "full": 1})
    with pytest.raises(ValueError, match="invalid value"):
        Scenario("x", "1", "s", "d", cell, grids={"quick": {"n": [float("nan")]}, "full": {"n": [1]}}, seeds={"quick": 1, "full": 1})
    with pytest.raises(ValueError, match="kind"):
        Claim(id="c", kind="vibes", metric="m", predicted=0, tol=0.1, paper="", statement="", quantity="")


def test_one_broken_scenario_file_does_not_block_the_others(tmp_path):
    import shutil

    folder = tmp_path / "mixed"
    shutil.copytree(Path(__file__).parent / "fixture_broken", folder)   # a crashing file, a non-scenario
    shutil.copy(FIXTURES / "toy.py", folder / "toy.py")                  # ... and a good study beside them
    env = dict(os.environ, SIMLAB_SCENARIOS=str(folder))
    res = subprocess.run([sys.executable, "-m", "simlab.cli", "list"], env=env, capture_output=True, text=True,
                         timeout=120)
    assert "claim toy.rate" in res.stdout                     # the good file is listed
    assert "crashes.py failed to load: ImportError: a missing dependency" in res.stderr
    assert "skipping" in res.stderr and "not_a_scenario.py" in res.stderr
    assert "Traceback" not in res.stderr and res.returncode == 2
    chk = subprocess.run([sys.executable, "-m", "simlab.cli", "check", "toy.rate", "--workers", "1", "--store",
                          str(tmp_path / "s.sqlite"), "--no-figures", "--no-progress"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert "toy.rate" in chk.stdout and chk.returncode == 2


def test_duplicate_checks_across_files_are_an_error(tmp_path, monkeypatch):
    folder = tmp_path / "dup"
    folder.mkdir()
    for name in ("toy", "toy2"):
        text = (FIXTURES / "toy.py").read_text().replace('name="toy"', f'name="{name}"')
        (folder / f"{name}.py").write_text(text)
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(folder))
    with pytest.raises(ValueError, match="duplicate check 'toy.rate|tight'"):
        select_claims(None)


def test_a_cell_that_raises_or_returns_text_names_scenario_params_and_metric():
    from simlab.experiments.sweep import CellError, run_cell

    def bad(params, seeds):
        if params["n"] == 2:
            raise ZeroDivisionError("boom")
        return {"err": "high"}

    sc = Scenario("bad", "1", "s", "d", bad, grids={"quick": {"n": [1, 2]}, "full": {"n": [1]}},
                  seeds={"quick": 1, "full": 1})
    with pytest.raises(CellError, match=r"scenario 'bad': cell \{\"n\":2\} replicate 0 raised ZeroDivisionError"):
        run_cell(sc, {"n": 2}, 0, 1)
    with pytest.raises(CellError, match="metric 'err' of cell .* is not a number"):
        run_cell(sc, {"n": 1}, 0, 1)


def test_cli_version():
    res = subprocess.run([sys.executable, "-m", "simlab.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.startswith("simlab ")


def test_cli_check_json_and_exit_code(tmp_path):
    env = dict(os.environ, SIMLAB_SCENARIOS=str(FIXTURES))
    out = tmp_path / "out.json"
    res = subprocess.run([sys.executable, "-m", "simlab.cli", "check", "toy.rate", "--quick", "--workers", "1",
                          "--store", str(tmp_path / "c.sqlite"), "--json", str(out), "--no-figures", "--table",
                          "--no-progress"], env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rows = json.loads(out.read_text())["claims"]
    assert [r["kind"] for r in rows] == ["tight", "upper"] and all(r["verdict"] == "pass" for r in rows)
    assert "local rate" in res.stdout
    known = subprocess.run([sys.executable, "-m", "simlab.cli", "check", "toy.slow", "--workers", "1",
                            "--store", str(tmp_path / "c.sqlite"), "--no-figures", "--no-progress"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert known.returncode == 0 and "FAIL, known finding" in known.stdout
    unknown = subprocess.run([sys.executable, "-m", "simlab.cli", "run", "nope"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert unknown.returncode == 2 and "unknown scenario" in unknown.stderr


def test_report_and_figures_are_written(tmp_path, monkeypatch):
    from simlab.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["check", "--workers", "1", "--store", str(tmp_path / "r.sqlite"), "--no-progress"])
    assert code == 0
    report = (tmp_path / "figures" / "REPORT.md").read_text()
    assert (tmp_path / "figures" / "toy.rate.png").stat().st_size > 10_000
    assert (tmp_path / "figures" / "toy.rate.pdf").stat().st_size > 1_000
    assert "| `toy.rate` | tight |" in report and "![toy.rate](toy.rate.png)" in report
    assert "FAIL, known finding" in report
    assert main(["report", "toy.rate", "--store", str(tmp_path / "r.sqlite")]) == 0
    assert main(["results", "toy", "--store", str(tmp_path / "r.sqlite"), "--csv", str(tmp_path / "t.csv")]) == 0
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 161


def test_scenario_script_runs_its_checks(tmp_path):
    env = dict(os.environ, SIMLAB_SCENARIOS=str(FIXTURES))
    res = subprocess.run([sys.executable, str(FIXTURES / "toy.py"), "--quick", "--workers", "1", "--store",
                          str(tmp_path / "s.sqlite"), "--no-progress"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert "toy.rate" in res.stdout and "FAIL, known finding" in res.stdout  # toy.slow: a deliberately false bound
    assert res.returncode == 0


def test_warm_up_runs_one_cell_per_string_parameter_group(monkeypatch):
    """Before stored cells run, one cell per combination of non-numeric parameters warms the numba
    cache (in this process before a pool, in a subprocess before a one-worker sweep), so stored
    numbers always come from cached kernels: cold and warm caches then store the same bits."""
    from simlab.experiments import sweep

    calls = []
    monkeypatch.setattr(sweep, "run_cell", lambda sc, params, r, master: calls.append((params, r)))
    todo = [({"div": "kl", "n": 8}, 0), ({"div": "kl", "n": 16}, 0), ({"div": "chi2", "n": 8}, 1),
            ({"div": "kl", "n": 8}, 1)]
    expected = [({"div": "kl", "n": 8}, 0), ({"div": "chi2", "n": 8}, 1)]
    assert sweep._warm_up_cells(todo) == expected
    sweep._warm_kernels(None, todo, 1, in_subprocess=False)
    assert calls == expected


def test_named_experiments_claims_facts_and_the_per_instance_cache(tmp_path):
    """Experiments expand into grids with an experiment axis; a claim binds to one by name; facts are
    report-only means beside the verdict; the per-instance cache computes once per instance seed."""
    from simlab.experiments.claims import judge
    from simlab.experiments.scenario import Experiment, cached_per_instance

    calls = []

    @cached_per_instance
    def population(instance, scale):
        calls.append(scale)
        return scale * float(instance.generate_state(1)[0] % 7)

    def cell(params, seeds):
        return {"v": -1.0 - population(seeds.instance, 2.0) - seeds.replicate, "fact": 3.0}

    sc = Scenario("named", "1", "s", "d", cell, seeds={"quick": 5, "full": 5}, experiments=(
        Experiment("a", quick={"k": [1, 2]}, full={"k": [1, 2, 3]}),
        Experiment("b", quick={"k": [1]}, full={"k": [1]}, seeds={"quick": 3, "full": 3})),
        claims=(Claim(id="named.a", kind="ordering", metric="v", predicted=0.0, tol=0.0, paper="", statement="",
                      quantity="", experiment="a", facts=("fact",)),))
    assert len(sc.cells("quick")) == 2 * 5 + 3 and {p["experiment"] for p, _ in sc.cells("full")} == {"a", "b"}
    import pandas as pd
    rows = []
    for params, r in sc.cells("quick"):
        rows.append(dict(params, replicate=r, seconds=0.0, **cell(params, sc.seeds_for(params, r, 1))))
    row = judge(sc, sc.claims[0], pd.DataFrame(rows))
    assert row.verdict == "pass" and row.extra["fact"] == 3.0 and row.extra["seeds"] == 10
    assert calls == [2.0]                       # one instance, computed once for 13 cells
    with pytest.raises(ValueError, match="unknown experiment"):
        Scenario("bad", "1", "s", "d", cell, seeds={"quick": 1, "full": 1},
                 experiments=(Experiment("a", quick={"k": [1]}, full={"k": [1]}),),
                 claims=(Claim(id="x", kind="ordering", metric="v", predicted=0, tol=0, paper="", statement="",
                               quantity="", experiment="zzz"),))
