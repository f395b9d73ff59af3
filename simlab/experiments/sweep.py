"""Running scenarios' cells, in parallel across processes, into the store.

The sweep knows nothing about alignment: it expands (params, replicate) cells, skips those already
stored, leases the rest in the store (a batch of cells per transaction), sends them in chunks to an
executor and commits each finished chunk in one transaction. The executor is one per command (not
one per scenario): :class:`LocalExecutor` (in-process for one worker, else one persistent process
pool whose workers are pinned to one BLAS/numba thread each) or the Dask executor of :mod:`simlab.experiments.dask_executor`. Several
sweeps (scenarios, master seeds) stream through one executor, so no scenario waits for the slowest
cell of the previous one.

Before a sweep's cells run, the numba cache is warmed (:func:`_warm_kernels`) in a process that does
not compute stored cells, so that stored numbers never come from a kernel compiled in the process that
ran the cell; a warm-up that already ran against the current cache is not repeated
(:func:`missing_warm_up`). The numbers depend only on (scenario, params, replicate, master seed),
never on the executor, the worker count or the chunking.
"""
from __future__ import annotations

import hashlib
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

from simlab.experiments.fingerprint import PACKAGE_ROOT, scenario_fingerprint, scenario_source
from simlab.experiments.scenario import DEFAULT_MASTER_SEED, Scenario, cell_key, load_scenario
from simlab.experiments.store import Store
from simlab.threads import THREAD_VARS, pin_threads, threads_pinned

EXECUTORS = ("local", "dask")
MAX_CHUNK = 256  # cells per task at most


@dataclass(frozen=True)
class SweepStats:
    scenario: str
    total: int
    skipped: int
    ran: int
    seconds: float


@dataclass(frozen=True)
class SweepJob:
    """One sweep: the cells of ``scenario`` in ``mode`` for one master seed (``cells``: a subset of
    ``scenario.cells(mode)`` to run instead of all of them)."""

    scenario: Scenario
    mode: str = "quick"
    master: int = DEFAULT_MASTER_SEED
    cells: tuple | None = None


class CellError(ValueError):
    """A cell raised or returned something that is not a dict of numbers; names scenario and params."""


def run_cell(scenario: Scenario, params: dict, replicate: int, master: int) -> tuple[dict, float]:
    """Run one cell; returns (metrics as plain floats, seconds). Non-finite values are kept (NaN).

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        The scenario whose ``cell`` function runs.
    params : dict
        The cell's parameters (a copy is passed to the cell).
    replicate : int
        The replicate index.
    master : int
        The master seed; the cell's seeds are ``scenario.seeds_for(params, replicate, master)``.

    Returns
    -------
    metrics : dict of str to float
        The cell's metrics, keys as strings, values converted by ``float``.
    seconds : float
        Wall-clock compute time of the cell (``time.perf_counter``).

    Raises
    ------
    simlab.experiments.sweep.CellError
        When the cell raises, returns something other than a dict, or a metric that is not a number.
    """
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


def run_cells(scenario: Scenario, cells, master: int) -> list[tuple[dict, float]]:
    """Run a chunk of (params, replicate) cells in order; one (metrics, seconds) per cell.

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        The scenario.
    cells : iterable of tuple of (dict, int)
        ``(params, replicate)`` per cell.
    master : int
        The master seed.

    Returns
    -------
    list of tuple of (dict, float)
        :func:`run_cell`'s ``(metrics, seconds)`` per cell, in the order of ``cells``.
    """
    return [run_cell(scenario, params, replicate, master) for params, replicate in cells]


# ---------------------------------------------------------------- numba cache warm-up

def _warm_up_cells(todo) -> list:
    """One (params, replicate) per combination of the non-numeric parameters, in sweep order."""
    seen, out = set(), []
    for params, replicate in todo:
        group = tuple(sorted((k, v) for k, v in params.items() if isinstance(v, str)))
        if group not in seen:
            seen.add(group)
            out.append((params, replicate))
    return out


