"""E-mail end to end on the real server with real SMTP on loopback: a customer's mail (sent with
smtplib) arrives at the embedded SMTP server and becomes a conversation; the agent's reply goes
out through an aiosmtpd stand-in relay as a MIME message a mail client threads (checked with
Python's ``email`` parser); the customer's answer lands in the same conversation. Recipient
checks, size limits, malformed MIME, retried mail, and the relay's refusals and silences."""

from __future__ import annotations

import asyncio
import itertools
import smtplib
import time
from collections.abc import AsyncIterator
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.telegram.conftest import conversations_of
from tests.integration.whatsapp.conftest import activities, delivery_of, eventually, post_inbound
from tests.support.api import Api
from tests.support.server import Server
from tests.support.smtp import SmtpStandIn

SAMPLES = Path(__file__).parent / "samples"
CUSTOMER = "jane@customer.example"
_boxes = itertools.count(1)


@pytest.fixture
async def relay() -> AsyncIterator[SmtpStandIn]:
    async with SmtpStandIn() as r:
        yield r


async def mail_channel(api: Api, relay: SmtpStandIn, **config: Any) -> dict[str, Any]:
    n = next(_boxes)
    tenant = await api.tenant(f"mail-{n}-{time.monotonic_ns()}")
    address = f"support-{n}-{time.monotonic_ns()}@shop.example"
    cfg = {"from_address": address, "from_name": "Shop Support", "host": "127.0.0.1",
           "port": relay.port, "security": "none", **config}
    channel = await api.channel(tenant["id"], name="mail", type="email_smtp", mode="duplex",
                                config=cfg)
    return {"tenant": tenant, "key": tenant["api_key"], "channel": channel, "address": address}


