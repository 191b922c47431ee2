"""Direct Line uploads as the official client sends them: the activity as a file part of type
``application/vnd.microsoft.activity``, ``?userId=``, every file part an attachment; absolute
signed expiring URLs; bad input in Direct Line's shape."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.support.api import Api
from tests.support.server import Server

from .conftest import DL, bearer

ACTIVITY = "application/vnd.microsoft.activity"


def form(files: list[tuple[str, bytes, str]], activity: Any = None,
         as_file: bool = True) -> aiohttp.FormData:
    f = aiohttp.FormData()
    if activity is not None:
        raw = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        if as_file:
            f.add_field("activity", raw, filename="blob", content_type=ACTIVITY)
        else:
            f.add_field("activity", raw.decode())
    for name, body, ctype in files:
        f.add_field("file", body, filename=name, content_type=ctype)
    return f


async def test_upload_as_the_client_sends_it(api: Api, session: aiohttp.ClientSession,
                                             dl: dict[str, Any]) -> None:
    cid, h = dl["conv_id"], bearer(dl["token"])
    activity = {"type": "message", "text": "two files", "from": {"id": "ann", "name": "Ann"},
                "attachments": [{"contentType": "image/png", "name": "a.png"},
                                {"contentType": "text/plain", "name": "b.txt"}],
                "channelData": {"clientActivityID": "up-1", "attachmentSizes": [3, 5]}}
    files = [("a.png", b"PNG", "image/png"), ("b.txt", b"hello", "text/plain")]
    up = await api.ok("POST", f"{DL}/conversations/{cid}/upload?userId=ann", headers=h,
                      data=form(files, activity))
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=h)
    a = page["activities"][0]
    assert a["id"] == up["id"] and a["text"] == "two files"
    assert a["from"] == {"id": "ann", "name": "Ann", "role": "user"}
    assert a["channelData"]["clientActivityID"] == "up-1"
    assert [(x["name"], x["contentType"], x["size"]) for x in a["attachments"]] == [
        ("a.png", "image/png", 3), ("b.txt", "text/plain", 5)]
    for att, (_, body, _) in zip(a["attachments"], files, strict=True):
        url = urlsplit(att["contentUrl"])
        assert f"{url.scheme}://{url.netloc}" == api.base and url.path.startswith("/uploads/")
        q = parse_qs(url.query)
        assert int(q["exp"][0]) > time.time() + 3000
        async with session.get(att["contentUrl"]) as r:  # no credentials needed
            assert r.status == 200 and await r.read() == body
        # Another file's signature, a forged one, or a past expiry: refused.
        for bad in (url.query.replace(q["sig"][0], q["sig"][0][:-2] + "AA"),
                    url.query.replace(q["exp"][0], str(int(q["exp"][0]) + 1)),
                    url.query.replace(q["exp"][0], "1")):
            async with session.get(f"{api.base}{url.path}?{bad}") as r:
                assert r.status == 401, bad
    # The same upload again (Web Chat's retry): the first activity, nothing new stored.
    again = await api.ok("POST", f"{DL}/conversations/{cid}/upload?userId=ann", headers=h,
                         data=form(files, activity))
    assert again == up
    # The activity as a plain field, and none at all: ?userId= names the sender.
    await api.ok("POST", f"{DL}/conversations/{cid}/upload?userId=bo", headers=h,
                 data=form([("c.txt", b"c", "text/plain")], {"type": "message"}, as_file=False))
    await api.ok("POST", f"{DL}/conversations/{cid}/upload?userId=cy", headers=h,
                 data=form([("d.txt", b"d", "text/plain")]))
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=h)
    senders = [x["from"]["id"] for x in page["activities"] if x["attachments"]]
    assert senders == ["ann", "bo", "cy"]


async def test_bad_uploads(make_server: Any, session: aiohttp.ClientSession) -> None:
    srv: Server = make_server(env={"CONVERGER_MAX_UPLOAD_BYTES": "1000"})
    api = Api(session, srv.url)
    from .conftest import make_dl_world

    w = await make_dl_world(api)
    cid, h = w["conv_id"], bearer(w["token"])
    path = f"{DL}/conversations/{cid}/upload"
    cases = [
        (form([], {"type": "message"}), 400),  # no file
        (form([("big.bin", b"x" * 1001, "application/octet-stream")]), 413),
        (form([("a", b"a", "text/plain")], b"{not json"), 400),
        (form([("a", b"a", "text/plain")], b"[1]"), 400),
        (form([("a", b"a", "text/plain")], {"type": "dance"}), 400),
        (form([("a", b"a", "text/plain")], {"type": "typing"}), 400),
        (form([("a", b"a", "text/plain")], {"type": "message", "entities": "x"}), 400),
        (form([("a", b"a", "text/plain")], b"[" * 200 + b"]" * 200), 400),
    ]
    for data, status in cases:
        got, body, _ = await api.call("POST", path, headers=h, data=data)
        assert got == status and body["error"]["code"] == "BadArgument", body
    got, body, _ = await api.call("POST", path, headers=h, data=b"x" * 5000)
    assert got == 400 and body["error"]["code"] == "BadArgument"
    # A body far beyond the cap is refused by the server itself, in the same shape.
    big = form([("huge.bin", b"x" * 200_000, "application/octet-stream")])
    got, body, _ = await api.call("POST", path, headers=h, data=big)
    assert got == 413 and body["error"]["code"] == "BadArgument"
    # Nothing was stored by any of them.
    page = await api.ok("GET", f"{DL}/conversations/{cid}/activities", headers=h)
    assert page["activities"] == []
    assert not (srv.data_dir / "uploads").exists() or not any((srv.data_dir / "uploads").rglob("*.*"))
