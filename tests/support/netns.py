"""Network namespaces for multi-node tests: each node in a namespace of its own (``ip netns``),
joined to the test's (root) namespace by a veth pair, so that nodes share nothing through the
machine's loopback — only what goes over their own links (PostgreSQL, the test's clients, a
provider stand-in listening on a host end).

Addresses come from 198.18.0.0/15 (RFC 2544, for benchmarking, routed nowhere), exist only on
the veth pairs made here and go away with them: one /30 per node, ``198.18.B.4i+1`` on the host
end and ``198.18.B.4i+2`` in the namespace, whose default route is the host end. Needs root (the
test machines and CI run tests as root); when ``ip netns add`` is refused, :meth:`Namespaces.up`
returns False with the reason, and the caller falls back to loopback nodes (and says so).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess


def _ip(*args: str, ns: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["netns", "exec", ns, "ip"] if ns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=20)


class Namespaces:
    """``count`` namespaces, each with a veth pair to the root namespace."""

    NET = ipaddress.ip_network("198.18.0.0/15")

    def __init__(self, count: int) -> None:
        self.count = count
        self.tag = f"cv{os.getpid() % 10_000_000}"
        self.names = [f"{self.tag}n{i}" for i in range(count)]
        self.block = 0
        self.reason = ""
        self._made: list[str] = []
        self._links: list[str] = []

    def host(self, i: int) -> str:
        """The host (root-namespace) end of node ``i``'s link."""
        return f"198.18.{self.block}.{4 * i + 1}"

    def addr(self, i: int) -> str:
        """Node ``i``'s address, inside its namespace."""
        return f"198.18.{self.block}.{4 * i + 2}"

    def prefix(self, i: int) -> list[str]:
        """What a command line starts with to run in node ``i``'s namespace."""
        return ["ip", "netns", "exec", self.names[i]]

    def _free_block(self) -> int:
        taken = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True,
                               check=True).stdout
        start = os.getpid() % 250
        for k in range(250):
            block = (start + k) % 250
            if f" 198.18.{block}." not in taken:
                return block
        raise RuntimeError("no free 198.18.B.0/24 block")

    def up(self) -> bool:
        """Make the namespaces and links; False (with :attr:`reason`) when not allowed here."""
        if shutil.which("ip") is None:
            self.reason = "the ip command (iproute2) is missing"
            return False
        if os.geteuid() != 0:
            self.reason = "not root"
            return False
        self._reap()
        try:
            self.block = self._free_block()
            for i, name in enumerate(self.names):
                _ip("netns", "add", name)
                self._made.append(name)
                hostif, nsif = f"{self.tag}h{i}", f"{self.tag}v{i}"
                _ip("link", "add", hostif, "type", "veth", "peer", "name", nsif)
                self._links.append(hostif)
                _ip("link", "set", nsif, "netns", name)
                _ip("addr", "add", f"{self.host(i)}/30", "dev", hostif)
                _ip("link", "set", hostif, "up")
                _ip("link", "set", "lo", "up", ns=name)
                _ip("addr", "add", f"{self.addr(i)}/30", "dev", nsif, ns=name)
                _ip("link", "set", nsif, "up", ns=name)
                _ip("route", "add", "default", "via", self.host(i), ns=name)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, RuntimeError) as exc:
            said = getattr(exc, "stderr", "") or str(exc)
            self.reason = f"network namespaces refused here ({' '.join(str(said).split())})"
            self.down()
            return False
        return True

    @staticmethod
    def _reap() -> None:
        """Namespaces left by a test process that no longer runs (killed before its clean-up)."""
        import re

        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        for name in re.findall(r"^(cv(\d+)n\d+)\b", listed, re.M):
            if not os.path.exists(f"/proc/{name[1]}"):
                subprocess.run(["ip", "netns", "del", name[0]], capture_output=True)

    def down(self) -> None:
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True)
        for name in self._made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self._links.clear()
        self._made.clear()
