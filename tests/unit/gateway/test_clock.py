"""The gateway's clock (gateway/clock.py): the system's without a clock file; with one, ahead by
the seconds it holds, read again when the file is replaced; an unreadable or missing file is
no offset, never an error."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from gateway.clock import Clock
from store.util import parse_iso


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def test_no_file_is_the_system_clock() -> None:
    clock = Clock()
    before = time.time()
    assert before <= clock.time() <= time.time()
    assert clock.offset() == 0.0


def test_the_file_moves_the_clock_and_is_read_again(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "clock"
    clock = Clock(str(path))
    assert clock.offset() == 0.0  # not there yet
    _write(path, "90000")
    assert clock.offset() == 90000.0
    ahead = parse_iso(clock.now_iso()).timestamp() - time.time()
    assert 89_990 < ahead <= 90_000
    _write(path, "-3600.5")
    assert clock.offset() == -3600.5
    _write(path, "soon")
    assert clock.offset() == 0.0 and "unreadable" in caplog.text
