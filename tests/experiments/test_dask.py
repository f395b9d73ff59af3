"""The Dask executor: the same cells, the same store, bit for bit; lost workers and clients cost only
the cells in flight."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import distributed  # noqa: E402,F401  (the test extra installs Dask: a missing install must fail, not skip)

from simlab.experiments.fingerprint import scenario_fingerprint  # noqa: E402
from simlab.experiments.scenario import load_scenario  # noqa: E402
from simlab.experiments.store import Store  # noqa: E402
from simlab.experiments.sweep import missing_warm_up, open_executor, run_scenario  # noqa: E402

FIXTURES = Path(__file__).parent / "fixture_scenarios"


pytestmark = pytest.mark.usefixtures("fixture_scenarios")  # tests/experiments/conftest.py


@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster for the module: 2 worker processes on 127.0.0.1, one thread each (tasks carry
    the scenario files: the workers need no scenario folder)."""
    with open_executor("dask", workers=2) as ex:
        yield ex


def _metrics(path):
    st = Store(path)
    try:
        return sorted((r["cell_key"], r["replicate"], r["err"], r["ratio"], r["instance"]) for r in st.rows("toy"))
    finally:
        st.close()


@pytest.fixture(scope="module")
def clean_full(tmp_path_factory):
    """The toy's full grid (120 cells of 50 ms) swept locally by one uninterrupted process."""
    path = tmp_path_factory.mktemp("clean") / "clean.sqlite"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SIMLAB_SCENARIOS", str(FIXTURES))
        run_scenario(load_scenario("toy"), "full", workers=1, store=Store(path), progress=False)
    return _metrics(path)


def test_dask_stores_the_local_executors_bits(tmp_path, cluster):
    sc = load_scenario("toy")
    assert cluster.cluster.scheduler_address.startswith("tcp://127.0.0.1:") and len(cluster.client.nthreads()) == 2
    local, dask = tmp_path / "local.sqlite", tmp_path / "dask.sqlite"
    run_scenario(sc, "quick", workers=1, store=Store(local), progress=False)
    stats = run_scenario(sc, "quick", store=Store(dask), progress=False, executor=cluster)
    assert stats.ran == 160
    assert _metrics(dask) == _metrics(local)            # every metric, bit for bit
    st = Store(dask)
    try:
        assert st.fingerprints("toy") == [scenario_fingerprint(sc)]
        assert {r["master"] for r in st.rows("toy")} == {20261123}
    finally:
        st.close()
    # the workers warmed this host's numba cache for the sweep before computing stored cells
    assert missing_warm_up(sc, scenario_fingerprint(sc), sc.cells("quick")) == []
    again = run_scenario(sc, "quick", store=Store(dask), progress=False, executor=cluster)
    assert again.ran == 0 and again.skipped == 160


def test_a_killed_worker_costs_only_its_cells_in_flight(tmp_path, cluster, clean_full):
    sc = load_scenario("toy")
    path = tmp_path / "kill.sqlite"
    pids = sorted(cluster.client.run(os.getpid).values())
    killed = []

    def kill_one_worker_mid_run():
        deadline = time.time() + 60
        while time.time() < deadline and not killed:
            time.sleep(0.1)
            if path.exists() and len(_metrics(path)) >= 20:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(len(_metrics(path)))

    watcher = threading.Thread(target=kill_one_worker_mid_run)
    watcher.start()
    run_scenario(sc, "full", store=Store(path), progress=False, executor=cluster)
    watcher.join()
    assert killed and killed[0] < 120                   # the kill happened mid-run
    cluster.client.wait_for_workers(2, timeout=60)      # the nanny restarted the worker
    assert pids[0] not in cluster.client.run(os.getpid).values()
    again = run_scenario(sc, "full", store=Store(path), progress=False, executor=cluster)
    assert again.ran == 0
    assert _metrics(path) == clean_full


def test_a_killed_client_then_a_rerun_gives_the_uninterrupted_store(tmp_path, clean_full):
    store = tmp_path / "client.sqlite"
    env = dict(os.environ, SIMLAB_SCENARIOS=str(FIXTURES))
    cmd = [sys.executable, "-m", "simlab.cli", "run", "toy", "--full", "--executor", "dask", "--workers", "2",
           "--store", str(store), "--no-progress"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if store.exists() and len(_metrics(store)) >= 20:
            break
    os.kill(proc.pid, signal.SIGKILL)                   # the client only: its cluster must go with it
    proc.wait()
    partial = len(_metrics(store))
    assert 0 < partial < 120
    assert _group_gone(proc.pid, 30)                    # no orphaned Dask workers
    rerun = [*cmd[:7], "local", "--workers", "1", *cmd[10:]]   # a local rerun resumes the Dask run's store
    res = subprocess.run(rerun, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{partial} already stored" in res.stdout
    assert _metrics(store) == clean_full


def _group_gone(pgid: int, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    os.killpg(pgid, signal.SIGKILL)
    return False


def test_scheduler_without_dask_executor_is_refused(tmp_path):
    from simlab.cli import main

    code = main(["run", "toy", "--executor", "local", "--scheduler", "tcp://127.0.0.1:1", "--store",
                 str(tmp_path / "s.sqlite"), "--no-progress"])
    assert code == 2