def _warm_kernels(scenario: Scenario, todo, master: int, in_subprocess: bool, pool=None) -> None:
    """Compile (or load) the sweep's kernels before any stored cell runs, so that every stored number
    comes from kernels loaded from the numba cache: one cell per combination of the non-numeric
    parameters, its result discarded.  Measured, a kernel compiled in the process that uses it can
    give different last bits than the cached one (drorebel: 2815 of 10752 cells on a cold cache), so
    the same sweep on a cold and on a warm cache stored different numbers.  With ``in_subprocess``
    the cells run in ``pool`` (a fresh one-process pool if None), for a process that computes stored
    cells itself."""
    cells = _warm_up_cells(todo)
    if not in_subprocess:
        for params, replicate in cells:
            run_cell(scenario, params, replicate, master)
        return
    if pool is not None:
        pool.submit(_worker_warm, scenario.name, _scenario_dir(scenario), cells, master).result()
        return
    with _pinned_pool(1) as fresh:
        fresh.submit(_worker_warm, scenario.name, _scenario_dir(scenario), cells, master).result()


def warm_markers_dir() -> Path | None:
    """Where completed warm-ups are recorded: inside the numba cache directory (so a fresh cache has
    none), or None when numba has no cache directory of its own.

    Returns
    -------
    pathlib.Path or None
        ``<numba cache dir>/simlab-warm`` (not created here), or None without a numba cache directory.
    """
    from numba import config

    import simlab._jit  # noqa: F401  (sets numba's cache directory)

    return Path(config.CACHE_DIR) / "simlab-warm" if config.CACHE_DIR else None


def _cache_stamp(scenario: Scenario) -> str:
    """What else decides whether numba reuses a cached kernel: the CPU it was compiled for and the
    (mtime, size) stamps of the source files (numba drops a cached kernel whose file was touched)."""
    from llvmlite import binding

    h = hashlib.sha256(binding.get_host_cpu_name().encode() + binding.get_host_cpu_features().flatten().encode())
    src = scenario_source(scenario)
    files = sorted(PACKAGE_ROOT.rglob("*.py"))
    if src is not None and src.is_file():
        files += sorted(src.parent.glob("*.py"))
    for path in files:
        st = path.stat()
        h.update(f"{path}\0{st.st_mtime_ns}\0{st.st_size}\0".encode())
    return h.hexdigest()[:16]


def _warm_marker(root: Path, scenario: Scenario, fingerprint: str, stamp: str, params: dict) -> Path:
    group = sorted((k, v) for k, v in params.items() if isinstance(v, str))
    tag = hashlib.sha256(repr((fingerprint, stamp, group)).encode()).hexdigest()[:20]
    return root / f"{scenario.name}-{tag}"


def missing_warm_up(scenario: Scenario, fingerprint: str, todo) -> list:
    """The warm-up cells of ``todo`` (one per combination of string parameters) whose warm-up has not
    yet run against this numba cache, this CPU and these source files (all of them if unknown).

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        The scenario.
    fingerprint : str
        Its code fingerprint (part of the warm-up marker's name).
    todo : iterable of tuple of (dict, int)
        The sweep's ``(params, replicate)`` cells.

    Returns
    -------
    list of tuple of (dict, int)
        The first cell of each combination of string parameters, in sweep order, whose marker under
        :func:`warm_markers_dir` is missing (all of them when there is no marker directory).
    """
    cells = _warm_up_cells(todo)
    root = warm_markers_dir()
    if root is None or not cells:
        return cells
    stamp = _cache_stamp(scenario)
    return [c for c in cells if not _warm_marker(root, scenario, fingerprint, stamp, c[0]).exists()]


