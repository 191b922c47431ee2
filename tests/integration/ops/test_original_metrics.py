"""The original's metric names (reference §19) in ``/metrics`` of the real server, parsed with
prometheus-client's parser, with one process and with worker processes (multiprocess mode: one
scrape of any process reports the whole gateway)."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway import legacy_metrics
from tests.support.api import Api


def scrape_families(text: str) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(text: str, line_start: str) -> float:
    """A sample's value from the raw text (the original's counters have no ``_total``)."""
    m = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.M)
    assert m, f"{line_start} not in /metrics"
    return float(m.group(1))


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_original_names_are_exported(make_server, workers: str) -> None:
    srv = make_server(env={"CONVERGER_WORKERS": workers, "CONVERGER_WORKER_HEADER": "1"},
                      name=f"w{workers}")
    # A new connection per request: with worker processes successive requests land on
    # different ones.
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as spread:
        api = Api(spread, srv.url)
        s = await api.setup("original-metrics")
        seen: set[str] = set()
        posted = 0

        async def post(i: int) -> str:
            status, _, headers = await api.call(
                "POST", f"/api/v1/conversations/{s['conversation']['id']}/activities",
                json={"text": f"m{i}"}, headers={"x-api-key": s["api_key"]})
            assert status == 201
            return headers.get("x-converger-worker", "0")

        # Batches of 8 at once until the posts have reached several processes (which process
        # accepts a connection is the kernel's choice: on a loaded machine one may take a batch).
        async with asyncio.timeout(60):
            while posted == 0 or (workers != "1" and len(seen) < 2):
                seen |= set(await asyncio.gather(*(post(posted + i) for i in range(8))))
                posted += 8
        await api.call("GET", "/no/such/route")
        for _ in range(3 if workers != "1" else 1):  # every process answers the same totals
            status, text, _ = await api.call("GET", "/metrics")
            assert status == 200
            fams = scrape_families(text)
            for name in legacy_metrics.NAMES:
                assert name in fams, name
            assert value(text, "converger_activities_create_count") == posted
            assert value(text, 'phoenix_http_request_count{status="201"}') >= posted + 3  # setup's too
            assert value(text, 'phoenix_http_request_count{status="404"}') == 1
            assert value(text, "phoenix_socket_connected_count") == 0
            assert fams["phoenix_http_request_count"].type == "counter"  # type: ignore[attr-defined]
            assert fams["vm_memory_total"].type == "gauge"  # type: ignore[attr-defined]
            assert value(text, "vm_memory_total") > 1000  # KB: a Python process is larger
            route = "/api/v1/conversations/<conversation_id:str>/activities"
            assert value(text, f'phoenix_router_dispatch_stop_duration{{route="{route}"}}') > 0
            assert value(text, "phoenix_endpoint_stop_duration") > 0
            assert value(text, "converger_repo_query_total_time") > 0  # the scrape's own query
            # Each name once: converger's registry does not export them a second time.
            for name in legacy_metrics.NAMES:
                assert text.count(f"# TYPE {name} ") == 1, name
            # converger's own names are unchanged.
            assert value(text, "converger_activities_created_total") == posted


async def test_websocket_connections_count(make_server) -> None:
    srv = make_server()
    async with aiohttp.ClientSession() as session:
        api = Api(session, srv.url)
        s = await api.setup("original-ws")
        for _ in range(2):
            async with session.ws_connect(
                    f"{srv.ws_url}/socket/websocket?vsn=2.0.0&token={s['channel_token']}") as ws:
                await ws.close()
        text = (await api.call("GET", "/metrics"))[1]
        assert value(text, "phoenix_socket_connected_count") == 2
