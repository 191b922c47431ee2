"""``serve --dev`` on an existing data directory reuses its admin token: restarts neither add
super_admin tokens nor change the token a developer's scripts use (issue 23)."""

from __future__ import annotations

from pathlib import Path

from gateway import cli
from gateway.config import Settings


def test_dev_setup_reuses_its_admin_token(tmp_path: Path) -> None:
    settings = Settings(data_dir=str(tmp_path), secret_key="dev-test-secret-key-0123456789-0123456789")
    tokens = []
    for _ in range(3):
        off = cli._Offline(settings)
        try:
            tokens.append(cli.dev_setup(off)["admin_token"])
            active = off.db.read_sync(lambda conn: conn.execute(
                "SELECT count(*) FROM admin_tokens WHERE revoked_at IS NULL").fetchone()[0])
        finally:
            off.close()
        assert active == 1
    assert tokens[0] == tokens[1] == tokens[2] and tokens[0].startswith("cva_")
    other = Settings(data_dir=str(tmp_path / "other"), secret_key="another-secret-key-0123456789-0123456789")
    off = cli._Offline(other)
    try:
        assert cli.dev_setup(off)["admin_token"] != tokens[0]  # derived from the secret key
    finally:
        off.close()