@contextmanager
def _warm_lock():
    """An exclusive lock over warm-ups sharing one numba cache: numba updates a kernel's cache index by
    read-modify-write, so two processes compiling overloads of one kernel at once can drop one."""
    root = warm_markers_dir()
    if root is None:
        yield
        return
    import fcntl

    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def warm_here(scenario: Scenario, fingerprint: str, todo, master: int) -> int:
    """Run the missing warm-up cells of ``todo`` in this process (which must not compute stored cells
    of this scenario) under the warm-up lock, then record them; returns how many ran.

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        The scenario.
    fingerprint : str
        Its code fingerprint.
    todo : iterable of tuple of (dict, int)
        The sweep's ``(params, replicate)`` cells (:func:`missing_warm_up` picks the warm-up cells).
    master : int
        The master seed (the warm-up cells' results are discarded).

    Returns
    -------
    int
        The number of warm-up cells run (0 when the cache was already warm for them).
    """
    with _warm_lock():
        cells = missing_warm_up(scenario, fingerprint, todo)
        _warm_kernels(scenario, cells, master, in_subprocess=False)
        root = warm_markers_dir()
        if root is not None and cells:
            stamp = _cache_stamp(scenario)
            for params, _ in cells:
                _warm_marker(root, scenario, fingerprint, stamp, params).touch()
    return len(cells)


# ---------------------------------------------------------------- the local executor

def _worker_init(parent: int) -> None:
    """Pool worker set-up: one BLAS/numba thread; Ctrl-C is the main process's to handle (a worker
    interrupted mid-cell would print its own traceback); exit when the parent is gone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pin_threads()
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


def _load_in_worker(name: str, scenario_dir: str) -> Scenario:
    os.environ["SIMLAB_SCENARIOS"] = scenario_dir
    return load_scenario(name)


def _worker_chunk(name: str, scenario_dir: str, cells, master: int):
    return run_cells(_load_in_worker(name, scenario_dir), cells, master)


def _worker_warm(name: str, scenario_dir: str, cells, master: int) -> None:
    scenario = _load_in_worker(name, scenario_dir)
    for params, replicate in cells:
        run_cell(scenario, params, replicate, master)


def _worker_warm_missing(name: str, scenario_dir: str, fingerprint: str, todo, master: int) -> int:
    return warm_here(_load_in_worker(name, scenario_dir), fingerprint, todo, master)


def _scenario_dir(scenario: Scenario) -> str:
    return str(Path(scenario.path).parent) if scenario.path else os.environ.get("SIMLAB_SCENARIOS", "")


@contextmanager
def _pinned_pool(workers: int):
    """A spawn process pool whose workers are pinned to one BLAS/numba thread; this process's thread
    variables are restored afterwards.  Shut down at once (cancelling queued work) on an exception."""
    pool = _start_pinned_pool(workers)
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    else:
        pool.shutdown(wait=True)


def _start_pinned_pool(workers: int) -> ProcessPoolExecutor:
    saved = {v: os.environ.get(v) for v in THREAD_VARS}
    pin_threads()  # children inherit the pinned thread counts at start-up
    try:
        return ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_worker_init,
                                   initargs=(os.getpid(),))
    finally:
        for var, val in saved.items():
            if val is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = val


def default_workers() -> int:
    """The worker count when none is given: every core.

    Returns
    -------
    int
        ``os.cpu_count()``, at least 1.
    """
    return max(1, os.cpu_count() or 1)


class LocalExecutor:
    """Cells on this machine, for the whole command: in this process for one worker, else in one
    persistent pool of ``workers`` spawned processes. Warm-ups run asynchronously in a separate
    one-process pool (started only when a warm-up is missing), so a scenario's warm-up overlaps the
    previous scenario's cells and never runs in a process that computes stored cells."""

    chunk_seconds = 0.1  # target compute time of one task (amortises inter-process overhead)

    def __init__(self, workers: int | None = None):
        workers = default_workers() if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        self.workers = workers
        # one worker computes in this process only when its threads are pinned like a pool worker's
        self.in_process = workers == 1 and threads_pinned()
        self._pool: ProcessPoolExecutor | None = None
        self._warm_pool: ProcessPoolExecutor | None = None

    @property
    def slots(self) -> int:
        return self.workers

    def warm(self, scenario: Scenario, fingerprint: str, todo, master: int) -> Future | None:
        """Start the missing warm-up of ``todo``; None when the cache is already warm for it.

        Parameters
        ----------
        scenario : simlab.experiments.scenario.Scenario
            The scenario.
        fingerprint : str
            Its code fingerprint.
        todo : iterable of tuple of (dict, int)
            The sweep's ``(params, replicate)`` cells.
        master : int
            The master seed.

        Returns
        -------
        concurrent.futures.Future or None
            The warm-up's future in the one-process warm-up pool (its result: :func:`warm_here`'s count),
            or None when no warm-up is missing.
        """
        if not missing_warm_up(scenario, fingerprint, todo):
            return None
        if self._warm_pool is None:
            self._warm_pool = _start_pinned_pool(1)
        cells = _warm_up_cells(todo)
        return self._warm_pool.submit(_worker_warm_missing, scenario.name, _scenario_dir(scenario), fingerprint,
                                      cells, master)

    def submit(self, scenario: Scenario, fingerprint: str, cells, master: int, warm_cells) -> Future:
        """Run a chunk of cells; the future's result is one (metrics, seconds) per cell. ``warm_cells``
        are for executors whose workers warm themselves (see :meth:`warm` for this one).

        Parameters
        ----------
        scenario : simlab.experiments.scenario.Scenario
            The scenario.
        fingerprint : str
            Its code fingerprint (unused here: this executor's warm-up is :meth:`warm`).
        cells : iterable of tuple of (dict, int)
            The chunk's ``(params, replicate)`` cells.
        master : int
            The master seed.
        warm_cells : list of tuple of (dict, int)
            The sweep's warm-up cells (unused here).

        Returns
        -------
        concurrent.futures.Future
            Resolves to :func:`run_cells`' list of ``(metrics, seconds)``; computed already (or holding
            the exception) when the executor runs in process.
        """
        if self.in_process:
            fut: Future = Future()
            try:
                fut.set_result(run_cells(scenario, cells, master))
            except BaseException as exc:  # noqa: BLE001 (re-raised by the caller's result())
                fut.set_exception(exc)
            return fut
        if self._pool is None:
            self._pool = _start_pinned_pool(self.workers)
        return self._pool.submit(_worker_chunk, scenario.name, _scenario_dir(scenario), list(cells), master)

    @staticmethod
    def wait_first(pending, timeout: float | None = None) -> set:
        """Wait until at least one of ``pending`` is done, or ``timeout`` has passed.

        Parameters
        ----------
        pending : iterable of concurrent.futures.Future
            Chunk and warm-up futures.
        timeout : float, optional
            Seconds to wait at most (default: no limit).

        Returns
        -------
        set of concurrent.futures.Future
            The futures of ``pending`` that are done (empty after a timeout).
        """
        done, _ = wait(pending, timeout=timeout, return_when=FIRST_COMPLETED)
        return set(done)

    def close(self, cancel: bool = False) -> None:
        """Shut the worker and warm-up pools down (the executor can be used again: pools restart).

        Parameters
        ----------
        cancel : bool, default False
            Cancel queued tasks (after an error or Ctrl-C); otherwise let submitted tasks finish.
            Either way this returns at once: the worker processes exit in the background (about 2 s
            of interpreter teardown that the command's verdicts and figures no longer wait for).
        """
        for pool in (self._pool, self._warm_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=cancel)
        self._pool = self._warm_pool = None


