"""The verdict gate: no stale verdict, three-valued verdicts, known findings as data, claims as
pytest items, a report that cannot lie or crash."""
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from simlab.experiments.claims import calibration_margin, check
from simlab.experiments.scenario import Claim, forget_loaded_scenarios
from simlab.experiments.store import Store

HERE = Path(__file__).parent
TOY = HERE / "fixture_scenarios"
GATE = HERE / "fixture_gate"


@pytest.fixture(autouse=True)
def _fresh_registry():
    forget_loaded_scenarios()
    yield
    forget_loaded_scenarios()


def _cli(args, scenarios, cwd, timeout=180, **env):
    full_env = dict(os.environ, SIMLAB_SCENARIOS=str(scenarios), **env)
    return subprocess.run([sys.executable, "-m", "simlab.cli", *args], env=full_env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def test_stale_cell_edited_between_checks_changes_the_verdict(tmp_path, monkeypatch):
    """Edit only the cell (error n^-1 -> n^-1/2), touch nothing else (not `version`): the next check
    recomputes under the new fingerprint and the tight -1 verdict turns to fail; old rows stay stored."""
    folder = tmp_path / "scen"
    shutil.copytree(TOY, folder)
    monkeypatch.setenv("SIMLAB_SCENARIOS", str(folder))
    store = tmp_path / "s.sqlite"
    before = {r.key: r for r in check(["toy.rate"], workers=1, store_path=store, progress=False)}
    assert before["toy.rate|tight"].verdict == "pass"
    src = folder / "toy.py"
    text = src.read_text()
    assert "err = rng.chisquare(4) / (4 * n)" in text
    src.write_text(text.replace("err = rng.chisquare(4) / (4 * n)", "err = rng.chisquare(4) / (4 * n**0.5)"))
    forget_loaded_scenarios()
    after = {r.key: r for r in check(["toy.rate"], workers=1, store_path=store, progress=False)}
    assert after["toy.rate|tight"].verdict == "fail"
    assert abs(after["toy.rate|tight"].measured + 0.5) < 0.1
    assert after["toy.rate|tight"].fingerprint != before["toy.rate|tight"].fingerprint
    st = Store(store)
    try:
        assert len(st.fingerprints("toy")) == 2          # rows of the old code are kept, never mixed in
    finally:
        st.close()


def test_a_package_edit_changes_every_scenario_fingerprint(monkeypatch):
    from simlab.experiments import fingerprint as fp
    from simlab.experiments.scenario import load_scenario

    monkeypatch.setenv("SIMLAB_SCENARIOS", str(TOY))
    sc = load_scenario("toy")
    a = fp.scenario_fingerprint(sc)
    monkeypatch.setattr(fp, "package_fingerprint", lambda: "0" * 16)
    assert fp.scenario_fingerprint(sc) != a


def test_known_finding_exits_zero_and_prints_as_such(tmp_path):
    res = _cli(["check", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
                "--out", str(tmp_path / "fig")], TOY, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "FAIL, known finding" in res.stdout and "deliberately false bound" in res.stdout
    assert "code fingerprint" in res.stdout


def test_a_finding_that_now_passes_and_a_slow_estimator_exit_one(tmp_path):
    res = _cli(["check", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress", "--no-figures"],
               GATE, tmp_path)
    assert res.returncode == 1
    assert "finding.order|ordering: finding now passes" in res.stdout
    assert "slow.rate|tight: regression" in res.stdout


def test_update_baseline_rewrites_on_purpose(tmp_path):
    folder = tmp_path / "gate"
    shutil.copytree(GATE, folder)
    res = _cli(["check", "finding", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
                "--no-figures", "--update-baseline"], folder, tmp_path)
    assert res.returncode == 0 and "finding.order|ordering: fail -> pass" in res.stdout
    data = json.loads((folder / "baseline.json").read_text())
    assert data["quick"]["finding.order|ordering"]["verdict"] == "pass"
    again = _cli(["check", "finding", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
                  "--no-figures"], folder, tmp_path)
    assert again.returncode == 0


def test_drift_beyond_four_calibrated_sds_fails(tmp_path):
    folder = tmp_path / "scen"
    shutil.copytree(TOY, folder)
    first = _cli(["check", "toy.ratio", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
                  "--no-figures", "--json", str(tmp_path / "a.json")], folder, tmp_path)
    measured = json.loads((tmp_path / "a.json").read_text())["claims"][0]["measured"]
    key = "toy.ratio|identity-in-expectation"
    (folder / "calibration.json").write_text(json.dumps({key: {"mean": 1.0, "sd": 0.01, "masters": 30}}))
    base = json.loads((folder / "baseline.json").read_text())
    base["quick"][key] = {"verdict": "pass", "measured": measured + 0.03}   # 3 sds away: holds
    (folder / "baseline.json").write_text(json.dumps(base))
    ok = _cli(["check", "toy.ratio", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
               "--no-figures"], folder, tmp_path)
    assert first.returncode == 0 and ok.returncode == 0, ok.stdout
    base["quick"][key]["measured"] = measured + 0.05                        # 5 sds away: drift
    (folder / "baseline.json").write_text(json.dumps(base))
    bad = _cli(["check", "toy.ratio", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
                "--no-figures"], folder, tmp_path)
    assert bad.returncode == 1 and f"{key}: drift" in bad.stdout


def test_claims_as_pytest_items_gate_strictly(tmp_path):
    """The plugin turns each check into an item: a slow estimator fails its item, a known finding
    that passes fails strict, a missing claim row fails; the toy's known finding is an xfail."""
    res = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEX",
                          "--simlab=quick", f"--simlab-scenarios={GATE}", f"--simlab-store={tmp_path / 'g.sqlite'}",
                          "--simlab-workers=1", "-p", "no:randomly"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    out = res.stdout
    assert res.returncode == 1, out
    assert "FAILED" in out and "slow.rate|tight" in out and "regression" in out
    assert "finding.order|ordering" in out and "finding now passes" in out
    assert "edge.empty|ordering" in out and "not run" in out
    toy = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rxX",
                          "--simlab=quick", f"--simlab-scenarios={TOY}", f"--simlab-store={tmp_path / 't.sqlite'}",
                          "--simlab-workers=1", "-k", "toy"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert toy.returncode == 0, toy.stdout
    assert "4 passed" in toy.stdout and "1 xfailed" in toy.stdout and "deliberately false bound" in toy.stdout


def test_report_survives_failed_fits_and_a_selection_never_truncates_it(tmp_path):
    store = str(tmp_path / "s.sqlite")
    full = _cli(["check", "--workers", "1", "--store", store, "--no-progress", "--out", str(tmp_path / "fig")],
                GATE, tmp_path)
    report = (tmp_path / "fig" / "REPORT.md").read_text()
    assert full.returncode == 1
    assert "`edge.rate`" in report and "failed fits past the cut" in report     # no IndexError, a failing row
    assert "**NOT RUN**" in report                                              # edge.empty has no rows
    part = _cli(["check", "slow", "--workers", "1", "--store", store, "--no-progress", "--out", str(tmp_path / "fig")],
                GATE, tmp_path)
    assert part.returncode == 1
    assert (tmp_path / "fig" / "REPORT.md").read_text() == report
    assert "`slow.rate`" in (tmp_path / "fig" / "selection" / "REPORT.md").read_text()


def test_rerunning_an_unchanged_check_leaves_files_byte_identical(tmp_path):
    args = ["check", "toy.rate", "--workers", "1", "--store", str(tmp_path / "s.sqlite"), "--no-progress",
            "--out", str(tmp_path / "fig")]
    assert _cli(args, TOY, tmp_path).returncode == 0
    files = sorted((tmp_path / "fig").rglob("*.*"))
    assert any(f.suffix == ".pdf" for f in files) and any(f.suffix == ".png" for f in files)
    stamp = {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files}
    assert _cli(args, TOY, tmp_path).returncode == 0
    assert {f: (f.read_bytes(), f.stat().st_mtime_ns) for f in files} == stamp
    assert "- git:" in (tmp_path / "fig" / "selection" / "REPORT.md").read_text()


def test_two_processes_on_one_store_split_the_cells(tmp_path):
    """Two concurrent sweeps of one scenario into one store lease cells: together they compute each
    cell once (the full toy grid sleeps 50 ms per cell)."""
    env = dict(os.environ, SIMLAB_SCENARIOS=str(TOY))
    cmd = [sys.executable, "-m", "simlab.cli", "run", "toy", "--full", "--workers", "1", "--store",
           str(tmp_path / "s.sqlite"), "--no-progress"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    ran = [int(o.split(" already stored, ")[1].split(" run")[0]) for o in outs]
    assert all(p.returncode == 0 for p in procs)
    assert sum(ran) == 120 and min(ran) > 0, outs


def _open_and_lease(path, barrier, out):
    barrier.wait()
    try:
        store = Store(path)
        out.put(store.lease("toy", "fp", 0, "k", 0))
        store.close()
    except Exception as exc:  # noqa: BLE001 - the test reports it
        out.put(repr(exc))


def test_processes_opening_one_new_store_at_once_all_get_in(tmp_path):
    """Regression (CI, stop 17): switching a new file to WAL is not retried by SQLite's busy handler,
    so one of two processes opening a new store at the same instant failed at once with 'locked'
    (about 1 in 4 races of three processes before the fix)."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    for trial in range(25):
        barrier, out = ctx.Barrier(3), ctx.Queue()
        procs = [ctx.Process(target=_open_and_lease, args=(tmp_path / f"s{trial}.sqlite", barrier, out))
                 for _ in range(3)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        got = [out.get(timeout=5) for _ in procs]
        assert all(isinstance(g, bool) for g in got) and any(got), (trial, got)


def test_a_locked_store_is_a_one_line_error_naming_it(tmp_path):
    path = tmp_path / "s.sqlite"
    Store(path).close()
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        res = _cli(["run", "toy", "--workers", "1", "--store", str(path), "--no-progress"], TOY, tmp_path,
                   SIMLAB_STORE_TIMEOUT="0.5")
    finally:
        holder.rollback()
        holder.close()
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and str(path) in res.stderr and "locked" in res.stderr


@pytest.mark.parametrize("bad", ["dir", "text"])
def test_a_store_that_is_not_a_database_is_a_one_line_error(tmp_path, bad):
    path = tmp_path / "store"
    if bad == "dir":
        path.mkdir()
    else:
        path.write_text("not a database at all, just some text " * 50)
    res = _cli(["run", "toy", "--workers", "1", "--store", str(path), "--no-progress"], TOY, tmp_path)
    assert res.returncode == 2 and str(path) in res.stderr and "Traceback" not in res.stderr


def test_calibration_margin_counts_bias():
    claim = Claim(id="c", kind="tight", metric="m", x="n", predicted=1.0, tol=0.15, paper="", statement="",
                  quantity="")
    # drorebel.w.rate_d as recorded before this rule: mean 0.884, sd 0.0132: tol/sd = 11.4, bias-counted 2.5
    assert calibration_margin(claim, 0.884, 0.0132) == pytest.approx((0.15 - 0.116) / 0.0132)
    assert calibration_margin(claim, 1.0, 0.0) == float("inf")
    assert calibration_margin(claim, 1.2, 0.0) == float("-inf")


def test_calibrate_exits_nonzero_and_names_uncalibrated_checks(tmp_path, monkeypatch, capsys):
    from simlab import cli
    from simlab.experiments import claims

    monkeypatch.setattr(claims, "calibrate", lambda *a, **k: {
        "a|tight": {"mean": 1.0, "sd": 0.1, "tol": 0.15, "margin_sd": 1.5, "pass_rate": 0.9, "calibrated": False},
        "b|tight": {"mean": 1.0, "sd": 0.01, "tol": 0.15, "margin_sd": 15.0, "pass_rate": 1.0, "calibrated": True}})
    assert cli.main(["check", "--calibrate", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "not calibrated" in err and "a|tight" in err and "b|tight" not in err


def _read_proc(pid: int, name: str) -> str:
    """/proc/PID/NAME, or '' when the process has gone meanwhile (a short-lived child may exit between
    the listing of /proc and the read)."""
    try:
        return Path(f"/proc/{pid}/{name}").read_text(errors="ignore")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            out.append(int(status.parent.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to find the pool's workers")
def test_pool_workers_exit_when_the_sweep_is_killed(tmp_path):
    """kill -9 of the main process must not leave its (about 200 MB) workers behind."""
    import signal
    import time

    env = dict(os.environ, SIMLAB_SCENARIOS=str(TOY))
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "simlab.cli", "run", "toy", "--full", "--workers", "2", "--store",
                             str(store), "--no-progress"], env=env)
    deadline = time.time() + 120
    workers = []
    while time.time() < deadline and len(workers) < 2:
        time.sleep(0.3)
        workers = [c for c in _children(proc.pid) if "spawn_main" in _read_proc(c, "cmdline")]
    assert workers, "the pool never started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    alive = [w for w in workers if "State:" in _read_proc(w, "status")
             and "Z" not in _read_proc(w, "status").split("State:")[1][:4]]
    assert not alive, f"workers {alive} outlived their parent"


def test_ctrl_c_ends_with_the_clean_message_only(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C does) mid-sweep: exit 130, the one-line message,
    no traceback and no 'Exception ignored' noise from shutdown finalisers; a re-run resumes."""
    import signal
    import time

    env = dict(os.environ, SIMLAB_SCENARIOS=str(TOY))
    store = tmp_path / "s.sqlite"
    cmd = [sys.executable, "-m", "simlab.cli", "run", "toy", "--full", "--workers", "2", "--store", str(store),
           "--no-progress"]
    # 0.3 s cells (120 of them, about 18 s on 2 workers): the signal lands mid-sweep even on a loaded machine,
    # where 50 ms cells let the whole sweep finish between two polls
    proc = subprocess.Popen(cmd, env=dict(env, SIMLAB_TOY_SLEEP="0.3"), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.1)
        if store.exists():
            st = Store(store)
            try:
                if len(st.rows("toy")) >= 2:
                    break
            finally:
                st.close()
    os.killpg(proc.pid, signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, err
    assert "interrupted; finished cells are kept" in err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode == 0


def test_drift_compares_undefined_values_as_equal():
    """An inconclusive check without a finite estimate (NaN now and in the baseline) has not drifted;
    a value that became undefined, or defined, has."""
    from types import SimpleNamespace

    from simlab.experiments.baseline import status_of

    def row(measured):
        return SimpleNamespace(verdict="inconclusive", measured=measured, calibration={"sd": 0.1}, extra={})

    entry = {"verdict": "inconclusive", "measured": float("nan"), "finding": "f"}
    assert status_of(row(float("nan")), entry, True) == "known finding"
    assert status_of(row(1.0), entry, True) == "drift"
    assert status_of(row(float("nan")), dict(entry, measured=1.0), True) == "drift"
    assert status_of(row(1.05), dict(entry, measured=1.0), True) == "known finding"


def test_batched_leases_and_commits_keep_the_per_cell_rules(tmp_path):
    """lease_many: per cell 'leased', 'done' (finished) or 'busy' (another live owner), a dead owner's
    lease taken over; add_cells: one transaction, all cells or none, leases released."""
    path = tmp_path / "s.sqlite"
    a, b = Store(path), Store(path)
    b.owner = "elsewhere:1"  # a live owner on another host
    assert b.lease_many("sc", "fp", 0, [("k", 0), ("k", 1)]) == ["leased", "leased"]
    a.add_cell("sc", "fp", 0, "k", 2, {"n": 1}, {"err": 1.0}, 0.1, 1)
    a.conn.execute("INSERT INTO leases VALUES ('sc', 'fp', 0, 'k', 3, ?, 0)",
                   (f"{a.owner.rpartition(':')[0]}:999999999",))  # a dead process on this host
    a.conn.commit()
    assert a.lease_many("sc", "fp", 0, [("k", 0), ("k", 2), ("k", 3), ("k", 4)]) == ["busy", "done", "leased", "leased"]
    with pytest.raises(Exception):  # a metric that JSON cannot hold fails before anything is written
        a.add_cells("sc", "fp", 0, 1, [("k", 3, {"n": 1}, {"err": 1.0}, 0.1), ("k", 4, {"n": 1}, {"err": object()}, 0.1)])
    assert not a.is_done("sc", "fp", 0, "k", 3)
    a.add_cells("sc", "fp", 0, 1, [("k", 3, {"n": 1}, {"err": 1.0}, 0.1), ("k", 4, {"n": 1}, {"err": 2.0}, 0.1)])
    assert a.done_keys("sc", "fp", 0) == {("k", 2), ("k", 3), ("k", 4)}
    assert a.conn.execute("SELECT key, replicate, owner FROM leases ORDER BY replicate").fetchall() == [
        ("k", 0, "elsewhere:1"), ("k", 1, "elsewhere:1")]
    a.close()
    b.close()


def test_a_failed_batch_commit_rolls_back_and_keeps_no_lock(tmp_path, monkeypatch):
    """A statement failing inside add_cells rolls the whole chunk back and releases the write lock."""
    path = tmp_path / "s.sqlite"
    a, other = Store(path), Store(path)
    a.conn.execute("CREATE TRIGGER boom BEFORE INSERT ON cells WHEN NEW.replicate = 1 "
                   "BEGIN SELECT RAISE(ABORT, 'boom'); END")
    a.conn.commit()
    with pytest.raises(Exception, match="boom"):
        a.add_cells("sc", "fp", 0, 1, [("k", 0, {}, {"e": 0.0}, 0.1), ("k", 1, {}, {"e": 0.0}, 0.1)])
    assert a.done_keys("sc", "fp", 0) == set()
    monkeypatch.setattr(other, "timeout", 0.5)
    assert other.lease_many("sc", "fp", 0, [("k", 0)]) == ["leased"]  # the lock was released
    a.close()
    other.close()


def test_report_captions_study_figures_and_draws_no_plot_for_a_row_without_a_fit(tmp_path):
    """A study figure carries its hook's docstring summary as caption; a row of a shared id whose
    evaluation has no rate fit (here an ordering) gets no convergence plot or slope caption."""
    from simlab.experiments.claims import CheckRow
    from simlab.report import figure_caption, write_report

    def hook(df, outdir):
        """Robust minus nominal J against the radius.

        Longer description that is not part of the caption."""

    assert figure_caption(hook) == "Robust minus nominal J against the radius."
    common = dict(id="toy.claim", label="", predicted=0.0, ci=[0.1, 0.2], verdict="pass", seconds=0.0, tol=0.0,
                  scenario="toy", metric="diff", statement="s", paper="p", quantity="q", notes="", extra={},
                  fingerprint="f")
    rate = CheckRow(kind="tight", measured=0.15, x="n", fit=object(), **common)
    order = CheckRow(kind="ordering", measured=0.15, x=None, **common)
    png = tmp_path / "toy.claim.png"
    study = tmp_path / "study.png"
    for f in (png, study):
        f.write_bytes(b"")
    report = write_report([rate, order], {"toy.claim": png}, {"toy": [(study, figure_caption(hook))]},
                          tmp_path / "REPORT.md", "quick", 0).read_text()
    assert report.count("![toy.claim]") == 1 and "against `None`" not in report
    assert "*Figure: Robust minus nominal J against the radius.*" in report


def test_study_figures_redraw_only_when_their_rows_or_their_code_change(tmp_path, monkeypatch):
    """A study figure depends on the scenario's rows, its own source and the plotting code: an edit
    elsewhere in the package (a new package fingerprint, same rows) keeps it; new rows redraw it."""
    import pandas as pd

    from simlab.experiments import fingerprint
    from simlab.experiments.scenario import Scenario
    from simlab.report import study_figures

    drawn = []

    def hook(df, outdir):
        """Toy figure."""
        drawn.append(len(df))
        path = outdir / "toy_study.png"
        path.write_bytes(b"png")
        return [path]

    sc = Scenario("toy_fig", "1", "s", "d", lambda params, seeds: {"y": 1.0},
                  grids={"quick": {"n": [1]}, "full": {"n": [1]}}, seeds={"quick": 1, "full": 1}, figures=(hook,))
    frame = pd.DataFrame({"cell_key": ["a"], "replicate": [0], "y": [1.0], "seconds": [0.5], "fingerprint": ["f1"]})
    study_figures([sc], {"toy_fig": frame}, tmp_path)
    assert drawn == [1]
    monkeypatch.setattr(fingerprint, "package_fingerprint", lambda: "another package")
    study_figures([sc], {"toy_fig": frame.assign(seconds=0.7, fingerprint="f2")}, tmp_path)
    assert drawn == [1]  # same rows, same scenario and plotting code: kept
    study_figures([sc], {"toy_fig": frame[frame.columns[::-1]]}, tmp_path)
    assert drawn == [1]  # columns in another order (cells finished in another order): kept
    study_figures([sc], {"toy_fig": frame.assign(y=2.0)}, tmp_path)
    assert drawn == [1, 1]  # the rows changed: redrawn
    import shutil

    clone = tmp_path.parent / (tmp_path.name + "-clone")  # the same figures folder in another checkout
    shutil.copytree(tmp_path, clone)
    study_figures([sc], {"toy_fig": frame.assign(y=2.0)}, clone)
    assert drawn == [1, 1]  # digests do not depend on where the folder is
