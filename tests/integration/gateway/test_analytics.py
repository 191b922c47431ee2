"""Analytics over the API on the real server (docs/analytics.md): activities written through the
compatible API show up in the management API's and the tenant's own report and CSV export, the
tenant's answer holds only its own figures, and bad input (unknown ranges, absurd intervals,
another tenant's channel, a token instead of the API key) is problem+json, never a 500."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from tests.support.api import Api

from .checks import NIL, key, problem, tok


async def _busy(api: Api, name: str, n: int) -> dict[str, object]:
    w = await api.setup(name)
    for i in range(n):
        await api.post_activity(w["conversation"]["id"], w["api_key"], text=f"m{i}")
    return w


async def test_report_json_and_csv(api: Api) -> None:
    a = await _busy(api, "analytics-a", 3)
    b = await _busy(api, "analytics-b", 2)
    ta, tb = a["tenant"], b["tenant"]
    mine = (await api.ok("GET", "/api/v1/analytics?range=1h", headers=key(a["api_key"])))["data"]
    assert mine["range"] == "1h" and mine["step"] == 60 and len(mine["buckets"]) == 60
    assert mine["totals"]["activities_out"] == 3 and sum(mine["activities"]["out"]) == 3
    assert mine["conversations"][0]["conversation_id"] == a["conversation"]["id"]
    assert mine["conversations"][0]["activities"] == 3
    assert [c["name"] for c in mine["channels"]] == ["web"]
    # Only A's figures: nothing of B's in A's answer.
    assert tb["id"] not in str(mine) and b["conversation"]["id"] not in str(mine)

    for rng, step, count in (("1d", 3600, 24), ("7d", 3600, 168), ("30d", 86400, 30)):
        data = (await api.ok("GET", f"/api/admin/analytics?range={rng}&tenant_id={ta['id']}",
                             headers=api.admin))["data"]
        assert (data["step"], len(data["buckets"])) == (step, count), rng
        assert data["totals"]["activities_out"] == 3, rng
    everyone = (await api.ok("GET", "/api/admin/analytics?range=1h", headers=api.admin))["data"]
    assert everyone["totals"]["activities_out"] >= 5
    by_channel = (await api.ok(
        "GET", f"/api/admin/analytics?range=1h&channel_id={b['channel']['id']}",
        headers=api.admin))["data"]
    assert by_channel["totals"]["activities_out"] == 2

    status, body, headers = await api.call("GET", "/api/v1/analytics/export.csv?range=1h",
                                           headers=key(a["api_key"]))
    assert status == 200 and headers["content-type"].startswith("text/csv")
    assert 'filename="analytics-1h.csv"' in headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(body)))
    assert len(rows) == 60 and sum(int(r["activities_out"]) for r in rows) == 3
    status, body, _ = await api.call(
        "GET", f"/api/admin/analytics/export.csv?range=1d&tenant_id={tb['id']}", headers=api.admin)
    assert status == 200 and sum(int(r["activities_out"])
                                 for r in csv.DictReader(io.StringIO(body))) == 2


async def test_bad_input(api: Api) -> None:
    a = await api.setup("analytics-bad")
    b = await api.setup("analytics-other")
    k = key(a["api_key"])
    for query, code in (("range=2h", "invalid_range"), ("range=1y", "invalid_range"),
                        ("range=1h&from=2026-01-01", "invalid_interval"),
                        ("from=yesterday", "invalid_interval"),
                        ("to=2026-01-01T00:00:00Z", "invalid_interval"),
                        ("from=2026-01-02&to=2026-01-01", "invalid_interval"),
                        ("from=2026-01-01T00:00:00Z&to=2026-01-01T00:00:30Z", "invalid_interval"),
                        ("from=2000-01-01&to=2026-01-01", "invalid_interval"),
                        ("from=9999-12-31&to=99999-01-01", "invalid_interval"),
                        ("channel_id=nope", "invalid_uuid")):
        for path, headers in (("/api/v1/analytics", k), ("/api/v1/analytics/export.csv", k),
                              ("/api/admin/analytics", api.admin)):
            problem(await api.call("GET", f"{path}?{query}", headers=headers), 400, code=code)
    # Another tenant's channel: the same answer as a channel that does not exist.
    other = await api.call("GET", f"/api/v1/analytics?channel_id={b['channel']['id']}", headers=k)
    none = await api.call("GET", f"/api/v1/analytics?channel_id={NIL}", headers=k)
    assert problem(other, 404)["detail"] == problem(none, 404)["detail"]
    problem(await api.call("GET", f"/api/admin/analytics?tenant_id={NIL}", headers=api.admin), 404)
    problem(await api.call(
        "GET", f"/api/admin/analytics?tenant_id={a['tenant']['id']}&channel_id={b['channel']['id']}",
        headers=api.admin), 404)
    # A token reaches conversations or a channel, never the tenant's figures; no key, no figures.
    problem(await api.call("GET", "/api/v1/analytics", headers=tok(a["channel_token"])), 403,
            "errors", "token_out_of_scope")
    problem(await api.call("GET", "/api/v1/analytics"), 401, "error", "missing_credentials")
    problem(await api.call("GET", "/api/admin/analytics", headers=k), 401)
    # Custom intervals that are fine: recent ones in minutes or hours, old ones in days (the
    # minutes and hours are kept two days and two weeks).
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    for start, end, step, n in ((now - timedelta(hours=2), now, 60, 120),
                                (now - timedelta(hours=5), now, 3600, 5),
                                (now.replace(hour=0) - timedelta(days=40), now.replace(hour=0) - timedelta(days=38),
                                 86400, 2)):
        q = f"from={start.isoformat()}&to={end.isoformat()}".replace("+", "%2B")
        data = (await api.ok("GET", f"/api/v1/analytics?{q}", headers=k))["data"]
        assert (data["range"], data["step"], len(data["buckets"])) == ("custom", step, n), q
