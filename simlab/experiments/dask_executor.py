"""Running sweeps' cells on a Dask cluster (optional extra: ``pip install "simlab[dask]"``).

The client (the process running ``simlab``) keeps everything that touches the store: it expands,
leases and commits cells exactly as with the local executor (:func:`simlab.experiments.sweep.run_sweeps`);
the cluster only computes chunks of cells. Cells are pure functions of (master, scenario, params,
replicate), so where a chunk runs never changes a number.

A task carries its scenario's source files (the files the code fingerprint hashes), so workers need the
same simlab and numerical libraries installed but no shared file system. A worker recomputes the
scenario's fingerprint and refuses to run when it differs from the client's (other simlab code, other
numpy/scipy/numba), and refuses to run unpinned (BLAS threads other than 1): either would store
numbers under a fingerprint that did not produce them.

Before a worker process computes cells of a scenario, it warms the numba cache of its host in a
subprocess (:func:`simlab.experiments.sweep.warm_here`, with the same markers and lock as the local
executor), so stored numbers never come from a kernel compiled in the process that ran the cell; a
restarted worker (after a crash or kill -9) does the same before its first chunk.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from simlab.experiments.fingerprint import scenario_fingerprint, scenario_source
from simlab.experiments.scenario import Scenario, cell_key, load_scenario
from simlab.experiments.sweep import default_workers, missing_warm_up, run_cells, warm_here
from simlab.threads import BLAS_THREAD_VARS, THREAD_VARS

CONNECT_SECONDS = 60.0
SLOTS_REFRESH_SECONDS = 5.0


class DaskExecutor:
    """Chunks of cells as Dask tasks: on the cluster whose scheduler listens at ``scheduler``
    (``tcp://HOST:PORT``), or, without one, on a new LocalCluster of ``workers`` processes (default:
    all cores) with one thread each, bound to 127.0.0.1 and pinned to one BLAS/numba thread."""

    chunk_seconds = 0.5  # target compute time of one task (a task costs a few ms of scheduling)
    in_process = False

    def __init__(self, scheduler: str | None = None, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise ValueError('--executor dask needs Dask installed: pip install "simlab[dask]"') from None
        self.cluster = None
        if scheduler is None:
            n = default_workers() if workers is None else workers
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise ValueError(f"workers must be an integer >= 1, got {n!r}")
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        dashboard_address=None, env={v: "1" for v in THREAD_VARS})
            self.client = Client(self.cluster)
        else:
            try:
                self.client = Client(scheduler, timeout=CONNECT_SECONDS)
            except OSError as exc:
                raise ValueError(f"cannot reach the Dask scheduler at {scheduler!r}: {exc}") from None
        self.client.wait_for_workers(1, timeout=CONNECT_SECONDS)
        self._payloads: dict[str, tuple] = {}
        self._slots, self._slots_at = 1, -SLOTS_REFRESH_SECONDS

    @property
    def slots(self) -> int:
        """Threads of the cluster's workers (refreshed every few seconds: workers come and go)."""
        if time.monotonic() - self._slots_at > SLOTS_REFRESH_SECONDS:
            self._slots = max(1, sum(self.client.nthreads().values()))
            self._slots_at = time.monotonic()
        return self._slots

    def warm(self, scenario: Scenario, fingerprint: str, todo, master: int) -> None:
        """Nothing to do on the client: each worker warms its own host's cache (see :func:`compute_chunk`).

        Parameters
        ----------
        scenario : simlab.experiments.scenario.Scenario
            The scenario (unused).
        fingerprint : str
            Its code fingerprint (unused).
        todo : iterable of tuple of (dict, int)
            The sweep's cells (unused).
        master : int
            The master seed (unused).
        """
        return None

    def submit(self, scenario: Scenario, fingerprint: str, cells, master: int, warm_cells):
        """Send a chunk of cells to the cluster as one :func:`compute_chunk` task.

        Parameters
        ----------
        scenario : simlab.experiments.scenario.Scenario
            The scenario; its source files travel with the task (:func:`scenario_payload`, built once per
            scenario).
        fingerprint : str
            The client's code fingerprint of the scenario; the worker refuses to run under another.
        cells : iterable of tuple of (dict, int)
            The chunk's ``(params, replicate)`` cells.
        master : int
            The master seed.
        warm_cells : iterable of tuple of (dict, int)
            The sweep's warm-up cells, which the worker runs in a subprocess first if its host's
            cache misses them.

        Returns
        -------
        distributed.Future
            Resolves to one ``(metrics, seconds)`` per cell (``pure=False``: never deduplicated).
        """
        return self.client.submit(compute_chunk, self._payload(scenario), fingerprint, list(cells), master,
                                  list(warm_cells), pure=False)

    def _payload(self, scenario: Scenario) -> tuple:
        if scenario.name not in self._payloads:
            self._payloads[scenario.name] = scenario_payload(scenario)
        return self._payloads[scenario.name]

    @staticmethod
    def wait_first(pending, timeout: float | None = None) -> set:
        """Wait until at least one of ``pending`` is done, or ``timeout`` has passed.

        Parameters
        ----------
        pending : iterable of distributed.Future
            Chunk futures.
        timeout : float, optional
            Seconds to wait at most (default: no limit).

        Returns
        -------
        set of distributed.Future
            The futures of ``pending`` that are done (empty after a timeout).
        """
        from distributed import wait

        try:
            done, _ = wait(list(pending), timeout=timeout, return_when="FIRST_COMPLETED")
        except TimeoutError:
            return set()
        return set(done)

    def close(self, cancel: bool = False) -> None:
        """Close the client, and the LocalCluster if this executor started one.

        Parameters
        ----------
        cancel : bool, default False
            Accepted for the executor interface (:meth:`simlab.experiments.sweep.LocalExecutor.close`);
            closing the client releases its pending tasks either way.
        """
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def scenario_payload(scenario: Scenario) -> tuple:
    """(name, digest, files): the scenario file and the private helper modules beside it (``_*.py``),
    the files its code fingerprint hashes, as (file name, bytes).

    Parameters
    ----------
    scenario : simlab.experiments.scenario.Scenario
        A scenario loaded from a file (``scenario_source`` finds it).

    Returns
    -------
    name : str
        The scenario's name.
    digest : str
        The first 20 hex digits of the SHA-256 of the name and the files (names and contents): the
        folder name the workers write them to.
    files : tuple of tuple of (str, bytes)
        ``(file name, content)`` of the scenario file, then of its ``_*.py`` neighbours in name order.

    Raises
    ------
    ValueError
        If the scenario has no source file.
    """
    src = scenario_source(scenario)
    if src is None or not src.is_file():
        raise ValueError(f"scenario {scenario.name!r} has no source file to send to Dask workers")
    files = tuple((p.name, p.read_bytes()) for p in [src, *sorted(q for q in src.parent.glob("_*.py") if q != src)])
    digest = hashlib.sha256(scenario.name.encode() + b"\0" + b"".join(n.encode() + b"\0" + b + b"\0"
                                                                     for n, b in files)).hexdigest()[:20]
    return scenario.name, digest, files


