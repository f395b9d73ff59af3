"""The results store: one embedded SQLite file (stdlib ``sqlite3``).

Each finished cell is one row committed atomically (WAL journal), keyed by (scenario, version,
master seed, params, replicate): an interrupted sweep (Ctrl-C or kill -9) loses at most the cells in
flight, and re-running skips every finished cell. Every run records its provenance.
"""
from __future__ import annotations

import json
import os
import platform
import sqlite3
import subprocess
import time
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    scenario TEXT NOT NULL, version TEXT NOT NULL, mode TEXT NOT NULL, master INTEGER NOT NULL,
    config TEXT NOT NULL, provenance TEXT NOT NULL, started TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cells (
    scenario TEXT NOT NULL, version TEXT NOT NULL, master INTEGER NOT NULL,
    key TEXT NOT NULL, replicate INTEGER NOT NULL,
    params TEXT NOT NULL, metrics TEXT NOT NULL, seconds REAL NOT NULL,
    run_id INTEGER NOT NULL, finished TEXT NOT NULL,
    PRIMARY KEY (scenario, version, master, key, replicate));
"""


def default_store_path() -> Path:
    """$SIMLAB_STORE, else results/simlab.sqlite under the current directory."""
    return Path(os.environ.get("SIMLAB_STORE", Path.cwd() / "results" / "simlab.sqlite"))


def provenance() -> dict:
    """Package version or git hash, library versions and the platform."""
    import numba
    import numpy
    import scipy

    import simlab

    out = {"simlab": simlab.__version__, "python": platform.python_version(),
           "numpy": numpy.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
           "platform": platform.platform()}
    try:
        root = Path(simlab.__file__).resolve().parents[1]
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=5)
        if sha.returncode == 0:
            out["git"] = sha.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return out


class Store:
    """Thin wrapper over the SQLite file; only the main process writes."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_store_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(self.path, timeout=60)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(_SCHEMA)
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    def start_run(self, scenario: str, version: str, mode: str, master: int, config: dict) -> int:
        cur = self.conn.execute(
            "INSERT INTO runs (scenario, version, mode, master, config, provenance, started) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (scenario, version, mode, master, json.dumps(config, default=float),
             json.dumps(provenance()), time.strftime("%Y-%m-%dT%H:%M:%S")))
        self.conn.commit()
        return int(cur.lastrowid)

    def done_keys(self, scenario: str, version: str, master: int) -> set[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT key, replicate FROM cells WHERE scenario=? AND version=? AND master=?",
            (scenario, version, master))
        return {(k, int(r)) for k, r in rows}

    def add_cell(self, scenario: str, version: str, master: int, key: str, replicate: int,
                 params: dict, metrics: dict, seconds: float, run_id: int) -> None:
        """Insert one finished cell and commit (atomic); a duplicate key is ignored."""
        self.conn.execute(
            "INSERT OR IGNORE INTO cells VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (scenario, version, master, key, replicate, json.dumps(params, default=float),
             json.dumps(metrics), seconds, run_id, time.strftime("%Y-%m-%dT%H:%M:%S")))
        self.conn.commit()

    def rows(self, scenario: str, version: str | None = None, master: int | None = None) -> list[dict]:
        """All stored cells of a scenario as flat dicts (params, metrics, replicate, seconds, ...)."""
        q = "SELECT version, master, key, replicate, params, metrics, seconds FROM cells WHERE scenario=?"
        args: list = [scenario]
        if version is not None:
            q += " AND version=?"
            args.append(version)
        if master is not None:
            q += " AND master=?"
            args.append(master)
        out = []
        for ver, mas, key, rep, params, metrics, secs in self.conn.execute(q + " ORDER BY rowid", args):
            row = {"version": ver, "master": mas, "cell_key": key, "replicate": rep, "seconds": secs}
            row.update(json.loads(params))
            row.update({k: (float("nan") if v is None else v) for k, v in json.loads(metrics).items()})
            out.append(row)
        return out

    def runs(self, scenario: str) -> list[dict]:
        cur = self.conn.execute("SELECT run_id, version, mode, master, config, provenance, started "
                                "FROM runs WHERE scenario=? ORDER BY run_id", (scenario,))
        return [{"run_id": r[0], "version": r[1], "mode": r[2], "master": r[3],
                 "config": json.loads(r[4]), "provenance": json.loads(r[5]), "started": r[6]}
                for r in cur]


def results(scenario: str, store: str | Path | None = None, master: int | None = None):
    """Stored cells of ``scenario`` (current version) as a pandas DataFrame, one row per cell."""
    import pandas as pd

    from simlab.experiments.scenario import load_scenario

    sc = load_scenario(scenario)
    st = Store(store)
    try:
        return pd.DataFrame(st.rows(scenario, sc.version, master))
    finally:
        st.close()
