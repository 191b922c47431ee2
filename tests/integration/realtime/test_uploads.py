"""Uploads: multipart in, an activity with the attachment, the file served back only to
callers allowed to read its conversation; size cap."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.api import Api
from tests.support.rawwire import status_of_announced_body
from tests.support.server import Server

from .conftest import bearer, make_cg_world, user_token

CG = "/api/v1/converger"


def _form(content: bytes, name: str = "../../evil name?.png", ctype: str = "image/png",
          activity: Any = None) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("file", content, filename=name, content_type=ctype)
    if activity is not None:
        form.add_field("activity", json.dumps(activity))
    return form


async def test_upload_creates_an_activity_and_serves_the_file_to_its_readers(
    server: Server, api: Api, cg: dict[str, Any]
) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    content = b"PNG fake image bytes"
    up = await api.ok("POST", f"{CG}/conversations/{cid}/upload", headers=h,
                      data=_form(content, activity={"text": "look", "from": {"id": "ann"}}))
    page = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    a = page["activities"][-1]
    assert a["id"] == up["id"] and a["text"] == "look" and a["from"] == {"id": "ann"}
    (att,) = a["attachments"]
    assert att["contentType"] == "image/png" and att["size"] == len(content)
    assert att["name"].endswith(".png")
    url = att["contentUrl"]
    tenant_id = cg["tenant"]["id"]
    # The stored name is sanitised: no path separators, nothing outside [A-Za-z0-9_.-].
    stored_name = url.removeprefix(f"/uploads/{tenant_id}/")
    assert "/" not in stored_name and stored_name.endswith(".png")
    assert all(c.isalnum() or c in "_.-" for c in stored_name)
    stored = list((server.data_dir / "uploads" / tenant_id).iterdir())
    assert [p.name for p in stored] == [url.rsplit("/", 1)[1]]
    # Readers: the scoped token, the channel's unscoped token, the tenant key, ?token=.
    for headers, suffix in ((h, ""), (bearer(cg["token"]), ""), ({"x-api-key": cg["api_key"]}, ""),
                            ({}, f"?token={cg['conv_token']}")):
        status, body, rh = await api.call("GET", url + suffix, headers=headers)
        assert status == 200, (headers, body)
        assert body == content.decode()
        assert rh["x-content-type-options"] == "nosniff"
    # Everyone else: no credentials 401; another tenant or conversation 404.
    status, _, _ = await api.call("GET", url)
    assert status == 401
    stranger = await make_cg_world(api)
    sibling = await api.ok("POST", f"{CG}/conversations", 201, headers=bearer(cg["token"]))
    for headers in (bearer(stranger["token"]), bearer(sibling["token"]),
                    {"x-api-key": stranger["api_key"]}):
        status, _, _ = await api.call("GET", url, headers=headers)
        assert status == 404, headers
    status, _, _ = await api.call("GET", f"/uploads/{tenant_id}/nope.png", headers=h)
    assert status == 404


async def test_html_upload_is_served_as_a_download(api: Api, cg: dict[str, Any]) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    await api.ok("POST", f"{CG}/conversations/{cid}/upload", headers=h,
                 data=_form(b"<script>alert(1)</script>", "x.html", "text/html"))
    page = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    url = page["activities"][-1]["attachments"][0]["contentUrl"]
    status, _, rh = await api.call("GET", url, headers=h)
    assert status == 200
    assert rh["content-type"] == "application/octet-stream"
    assert rh["content-disposition"].startswith("attachment")


async def test_upload_bad_inputs_and_size_cap(server: Server, api: Api, cg: dict[str, Any]) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    path = f"{CG}/conversations/{cid}/upload"
    status, body, _ = await api.call("POST", path, headers=h, json={"no": "file"})
    assert status == 400 and body["error"] == "Missing file in upload"
    form = aiohttp.FormData()
    form.add_field("other", b"x", filename="a.txt")
    status, body, _ = await api.call("POST", path, headers=h, data=form)
    assert status == 400 and body["code"] == "missing_file"
    status, body, _ = await api.call("POST", path, headers=h,
                                     data=_form(b"x", activity="not json"))
    assert status in (400, 422)
    cap = 10 * 1024 * 1024
    status, body, _ = await api.call("POST", path, headers=h, data=_form(b"\0" * (cap + 1)))
    assert status == 400 and body["error"] == "File too large (max 10MB)"
    # Past the request size limit the server answers from the head: only the head is sent, so
    # the answer is always read (tests/support/rawwire.py).
    status = await status_of_announced_body(server.url, "POST", path, {
        **h, "content-type": "multipart/form-data; boundary=x"}, 12 * 1024 * 1024)
    assert status == 413
    status, _, _ = await api.call("POST", path, data=_form(b"x"))
    assert status == 401
    stranger = await make_cg_world(api)
    status, _, _ = await api.call("POST", path, headers=bearer(stranger["token"]), data=_form(b"x"))
    assert status == 404
    tenant_dir = Path(server.data_dir) / "uploads" / cg["tenant"]["id"]
    assert not tenant_dir.exists() or not any(tenant_dir.iterdir())
    # Exactly at the cap is accepted.
    status, body, _ = await api.call("POST", path, headers=h, data=_form(b"\0" * cap, "big.bin",
                                                                        "application/octet-stream"))
    assert status == 200, body


async def test_legacy_user_token_reads_uploads_of_its_conversation(
    api: Api, cg: dict[str, Any]
) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    await api.ok("POST", f"{CG}/conversations/{cid}/upload", headers=h, data=_form(b"abc", "a.txt",
                                                                                  "text/plain"))
    page = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    url = page["activities"][-1]["attachments"][0]["contentUrl"]
    tok = await api.channel_token(cg["channel"]["id"])
    ut = await user_token(api, tok, cid)
    status, body, _ = await api.call("GET", url, headers={"x-channel-token": ut})
    assert status == 200 and body == "abc"


async def test_closed_conversation_refuses_uploads_and_keeps_no_file(
    server: Server, api: Api, cg: dict[str, Any]
) -> None:
    tok = await api.channel_token(cg["channel"]["id"])
    closed = await api.conversation(tok, status="closed")
    h = bearer(cg["token"])  # unscoped: reaches every conversation of its channel
    status, body, _ = await api.call("POST", f"{CG}/conversations/{closed['id']}/upload", headers=h,
                                     data=_form(b"late"))
    assert status == 409 and body["code"] == "conversation_closed"
    status, _, _ = await api.call("POST", f"{CG}/conversations/{closed['id']}/activities",
                                  headers=h, json={"text": "late"})
    assert status == 409
    tenant_dir = Path(server.data_dir) / "uploads" / cg["tenant"]["id"]
    assert not tenant_dir.exists() or not any(tenant_dir.iterdir())
