"""Code fingerprints: the identity of the code that produced a stored cell.

A stored cell is keyed by the fingerprint of its scenario (:func:`scenario_fingerprint`), so any edit
to the simlab package, to the scenario file or to a helper module beside it (``_*.py``), or a change
of the numerical libraries, makes the next run recompute the cell instead of reusing a stale one.
Rows stored under other fingerprints stay in the store but never enter a verdict.
"""
from __future__ import annotations

import functools
import hashlib
import inspect
import platform
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
FINGERPRINT_LENGTH = 16


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of Python and of the libraries whose arithmetic a cell depends on.

    Returns
    -------
    dict of str to str
        ``python``, ``numpy``, ``scipy`` and ``numba`` versions.
    """
    import numba
    import numpy
    import scipy

    return {"python": platform.python_version(), "numpy": numpy.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__}


def refuse_package_write(path: Path) -> None:
    """Refuse to write a record (calibration, baseline) into the installed package.

    Records are written beside the scenario files; a folder inside the installed simlab package is
    refused with a ``ValueError`` that says how to work on a copy instead.

    Parameters
    ----------
    path : pathlib.Path
        The file about to be written.

    Raises
    ------
    ValueError
        If ``path`` lies inside the installed package.
    """
    if Path(path).resolve().is_relative_to(PACKAGE_ROOT):
        raise ValueError(f"{path} is inside the installed simlab package; copy the studies "
                         f"(simlab/scenarios) to a folder of your own and pass --scenarios DIR")


def _hash_files(h, root: Path, files) -> None:
    for path in sorted(files):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes() + b"\0")


@functools.lru_cache(maxsize=1)
def package_fingerprint() -> str:
    """SHA-256 (hex, truncated) of every ``.py`` file of the installed simlab package and the library versions.

    Computed once per process. Studies shipped inside a wheel (``simlab/scenarios``) count per scenario,
    not here, so a checkout and a wheel of the same code have the same fingerprints.

    Returns
    -------
    str
        The package fingerprint.
    """
    h = hashlib.sha256()
    # an installed wheel carries the studies as simlab/scenarios: they count per scenario, not here,
    # so a checkout and a wheel of the same code have the same fingerprints
    files = [p for p in PACKAGE_ROOT.rglob("*.py") if p.relative_to(PACKAGE_ROOT).parts[0] != "scenarios"]
    _hash_files(h, PACKAGE_ROOT, files)
    h.update(repr(sorted(library_versions().items())).encode())
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def scenario_source(scenario) -> Path | None:
    """The file that defines ``scenario``: its recorded path, else the file of its cell function.

    Parameters
    ----------
    scenario : Scenario
        A scenario.

    Returns
    -------
    pathlib.Path or None
        The file, or None when it cannot be found.
    """
    if getattr(scenario, "path", ""):
        return Path(scenario.path)
    try:
        src = inspect.getsourcefile(scenario.cell)
    except TypeError:
        return None
    return Path(src) if src else None


def scenario_fingerprint(scenario) -> str:
    """Fingerprint of everything that decides a scenario's numbers.

    That is the package fingerprint, the scenario's file and the private helper modules beside it
    (``_*.py``), and its declared version.

    Parameters
    ----------
    scenario : Scenario
        A scenario.

    Returns
    -------
    str
        The key under which its cells are stored.
    """
    h = hashlib.sha256(package_fingerprint().encode())
    _hash_scenario_files(h, scenario)
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def scenario_source_fingerprint(scenario) -> str:
    """Fingerprint of the scenario's own code only: its file, the private helper modules beside it
    (``_*.py``) and its declared version, without the package.

    A study figure is a function of the scenario's stored rows and of this code (its ``figures=``
    hooks live in the scenario file and draw through ``simlab.plots``), so an edit elsewhere in the
    package that leaves the rows unchanged does not redraw it (:func:`simlab.report.study_figures`).

    Parameters
    ----------
    scenario : Scenario
        A scenario.

    Returns
    -------
    str
        A hex digest.
    """
    h = hashlib.sha256()
    _hash_scenario_files(h, scenario)
    return h.hexdigest()[:FINGERPRINT_LENGTH]


def _hash_scenario_files(h, scenario) -> None:
    """Feed the scenario's version and source files (or its cell's code object) into ``h``."""
    h.update(str(getattr(scenario, "version", "")).encode() + b"\0")
    src = scenario_source(scenario)
    if src is not None and src.is_file():
        _hash_files(h, src.parent, [src, *(p for p in src.parent.glob("_*.py") if p != src)])
    else:  # no source file (e.g. defined in an interactive session): only its code object identifies it
        h.update(scenario.cell.__code__.co_code)
