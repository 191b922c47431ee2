"""Real message brokers for the event-stream tests, each on a free loopback port in a temp
directory: Debian's ``nats-server`` (JetStream) and ``rabbitmq-server`` (tests/setup.sh installs
both). ``stop()`` and ``start()`` again keep the port and the stored messages (a broker outage)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from .server import free_port, track


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _wait(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not _listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"broker not listening on {port} in {timeout}s:\n"
                               f"{log.read_text()[-4000:]}")
        time.sleep(0.05)


class Nats:
    """``nats-server -js`` with its store in ``folder`` (``max_payload``: the server's limit
    on a message, headers included; its default is 1 MiB)."""

    def __init__(self, folder: Path, max_payload: int | None = None) -> None:
        self.folder = folder
        self.port = free_port()
        self.max_payload = max_payload
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("nats-server") is not None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> Nats:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "nats.log"
        config: list[str] = []
        if self.max_payload is not None:
            conf = self.folder / "nats.conf"
            conf.write_text(f"max_payload: {self.max_payload}\n")
            config = ["-c", str(conf)]
        with open(log, "ab") as out:
            self.proc = track(subprocess.Popen(
                ["nats-server", *config, "-js", "-sd", str(self.folder / "js"),
                 "-a", "127.0.0.1", "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT))
        _wait(self.proc, self.port, 20, log)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class Rabbit:
    """``rabbitmq-server`` as a node of its own (name, ports, Mnesia, logs, Erlang cookie in a
    temp HOME); its epmd listens on a port of its own too and is stopped with the node. Its
    folder is a fresh temp directory that the ``rabbitmq`` user can reach (Debian's wrapper runs
    the node as that user when started by root; pytest's tmp_path is private to root)."""

    def __init__(self, max_message_size: int | None = None, frame_max: int | None = None) -> None:
        self.max_message_size = max_message_size  # rabbitmq.conf's (its default: 128 MiB)
        self.frame_max = frame_max  # the largest frame (default 128 KiB): bodies split above it
        self.folder = Path(tempfile.mkdtemp(prefix="converger-rabbit-"))
        self.folder.chmod(0o755)
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.node = f"conv{uuid.uuid4().hex[:8]}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("rabbitmq-server") is not None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def env(self) -> dict[str, str]:
        home = self.folder / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            cookie.write_text(uuid.uuid4().hex)
            cookie.chmod(0o400)
        (self.folder / "enabled_plugins").write_text("[].\n")
        conf = {"max_message_size": self.max_message_size, "frame_max": self.frame_max}
        if any(v is not None for v in conf.values()):
            (self.folder / "rabbitmq.conf").write_text(
                "".join(f"{k} = {v}\n" for k, v in conf.items() if v is not None))
        return {**os.environ, "HOME": str(home), "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1", "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port), "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.folder / "log"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.folder / "advanced.config"),
                "RABBITMQ_CONF_ENV_FILE": str(self.folder / "rabbitmq-env.conf"),
                "RABBITMQ_PID_FILE": str(self.folder / "rabbit.pid")}

    def start(self) -> Rabbit:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = self.folder / "rabbit.out"
        env = self.env()
        if os.geteuid() == 0:  # Debian's wrapper runs the node as the `rabbitmq` user
            for path in [self.folder, *self.folder.rglob("*")]:
                shutil.chown(path, "rabbitmq", "rabbitmq")
        with open(log, "ab") as out:
            self.proc = track(subprocess.Popen(["rabbitmq-server"], env=env, stdout=out,
                                               stderr=subprocess.STDOUT, start_new_session=True,
                                               cwd=self.folder))
        _wait(self.proc, self.port, 60, log)
        return self

    def _ours(self) -> list[int]:
        """The node's processes (beam, epmd, the wrapper's children): found by their
        environment, since Debian's wrapper starts them as another user in another session."""
        mark = f"RABBITMQ_NODENAME={self.node}".encode()
        out = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    out.append(int(entry.name))
            except OSError:
                continue
        return out

    def stop(self) -> None:
        """SIGTERM the node (Erlang stops cleanly on it) and wait until it is gone."""
        beam = [p for p in self._ours() if b"beam" in Path(f"/proc/{p}/cmdline").read_bytes()]
        for pid in beam:
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while any(b") Z " not in _stat(p) for p in beam):
            if time.monotonic() > deadline:
                for pid in beam:
                    os.kill(pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        if self.proc is not None:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def close(self) -> None:
        """Stop the node and the epmd it started (on its own port)."""
        self.stop()
        for pid in self._ours():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _stat(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return b") Z "  # gone
