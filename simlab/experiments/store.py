"""The results store: one embedded SQLite file (stdlib ``sqlite3``).

Each finished cell is one row, keyed by (scenario, code fingerprint, master seed, params, replicate);
a sweep commits each chunk of finished cells in one atomic transaction (WAL journal): an interrupted
sweep (Ctrl-C or kill -9) loses at most the cells in flight, re-running skips every finished cell,
and a cell computed by other code (another fingerprint, see :mod:`simlab.experiments.fingerprint`) is
never reused. Rows of other fingerprints are kept, never deleted. Processes sharing a store lease the
cells they compute (table ``leases``, a batch of cells per transaction), so two sweeps of one
scenario split the work instead of both computing everything. Every run records its provenance;
every check records its verdict rows and timings (table ``checks``).
"""
from __future__ import annotations

import json
import os
import platform
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

STORE_TIMEOUT_SECONDS = 60.0  # how long a write waits for another process's lock ($SIMLAB_STORE_TIMEOUT)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL, fingerprint TEXT NOT NULL, mode TEXT NOT NULL, master INTEGER NOT NULL,
    config TEXT NOT NULL, provenance TEXT NOT NULL, started TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    scenario TEXT NOT NULL, fingerprint TEXT NOT NULL, master INTEGER NOT NULL,
    key TEXT NOT NULL, replicate INTEGER NOT NULL,
    params TEXT NOT NULL, metrics TEXT NOT NULL, seconds REAL NOT NULL,
    run_id INTEGER NOT NULL, finished TEXT NOT NULL,
    PRIMARY KEY (scenario, fingerprint, master, key, replicate));
CREATE TABLE IF NOT EXISTS leases (
    scenario TEXT NOT NULL, fingerprint TEXT NOT NULL, master INTEGER NOT NULL,
    key TEXT NOT NULL, replicate INTEGER NOT NULL, owner TEXT NOT NULL, taken REAL NOT NULL,
    PRIMARY KEY (scenario, fingerprint, master, key, replicate));
CREATE TABLE IF NOT EXISTS checks (
    check_id INTEGER PRIMARY KEY AUTOINCREMENT, started TEXT NOT NULL, mode TEXT NOT NULL,
    master INTEGER NOT NULL, rows TEXT NOT NULL, provenance TEXT NOT NULL);
"""


class StoreError(ValueError):
    """The store cannot be used (locked, not a database, not a file); the message names the path."""


def default_store_path() -> Path:
    """$SIMLAB_STORE, else results/simlab.sqlite under the current directory.

    Returns
    -------
    pathlib.Path
        The store file used when no path is given (it need not exist yet).
    """
    return Path(os.environ.get("SIMLAB_STORE", Path.cwd() / "results" / "simlab.sqlite"))


def git_hash() -> str | None:
    """The git commit of the source tree simlab is imported from, if it is a git checkout.

    Returns
    -------
    str or None
        The full hash of ``HEAD`` (``git rev-parse HEAD`` in the folder above the package), or None when
        that folder is not a git checkout or git is unavailable.
    """
    import simlab

    try:
        root = Path(simlab.__file__).resolve().parents[1]
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return sha.stdout.strip() if sha.returncode == 0 else None


def provenance() -> dict:
    """Package version, git hash (if any), code fingerprint, library versions and the platform.

    Returns
    -------
    dict
        ``{"simlab": version, <library>: version, ..., "platform": str, "package_fingerprint": str}``,
        plus ``"git": hash`` when :func:`git_hash` finds one; stored as JSON with every run and check.
    """
    import simlab
    from simlab.experiments.fingerprint import library_versions, package_fingerprint

    out = {"simlab": simlab.__version__, **library_versions(), "platform": platform.platform(),
           "package_fingerprint": package_fingerprint()}
    sha = git_hash()
    if sha:
        out["git"] = sha
    return out


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_busy(exc: sqlite3.Error) -> bool:
    """True for SQLite's 'database is locked' / 'busy' errors (another process holds the lock)."""
    return "locked" in str(exc) or "busy" in str(exc)