@contextmanager
def open_executor(executor="local", workers: int | None = None, scheduler: str | None = None):
    """The executor of one command: ``"local"`` (:class:`LocalExecutor`), ``"dask"`` (a Dask client on
    ``scheduler``, or on a new LocalCluster of ``workers`` processes without one), or an executor
    object that is already open (used as is and left open).

    Parameters
    ----------
    executor : {"local", "dask"} or executor object, default "local"
        Which executor to open, or an open one.
    workers : int, optional
        Worker processes (default: :func:`default_workers`; for Dask, of the new LocalCluster).
    scheduler : str, optional
        Address ``tcp://HOST:PORT`` of a Dask scheduler; only with ``executor="dask"``.

    Yields
    ------
    simlab.experiments.sweep.LocalExecutor or simlab.experiments.dask_executor.DaskExecutor
        The open executor; one this function opened is closed on exit (cancelling queued work on
        an exception).

    Raises
    ------
    ValueError
        For an unknown executor name, or ``scheduler`` without ``executor="dask"``.
    """
    if not isinstance(executor, str):
        yield executor
        return
    if scheduler is not None and executor != "dask":
        raise ValueError(f"--scheduler needs --executor dask (got --executor {executor})")
    if executor == "local":
        ex = LocalExecutor(workers)
    elif executor == "dask":
        from simlab.experiments.dask_executor import DaskExecutor

        ex = DaskExecutor(scheduler, workers)
    else:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    try:
        yield ex
    except BaseException:
        ex.close(cancel=True)
        raise
    else:
        ex.close()


