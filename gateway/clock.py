"""The gateway's wall clock: the system's, or — for tests of what happens hours or days later
(WhatsApp's 24-hour window, signed links and tokens expiring) — the system's moved forward by
the number of seconds ``CONVERGER_CLOCK_FILE`` holds. The file is read again whenever it
changes, so a test moves a running server's time (every worker process's alike) by rewriting
it; nothing sleeps. Unset (production), the system clock is used directly."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime

from store.util import iso

log = logging.getLogger("converger.clock")


class Clock:
    def __init__(self, path: str = "") -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._offset = 0.0

    def offset(self) -> float:
        """Seconds the clock is ahead of the system's (0 without a clock file)."""
        if not self.path:
            return 0.0
        try:
            st = os.stat(self.path)
        except OSError:
            return 0.0
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)  # a file replaced is a new inode
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                with open(self.path, encoding="utf-8") as f:
                    self._offset = float(f.read().strip() or 0)
            except (OSError, ValueError) as exc:
                log.warning("clock file %s unreadable (%s): no offset", self.path, exc)
                self._offset = 0.0
        return self._offset

    def time(self) -> float:
        """Seconds since the epoch, as ``time.time()``."""
        return time.time() + self.offset()

    def now_iso(self) -> str:
        return iso(datetime.fromtimestamp(self.time(), UTC))
