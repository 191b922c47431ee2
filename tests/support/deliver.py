"""A real ``converger deliver`` process (the broker pipeline's delivery-only workers,
docs/pipelines.md#running-converger-deliver) on the data directory of a test :class:`Server`."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

from .server import ADMIN_TOKEN, COMMAND, ROOT, database_env, track


class Deliver:
    """A real ``converger deliver`` process on the data directory of a :class:`Server`."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str,
                 concurrency: int = 8) -> None:
        self.data_dir, self.extra_env, self.concurrency = data_dir, env, concurrency
        self.log_path = data_dir / f"deliver-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Deliver:
        env = {**os.environ, "CONVERGER_ADMIN_TOKEN": ADMIN_TOKEN,
               "CONVERGER_SECRET_KEY": "test-secret-key-0123456789", "PYTHONUNBUFFERED": "1",
               "CONVERGER_OUTBOUND_ALLOW": "127.0.0.0/8,::1", **database_env(self.data_dir),
               **self.extra_env}
        with open(self.log_path, "ab") as log:
            self.proc = track(subprocess.Popen(
                [*COMMAND, "deliver", "--data-dir", str(self.data_dir),
                 "--concurrency", str(self.concurrency)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT))
        return self

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def connections(self) -> int:
        return self.log().count("pipeline: connected to")

    async def connected(self, times: int = 1, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.connections() < times:
            assert self.proc is not None and self.proc.poll() is None, self.log()[-4000:]
            assert time.monotonic() < deadline, f"deliver never connected:\n{self.log()[-4000:]}"
            await asyncio.sleep(0.05)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None