# ---------------------------------------------------------------- sweeps

def run_scenario(scenario: Scenario, mode: str = "quick", workers: int | None = None,
                 store: Store | None = None, master: int = DEFAULT_MASTER_SEED,
                 progress: bool = True, executor="local", scheduler: str | None = None) -> SweepStats:
    """Run every missing cell of ``scenario`` in ``mode``; each finished chunk of cells is committed in
    one transaction.

    Cells are keyed by the scenario's code fingerprint: cells stored by other code are not reused.
    Each cell is leased in the store before it runs (a chunk's cells in one transaction), so another
    process sweeping the same scenario into the same store skips it (and this process skips the
    other's); cells leased by a live process are waited for at the end, cells leased by a dead one are
    taken over. ``executor``/``scheduler``:
    see :func:`open_executor`.

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        The scenario to sweep.
    mode : str, default "quick"
        ``"quick"`` or ``"full"``: which cells (``scenario.cells(mode)``).
    workers : int, optional
        Worker processes (default: every core).
    store : simlab.experiments.store.Store, optional
        The results store (default: a :class:`simlab.experiments.store.Store` at the default path,
        closed afterwards).
    master : int, optional
        The master seed (default ``DEFAULT_MASTER_SEED``).
    progress : bool, default True
        Show a progress bar.
    executor : {"local", "dask"} or executor object, default "local"
        See :func:`open_executor`.
    scheduler : str, optional
        Dask scheduler address (see :func:`open_executor`).

    Returns
    -------
    simlab.experiments.sweep.SweepStats
        Cells in the mode (``total``), already stored or finished by another process (``skipped``), run
        here (``ran``), and the seconds from the sweep's start to its last committed chunk.
    """
    return run_sweeps([SweepJob(scenario, mode, master)], workers, store, progress, executor, scheduler)[0]


@dataclass
class _JobState:
    job: SweepJob
    fingerprint: str
    total: int
    todo: list
    run_id: int | None = None
    ran: int = 0
    warm: Future | None = None
    warm_cells: list | None = None
    seconds: float = 0.0
    expected: float | None = None  # the longest expected cell time (from earlier runs), if known


def run_sweeps(jobs, workers: int | None = None, store: Store | None = None, progress: bool = True,
               executor="local", scheduler: str | None = None, desc: str | None = None) -> list[SweepStats]:
    """Run the missing cells of every job through one executor; one :class:`SweepStats` per job.

    Jobs stream one after another through the executor in chunks (sized to about the executor's
    ``chunk_seconds`` of compute from the cell times measured so far, and small enough near the end
    to keep every worker busy); a job's cells are sent only once its warm-up has finished.

    Parameters
    ----------
    jobs : iterable of simlab.experiments.sweep.SweepJob
        The sweeps (scenario, mode, master seed, optionally a subset of cells).
    workers : int, optional
        Worker processes (default: every core).
    store : simlab.experiments.store.Store, optional
        The results store (default: one at the default path, closed afterwards).
    progress : bool, default True
        Show a progress bar.
    executor : {"local", "dask"} or executor object, default "local"
        See :func:`open_executor`.
    scheduler : str, optional
        Dask scheduler address (see :func:`open_executor`).
    desc : str, optional
        Fixed progress-bar label (default: the name of the scenario being sent).

    Returns
    -------
    list of simlab.experiments.sweep.SweepStats
        One per job, in the order of ``jobs``.

    Raises
    ------
    ValueError
        If ``workers`` is not an integer >= 1.
    """
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    own_store = store is None
    store = Store() if own_store else store
    try:
        states = []
        for job in jobs:
            sc = job.scenario
            fp = scenario_fingerprint(sc)
            cells = list(job.cells) if job.cells is not None else sc.cells(job.mode)
            done = store.done_keys(sc.name, fp, job.master)
            states.append(_JobState(job, fp, len(cells), [(p, r) for p, r in cells if (cell_key(p), r) not in done]))
        active = _longest_first([s for s in states if s.todo], store)
        if active:
            with open_executor(executor, workers, scheduler) as ex:
                _stream(active, ex, store, progress, desc, time.perf_counter())
        return [SweepStats(s.job.scenario.name, s.total, s.total - s.ran, s.ran, s.seconds) for s in states]
    finally:
        if own_store:
            store.close()


