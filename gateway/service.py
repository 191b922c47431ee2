"""``converger service install|uninstall``: run the gateway as a systemd service.

``install`` creates a system user, writes an environment file (kept if it exists: it is the
operator's) and a hardened unit, then enables and starts it. The unit runs as that user with the
data directory as its ``StateDirectory`` (created 0700 and owned by it), restarts on failure, and
gets ``CAP_NET_BIND_SERVICE`` as its only capability, so ports 80 and 443 need no root.
``--root DIR`` writes the files under DIR and does nothing else (packaging, tests).
docs/deploy.md walks a fresh VM through it; its hardening score is in there too.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

UNIT_NAME = "converger.service"
UNIT_DIR = "/etc/systemd/system"
ENV_FILE = "/etc/converger/converger.env"
STATE_ROOT = "/var/lib"
HIDDEN_DIRS = ("/root", "/home", "/run/user", "/tmp", "/var/tmp")  # ProtectHome, PrivateTmp


def add_parser(sub: argparse._SubParsersAction) -> None:
    svc = sub.add_parser("service", help="install or remove the systemd service")
    ssub = svc.add_subparsers(dest="action", required=True)
    ins = ssub.add_parser("install", help="write and start a hardened systemd unit")
    ins.add_argument("--user", default="converger", help="system user to run as (created)")
    ins.add_argument("--name", default="converger",
                     help="service and state directory name (/var/lib/NAME)")
    ins.add_argument("--domain", action="append", help="CONVERGER_DOMAINS (repeatable)")
    ins.add_argument("--email", help="CONVERGER_ACME_EMAIL")
    ins.add_argument("--binary", help="the converger executable (default: this one)")
    ins.add_argument("--root", help="write the files under this directory only (no user, "
                                    "no systemctl)")
    ins.add_argument("--no-start", action="store_true", help="enable, but do not start")
    un = ssub.add_parser("uninstall", help="stop, disable and remove the unit (data is kept)")
    un.add_argument("--name", default="converger")
    un.add_argument("--root", help="remove the files under this directory only")


def executable() -> str:
    """This converger: the single binary itself, or the console script beside this Python."""
    if getattr(sys, "frozen", False):
        return sys.executable
    script = Path(sys.executable).parent / "converger"
    found = script if script.exists() else shutil.which("converger")
    return str(Path(found).resolve()) if found else f"{sys.executable} -m gateway"


def unit_text(name: str, user: str, binary: str, env_file: str) -> str:
    state = f"{STATE_ROOT}/{name}"
    return f"""\
# Written by `converger service install`; `converger service uninstall` removes it.
# Settings: {env_file} (docs/configuration.md). Hardening: docs/deploy.md.
[Unit]
Description=converger conversation gateway
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
EnvironmentFile={env_file}
Environment=CONVERGER_DATA_DIR={state}
ExecStart={binary} serve
WorkingDirectory={state}
StateDirectory={name}
StateDirectoryMode=0700
UMask=0077
Restart=on-failure
RestartSec=5
TimeoutStopSec=30
LimitNOFILE=65536

# Ports 80 and 443 without root: this one capability, nothing else.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes
# Read-only system; writable: the state directory (and a private /tmp, where the single
# binary unpacks itself).
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RemoveIPC=yes
KeyringMode=private
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
"""


def env_text(domains: list[str], email: str) -> str:
    lines = [
        "# converger settings (docs/configuration.md). `systemctl restart converger` after a change.",
        "CONVERGER_HOST=0.0.0.0",
    ]
    if domains:
        lines += [f"CONVERGER_DOMAINS={','.join(domains)}", "CONVERGER_HTTP_PORT=80",
                  "CONVERGER_HTTPS_PORT=443"]
    else:
        lines += ["# CONVERGER_DOMAINS=chat.example.com   # automatic HTTPS on ports 80 and 443",
                  "CONVERGER_PORT=4000"]
    lines.append(f"CONVERGER_ACME_EMAIL={email}" if email else "# CONVERGER_ACME_EMAIL=ops@example.com")
    lines += ["# CONVERGER_ADMIN_IP_WHITELIST=127.0.0.1,::1", "# CONVERGER_LOG_LEVEL=INFO", ""]
    return "\n".join(lines)


def _paths(root: str | None, name: str) -> tuple[Path, Path]:
    base = Path(root) if root else Path("/")
    env = ENV_FILE if name == "converger" else f"/etc/converger/{name}.env"
    return base / UNIT_DIR.lstrip("/") / f"{name}.service", base / env.lstrip("/")


def _run(*cmd: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed: {done.stderr.strip() or done.stdout.strip()}")


def _ensure_user(user: str, name: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        _run("useradd", "--system", "--user-group", "--home-dir", f"{STATE_ROOT}/{name}",
             "--no-create-home", "--shell", "/usr/sbin/nologin", user)


def install(args: argparse.Namespace) -> int:
    unit, env = _paths(args.root, args.name)
    if not args.root and os.geteuid() != 0:
        print("converger: `service install` needs root (or --root DIR to only write the files)",
              file=sys.stderr)
        return 2
    binary = args.binary or executable()
    hidden = next((d for d in HIDDEN_DIRS if binary == d or binary.startswith(d + "/")), None)
    if hidden:
        print(f"converger: {binary} is under {hidden}, which the service cannot see "
              "(ProtectHome=yes); install the binary first, e.g. "
              "`sudo install -m 0755 converger /usr/local/bin/converger`", file=sys.stderr)
        return 2
    if not args.root:
        _ensure_user(args.user, args.name)
    unit.parent.mkdir(parents=True, exist_ok=True)
    env.parent.mkdir(parents=True, exist_ok=True)
    env_rel = "/" + str(env.relative_to(args.root)) if args.root else str(env)
    unit.write_text(unit_text(args.name, args.user, binary, env_rel))
    unit.chmod(0o644)
    print(f"wrote {unit}")
    if env.exists():
        print(f"kept {env} (yours to edit)")
    else:
        fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "w") as f:
            f.write(env_text(args.domain or [], args.email or ""))
        if not args.root:
            shutil.chown(env, "root", args.user)
        print(f"wrote {env}")
    if args.root:
        return 0
    _run("systemctl", "daemon-reload")
    _run("systemctl", "enable", *([] if args.no_start else ["--now"]), f"{args.name}.service")
    print(f"{args.name}.service {'enabled' if args.no_start else 'enabled and started'}; "
          f"logs: journalctl -u {args.name} -f")
    return 0


def uninstall(args: argparse.Namespace) -> int:
    unit, env = _paths(args.root, args.name)
    if not args.root:
        if os.geteuid() != 0:
            print("converger: `service uninstall` needs root", file=sys.stderr)
            return 2
        subprocess.run(["systemctl", "disable", "--now", f"{args.name}.service"],
                       capture_output=True)
    unit.unlink(missing_ok=True)
    if not args.root:
        _run("systemctl", "daemon-reload")
    print(f"removed {unit}; kept {env} and {STATE_ROOT}/{args.name} (the data)")
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        return install(args) if args.action == "install" else uninstall(args)
    except (OSError, RuntimeError) as exc:
        print(f"converger: {exc}", file=sys.stderr)
        return 2