# ---------------------------------------------------------------- worker side

_LOCK = threading.Lock()
_WARMED: set = set()


def compute_chunk(payload: tuple, fingerprint: str, cells, master: int, warm_cells) -> list:
    """Worker task: check the worker (threads, fingerprint), warm its host's numba cache for the sweep
    once per worker process, run the cells; one (metrics, seconds) per cell.

    Parameters
    ----------
    payload : tuple of (str, str, tuple)
        :func:`scenario_payload`'s (name, digest, files).
    fingerprint : str
        The client's code fingerprint of the scenario.
    cells : iterable of tuple of (dict, int)
        The chunk's ``(params, replicate)`` cells.
    master : int
        The master seed.
    warm_cells : iterable of tuple of (dict, int)
        The sweep's warm-up cells; those this host's cache misses
        (:func:`simlab.experiments.sweep.missing_warm_up`) run in a subprocess first.

    Returns
    -------
    list of tuple of (dict, float)
        :func:`simlab.experiments.sweep.run_cells`' ``(metrics, seconds)`` per cell.

    Raises
    ------
    RuntimeError
        If the worker is not pinned to one BLAS thread, computes another fingerprint than the
        client's, or its warm-up subprocess fails.
    """
    bad = {v: os.environ.get(v) for v in BLAS_THREAD_VARS if os.environ.get(v) != "1"}
    if bad:
        raise RuntimeError(f"Dask worker on {_host()} is not pinned to one BLAS thread ({bad}); start workers "
                           "with a nanny (the default of `dask worker`) or export "
                           + " ".join(f"{v}=1" for v in THREAD_VARS))
    folder = _materialize(payload)
    with _LOCK:
        scenario = _load(payload[0], folder)
        got = scenario_fingerprint(scenario)
        if got != fingerprint:
            raise RuntimeError(f"Dask worker on {_host()} computes code fingerprint {got} for scenario "
                               f"{scenario.name!r}, the client {fingerprint}: install the client's simlab and "
                               "numpy/scipy/numba versions on the workers")
        key = (fingerprint, tuple(cell_key(p) for p, _ in warm_cells))
        if key not in _WARMED:
            if missing_warm_up(scenario, fingerprint, warm_cells):
                _warm_in_subprocess(folder, scenario.name, fingerprint, warm_cells, master)
            _WARMED.add(key)
    return run_cells(scenario, cells, master)


