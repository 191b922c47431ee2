"""Shared by the default-suite fuzz test and the long fuzz run (tests/fuzz/run_fuzz.py): a
world of real ids and credentials, and the per-operation auth headers and path ids that let
generated requests reach the real handlers instead of stopping at 401 or 404."""

from __future__ import annotations

import itertools
from typing import Any

import requests

from tests.support.server import ADMIN_TOKEN

TIMEOUT = 10.0  # seconds per request: a hang fails the run, it never stalls it
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
_count = itertools.count()


def _ok(resp: requests.Response, expect: int = 200) -> Any:
    assert resp.status_code == expect, f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text}"
    return resp.json() if resp.content else None


def make_world(base: str) -> dict[str, Any]:
    """Two tenants: ``A`` is used by the tenant-facing APIs; ``V`` (victim) is the target of
    the management API's path ids, so rotating or deleting it never strands tenant A."""
    s = requests.Session()
    w: dict[str, Any] = {"base": base}

    def post(path: str, body: Any = None, headers: dict[str, str] | None = None,
             expect: int = 201) -> Any:
        return _ok(s.post(base + path, json=body, headers=headers or ADMIN, timeout=TIMEOUT), expect)

    for who in ("A", "V"):
        t = post("/api/admin/tenants", {"name": f"fuzz-{who}-{next(_count)}"})["data"]
        web = post("/api/admin/channels", {"tenant_id": t["id"], "name": "web",
                                           "type": "websocket"})["data"]
        hook = post("/api/admin/channels", {"tenant_id": t["id"], "name": "hook", "type": "webhook",
                                            "mode": "duplex",
                                            "config": {"url": "http://127.0.0.1:9/hook"}})["data"]
        hook2 = post("/api/admin/channels", {"tenant_id": t["id"], "name": "hook2",
                                             "type": "webhook",
                                             "config": {"url": "http://127.0.0.1:9/hook2"}})["data"]
        ctoken = post(f"/api/admin/channels/{web['id']}/token", expect=200)["token"]
        conv = post("/api/v1/conversations", {}, {"x-channel-token": ctoken})["data"]
        act = post(f"/api/v1/conversations/{conv['id']}/activities", {"text": "hi"},
                   {"x-api-key": t["api_key"]})["data"]
        rule = post("/api/v1/routing_rules", {"routing_rule": {
            "name": "r", "source_channel_id": hook["id"], "target_channel_ids": [hook2["id"]]}},
            {"x-api-key": t["api_key"]})["data"]
        htoken = post(f"/api/admin/channels/{hook['id']}/token", expect=200)["token"]
        hconv = post("/api/v1/conversations", {}, {"x-channel-token": htoken})["data"]
        post(f"/api/v1/conversations/{hconv['id']}/activities", {"text": "out"},
             {"x-api-key": t["api_key"]})
        gen = post("/api/v1/converger/tokens/generate", None,
                   {"authorization": f"Bearer {web['secret']}"}, expect=200)
        cg_conv = post("/api/v1/converger/conversations", None,
                       {"authorization": f"Bearer {gen['token']}"})
        up = s.post(f"{base}/api/v1/converger/conversations/{cg_conv['conversationId']}/upload",
                    files={"file": ("note.txt", b"fuzz upload", "text/plain")},
                    headers={"authorization": f"Bearer {cg_conv['token']}"}, timeout=TIMEOUT)
        _ok(up)
        acts = _ok(s.get(f"{base}/api/v1/converger/conversations/{cg_conv['conversationId']}/activities",
                         headers={"authorization": f"Bearer {cg_conv['token']}"}, timeout=TIMEOUT))
        upload = acts["activities"][-1]["attachments"][0]["contentUrl"].rsplit("/", 1)[1]
        w[who] = {"tenant": t, "api_key": t["api_key"], "web": web, "hook": hook,
                  "hook2": hook2, "hconv": hconv, "channel_token": ctoken, "conv": conv, "activity": act, "rule": rule,
                  "cg_token": gen["token"], "cg_conv": cg_conv["conversationId"],
                  "upload": upload}
    deliveries = _ok(s.get(base + "/api/admin/deliveries", params={"tenant_id": w["V"]["tenant"]["id"]},
                           headers=ADMIN, timeout=TIMEOUT))["data"]
    w["V"]["delivery_id"] = deliveries[0]["id"] if deliveries else None
    return w