def _owner_alive(owner: str) -> bool:
    """Whether a lease's owner process still runs (only decidable on this host; others count as alive)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Store:
    """Thin wrapper over the SQLite file; only main processes (never pool workers) write."""

    def __init__(self, path: str | Path | None = None, create: bool = True):
        """Open (``create=True``: or create) the store at ``path``; the default path's folder
        (``results/``) is created when needed, a given path's folder must exist."""
        self.path = Path(path) if path is not None else default_store_path()
        if path is None and create:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_dir():
            raise StoreError(f"store {self.path} is a directory; give a file path (e.g. {self.path / 'simlab.sqlite'})")
        if not self.path.exists():
            if not create:
                raise StoreError(f"store {self.path} does not exist (run `simlab check` or `simlab run` first)")
            if not self.path.parent.is_dir():
                raise StoreError(f"store {self.path}: directory {self.path.parent} does not exist")
        try:
            self.timeout = float(os.environ.get("SIMLAB_STORE_TIMEOUT", STORE_TIMEOUT_SECONDS))
            self.conn = sqlite3.connect(self.path, timeout=self.timeout)
            # switching a new file to WAL takes an exclusive lock without SQLite's busy handler: two
            # processes opening one new store at once would otherwise fail at once with 'locked'
            self._retry_busy(lambda: self.conn.execute("PRAGMA journal_mode=WAL"))
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate_legacy()
            self.conn.executescript(_SCHEMA)
            self.conn.commit()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        self.owner = _owner()

    def _error(self, exc: sqlite3.Error) -> StoreError:
        text = str(exc)
        if _is_busy(exc):
            return StoreError(f"store {self.path} is locked by another process beyond "
                              f"{self.timeout:g} s; retry later or use another --store")
        if "not a database" in text or "malformed" in text:
            return StoreError(f"store {self.path} is not a simlab SQLite store ({text})")
        return StoreError(f"store {self.path}: {text}")

    def _retry_busy(self, action):
        """``action()``, retried every 50 ms while SQLite reports the store busy or locked, until the
        store's timeout has passed (for the statements SQLite's own busy handler does not retry)."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                return action()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _write_transaction(self, body):
        """``body()`` inside one write transaction: BEGIN IMMEDIATE (the write lock before any read),
        commit, or roll back if any statement fails (a failed write never keeps the lock that other
        processes wait for); retried while the store is busy, then a :class:`StoreError`."""
        def attempt():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                out = body()
                self.conn.commit()
                return out
            except BaseException:
                self.conn.rollback()
                raise

        try:
            return self._retry_busy(attempt)
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None

    def _execute(self, sql: str, args=(), commit: bool = False):
        try:
            cur = self.conn.execute(sql, args)
            if commit:
                self.conn.commit()
            return cur
        except sqlite3.OperationalError as exc:
            raise self._error(exc) from None

    def _migrate_legacy(self) -> None:
        """Stores written before cells were keyed by code fingerprint keyed them by a hand-bumped
        ``version``; their tables are renamed ``*_legacy`` (kept, never read by verdicts)."""
        cols = [r[1] for r in self.conn.execute("PRAGMA table_info(cells)")]
        if cols and "fingerprint" not in cols:
            self.conn.execute("ALTER TABLE cells RENAME TO cells_legacy")
            self.conn.execute("ALTER TABLE runs RENAME TO runs_legacy")
            self.conn.commit()

    def close(self) -> None:
        """Close the SQLite connection (every write of this class has committed already)."""
        self.conn.close()

    # ---------------------------------------------------------------- runs and cells
    def start_run(self, scenario: str, fingerprint: str, mode: str, master: int, config: dict) -> int:
        """Record the start of a sweep (table ``runs``) with this process's :func:`provenance`.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        mode : str
            The sweep mode (``"quick"`` or ``"full"``).
        master : int
            The master seed.
        config : dict
            The scenario's configuration, stored as JSON (numbers JSON cannot hold as floats).

        Returns
        -------
        int
            The new run's ``run_id``, which the cells it computes carry.
        """
        cur = self._execute(
            "INSERT INTO runs (scenario, fingerprint, mode, master, config, provenance, started) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scenario, fingerprint, mode, master, json.dumps(config, default=float),
             json.dumps(provenance()), time.strftime("%Y-%m-%dT%H:%M:%S")), commit=True)
        return int(cur.lastrowid)

    def done_keys(self, scenario: str, fingerprint: str, master: int) -> set[tuple[str, int]]:
        """The cells already stored for one (scenario, fingerprint, master).

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.

        Returns
        -------
        set of tuple of (str, int)
            The stored cells' (cell key, replicate) pairs (:func:`simlab.experiments.scenario.cell_key`).
        """
        rows = self._execute("SELECT key, replicate FROM cells WHERE scenario=? AND fingerprint=? AND master=?",
                             (scenario, fingerprint, master))
        return {(k, int(r)) for k, r in rows}

    def is_done(self, scenario: str, fingerprint: str, master: int, key: str, replicate: int) -> bool:
        """Whether one cell is stored.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.
        key : str
            The cell key of its parameters (:func:`simlab.experiments.scenario.cell_key`).
        replicate : int
            The replicate index.

        Returns
        -------
        bool
            True iff the ``cells`` table holds this (scenario, fingerprint, master, key, replicate).
        """
        return self._execute("SELECT 1 FROM cells WHERE scenario=? AND fingerprint=? AND master=? AND key=? "
                             "AND replicate=?", (scenario, fingerprint, master, key, replicate)).fetchone() is not None

    def add_cell(self, scenario: str, fingerprint: str, master: int, key: str, replicate: int,
                 params: dict, metrics: dict, seconds: float, run_id: int) -> None:
        """Insert one finished cell, release its lease, commit (atomic); a duplicate key is ignored.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.
        key : str
            The cell key of ``params`` (:func:`simlab.experiments.scenario.cell_key`).
        replicate : int
            The replicate index.
        params : dict
            The cell's parameters (stored as JSON).
        metrics : dict of str to float
            What the cell returned (stored as JSON; NaN is read back as NaN).
        seconds : float
            The cell's compute time.
        run_id : int
            The run that computed it (:meth:`start_run`).
        """
        self.add_cells(scenario, fingerprint, master, run_id, [(key, replicate, params, metrics, seconds)])

    def add_cells(self, scenario: str, fingerprint: str, master: int, run_id: int, cells) -> None:
        """Insert finished cells ``(key, replicate, params, metrics, seconds)`` and release their
        leases in one write transaction (all or none; a duplicate key is ignored).

        A failed statement rolls the transaction back at once (never keeping the write lock other
        processes wait for); a busy store is retried until the store's timeout has passed.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.
        run_id : int
            The run that computed them (:meth:`start_run`).
        cells : iterable of tuple of (str, int, dict, dict, float)
            ``(key, replicate, params, metrics, seconds)`` per cell, as in :meth:`add_cell`; nothing is
            written when it is empty.

        Raises
        ------
        simlab.experiments.store.StoreError
            When the store stays locked beyond its timeout or the write fails.
        """
        cells = list(cells)
        if not cells:
            return
        finished = time.strftime("%Y-%m-%dT%H:%M:%S")
        rows = [(scenario, fingerprint, master, key, replicate, json.dumps(params, default=float),
                 json.dumps(metrics), seconds, run_id, finished) for key, replicate, params, metrics, seconds in cells]
        keys = [(scenario, fingerprint, master, key, replicate) for key, replicate, *_ in cells]

        def body() -> None:
            self.conn.executemany("INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            self.conn.executemany("DELETE FROM leases WHERE scenario=? AND fingerprint=? AND master=? "
                                  "AND key=? AND replicate=?", keys)

        self._write_transaction(body)

    # ---------------------------------------------------------------- leases
    LEASED, DONE, BUSY = "leased", "done", "busy"  # outcomes of :meth:`lease_many` per cell

    def lease(self, scenario: str, fingerprint: str, master: int, key: str, replicate: int) -> bool:
        """Take the lease on one cell for this process (see :meth:`lease_many`); True iff taken.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.
        key : str
            The cell key (:func:`simlab.experiments.scenario.cell_key`).
        replicate : int
            The replicate index.

        Returns
        -------
        bool
            True iff the cell is now leased by this process (False: finished, or leased by another
            live process).
        """
        return self.lease_many(scenario, fingerprint, master, [(key, replicate)])[0] == self.LEASED

    def lease_many(self, scenario: str, fingerprint: str, master: int, cells) -> list[str]:
        """Take the leases on cells ``(key, replicate)`` for this process, in one write transaction.
        Per cell: ``"leased"`` (now this process's), ``"done"`` (finished, not leased) or ``"busy"``
        (leased by another live process); a lease held by a dead process on this host is taken over.

        One short write transaction (BEGIN IMMEDIATE: the write lock before the reads, so no two
        owners). If any statement of it fails, it is rolled back before anything else happens, so a
        failed lease never leaves this connection holding the lock that other processes wait for; a
        busy store is retried until the store's timeout has passed.

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str
            The scenario's code fingerprint (:func:`simlab.experiments.fingerprint.scenario_fingerprint`).
        master : int
            The master seed.
        cells : iterable of tuple of (str, int)
            ``(key, replicate)`` per cell.

        Returns
        -------
        list of str
            One outcome per cell, in order: ``"leased"``, ``"done"`` or ``"busy"`` (the class constants
            ``LEASED``, ``DONE``, ``BUSY``); an empty list for no cells.
        """
        cells = [(key, int(replicate)) for key, replicate in cells]
        head = (scenario, fingerprint, master)

        def body() -> list[str]:
            out = []
            now = time.time()
            for key, replicate in cells:
                args = (*head, key, replicate)
                done = self.conn.execute("SELECT 1 FROM cells WHERE scenario=? AND fingerprint=? AND master=? "
                                         "AND key=? AND replicate=?", args).fetchone()
                if done:
                    out.append(self.DONE)
                    continue
                row = self.conn.execute(
                    "SELECT owner FROM leases WHERE scenario=? AND fingerprint=? AND master=? AND key=? "
                    "AND replicate=?", args).fetchone()
                if row is not None and row[0] != self.owner and _owner_alive(row[0]):
                    out.append(self.BUSY)
                    continue
                self.conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?, ?, ?, ?, ?)",
                                  (*args, self.owner, now))
                out.append(self.LEASED)
            return out

        return self._write_transaction(body) if cells else []

    def release_leases(self) -> None:
        """Drop every lease this process holds (its unfinished cells become free again)."""
        try:
            self.conn.execute("DELETE FROM leases WHERE owner=?", (self.owner,))
            self.conn.commit()
        except sqlite3.Error:
            pass

    # ---------------------------------------------------------------- reading
    def rows(self, scenario: str, fingerprint: str | None = None, master: int | None = None) -> list[dict]:
        """Stored cells of a scenario as flat dicts (params, metrics, replicate, seconds, ...).

        Parameters
        ----------
        scenario : str
            The scenario's name.
        fingerprint : str, optional
            Only cells of this code fingerprint (default: all).
        master : int, optional
            Only cells of this master seed (default: all).

        Returns
        -------
        list of dict
            One dict per cell in insertion order: ``fingerprint``, ``master``, ``cell_key``, ``replicate``,
            ``seconds``, then the cell's parameters and its metrics (a stored null metric as NaN).
        """
        q = "SELECT fingerprint, master, key, replicate, params, metrics, seconds FROM cells WHERE scenario=?"
        args: list = [scenario]
        if fingerprint is not None:
            q += " AND fingerprint=?"
            args.append(fingerprint)
        if master is not None:
            q += " AND master=?"
            args.append(master)
        out = []
        for fp, mas, key, rep, params, metrics, secs in self._execute(q + " ORDER BY rowid", args):
            row = {"fingerprint": fp, "master": mas, "cell_key": key, "replicate": rep, "seconds": secs}
            row.update(json.loads(params))
            row.update({k: (float("nan") if v is None else v) for k, v in json.loads(metrics).items()})
            out.append(row)
        return out

    def past_seconds(self, scenario: str) -> dict[str, float]:
        """Mean compute seconds of each cell key of ``scenario`` over every stored run (any code
        fingerprint, any master seed): what a sweep expects a cell to cost, for ordering only.

        Parameters
        ----------
        scenario : str
            The scenario's name.

        Returns
        -------
        dict of str to float
            Cell key to mean stored seconds (keys never stored are absent).
        """
        cur = self._execute("SELECT key, AVG(seconds) FROM cells WHERE scenario=? GROUP BY key", (scenario,))
        return {k: float(v) for k, v in cur}

    def fingerprints(self, scenario: str) -> list[str]:
        """Fingerprints with stored cells for ``scenario``, most recent first.

        Parameters
        ----------
        scenario : str
            The scenario's name.

        Returns
        -------
        list of str
            Distinct code fingerprints, ordered by their most recently inserted cell, newest first.
        """
        cur = self._execute("SELECT fingerprint, MAX(rowid) FROM cells WHERE scenario=? GROUP BY fingerprint "
                            "ORDER BY MAX(rowid) DESC", (scenario,))
        return [r[0] for r in cur]

    def runs(self, scenario: str) -> list[dict]:
        """The recorded runs (sweeps) of a scenario, oldest first.

        Parameters
        ----------
        scenario : str
            The scenario's name.

        Returns
        -------
        list of dict
            One dict per run: ``run_id``, ``fingerprint``, ``mode``, ``master``, ``config`` and
            ``provenance`` (both decoded from JSON) and ``started`` (local time, ISO 8601).
        """
        cur = self._execute("SELECT run_id, fingerprint, mode, master, config, provenance, started "
                            "FROM runs WHERE scenario=? ORDER BY run_id", (scenario,))
        return [{"run_id": r[0], "fingerprint": r[1], "mode": r[2], "master": r[3],
                 "config": json.loads(r[4]), "provenance": json.loads(r[5]), "started": r[6]}
                for r in cur]

    def record_check(self, mode: str, master: int, rows: list[dict]) -> None:
        """Keep a check's verdict rows with their timings (timings stay out of tracked files).

        Parameters
        ----------
        mode : str
            The check's mode (``"quick"`` or ``"full"``).
        master : int
            The master seed.
        rows : list of dict
            The verdict rows (stored as JSON with this process's :func:`provenance`).
        """
        self._execute("INSERT INTO checks (started, mode, master, rows, provenance) VALUES (?, ?, ?, ?, ?)",
                      (time.strftime("%Y-%m-%dT%H:%M:%S"), mode, master, json.dumps(rows),
                       json.dumps(provenance())), commit=True)