def _host() -> str:
    import socket

    return f"{socket.gethostname()} (pid {os.getpid()})"


def _materialize(payload: tuple) -> Path:
    """The scenario's files in a folder of this host named by their digest (written once, atomically)."""
    name, digest, files = payload
    folder = Path(tempfile.gettempdir()) / f"simlab-scenarios-{os.getuid()}" / digest
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        for fname, data in files:
            (tmp / fname).write_bytes(data)
        try:
            tmp.rename(folder)
        except OSError:  # another worker of this host wrote it first
            for fname, _ in files:
                (tmp / fname).unlink()
            tmp.rmdir()
    return folder


def _load(name: str, folder: Path) -> Scenario:
    """The scenario from ``folder`` (scenarios are cached per folder, and a folder per content digest)."""
    os.environ["SIMLAB_SCENARIOS"] = str(folder)
    return load_scenario(name)


def _warm_in_subprocess(folder: Path, name: str, fingerprint: str, warm_cells, master: int) -> None:
    """Warm this host's numba cache in a fresh process (a Dask worker is daemonic: no process pool)."""
    import simlab

    env = dict(os.environ, SIMLAB_SCENARIOS=str(folder), **{v: "1" for v in THREAD_VARS})
    root = str(Path(simlab.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    res = subprocess.run([sys.executable, "-c", "from simlab.experiments.dask_executor import warm_main; warm_main()"],
                         input=pickle.dumps((name, fingerprint, list(warm_cells), master)), env=env,
                         capture_output=True)
    if res.returncode != 0:
        tail = res.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"numba warm-up of scenario {name!r} failed on {_host()}: " + " | ".join(tail))


def warm_main() -> None:
    """Entry point of the warm-up subprocess: (name, fingerprint, cells, master) pickled on stdin."""
    name, fingerprint, cells, master = pickle.loads(sys.stdin.buffer.read())
    scenario = load_scenario(name)
    got = scenario_fingerprint(scenario)
    if got != fingerprint:
        raise SystemExit(f"warm-up computes fingerprint {got}, the client {fingerprint}")
    warm_here(scenario, fingerprint, cells, master)
