"""``converger service install|uninstall`` (issue 22): the unit it writes passes
``systemd-analyze verify``, and its ``systemd-analyze security`` exposure is the one
docs/deploy.md reports. ``--root`` writes the files under a folder and touches nothing else
(no user is created, systemctl is not run)."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.postgres import store_independent
from tests.support.server import COMMAND, ROOT

pytestmark = [pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                 reason="systemd-analyze missing (tests/setup.sh installs systemd)"),
              store_independent("the unit file `service install` writes; no server runs")]
DEPLOY_DOC = ROOT / "docs" / "deploy.md"


# An executable that exists outside the directories the unit hides (the checkout may be under
# /tmp, which the unit's PrivateTmp hides, and `service install` refuses that, rightly).
BINARY = "/usr/bin/env"


def install(root: Path, *args: str) -> tuple[Path, Path]:
    done = subprocess.run([*COMMAND, "service", "install", "--root", str(root), "--binary", BINARY,
                           *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return root / "etc/systemd/system/converger.service", root / "etc/converger/converger.env"


def exposure(unit: Path) -> float:
    done = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout + done.stderr)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit, env = install(tmp_path, "--domain", "chat.example.com", "--email", "ops@example.com")
    text = unit.read_text()
    for line in ("User=converger", "Restart=on-failure", "StateDirectory=converger",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "NoNewPrivileges=yes", "ProtectSystem=strict", f"ExecStart={BINARY} serve",
                 "EnvironmentFile=/etc/converger/converger.env",
                 "Environment=CONVERGER_DATA_DIR=/var/lib/converger"):
        assert line in text.splitlines(), line
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    # ... and verify does catch a broken unit (this test can fail).
    broken = tmp_path / "broken.service"
    broken.write_text(re.sub(r"(?m)^ExecStart=.*$", "ExecStart=converger serve", text))
    assert subprocess.run(["systemd-analyze", "verify", str(broken)], capture_output=True).returncode != 0

    settings = env.read_text()
    assert "CONVERGER_DOMAINS=chat.example.com" in settings and "CONVERGER_HOST=0.0.0.0" in settings
    assert "CONVERGER_ACME_EMAIL=ops@example.com" in settings
    assert stat.S_IMODE(env.stat().st_mode) == 0o640 and stat.S_IMODE(unit.stat().st_mode) == 0o644


def test_the_hardening_score_is_the_one_the_docs_report(tmp_path: Path) -> None:
    unit, _ = install(tmp_path)
    score = exposure(unit)
    assert score <= 2.0, score  # "OK" on systemd's scale (10 = no hardening)
    assert f"exposure level for converger.service: {score}" in DEPLOY_DOC.read_text()


def test_an_edited_env_file_is_kept_and_uninstall_keeps_the_data(tmp_path: Path) -> None:
    unit, env = install(tmp_path)
    env.write_text("CONVERGER_DOMAINS=mine.example.com\n")
    install(tmp_path, "--domain", "other.example.com")
    assert env.read_text() == "CONVERGER_DOMAINS=mine.example.com\n"
    done = subprocess.run([*COMMAND, "service", "uninstall", "--root", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not unit.exists() and env.exists(), done


def test_a_binary_the_service_could_not_see_is_refused(tmp_path: Path) -> None:
    for binary in ("/root/converger", "/home/me/converger", "/tmp/converger"):
        done = subprocess.run([*COMMAND, "service", "install", "--root", str(tmp_path),
                               "--binary", binary], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 2 and "install the binary first" in done.stderr, done
    assert not (tmp_path / "etc").exists()