def _send(port: int, mail_from: str, to: list[str], raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.sendmail(mail_from, to, raw)


async def send_mail(server: Server, to: str | list[str], raw: bytes | EmailMessage,
                    mail_from: str = CUSTOMER) -> None:
    """Send a mail to the embedded SMTP server with smtplib (in a thread: it blocks); the
    server may still be opening its port just after start, so a refused connection is tried
    again until a deadline."""
    data = raw.as_bytes(policy=policy.SMTP) if isinstance(raw, EmailMessage) else raw
    rcpts = [to] if isinstance(to, str) else to
    deadline = time.monotonic() + 10
    while True:
        try:
            await asyncio.to_thread(_send, server.smtp_port, mail_from, rcpts, data)  # type: ignore[attr-defined]
            return
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


def sample(name: str, to: str) -> bytes:
    raw = (SAMPLES / name).read_bytes().replace(b"support@shop.example", to.encode())
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # on the wire: CRLF


def mail(to: str, subject: str, body: str, *, sender: str = CUSTOMER,
         reply_to: EmailMessage | None = None, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = make_msgid(domain="customer.example")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg


async def test_end_to_end_thread(mail_server: Server, mapi: Api, relay: SmtpStandIn) -> None:
    m = await mail_channel(mapi, relay)
    cid = m["channel"]["id"]
    first = sample("new_mail.eml", m["address"])
    await send_mail(mail_server, m["address"], first)
    (conv,) = await conversations_of(mapi, cid)
    (act,) = await activities(mapi, m["key"], conv["id"])
    assert act["sender"] == CUSTOMER
    assert act["text"].startswith("Hello,\n\nI ordered on Monday") and "Café mugs" in act["text"]
    assert act["metadata"]["subject"] == "Where is my order 4711?"
    assert act["metadata"]["message_id"] == "<CAB1xq7Gt=jane.4711@mail.customer.example>"
    assert act["metadata"]["from_name"] == "Jane Customer"

    # The relay retries the same mail: nothing new.
    await send_mail(mail_server, m["address"], first)
    assert len(await activities(mapi, m["key"], conv["id"])) == 1

    reply = await mapi.post_activity(conv["id"], m["key"], text="Hi Jane,\n\nIt ships today.",
                                     sender="agent")
    row = await delivery_of(mapi, reply["id"], lambda d: d["status"] == "sent")
    (out,) = relay.received
    assert out.rcpt_tos == [CUSTOMER]
    msg = out.message
    assert msg["To"] == CUSTOMER
    assert msg["From"] == f"Shop Support <{m['address']}>"
    assert msg["Subject"] == "Re: Where is my order 4711?"
    assert msg["In-Reply-To"] == "<CAB1xq7Gt=jane.4711@mail.customer.example>"
    assert msg["References"] == "<CAB1xq7Gt=jane.4711@mail.customer.example>"
    assert msg["Message-ID"] == row["provider_message_id"]
    assert msg["Message-ID"].startswith(f"<cv.{conv['id']}.{reply['id']}@shop.example")
    assert msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and plain.get_content().replace("\r\n", "\n").strip() == \
        "Hi Jane,\n\nIt ships today."
    assert html is not None and "<p>It ships today.</p>" in html.get_content()

    # Jane answers from her mail client: In-Reply-To our Message-ID → the same conversation,
    # even with a subject of her own.
    answer = mail(m["address"], "Re: Where is my order 4711?", "Great, thank you!",
                  In_Reply_To=msg["Message-ID"],
                  References=f"{msg['References']} {msg['Message-ID']}")
    await send_mail(mail_server, m["address"], answer)
    acts = await activities(mapi, m["key"], conv["id"])
    assert [a["text"] for a in acts][-1] == "Great, thank you!"
    # The next reply answers her answer and carries the whole chain.
    second = await mapi.post_activity(conv["id"], m["key"], text="You're welcome.")
    await delivery_of(mapi, second["id"], lambda d: d["status"] == "sent")
    msg2 = relay.received[-1].message
    assert msg2["In-Reply-To"] == answer["Message-ID"]
    assert msg2["References"].split() == [
        "<CAB1xq7Gt=jane.4711@mail.customer.example>", msg["Message-ID"], answer["Message-ID"]]
    assert msg2["Subject"] == "Re: Where is my order 4711?"

    # A new mail (no In-Reply-To) from Jane: her open conversation. Another sender: a new one.
    await send_mail(mail_server, m["address"], mail(m["address"], "Another thing", "Also…"))
    await send_mail(mail_server, m["address"],
                    mail(m["address"], "Hello", "Hi", sender="bob@customer.example"),
                    mail_from="bob@customer.example")
    convs = await conversations_of(mapi, cid)
    assert len(convs) == 2
    assert len(await activities(mapi, m["key"], conv["id"])) == 5


async def test_attachments_both_ways(mail_server: Server, mapi: Api, relay: SmtpStandIn) -> None:
    m = await mail_channel(mapi, relay)
    await send_mail(mail_server, m["address"], sample("with_attachment.eml", m["address"]))
    (conv,) = await conversations_of(mapi, m["channel"]["id"])
    (act,) = await activities(mapi, m["key"], conv["id"])
    assert act["metadata"]["subject"] == "Damaged ✔ photo"
    (att,) = act["attachments"]
    assert (att["type"], att["name"], att["content_type"]) == ("image", "box.png", "image/png")
    # The file is kept: moved into the upload store in the background, where it is served.
    async def stored() -> dict[str, Any] | None:
        (now,) = await activities(mapi, m["key"], conv["id"])
        got: dict[str, Any] = now["attachments"][0]
        return got if got.get("status") in ("stored", "failed") else None
    att = await eventually(stored, "the mail's file in the upload store", timeout=20)
    assert att["status"] == "stored" and att["contentType"] == "image/png", att
    assert "content_base64" not in att  # no longer carried in the activity
    async with mapi.session.get(mapi.base + att["contentUrl"],
                                headers={"x-api-key": m["key"]}) as r:
        assert r.status == 200 and (await r.read()).startswith(b"\x89PNG")
    fetched = await mapi.ok(  # on request: the stored copy
        "POST", f"/api/v1/conversations/{conv['id']}/activities/{act['id']}/attachments/0/fetch",
        200, headers={"x-api-key": m["key"]})
    assert fetched["data"]["url"] == att["contentUrl"]
    # A reply with an upload-store file carries it as a MIME attachment.
    data = aiohttp.FormData()
    data.add_field("file", b"%PDF-1.4 label", filename="label.pdf",
                   content_type="application/pdf")
    gen = await mapi.ok("POST", "/api/v1/converger/tokens/generate",
                        headers={"authorization": f"Bearer {m['channel']['secret']}"})
    up = await mapi.ok("POST", f"/api/v1/converger/conversations/{conv['id']}/upload", 200,
                       data=data, headers={"authorization": f"Bearer {gen['token']}"})
    act_id = up["id"]
    await delivery_of(mapi, act_id, lambda d: d["status"] == "sent")
    msg = relay.received[-1].message
    files = [(p.get_filename(), p.get_content_type(), p.get_content())
             for p in msg.iter_attachments()]
    assert files == [("label.pdf", "application/pdf", b"%PDF-1.4 label")]


async def test_refused_mail_stores_nothing(mail_server: Server, mapi: Api,
                                           relay: SmtpStandIn) -> None:
    m = await mail_channel(mapi, relay, max_message_bytes=4096)
    cid = m["channel"]["id"]
    # Unknown mailbox: refused at RCPT.
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await send_mail(mail_server, "nobody@shop.example", mail("nobody@shop.example", "x", "y"))
    assert refused.value.recipients["nobody@shop.example"][0] == 550
    # Over the channel's limit: 552; over the server's SIZE: refused too.
    with pytest.raises(smtplib.SMTPDataError) as big:
        await send_mail(mail_server, m["address"], mail(m["address"], "big", ("x" * 70 + "\n") * 120))
    assert big.value.smtp_code == 552
    with pytest.raises((smtplib.SMTPDataError, smtplib.SMTPSenderRefused,
                        smtplib.SMTPServerDisconnected)):
        await send_mail(mail_server, m["address"], mail(m["address"], "huge", ("x" * 70 + "\n") * 30_000))
    # Deeply nested parts: 550 with the reason.
    nested = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    for i in range(15):
        nested = (f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode()
                  + nested + f"\r\n--b{i}--\r\n".encode())
    head = f"From: {CUSTOMER}\r\nTo: {m['address']}\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    with pytest.raises(smtplib.SMTPDataError) as deep:
        await send_mail(mail_server, m["address"], head.encode() + nested)
    assert deep.value.smtp_code == 550 and b"nest" in deep.value.smtp_error
    # Neither a From nor an envelope sender; a bounce (null sender): nothing stored.
    with pytest.raises(smtplib.SMTPDataError):
        await send_mail(mail_server, m["address"], b"Subject: anon\r\n\r\nhi\r\n", mail_from="x")
    await send_mail(mail_server, m["address"], mail(m["address"], "Undeliverable", "bounce",
                                                    sender="MAILER-DAEMON@relay.example"),
                    mail_from="")
    # A mail posted over HTTP is not taken: mail comes in through SMTP only.
    status, body = await post_inbound(mapi, cid, {"raw": "From: a@b.example\r\n\r\nhi"})
    assert status == 401
    assert await conversations_of(mapi, cid) == []
    # Bad encodings and a missing Message-ID are still taken.
    odd = (f"From: {CUSTOMER}\r\nTo: {m['address']}\r\nSubject: =?x-unknown?Q?caf=E9?=\r\n"
           "Content-Type: text/plain; charset=no-such-charset\r\n"
           "Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n").encode()
    await send_mail(mail_server, m["address"], odd)
    (conv,) = await conversations_of(mapi, cid)
    (act,) = await activities(mapi, m["key"], conv["id"])
    assert act["sender"] == CUSTOMER


async def test_relay_faults(mail_server: Server, mapi: Api, relay: SmtpStandIn) -> None:
    m = await mail_channel(mapi, relay, timeout_seconds=1)
    await send_mail(mail_server, m["address"], mail(m["address"], "Hi", "hello"))
    (conv,) = await conversations_of(mapi, m["channel"]["id"])
    # A temporary refusal and a stall are retried on the schedule, then sent.
    relay.script = ["451 4.3.0 Mailbox busy", "stall"]
    retried = await mapi.post_activity(conv["id"], m["key"], text="retried")
    row = await delivery_of(mapi, retried["id"], lambda d: d["status"] == "sent", timeout=30)
    assert row["attempts"] == 3
    assert relay.received[-1].message.get_body(("plain",)).get_content().strip() == "retried"
    # A permanent refusal fails at once with the relay's reply.
    relay.script = ["554 5.7.1 Message rejected as spam"]
    spam = await mapi.post_activity(conv["id"], m["key"], text="spam?")
    row = await delivery_of(mapi, spam["id"], lambda d: d["status"] == "failed")
    assert row["attempts"] == 1 and "554 5.7.1 Message rejected as spam" in row["last_error"]
    relay.rcpt_script = ["550 5.1.1 User unknown"]
    gone = await mapi.post_activity(conv["id"], m["key"], text="hello?")
    row = await delivery_of(mapi, gone["id"], lambda d: d["status"] == "failed")
    assert "550" in row["last_error"] and "User unknown" in row["last_error"]


def test_form_values_are_text() -> None:
    """The admin form sends every value as text: a port and a size limit in digits are taken."""
    from adapters.email_smtp import EmailSmtpAdapter

    adapter = EmailSmtpAdapter()
    config = {"from_address": "a@shop.example", "host": "smtp.shop.example", "port": "2525",
              "max_message_bytes": "4096"}
    assert adapter.validate_config(config) is None
    assert adapter.validate_config({**config, "port": "25x"}) is not None
    assert adapter.validate_config({**config, "port": "70000"}) is not None