def _longest_first(states: list, store: Store) -> list:
    """Jobs in decreasing order of their longest expected cell, so that the commands' last chunks are
    of cheap cells and every worker finishes at about the same time (longest processing time first).
    A cell's expected time is its mean stored time in earlier runs (any code fingerprint); a job
    without history comes first; ties and a store without history keep the given order. Cells
    within a job keep their order (consecutive cells share per-instance caches). The order never
    changes a number."""
    past: dict[str, dict[str, float]] = {}
    for s in states:
        name = s.job.scenario.name
        if name not in past:
            past[name] = store.past_seconds(name)
        known = [past[name][k] for k in {cell_key(p) for p, _ in s.todo} if k in past[name]]
        s.expected = max(known) if known else None
    if all(s.expected is None for s in states):
        return states
    order = sorted(range(len(states)), key=lambda i: (-(states[i].expected if states[i].expected is not None
                                                         else math.inf), i))
    return [states[i] for i in order]


def _stream(states, ex, store: Store, progress: bool, desc: str | None, t0: float) -> None:
    warm_memo: dict = {}
    for s in states:  # queue every missing warm-up at once: they run while earlier jobs compute
        sc = s.job.scenario
        s.warm_cells = _warm_up_cells(s.todo)
        key = (s.fingerprint, tuple(cell_key(p) for p, _ in s.warm_cells))
        if key not in warm_memo:
            warm_memo[key] = ex.warm(sc, s.fingerprint, s.todo, s.job.master)
        s.warm = warm_memo[key]
    queue = _LeasedQueue(states, store)
    bar = _progress(sum(len(s.todo) for s in states), desc or states[0].job.scenario.name, progress)
    pending: dict = {}  # future -> (state, cells)
    mean_seconds: dict[str, tuple[float, int]] = {}
    try:
        while True:
            # fill the window with chunks of ready jobs
            window = 1 if getattr(ex, "in_process", False) else 2 * max(1, ex.slots)
            blocked = None
            while len(pending) < window:
                s = queue.peek()
                if s is None or s is _LeasedQueue.WAIT:
                    blocked = s
                    break
                if s.warm is not None and not s.warm.done():
                    blocked = s.warm
                    break
                if s.warm is not None:
                    s.warm.result()  # a failed warm-up fails the sweep
                    s.warm = None
                size = _chunk_size(ex, mean_seconds.get(s.job.scenario.name), queue.remaining, window)
                chunk = queue.take(s, size)  # leased in one transaction; empty if others hold them
                if not chunk:
                    continue
                if s.run_id is None:
                    sc = s.job.scenario
                    s.run_id = store.start_run(sc.name, s.fingerprint, s.job.mode, s.job.master,
                                               sc.config() | {"master": s.job.master, "fingerprint": s.fingerprint})
                if desc is None:
                    bar.set_description(s.job.scenario.name)
                pending[ex.submit(s.job.scenario, s.fingerprint, chunk, s.job.master, s.warm_cells)] = (s, chunk)
            if not pending and blocked is None:
                return
            waits = set(pending)
            if blocked is not None and blocked is not _LeasedQueue.WAIT:
                waits.add(blocked)
            if not waits:  # only cells leased by other live processes are left
                time.sleep(_LeasedQueue.POLL_SECONDS)
                continue
            timeout = _LeasedQueue.POLL_SECONDS if blocked is _LeasedQueue.WAIT else None
            for fut in ex.wait_first(waits, timeout):
                if fut not in pending:
                    continue  # a warm-up finished
                s, chunk = pending.pop(fut)
                results = fut.result()
                name = s.job.scenario.name
                # the whole chunk in one transaction (and its leases released)
                store.add_cells(name, s.fingerprint, s.job.master, s.run_id,
                                [(cell_key(params), r, params, metrics, seconds)
                                 for (params, r), (metrics, seconds) in zip(chunk, results)])
                s.ran += len(chunk)
                total, count = mean_seconds.get(name, (0.0, 0))
                mean_seconds[name] = (total + sum(sec for _, sec in results), count + len(results))
                s.seconds = time.perf_counter() - t0
                bar.update(len(chunk))
            bar.update(queue.take_finished_elsewhere())
    finally:
        bar.close()
        store.release_leases()


