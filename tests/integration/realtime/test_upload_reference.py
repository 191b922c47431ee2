"""One attachment model: a client uploads a file once and references it with ``upload_id``
when it posts — the activity's attachment is completed from the upload store (type,
contentType, name, size, contentUrl). An upload of another conversation or tenant, or none,
is 422 ``unknown_upload`` and nothing is stored."""

from __future__ import annotations

from typing import Any

from tests.support.api import Api

from .conftest import bearer, make_cg_world
from .test_uploads import CG, _form


async def test_post_an_activity_referencing_an_upload(api: Api, cg: dict[str, Any]) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    up = await api.ok("POST", f"{CG}/conversations/{cid}/upload", headers=h,
                      data=_form(b"%PDF-1.7 invoice", name="invoice.pdf",
                                 ctype="application/pdf"))
    assert up["attachment"]["contentUrl"].startswith(f"/uploads/{cg['tenant']['id']}/")
    again = await api.ok("POST", f"{CG}/conversations/{cid}/activities", headers=h, json={
        "type": "message", "text": "here it is again",
        "attachments": [{"upload_id": up["upload_id"]}]})
    page = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    [a] = [x for x in page["activities"] if x["id"] == again["id"]]
    assert a["attachments"] == [{
        "type": "document", "contentType": "application/pdf", "name": "invoice.pdf",
        "size": 16, "upload_id": up["upload_id"], "contentUrl": up["attachment"]["contentUrl"]}]


async def test_unknown_or_foreign_uploads_are_refused(api: Api, cg: dict[str, Any]) -> None:
    cid, h = cg["conv_id"], bearer(cg["conv_token"])
    other = await make_cg_world(api)
    up = await api.ok("POST", f"{CG}/conversations/{other['conv_id']}/upload",
                      headers=bearer(other["conv_token"]), data=_form(b"x"))
    before = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    for ref in (up["upload_id"], "no-such-upload", 7):
        status, body, _ = await api.call(
            "POST", f"{CG}/conversations/{cid}/activities", headers=h,
            json={"type": "message", "attachments": [{"upload_id": ref}]})
        assert (status, body["code"]) == (422, "unknown_upload"), body
    after = await api.ok("GET", f"{CG}/conversations/{cid}/activities", headers=h)
    assert after["activities"] == before["activities"]
