"""E-mail through an SMTP relay (out) and converger's embedded SMTP server (in)
(docs/channels/email.md).

Each conversation is a mail thread. Outbound: a MIME message (plain text and a minimal HTML
part, attachments fetched from their URLs) sent with aiosmtplib through the channel's relay
(STARTTLS, implicit TLS or plain, with or without auth), with ``Message-ID``, ``In-Reply-To``
and ``References`` answering the customer's latest mail and a ``Re:`` subject, so it threads in
the customer's mail client. Inbound: the embedded SMTP server (``CONVERGER_SMTP_PORT``) hands
each mail for the channel's address to ``parse_inbound`` as ``{"raw", "mail_from",
"rcpt_tos"}``; a mail answering one of ours (its ``In-Reply-To``/``References`` name our
``Message-ID``, which carries the conversation id) joins that conversation, other mail the
sender's open conversation.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import ssl
from collections.abc import Mapping
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, parseaddr
from html.parser import HTMLParser
from typing import Any, ClassVar

import aiosmtplib

from . import common
from .base import (
    MESSAGES_ONLY,
    BaseAdapter,
    ChannelInfo,
    ConfigField,
    DeliveryResult,
    InboundError,
    InboundIgnored,
    InboundMessage,
    MediaError,
    MediaFile,
    OutboundActivity,
)
from .webhook import valid_http_url

LABEL = "SMTP relay"
SECURITY = ("starttls", "tls", "none")
ADDRESS_RE = re.compile(r"[^@\s<>\"',;]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}")
MSGID_RE = re.compile(r"<[^<>\s]{1,250}>")
# Our Message-IDs: <cv.{conversation id}.{activity id}@{domain}>.
OUR_ID_RE = re.compile(r"<cv\.([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.")
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
MAX_PARTS = 200
MAX_DEPTH = 10
MAX_REFERENCES = 20
# Attachments of at most this size are kept in the activity (base64), for fetch_media.
INLINE_LIMIT = 128 * 1024
MAX_ATTACHMENT_FETCH = 10 * 1024 * 1024
TEXT_LIMIT = 100_000


class EmailSmtpAdapter(BaseAdapter):
    type: ClassVar[str] = "email_smtp"
    secret_fields: ClassVar[tuple[str, ...]] = ("password",)
    delivers: ClassVar[bool] = True
    activity_types: ClassVar[frozenset[str] | None] = MESSAGES_ONLY
    reply_context: ClassVar[bool] = True
    config_fields: ClassVar[tuple[ConfigField, ...]] = (
        ConfigField("from_address", "From address",
                    "The address mail is sent from and received at, e.g. support@example.com",
                    True),
        ConfigField("from_name", "From name", "Shown to customers, e.g. Example Support"),
        ConfigField("host", "SMTP relay host", "Where outgoing mail goes, e.g. smtp.example.com",
                    True),
        ConfigField("port", "SMTP relay port", "587 (STARTTLS, default), 465 (TLS) or 25"),
        ConfigField("security", "Security", "starttls (default), tls or none"),
        ConfigField("username", "SMTP user name", "Leave empty when the relay needs no login"),
        ConfigField("password", "SMTP password", "The relay's password or app password"),
        ConfigField("inbound_address", "Inbound address",
                    "The address customers write to, if not the From address; point its MX (or "
                    "a relay) at converger's SMTP port (CONVERGER_SMTP_PORT)"),
        ConfigField("max_message_bytes", "Largest inbound mail (bytes)",
                    f"Larger mail is refused (552); default {DEFAULT_MAX_BYTES}"),
    )

    # -- config -------------------------------------------------------------------------
    def validate_config(self, config: Mapping[str, Any]) -> str | None:
        if error := common.missing(config, ("from_address", "host"), "email_smtp"):
            return error
        for key in ("from_address", "inbound_address"):
            value = config.get(key)
            if value is not None and not (isinstance(value, str) and ADDRESS_RE.fullmatch(value)):
                return f"email_smtp config '{key}' must be an e-mail address"
        host = config["host"]
        if not re.fullmatch(r"[A-Za-z0-9.:\[\]-]{1,253}", host):
            return "email_smtp config 'host' must be a host name or address"
        port = number(config, "port")
        if port is not None and not (isinstance(port, int) and 0 < port < 65536):
            return "email_smtp config 'port' must be a port number"
        security = config.get("security")
        if security is not None and security not in SECURITY:
            return "email_smtp config 'security' must be one of " + ", ".join(SECURITY)
        for key in ("from_name", "username", "password"):
            value = config.get(key)
            if value is not None and not isinstance(value, str):
                return f"email_smtp config '{key}' must be a string"
        if (config.get("username") is None) != (config.get("password") is None):
            return "email_smtp config needs both 'username' and 'password', or neither"
        limit = number(config, "max_message_bytes")
        if limit is not None and not (isinstance(limit, int)
                                      and 1024 <= limit <= 100 * 1024 * 1024):
            return "email_smtp config 'max_message_bytes' must be between 1024 and 104857600"
        return common.validate_common(config, "email_smtp", ("from_name", "username", "password"))

    def mailbox(self, channel: ChannelInfo) -> tuple[str, int] | None:
        """The address mail for this channel is sent to, and the largest mail it takes."""
        address = channel.config.get("inbound_address") or channel.config.get("from_address")
        if not isinstance(address, str):
            return None
        limit = number(channel.config, "max_message_bytes")
        size = limit if isinstance(limit, int) else DEFAULT_MAX_BYTES
        return address.lower(), size

    # -- outbound -----------------------------------------------------------------------
    async def deliver(
        self, session: Any, channel: ChannelInfo, activity: OutboundActivity
    ) -> DeliveryResult:
        to = _recipient(activity)
        if to is None:
            return DeliveryResult(ok=False, retryable=False, error=(
                "no address to mail: set metadata 'email' (or 'to'), or reply in a conversation "
                "that began with a mail on this channel"))
        text = activity.text if isinstance(activity.text, str) and activity.text.strip() else ""
        files, links = await _attachments(session, channel.config, activity)
        if not text and not files and not links:
            return DeliveryResult(ok=False, retryable=False,
                                  error="e-mail delivery needs a text or an attachment")
        message, message_id = compose(channel.config, activity, to, text, links, files)
        return await self._send(session, channel.config, message, message_id)

    async def _send(self, session: Any, config: Mapping[str, Any], message: EmailMessage,
                    message_id: str) -> DeliveryResult:
        security = config.get("security") or "starttls"
        given = number(config, "port")
        port = given if isinstance(given, int) else {"tls": 465, "starttls": 587}.get(security, 25)
        refused = await _outbound_refused(session, config["host"], port)
        if refused is not None:
            return common.unreachable(LABEL, refused)
        timeout = float(config.get("timeout_seconds") or 20)
        kw: dict[str, Any] = {
            "hostname": config["host"], "port": port, "timeout": timeout,
            "use_tls": security == "tls", "start_tls": security == "starttls",
        }
        if security != "none":
            kw["tls_context"] = ssl.create_default_context()
        if config.get("username"):
            kw["username"], kw["password"] = config["username"], config["password"]
        try:
            await aiosmtplib.send(message, **kw)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            reply = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
            return _smtp_failure(min((r.code for r in exc.recipients), default=550), reply)
        except aiosmtplib.SMTPAuthenticationError as exc:
            result = _smtp_failure(exc.code, exc.message)
            result.channel_unhealthy = True
            return result
        except aiosmtplib.SMTPResponseException as exc:
            return _smtp_failure(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            return common.unreachable(LABEL, f"{type(exc).__name__}: {exc}" if str(exc)
                                      else type(exc).__name__)
        return DeliveryResult(ok=True, provider_message_id=message_id,
                              metadata={"message_id": message_id})

    # -- inbound ------------------------------------------------------------------------
    def parse_inbound(self, payload: Any) -> list[InboundMessage]:
        """One mail from the embedded SMTP server: ``{"raw": bytes or str, "mail_from",
        "rcpt_tos"}``."""
        if not isinstance(payload, dict):
            raise InboundError("unable to parse mail: expected the SMTP server's envelope")
        raw = payload.get("raw")
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        if not isinstance(raw, bytes) or not raw.strip():
            raise InboundError("unable to parse mail: no message")
        rcpts = [r for r in common.as_list(payload.get("rcpt_tos")) if isinstance(r, str)]
        mail_from = payload.get("mail_from")
        return [parse_mail(raw, rcpts, mail_from if isinstance(mail_from, str) else None)]

    def verify_signature(
        self, channel: ChannelInfo, headers: Mapping[str, str], body: bytes
    ) -> bool | None:
        """Mail comes in through the SMTP server only: a mail posted over HTTP is refused."""
        return False

    def addressed_to(self, channel: ChannelInfo, message: InboundMessage) -> bool:
        box = self.mailbox(channel)
        to = message.metadata.get("to")
        if box is None or not isinstance(to, list) or not to:
            return True
        return box[0] in [t.lower() for t in to if isinstance(t, str)]

    async def fetch_media(
        self, session: Any, channel: ChannelInfo, attachment: Mapping[str, Any], limit: int
    ) -> MediaFile | MediaError:
        """A file of an inbound mail, kept in the activity when it was small enough."""
        content = attachment.get("content_base64")
        if not isinstance(content, str):
            return MediaError(kind="unsupported",
                              error="the mail's file was too large to keep; ask for it again")
        try:
            body = base64.b64decode(content, validate=True)
        except ValueError:
            return MediaError(kind="unsupported", error="the kept file is not base64")
        if len(body) > limit:
            return MediaError(kind="too_large", error=f"the file is over {limit} bytes")
        return MediaFile(body=body, name=common.as_str(attachment.get("name")) or "file",
                         content_type=common.as_str(attachment.get("content_type"))
                         or "application/octet-stream")


def number(config: Mapping[str, Any], key: str) -> int | str | None:
    """An integer setting, given as a number or as digits (the admin form sends text); None
    when absent, "" when it is neither."""
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 12:
        return int(value)
    return ""


# -- outbound helpers ---------------------------------------------------------------------------

def _recipient(activity: OutboundActivity) -> str | None:
    for key in ("email", "to"):
        value = activity.metadata.get(key)
        if isinstance(value, str) and ADDRESS_RE.fullmatch(value.strip()):
            return value.strip()
    sender = activity.thread_sender
    return sender if isinstance(sender, str) and ADDRESS_RE.fullmatch(sender) else None


def domain_of(config: Mapping[str, Any]) -> str:
    return str(config["from_address"]).rpartition("@")[2] or "converger.invalid"


def compose(config: Mapping[str, Any], activity: OutboundActivity, to: str, text: str,
            links: list[str], files: list[tuple[str, str, bytes]]) -> tuple[EmailMessage, str]:
    """The MIME message of a reply and its Message-ID."""
    context = activity.in_reply_to if isinstance(activity.in_reply_to, dict) else {}
    message_id = f"<cv.{activity.conversation_id}.{activity.id}@{domain_of(config)}>"
    msg = EmailMessage()
    msg["From"] = formataddr((config.get("from_name") or "", config["from_address"]))
    msg["To"] = to
    subject = activity.metadata.get("subject") or context.get("subject")
    if isinstance(subject, str) and subject.strip():
        subject = subject.strip().replace("\r", " ").replace("\n", " ")
        if not re.match(r"(?i)re:", subject) and context.get("subject"):
            subject = "Re: " + subject
    else:
        subject = "Re: your message" if context else "Message"
    msg["Subject"] = subject[:900]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["Message-ID"] = message_id
    parent = context.get("message_id")
    if isinstance(parent, str) and MSGID_RE.fullmatch(parent):
        msg["In-Reply-To"] = parent
        refs = [r for r in common.as_list(context.get("references"))
                if isinstance(r, str) and MSGID_RE.fullmatch(r)]
        msg["References"] = " ".join([*refs, parent][-MAX_REFERENCES:])
    body = "\n\n".join(p for p in (text, "\n".join(links)) if p)
    msg.set_content(body or "(attachment)")
    paragraphs = "".join(f"<p>{html.escape(p).replace(chr(10), '<br>')}</p>"
                         for p in (text.split("\n\n") if text else []))
    anchors = "".join(f'<p><a href="{html.escape(u, quote=True)}">{html.escape(u)}</a></p>'
                      for u in links)
    msg.add_alternative(f"<!DOCTYPE html><html><body>{paragraphs}{anchors}</body></html>",
                        subtype="html")
    for name, ctype, content in files:
        main, _, sub = ctype.partition("/")
        msg.add_attachment(content, maintype=main or "application",
                           subtype=sub or "octet-stream", filename=name)
    return msg, message_id


async def _attachments(session: Any, config: Mapping[str, Any], activity: OutboundActivity,
                       ) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """Files fetched from the attachments' URLs (the upload store's by their signed URL, or
    any other), and the URLs that could not be fetched (sent as links instead)."""
    files: list[tuple[str, str, bytes]] = []
    links: list[str] = []
    for att in activity.attachments:
        if not isinstance(att, dict):
            continue
        # The gateway made upload-store files' contentUrl absolute and signed.
        url = att.get("contentUrl") or att.get("url")
        if not isinstance(url, str) or not valid_http_url(url):
            continue
        got = await common.get_capped(session, url, {}, MAX_ATTACHMENT_FETCH,
                                      common.timeout_of(config))
        if isinstance(got, tuple) and got[0] == 200:
            ctype = (common.as_str(att.get("content_type")) or common.as_str(att.get("mime_type"))
                     or common.as_str(att.get("contentType"))
                     or got[1].get("Content-Type") or "application/octet-stream")
            ctype = ctype.split(";", 1)[0].strip() or "application/octet-stream"
            name = common.as_str(att.get("name")) or url.rstrip("/").rsplit("/", 1)[-1] or "file"
            files.append((name[:200], ctype, got[2]))
        else:
            links.append(url)
    return files, links


async def _outbound_refused(session: Any, host: str, port: int) -> str | None:
    """Why the relay may not be reached, or None: its address is resolved by the HTTP
    session's connector, which applies the gateway's outbound policy (no private or loopback
    addresses unless CONVERGER_OUTBOUND_ALLOW lets them) to SMTP as to HTTP."""
    resolve = getattr(getattr(session, "connector", None), "_resolve_host", None)
    if resolve is None:
        return None
    try:
        await resolve(host, port)
    except OSError as exc:  # the policy's refusal, or a name that does not resolve
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None


def _smtp_failure(code: int, message: str) -> DeliveryResult:
    """A 5xx reply is permanent (fail at once, with the reply text); 4xx is retried."""
    text = common.clip(f"{code} {message}".encode())
    return DeliveryResult(ok=False, retryable=not 500 <= code < 600,
                          error=f"{LABEL} replied {text}", metadata={"smtp_code": code})


# -- inbound helpers ----------------------------------------------------------------------------

class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def html_text(source: str) -> str:
    parser = _Text()
    parser.feed(source[:TEXT_LIMIT * 4])
    parser.close()
    return re.sub(r"\n\s*\n+", "\n\n", "".join(parser.parts)).strip()


def _walk(msg: Message) -> list[Message]:
    """The leaf parts, depth first, at most MAX_PARTS, refusing nesting deeper than MAX_DEPTH."""
    leaves: list[Message] = []
    stack: list[tuple[Message, int]] = [(msg, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if depth > MAX_DEPTH:
            raise InboundError(f"unable to parse mail: parts nest deeper than {MAX_DEPTH} levels")
        if seen > MAX_PARTS:
            raise InboundError(f"unable to parse mail: more than {MAX_PARTS} parts")
        payload = part.get_payload()
        if part.is_multipart() and isinstance(payload, list):
            stack.extend((p, depth + 1) for p in reversed(payload) if isinstance(p, Message))
        else:
            leaves.append(part)
    return leaves


def _decoded(part: Message) -> str:
    raw = part.get_payload(decode=True)
    if not isinstance(raw, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = raw.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        text = raw.decode("utf-8", errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_mail(raw: bytes, rcpts: list[str], mail_from: str | None) -> InboundMessage:
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw)
        headers = {k.lower(): _header(msg, k) for k in ("From", "Subject", "Message-ID",
                                                         "In-Reply-To", "References", "To",
                                                         "Auto-Submitted")}
        leaves = _walk(msg)
    except InboundError:
        raise
    except Exception as exc:  # the email package raises many kinds on broken input
        raise InboundError(f"unable to parse mail: {type(exc).__name__}") from None
    name, sender = parseaddr(headers["from"] or "")
    sender = sender.strip().lower()
    if not ADDRESS_RE.fullmatch(sender or ""):
        fallback = (mail_from or "").strip().lower()
        if not ADDRESS_RE.fullmatch(fallback):
            raise InboundError("unable to parse mail: no sender address (From)")
        sender = fallback
    auto = (headers["auto-submitted"] or "no").strip().lower()
    if auto != "no" or (mail_from is not None and mail_from.strip() in ("", "<>")):
        raise InboundIgnored("automatic mail (Auto-Submitted, or a bounce) ignored: no loops")
    text, html_part, files = "", "", []
    for part in leaves:
        ctype = part.get_content_type()
        disposition = (part.get("Content-Disposition") or "").split(";", 1)[0].strip().lower()
        filename = part.get_filename()
        if disposition != "attachment" and not filename and ctype == "text/plain" and not text:
            text = _decoded(part)
        elif disposition != "attachment" and not filename and ctype == "text/html" \
                and not html_part:
            html_part = _decoded(part)
        elif not part.is_multipart():
            files.append(_file(part, filename, ctype))
    if not text and html_part:
        text = html_text(html_part)
    message_id = _ids(headers["message-id"])[:1]
    parents = _ids(headers["in-reply-to"]) + _ids(headers["references"])
    references = _ids(headers["references"])[-MAX_REFERENCES:]
    conversation = next((m.group(1) for m in map(OUR_ID_RE.match, reversed(parents)) if m), None)
    meta: dict[str, Any] = {
        "from": sender, "to": [r.lower() for r in rcpts][:50],
        "subject": (headers["subject"] or "")[:998],
        "message_id": message_id[0] if message_id else None,
        "in_reply_to": next(iter(_ids(headers["in-reply-to"])), None),
        "references": references,
    }
    if name:
        meta["from_name"] = name[:200]
    external = message_id[0] if message_id else "sha256:" + hashlib.sha256(raw).hexdigest()
    return InboundMessage(sender=sender, text=text.strip()[:TEXT_LIMIT], metadata=meta,
                          attachments=files, external_id=external[:300],
                          conversation_id=conversation)


def getaddresses_safe(value: str) -> list[tuple[str, str]]:
    """(name, address) pairs of an address header; [] when it cannot be read."""
    try:
        return [(n, a.lower()) for n, a in getaddresses([value[:10_000]]) if ADDRESS_RE.fullmatch(a)]
    except (ValueError, IndexError, TypeError):
        return []


def _header(msg: Message, name: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    try:
        return str(make_header(decode_header(str(value)))).strip()
    except (ValueError, LookupError, UnicodeError):
        return str(value).strip()


def _ids(value: str | None) -> list[str]:
    return MSGID_RE.findall(value or "")[:100]


def _file(part: Message, filename: str | None, ctype: str) -> dict[str, Any]:
    body = part.get_payload(decode=True)
    body = body if isinstance(body, bytes) else b""
    att: dict[str, Any] = {"type": "image" if ctype.startswith("image/") else "file",
                           "name": (filename or "attachment")[:200], "content_type": ctype,
                           "size": len(body)}
    if len(body) <= INLINE_LIMIT:
        att["content_base64"] = base64.b64encode(body).decode()
    return att

