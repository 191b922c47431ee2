"""The binary's entry point: the same ``main`` as the ``converger`` console script."""

import multiprocessing
import os
import sys


def _die_with_bootloader() -> None:
    """A one-file binary is two processes: the bootloader, which unpacks the bundle and forwards
    signals, and this Python process, its child. SIGTERM reaches us through the bootloader, but
    SIGKILL to the bootloader (``kill -9 <pid>``, a supervisor's last resort, a crash test) would
    leave us running, orphaned, holding the port and the database. Ask Linux to SIGKILL us when
    the bootloader dies, so the pair behaves like one process."""
    if not sys.platform.startswith("linux") or not getattr(sys, "frozen", False):
        return
    try:
        parent = os.getppid()
        if os.readlink(f"/proc/{parent}/exe") != os.readlink("/proc/self/exe"):
            return  # not started by our own bootloader (e.g. a one-folder build)
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the bootloader died before prctl took effect
            os._exit(1)
    except OSError:
        pass  # /proc unreadable: run without the safety net


def _unpack_litestream_if_needed() -> None:
    """Litestream is unpacked lazily (gateway/litestream.py). When this run will need it —
    replication configured, or `converger restore` — unpack it now, so that code looking for
    ``sys._MEIPASS/litestream`` directly finds it as well."""
    if os.environ.get("CONVERGER_REPLICA_URL") or "restore" in sys.argv[1:2]:
        from gateway.litestream import executable

        executable()


if __name__ == "__main__":
    # First, before anything else: a frozen build must never re-run itself as a worker.
    multiprocessing.freeze_support()
    _die_with_bootloader()
    _unpack_litestream_if_needed()
    from gateway.cli import main

    raise SystemExit(main())
