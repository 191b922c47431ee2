"""The S3 path: replicate to and restore from a local S3-compatible server (moto, loopback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import moto.server as moto_server
import pytest

from tests.support.api import Api
from tests.support.postgres import sqlite_only
from tests.support.server import free_port


@pytest.fixture
def s3() -> Iterator[str]:
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                 aws_secret_access_key="test").create_bucket(Bucket="backups")
    yield endpoint
    server.stop()


@sqlite_only("Litestream replicates the SQLite file; with PostgreSQL /readyz reports the database's health instead (tests/integration/postgres/test_postgres.py) and backups are PostgreSQL's own")
async def test_s3_replica_round_trip(make_server, session, s3: str, tmp_path: Path) -> None:
    env = {
        "CONVERGER_REPLICA_URL": "s3://backups/converger",
        "CONVERGER_REPLICA_ENDPOINT": s3,
        "CONVERGER_REPLICA_REGION": "us-east-1",
        "CONVERGER_REPLICA_ACCESS_KEY_ID": "test",
        "CONVERGER_REPLICA_SECRET_ACCESS_KEY": "test",
        "CONVERGER_REPLICA_FORCE_PATH_STYLE": "1",
    }
    srv = make_server(env=env)
    api = Api(session, srv.url)
    s = await api.setup("s3", type="webhook", config={"url": "http://127.0.0.1:9/x"})
    conv, key = s["conversation"]["id"], s["api_key"]
    for i in range(50):
        await api.post_activity(conv, key, text=f"s3-{i}")
    assert srv.stop() == 0, srv.log()
    objects = boto3.client("s3", endpoint_url=s3, region_name="us-east-1", aws_access_key_id="test",
                           aws_secret_access_key="test").list_objects_v2(Bucket="backups")
    assert objects.get("KeyCount", 0) > 0, srv.log()
    db = srv.data_dir / "converger.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    srv.start()
    items = (await api.ok("GET", f"/api/v1/conversations/{conv}/activities?include=deliveries",
                          headers={"x-api-key": key}))["data"]
    assert [a["text"] for a in items] == [f"s3-{i}" for i in range(50)]
    assert all(len(a["deliveries"]) == 1 for a in items)
