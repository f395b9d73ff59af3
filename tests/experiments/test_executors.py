"""One executor per command: warm-ups recorded in the numba cache, calibration over only the cells its
claims use, every master seed through one sweep."""
import json
import os
import textwrap

import numba
import pytest

from simlab.experiments import sweep
from simlab.experiments.claims import calibrate, claim_cells
from simlab.experiments.fingerprint import scenario_fingerprint
from simlab.experiments.scenario import cell_key, forget_loaded_scenarios, load_scenario
from simlab.experiments.store import Store
from simlab.threads import THREAD_VARS

SCENARIO = '''
import numpy as np

from simlab.experiments.scenario import Claim, Scenario


def cell(params, seeds):
    rng = np.random.default_rng(seeds.sample)
    return {"diff": rng.normal() - (1.0 if params["arm"] == "a" else -1.0), "n": float(params["n"])}


SCENARIO = Scenario(
    name="sub", version="1", study="engine test", description="two arms, claims on one",
    cell=cell, grids={"quick": {"arm": ["a", "b"], "n": [10, 100, 1000]}, "full": {"arm": ["a", "b"], "n": [10]}},
    seeds={"quick": 4, "full": 4},
    claims=(
        Claim(id="sub.order", kind="ordering", metric="diff", predicted=0.0, tol=0.0, side="<",
              where={"arm": "a"}, paper="none", statement="arm a is below 0", quantity="diff"),
        Claim(id="sub.big", kind="ordering", metric="diff", predicted=0.0, tol=0.0, side=">",
              where={"arm": "b", "n": lambda v: v >= 100, "diff": lambda v: True}, paper="none",
              statement="arm b is above 0 for n >= 100", quantity="diff"),
    ),
)
'''


@pytest.fixture
def scenarios(tmp_path, monkeypatch):
    folder = tmp_path / "scen"
    folder.mkdir()
    (folder / "sub.py").write_text(textwrap.dedent(SCENARIO))
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(folder))
    from simlab._jit import source_fingerprint

    cache = tmp_path / "numba"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(cache))  # for the warm-up processes, which key it by fingerprint
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(cache / "simlab-numba" / source_fingerprint()))  # this one
    forget_loaded_scenarios()
    yield folder
    forget_loaded_scenarios()


def test_claim_cells_follow_the_where_filters(scenarios):
    sc = load_scenario("sub")
    order, big = sc.claims
    assert {(p["arm"], p["n"]) for p, _ in claim_cells(sc, [order], "quick")} == {("a", 10), ("a", 100), ("a", 1000)}
    # a callable on a parameter filters; a key that is a metric ("diff") cannot, so it keeps the cell
    assert {(p["arm"], p["n"]) for p, _ in claim_cells(sc, [big], "quick")} == {("b", 100), ("b", 1000)}
    assert len(claim_cells(sc, [order, big], "quick")) == 5 * 4


def test_calibration_runs_every_master_but_only_the_claims_cells(scenarios, tmp_path):
    store = tmp_path / "cal.sqlite"
    out = calibrate(["sub.order"], workers=1, store_path=store, masters=3, progress=False)
    st = Store(store)
    try:
        rows = st.rows("sub")
    finally:
        st.close()
    assert len(rows) == 3 * 3 * 4 and {r["arm"] for r in rows} == {"a"}
    assert len({r["master"] for r in rows}) == 3
    entry = out["sub.order|ordering"]
    assert entry["masters"] == 3 and entry["pass_rate"] == 1.0 and entry["mean"] < -0.5
    assert json.loads((scenarios / "calibration.json").read_text())["sub.order|ordering"]["masters"] == 3


def test_a_warm_up_runs_once_per_cache_and_again_when_a_source_is_touched(scenarios, tmp_path, monkeypatch):
    sc = load_scenario("sub")
    fp = scenario_fingerprint(sc)
    cells = sc.cells("quick")
    assert len(sweep.missing_warm_up(sc, fp, cells)) == 2      # one per arm (string parameter)
    sweep.run_scenario(sc, "quick", workers=1, store=Store(tmp_path / "a.sqlite"), progress=False)
    assert sweep.missing_warm_up(sc, fp, cells) == []

    def no_process(workers):
        raise AssertionError("a warm cache must not start a warm-up process")

    monkeypatch.setattr(sweep, "_start_pinned_pool", no_process)
    again = sweep.run_scenario(sc, "quick", workers=1, store=Store(tmp_path / "b.sqlite"), progress=False)
    assert again.ran == len(cells)
    src = scenarios / "sub.py"
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # numba would drop kernels of a touched file
    assert len(sweep.missing_warm_up(sc, fp, cells)) == 2


def test_jobs_run_longest_first_by_their_stored_cell_times(scenarios, tmp_path):
    """A job whose cells took longest in earlier runs (any fingerprint) starts first; a store without
    history keeps the given order; the numbers do not depend on the order."""
    (scenarios / "other.py").write_text(textwrap.dedent(SCENARIO).replace('name="sub"', 'name="other"'))
    forget_loaded_scenarios()
    sub, other = load_scenario("sub"), load_scenario("other")

    def starts(path):
        st = Store(path)
        try:
            return [r[0] for r in st.conn.execute("SELECT scenario FROM runs ORDER BY run_id")], \
                {(r["cell_key"], r["replicate"]): r["diff"] for r in st.rows("sub")}
        finally:
            st.close()

    jobs = [sweep.SweepJob(sub), sweep.SweepJob(other)]
    sweep.run_sweeps(jobs, 1, Store(tmp_path / "fresh.sqlite"), progress=False)
    fresh_order, fresh_cells = starts(tmp_path / "fresh.sqlite")
    assert fresh_order == ["sub", "other"]
    st = Store(tmp_path / "past.sqlite")
    for sc, secs in ((sub, 0.01), (other, 5.0)):  # an earlier run, under another fingerprint
        st.add_cells(sc.name, "old-fp", 0, 1, [(cell_key(p), r, p, {"diff": 0.0}, secs) for p, r in sc.cells("quick")[:2]])
    sweep.run_sweeps(jobs, 1, st, progress=False)
    st.close()
    past_order, past_cells = starts(tmp_path / "past.sqlite")
    assert past_order == ["other", "sub"] and past_cells == fresh_cells


def test_one_worker_computes_in_process_only_with_pinned_threads(monkeypatch):
    """With one worker, cells run in this process only when its BLAS/numba threads are pinned like a
    pool worker's; otherwise in a pinned one-process pool (an unpinned OpenBLAS stored different last
    bits for constrained_gap and drorebel cells than two workers did)."""
    for var in THREAD_VARS:
        monkeypatch.setenv(var, "1")
    assert sweep.LocalExecutor(1).in_process
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    assert not sweep.LocalExecutor(1).in_process


def test_the_command_line_pins_threads_before_numpy_loads():
    """simlab.cli sets the thread variables at its top; that is before numpy loads because importing
    the simlab package itself loads no numpy."""
    import subprocess
    import sys

    code = ("import sys, simlab; before = 'numpy' in sys.modules; import simlab.cli, os; "
            "print(before, os.environ['OPENBLAS_NUM_THREADS'], os.environ['OMP_NUM_THREADS'])")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="4", OMP_NUM_THREADS="4")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "1", "1"]
