"""/metrics scraped and parsed with prometheus-client's text parser; allowlist; request log."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import Api
from tests.support.server import free_port


def families(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = fam.samples
    return out


def sample(fams: dict[str, list], name: str, **labels: str) -> float | None:
    for fam in fams.values():
        for s in fam:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


async def test_metrics_are_scraped_and_parsed(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_PIPELINE": "queue"})
    api = Api(session, srv.url)
    s = await api.setup("metrics", type="webhook", config={"url": "http://127.0.0.1:9/hook"})
    for i in range(3):
        await api.post_activity(s["conversation"]["id"], s["api_key"], text=f"m{i}")
    await api.call("GET", "/livez")
    status, body, headers = await api.call("GET", "/metrics")
    assert status == 200 and headers["content-type"].startswith("text/plain")
    fams = families(body)
    assert sample(fams, "converger_activities_created_total") == 3
    route = "/api/v1/conversations/<conversation_id:str>/activities"
    assert sample(fams, "converger_http_requests_total", method="POST", route=route, status="201") == 3
    assert sample(fams, "converger_http_request_duration_seconds_count", method="POST", route=route) == 3
    assert (sample(fams, "converger_http_requests_total", route="/livez", status="200") or 0) >= 1
    # Queue depth comes from the deliveries table: three webhook deliveries exist somewhere.
    depth = sum(sample(fams, "converger_queue_depth", state=st) or 0
                for st in ("due", "scheduled", "leased"))
    assert depth <= 3
    assert sample(fams, "converger_queue_oldest_due_age_seconds") is not None
    assert sample(fams, "converger_websocket_connections") == 0
    assert "converger_deliveries" in fams and "converger_delivery_duration_seconds" in fams
    # An unknown path is one series, not one per path.
    await api.call("GET", "/no/such/thing")
    fams = families((await api.call("GET", "/metrics"))[1])
    assert sample(fams, "converger_http_requests_total", route="unmatched", status="404") == 1


async def test_metrics_allowlist_and_forwarded_for(make_server, session) -> None:
    srv = make_server(env={"ADMIN_IP_WHITELIST": "10.0.0.0/8"})
    api = Api(session, srv.url)
    status, body, _ = await api.call("GET", "/metrics")
    assert status == 403 and body == "Forbidden"
    # X-Forwarded-For is not believed from an untrusted peer.
    status, _, _ = await api.call("GET", "/metrics", headers={"x-forwarded-for": "10.1.2.3"})
    assert status == 403

    srv2 = make_server(env={"ADMIN_IP_WHITELIST": "10.0.0.0/8",
                            "CONVERGER_TRUSTED_PROXIES": "127.0.0.1"}, name="proxied")
    api2 = Api(session, srv2.url)
    status, _, _ = await api2.call("GET", "/metrics", headers={"x-forwarded-for": "10.1.2.3"})
    assert status == 200
    status, _, _ = await api2.call("GET", "/metrics", headers={"x-forwarded-for": "192.0.2.1"})
    assert status == 403


async def test_prometheus_port(make_server, session) -> None:
    port = free_port()
    srv = make_server(env={"PROMETHEUS_PORT": str(port), "ADMIN_IP_WHITELIST": "10.0.0.0/8"})
    # The port opens in an after-start listener: poll for it with a deadline.
    deadline = time.monotonic() + 10
    while True:
        try:
            async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
                assert r.status == 200
                assert "converger_http_requests_total" in await r.text()
                break
        except aiohttp.ClientConnectionError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
    status, _, _ = await Api(session, srv.url).call("GET", "/metrics")
    assert status == 403






async def test_request_log_line(make_server, session) -> None:
    srv = make_server(env={"CONVERGER_ACCESS_LOG": "1"})
    api = Api(session, srv.url)
    secret = "cvk_supersecretvalue0123456789"
    status, _, h = await api.call("GET", f"/api/v1/conversations/00000000-0000-0000-0000-000000000000?api_key={secret}",
                                  headers={"x-api-key": secret, "x-request-id": "req-log-1"})
    assert status in (401, 404)
    deadline = time.monotonic() + 5
    line = None
    while time.monotonic() < deadline and line is None:
        for raw in srv.log_path.read_text().splitlines():
            if "req-log-1" in raw:
                line = json.loads(raw)
        time.sleep(0.05) if line is None else None
    assert line is not None, srv.log()
    assert line["msg"] == "request" and line["method"] == "GET" and line["status"] == status
    assert line["path"].startswith("/api/v1/conversations/") and "duration_ms" in line
    assert secret not in srv.log_path.read_text()
