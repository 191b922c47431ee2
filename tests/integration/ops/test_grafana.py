"""The Grafana dashboards in docs/grafana/: each validates against a JSON Schema of Grafana's
dashboard model (what an import needs: a title, a uid, the datasource variable, panels with a
type, a grid position inside the 24-column grid and PromQL targets), every target parses as
PromQL (promql-parser), and every metric a dashboard queries exists in ``/metrics`` of a real
server that has served traffic and attempted a delivery."""

from __future__ import annotations

import asyncio
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.support.api import Api
from tests.support.serving import serving

BOARDS = sorted((Path(__file__).resolve().parents[3] / "docs" / "grafana").glob("*.json"))
DATASOURCE = {"type": "object", "required": ["type", "uid"],
              "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}}}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["title", "uid", "panels", "schemaVersion", "templating", "time", "editable"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "uid": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,40}$"},
        "id": {"type": "null"},  # importable: Grafana assigns the id
        "schemaVersion": {"type": "integer", "minimum": 36},
        "version": {"type": "integer"},
        "editable": {"type": "boolean"},
        "refresh": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "time": {"type": "object", "required": ["from", "to"],
                 "properties": {"from": {"type": "string"}, "to": {"type": "string"}}},
        "templating": {"type": "object", "required": ["list"], "properties": {"list": {
            "type": "array", "contains": {"type": "object", "required": ["name", "type", "query"],
                                          "properties": {"name": {"const": "datasource"},
                                                         "type": {"const": "datasource"},
                                                         "query": {"const": "prometheus"}}}}}},
        "panels": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["id", "type", "title", "gridPos", "datasource", "targets"],
            "properties": {
                "id": {"type": "integer", "minimum": 1},
                "type": {"enum": ["timeseries", "stat", "gauge", "table", "bargauge"]},
                "title": {"type": "string", "minLength": 1},
                "datasource": DATASOURCE,
                "gridPos": {"type": "object", "required": ["h", "w", "x", "y"], "properties": {
                    "h": {"type": "integer", "minimum": 1}, "w": {"type": "integer", "minimum": 1,
                                                                   "maximum": 24},
                    "x": {"type": "integer", "minimum": 0, "maximum": 23},
                    "y": {"type": "integer", "minimum": 0}}},
                "fieldConfig": {"type": "object", "required": ["defaults", "overrides"]},
                "targets": {"type": "array", "minItems": 1, "items": {
                    "type": "object", "required": ["refId", "expr"],
                    "properties": {"refId": {"type": "string", "pattern": "^[A-Z]$"},
                                   "expr": {"type": "string", "minLength": 1},
                                   "datasource": DATASOURCE}}},
            }}},
    },
}
_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def _names(node: Any, out: set[str]) -> None:
    """Every metric a parsed PromQL expression selects."""
    if isinstance(node, promql_parser.VectorSelector):
        assert node.name, f"a selector without a metric name: {node}"
        out.add(node.name)
        return
    for attr in ("lhs", "rhs", "expr", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            _names(child, out)
    for arg in getattr(node, "args", None) or ():
        _names(arg, out)


def queried(board: dict[str, Any]) -> set[str]:
    out: set[str] = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for var, value in _VARIABLES.items():
                expr = expr.replace(var, value)
            assert "$" not in expr, f"an unknown Grafana variable in {expr!r}"
            _names(promql_parser.parse(expr), out)
    return out


def test_there_are_dashboards() -> None:
    assert {b.name for b in BOARDS} >= {"converger-overview.json", "converger-original.json"}


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_dashboard_validates(path: Path) -> None:
    board = json.loads(path.read_text())
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    jsonschema.validate(board, SCHEMA, cls=jsonschema.Draft202012Validator)
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for p in board["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        refs = [t["refId"] for t in p["targets"]]
        assert len(refs) == len(set(refs)), p["title"]
    assert queried(board)


def test_the_schema_check_can_fail() -> None:
    board = json.loads(BOARDS[0].read_text())
    for broken in ({**board, "panels": []}, {**board, "uid": "has spaces"},
                   {**board, "panels": [{**board["panels"][0], "gridPos": {"h": 1, "w": 30, "x": 0, "y": 0}}]},
                   {k: v for k, v in board.items() if k != "title"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA, cls=jsonschema.Draft202012Validator)
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(x[5m]")


def exposed(text: str) -> set[str]:
    """The series names a Prometheus server scraping this text would store."""
    names = set()
    for fam in text_string_to_metric_families(text):
        names |= {s.name for s in fam.samples}
    # Families declared without samples yet (labelled, nothing observed): their series names.
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= ({name + s for s in ("_bucket", "_count", "_sum")} if kind == "histogram"
                  else {name})
    # The original's counters are exposed without `_total` (the parser adds it back).
    names |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M))
    return names


async def test_every_queried_metric_is_in_metrics(make_server, session) -> None:
    async def hook(_request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    async with serving(app) as base:
        srv = make_server(env={"CONVERGER_PIPELINE": "queue"})
        api = Api(session, srv.url)
        s = await api.setup("grafana", type="webhook", config={"url": f"{base}/hook"})
        await api.post_activity(s["conversation"]["id"], s["api_key"], text="hi")
        deadline = time.monotonic() + 20
        while True:  # the delivery is attempted by a worker: poll for its series
            text = (await api.call("GET", "/metrics"))[1]
            if 'converger_deliveries_total{channel_type="webhook"' in text:
                break
            assert time.monotonic() < deadline, "no delivery was recorded"
            await asyncio.sleep(0.1)
    names = exposed(text)
    for path in BOARDS:
        missing = queried(json.loads(path.read_text())) - names
        assert not missing, f"{path.name} queries metrics /metrics lacks: {sorted(missing)}"
    # The check itself can fail.
    assert "converger_no_such_metric_total" not in names