def headers_for(case: Any, world: dict[str, Any]) -> dict[str, str]:
    """Valid credentials for the operation's first security scheme."""
    path = case.operation.path
    security = case.operation.definition.raw.get("security") or []
    schemes = [name for item in security for name in item]
    a = world["A"]
    if not schemes:
        return {}
    first = schemes[0]
    if first == "adminToken":
        return dict(ADMIN)
    if first == "apiKey":
        return {"x-api-key": a["api_key"]}
    if first == "channelToken":
        return {"x-channel-token": a["channel_token"]}
    if first == "channelSecret":
        return {"authorization": f"Bearer {a['web']['secret']}"}
    if first == "convergerToken":
        return {"authorization": f"Bearer {a['cg_token']}"}
    raise AssertionError(f"unknown security scheme {first} on {path}")


def real_ids(case: Any, world: dict[str, Any]) -> dict[str, str]:
    """Path ids that exist (A's for tenant APIs, V's for the management API)."""
    path = case.operation.path
    a, v = world["A"], world["V"]
    if path.startswith("/api/admin"):
        ids = {"tenant_id": v["tenant"]["id"], "channel_id": v["hook"]["id"],
               "rule_id": v["rule"]["id"]}
        if v.get("delivery_id"):
            ids["delivery_id"] = v["delivery_id"]
        return ids
    if path.startswith("/api/v1/converger"):
        return {"conversation_id": a["cg_conv"]}
    if path.startswith("/uploads"):
        return {"tenant_id": a["tenant"]["id"], "file_name": a["upload"]}
    return {"conversation_id": a["conv"]["id"], "rule_id": a["rule"]["id"],
            "channel_id": a["hook"]["id"], "activity_id": a["activity"]["id"]}


def prepare(case: Any, world: dict[str, Any], n: int) -> dict[str, str]:
    """Give every other generated case real ids (path and body); return the auth headers."""
    # Deleting V's tenant or channels would leave every later case a 404: not with real ids.
    destructive = case.method.upper() == "DELETE" and case.operation.path in (
        "/api/admin/tenants/{tenant_id}", "/api/admin/channels/{channel_id}")
    if n % 2 == 0 and not destructive:
        ids = real_ids(case, world)
        for name in list(case.path_parameters or {}):
            if name in ids:
                case.path_parameters[name] = ids[name]
        _real_body_ids(case, world)
    return headers_for(case, world)


def _real_body_ids(case: Any, world: dict[str, Any]) -> None:
    """Ids inside a generated JSON body → ids that exist, so creates can succeed."""
    body = case.body
    if not isinstance(body, dict):
        return
    admin = case.operation.path.startswith("/api/admin")
    t = world["V"] if admin else world["A"]
    rule = body.get("routing_rule") if isinstance(body.get("routing_rule"), dict) else body
    if "tenant_id" in body:
        body["tenant_id"] = t["tenant"]["id"]
    if "conversation_id" in body:
        body["conversation_id"] = t["conv"]["id"]
    if "source_channel_id" in rule:
        rule["source_channel_id"] = t["hook"]["id"]
    if "target_channel_ids" in rule:
        rule["target_channel_ids"] = [t["hook2"]["id"]]


class Tally:
    """What a fuzz run did: requests sent, per status, and the failures (one per operation)."""

    def __init__(self) -> None:
        self.requests = 0
        self.statuses: dict[int, int] = {}
        self.failures: list[str] = []
        self.operations = 0
        self.by_operation: dict[str, dict[int, int]] = {}


def fuzz(schema: Any, world: dict[str, Any], examples: int, *, shrink: bool = False,
         modes: tuple[str, ...] = ("positive", "negative"), seed: int | None = 0) -> Tally:
    """Fuzz every operation of ``schema`` in each generation mode, ``examples`` cases each,
    against ``world['base']``; every check failure is recorded, not raised, so one run shows
    them all."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    tally = Tally()
    counter = itertools.count()
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    base = world["base"]
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.operations += 1
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

            @settings(max_examples=examples, deadline=None, database=None, phases=phases,
                      suppress_health_check=list(HealthCheck), derandomize=seed is not None,
                      verbosity=Verbosity.quiet)
            @given(case=strategy)
            def run(case: Any) -> None:
                label = case.operation.label
                headers = prepare(case, world, next(counter))
                tally.requests += 1
                response = case.call_and_validate(base_url=base, headers=headers, checks=checks,
                                                  timeout=TIMEOUT)
                code = response.status_code
                tally.statuses[code] = tally.statuses.get(code, 0) + 1
                per = tally.by_operation.setdefault(label, {})
                per[code] = per.get(code, 0) + 1

            if seed is not None:
                run = hseed(seed)(run)
            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid (no parameters, or only free-form ones)
            except (Exception, BaseExceptionGroup) as exc:
                # A check failed: keep it, go on with the next operation.
                tally.failures.append(f"{operation.label} [{mode}]: {_describe(exc)}")
    return tally


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, BaseExceptionGroup):
        text = "; ".join(str(e).splitlines()[0] for e in exc.exceptions) + "\n" + text
    return text[:3000]
