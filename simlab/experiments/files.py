"""Atomic file writes: a reader never sees a half-written report, figure or record.

Each writer writes a temporary file in the target's directory, then renames it over the target
(``os.replace`` is atomic on POSIX and Windows). A write whose content equals the file's current
content leaves the file untouched (so re-running an unchanged check keeps tracked files byte-identical,
timestamps included).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically (a temporary file renamed over the target).

    Parameters
    ----------
    path : str or pathlib.Path
        The target; its folder is created when needed.
    data : bytes
        The content.

    Returns
    -------
    bool
        True if the file was written, False (and nothing written) when its content already equals ``data``.
    """
    path = Path(path)
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def atomic_write_text(path: str | Path, text: str) -> bool:
    """:func:`atomic_write_bytes` of UTF-8 text.

    Parameters
    ----------
    path : str or pathlib.Path
        The target.
    text : str
        The content.

    Returns
    -------
    bool
        True if the file was written, False when unchanged.
    """
    return atomic_write_bytes(path, text.encode("utf-8"))
