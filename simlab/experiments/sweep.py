"""Running a scenario's cells, in parallel across processes, into the store.

The sweep knows nothing about alignment: it expands (params, replicate) cells, skips those already
stored, runs the rest (in-process for one worker, else a process pool whose workers are pinned to one
BLAS/numba thread each, so nothing is oversubscribed), and commits each finished cell at once.  Before
that it warms the numba cache (:func:`_warm_kernels`), so that stored numbers never come from a kernel
compiled in the process that ran the cell.
The numbers depend only on (scenario, params, replicate, master seed), never on the worker count.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context

from simlab.experiments.fingerprint import scenario_fingerprint
from simlab.experiments.scenario import DEFAULT_MASTER_SEED, Scenario, cell_key, load_scenario
from simlab.experiments.store import Store

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class SweepStats:
    scenario: str
    total: int
    skipped: int
    ran: int
    seconds: float


class CellError(ValueError):
    """A cell raised or returned something that is not a dict of numbers; names scenario and params."""


def run_cell(scenario: Scenario, params: dict, replicate: int, master: int) -> tuple[dict, float]:
    """Run one cell; returns (metrics as plain floats, seconds). Non-finite values are kept (NaN)."""
    seeds = scenario.seeds_for(params, replicate, master)
    t0 = time.perf_counter()
    try:
        metrics = scenario.cell(dict(params), seeds)
    except Exception as exc:
        raise CellError(f"scenario {scenario.name!r}: cell {cell_key(params)} replicate {replicate} raised "
                        f"{type(exc).__name__}: {exc}") from exc
    seconds = time.perf_counter() - t0
    if not isinstance(metrics, dict):
        raise CellError(f"scenario {scenario.name!r}: cell must return a dict, got {type(metrics).__name__}")
    out = {}
    for k, v in metrics.items():
        try:
            out[str(k)] = float(v)
        except (TypeError, ValueError):
            raise CellError(f"scenario {scenario.name!r}: metric {k!r} of cell {cell_key(params)} is not a "
                            f"number (got {type(v).__name__})") from None
    return out, seconds


def _warm_up_cells(todo) -> list:
    """One (params, replicate) per combination of the non-numeric parameters, in sweep order."""
    seen, out = set(), []
    for params, replicate in todo:
        group = tuple(sorted((k, v) for k, v in params.items() if isinstance(v, str)))
        if group not in seen:
            seen.add(group)
            out.append((params, replicate))
    return out


def _warm_kernels(scenario: Scenario, todo, master: int, in_subprocess: bool) -> None:
    """Compile (or load) the sweep's kernels before any stored cell runs, so that every stored number
    comes from kernels loaded from the numba cache: one cell per combination of the non-numeric
    parameters, its result discarded.  Measured, a kernel compiled in the process that uses it can
    give different last bits than the cached one (drorebel: 2815 of 10752 cells on a cold cache), so
    the same sweep on a cold and on a warm cache stored different numbers.  A pool's workers take the
    kernels this process compiled from the cache; a one-worker sweep computes in this process, so its
    warm-up runs in a separate process."""
    cells = _warm_up_cells(todo)
    if not in_subprocess:
        for params, replicate in cells:
            run_cell(scenario, params, replicate, master)
        return
    with _pinned_pool(1) as pool:
        pool.submit(_worker_warm, scenario.name, _scenario_dir(scenario), cells, master).result()


def _pin_threads() -> None:
    for var in THREAD_VARS:
        os.environ[var] = "1"


def _worker_init(parent: int) -> None:
    _pin_threads()
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """A pool worker exits as soon as the process that started it (pid ``parent``, passed in, since
    the parent may die while the worker is still starting up) is gone: kill -9 of a sweep must not
    leave workers behind. A daemon thread polls the parent pid."""
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="simlab-parent-watch", daemon=True).start()


def _worker_task(name: str, scenario_dir: str, params: dict, replicate: int, master: int):
    os.environ["SIMLAB_SCENARIOS"] = scenario_dir
    scenario = load_scenario(name)
    metrics, seconds = run_cell(scenario, params, replicate, master)
    return params, replicate, metrics, seconds


def _worker_warm(name: str, scenario_dir: str, cells, master: int) -> None:
    os.environ["SIMLAB_SCENARIOS"] = scenario_dir
    scenario = load_scenario(name)
    for params, replicate in cells:
        run_cell(scenario, params, replicate, master)


def _scenario_dir(scenario: Scenario) -> str:
    from pathlib import Path

    return str(Path(scenario.path).parent) if scenario.path else os.environ.get("SIMLAB_SCENARIOS", "")


@contextmanager
def _pinned_pool(workers: int):
    """A spawn process pool whose workers are pinned to one BLAS/numba thread; this process's thread
    variables are restored afterwards.  Shut down at once (cancelling queued work) on an exception."""
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    _pin_threads()  # children inherit the pinned thread counts at start-up
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)
    finally:
        for var, val in saved.items():
            if val is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = val


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def run_scenario(scenario: Scenario, mode: str = "quick", workers: int | None = None,
                 store: Store | None = None, master: int = DEFAULT_MASTER_SEED,
                 progress: bool = True) -> SweepStats:
    """Run every missing cell of ``scenario`` in ``mode``; finished cells are committed one by one.

    Cells are keyed by the scenario's code fingerprint: cells stored by other code are not reused.
    Each cell is leased in the store before it runs, so another process sweeping the same scenario
    into the same store skips it (and this process skips the other's); cells leased by a live process
    are waited for at the end, cells leased by a dead one are taken over.
    """
    workers = default_workers() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    own_store = store is None
    store = Store() if own_store else store
    fingerprint = scenario_fingerprint(scenario)
    t0 = time.perf_counter()
    try:
        cells = scenario.cells(mode)
        done = store.done_keys(scenario.name, fingerprint, master)
        todo = [(p, r) for p, r in cells if (cell_key(p), r) not in done]
        if not todo:
            return SweepStats(scenario.name, len(cells), len(cells), 0, 0.0)
        run_id = store.start_run(scenario.name, fingerprint, mode, master,
                                 scenario.config() | {"master": master, "fingerprint": fingerprint})
        bar = _progress(len(todo), scenario.name, progress)
        ran = 0

        def take(params, replicate) -> bool:
            return store.lease(scenario.name, fingerprint, master, cell_key(params), replicate)

        def commit(params, replicate, metrics, seconds):
            nonlocal ran
            store.add_cell(scenario.name, fingerprint, master, cell_key(params), replicate,
                           params, metrics, seconds, run_id)
            ran += 1
            bar.update(1)

        try:
            in_process = workers == 1 or len(todo) == 1
            _warm_kernels(scenario, todo, master, in_subprocess=in_process)
            queue = _LeasedQueue(todo, take, lambda p, r: store.is_done(scenario.name, fingerprint, master,
                                                                          cell_key(p), r), bar)
            if in_process:
                for params, r in queue:
                    commit(params, r, *run_cell(scenario, params, r, master))
            else:
                _run_pool(scenario, queue, workers, master, commit)
        finally:
            bar.close()
            store.release_leases()
        return SweepStats(scenario.name, len(cells), len(cells) - ran, ran, time.perf_counter() - t0)
    finally:
        if own_store:
            store.close()


class _LeasedQueue:
    """Iterates the cells this process should compute: each is leased first; a cell finished or leased
    by another live process is skipped for now and revisited after the others (until it is finished
    by its owner, or its owner dies and the lease can be taken)."""

    POLL_SECONDS = 0.5

    def __init__(self, todo, take, is_done, bar):
        self.todo, self.take, self.is_done, self.bar = list(todo), take, is_done, bar

    def __iter__(self):
        waiting = []
        for params, r in self.todo:
            if self.take(params, r):
                yield params, r
            else:
                waiting.append((params, r))
        while waiting:
            still = []
            for params, r in waiting:
                if self.is_done(params, r):
                    self.bar.update(1)
                elif self.take(params, r):
                    yield params, r
                else:
                    still.append((params, r))
            if still:
                time.sleep(self.POLL_SECONDS)
            waiting = still


def _run_pool(scenario: Scenario, queue, workers: int, master: int, commit) -> None:
    scen_dir = _scenario_dir(scenario)
    with _pinned_pool(workers) as pool:
        pending = set()
        it = iter(queue)
        window = 2 * workers + 2  # bounded queue: few cells are leased or in flight at any time

        def refill():
            while len(pending) < window:
                nxt = next(it, None)
                if nxt is None:
                    return
                pending.add(pool.submit(_worker_task, scenario.name, scen_dir, nxt[0], nxt[1], master))

        refill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                pending.discard(fut)
                commit(*fut.result())
            refill()


class _NullBar:
    def update(self, k):
        pass

    def close(self):
        pass


def _progress(total: int, name: str, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="cell", dynamic_ncols=True, mininterval=0.5,
                bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining} ({rate_fmt})")

