"""A file of the gateway's upload store leaves as an absolute signed URL a provider can fetch
for an hour without credentials; other URLs and other tenants' paths are left as they are."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from gateway.context import Gateway
from gateway.domain.media import mark_pending, public_links


def test_own_uploads_become_signed_absolute_urls(gw: Gateway) -> None:
    gw.settings.public_url = "https://chat.example.com/"
    atts = [{"contentUrl": "/uploads/t1/abc_dot.png", "name": "dot.png"},
            {"contentUrl": "/uploads/t2/other.png"},
            {"contentUrl": "https://cdn.example.com/x.png"}, "not an object"]
    out = public_links(gw, "t1", atts)
    url = urlsplit(out[0]["contentUrl"])
    assert (url.scheme, url.netloc, url.path) == ("https", "chat.example.com",
                                                  "/uploads/t1/abc_dot.png")
    q = parse_qs(url.query)
    assert gw.tokens.verify_path("t1/abc_dot.png", q["exp"][0], q["sig"][0])
    assert not gw.tokens.verify_path("t2/abc_dot.png", q["exp"][0], q["sig"][0])
    assert out[1:] == atts[1:] and out[0]["name"] == "dot.png"
    assert atts[0]["contentUrl"] == "/uploads/t1/abc_dot.png"  # the stored activity unchanged


def test_only_provider_media_references_are_downloaded() -> None:
    atts = [{"type": "image", "media_id": "1"}, {"type": "location", "url": "https://maps/x"},
            {"type": "image", "url": "https://ib.example.com/media/2"}, {"type": "contacts"}]
    marked, fetch = mark_pending("whatsapp_meta", atts)
    assert fetch == [0, 2] and marked[0]["status"] == "pending" and "status" not in marked[1]
    # Telegram's file_id and Slack's url_private too; channels without provider files: none.
    assert mark_pending("telegram", [{"type": "location"}, {"type": "voice", "file_id": "f"}]) \
        == ([{"type": "location"}, {"type": "voice", "file_id": "f", "status": "pending"}], [1])
    assert mark_pending("slack", [{"type": "file", "url_private": "https://files.slack.com/x"}]
                        )[1] == [0]
    assert mark_pending("webhook", [{"file_id": "f"}]) == ([{"file_id": "f"}], [])