def _chunk_size(ex, seconds: tuple[float, int] | None, remaining: int, window: int) -> int:
    """Cells per task: about ``ex.chunk_seconds`` of compute at the scenario's mean cell time so far
    (one cell while unknown), never more than a fair share of what is left."""
    if seconds is None or seconds[1] == 0:
        return 1
    mean = max(seconds[0] / seconds[1], 1e-6)
    fair = max(1, math.ceil(remaining / max(1, window)))
    return int(max(1, min(MAX_CHUNK, ex.chunk_seconds / mean, fair)))


class _LeasedQueue:
    """Hands out the cells this process should compute, job after job, in batches leased in one store
    transaction each; a cell finished or leased by another live process is skipped for now and
    revisited after all the others (until it is finished by its owner, or its owner dies and the
    lease can be taken)."""

    POLL_SECONDS = 0.5
    WAIT = object()  # only cells leased by other live processes are left, for now

    def __init__(self, states, store: Store):
        self.store = store
        self.items = [(s, p, r) for s in states for p, r in s.todo]
        self.pos = 0
        self.waiting: list = []
        self.retry: list = []
        self.remaining = len(self.items)
        self.finished_elsewhere = 0
        self.last_poll = 0.0

    def peek(self):
        """The job of the next cell to lease; None when nothing is left, WAIT when only cells leased
        by others are left (revisited every POLL_SECONDS)."""
        if self.pos < len(self.items):
            return self.items[self.pos][0]
        if not self.retry and self.waiting and time.monotonic() - self.last_poll >= self.POLL_SECONDS:
            self.last_poll = time.monotonic()
            self.retry, self.waiting = self.waiting, []
        if self.retry:
            return self.retry[0][0]
        return self.WAIT if self.waiting else None

    def take(self, state, size: int) -> list:
        """Lease up to ``size`` of the next cells of job ``state`` (the job :meth:`peek` named) in one
        transaction; the (params, replicate) leased, possibly none."""
        if self.pos < len(self.items):
            src, start = self.items, self.pos
        else:
            src, start = self.retry, 0
        end = start
        while end < len(src) and end - start < size and src[end][0] is state:
            end += 1
        batch = src[start:end]
        if src is self.items:
            self.pos = end
        else:
            del self.retry[:end]
        sc = state.job.scenario
        outcome = self.store.lease_many(sc.name, state.fingerprint, state.job.master,
                                        [(cell_key(p), r) for _, p, r in batch])
        leased = []
        for item, got in zip(batch, outcome):
            if got == Store.LEASED:
                leased.append(item[1:])
            elif got == Store.DONE:
                self.remaining -= 1
                self.finished_elsewhere += 1
            else:
                self.waiting.append(item)
        self.remaining -= len(leased)
        return leased

    def take_finished_elsewhere(self) -> int:
        k, self.finished_elsewhere = self.finished_elsewhere, 0
        return k


class _NullBar:
    def update(self, k):
        pass

    def set_description(self, desc):
        pass

    def close(self):
        pass


def _progress(total: int, name: str, enabled: bool):
    if not enabled:
        return _NullBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=name, unit="cell", dynamic_ncols=True, mininterval=0.5,
                bar_format="{desc}: {n_fmt}/{total_fmt} |{bar}| {elapsed}<{remaining} ({rate_fmt})")

