"""The Phoenix Channels frame codec (docs/realtime.md, "Transport").

Serializer v1 (``vsn`` absent or ``1.0.0``) sends JSON objects
``{"join_ref","ref","topic","event","payload"}``; v2 (``vsn=2.0.0``, what the official ``phoenix``
npm client speaks) sends JSON arrays ``[join_ref, ref, topic, event, payload]``. Both carry the
same five fields, so one :class:`Message` and two encoders cover them.
"""

from __future__ import annotations

from typing import Any

import msgspec

V1 = "1.0.0"
V2 = "2.0.0"
VERSIONS = (V1, V2)

# Control events of the protocol.
JOIN = "phx_join"
LEAVE = "phx_leave"
REPLY = "phx_reply"
ERROR = "phx_error"
CLOSE = "phx_close"
HEARTBEAT = "heartbeat"
PHOENIX_TOPIC = "phoenix"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class ProtocolError(ValueError):
    """A frame that is not a Phoenix message; the reason is safe to send back."""


class Message(msgspec.Struct, array_like=False):
    topic: str
    event: str
    payload: Any
    ref: str | None = None
    join_ref: str | None = None


def _ref(value: Any) -> str | None:
    # The JS client sends refs as strings; be lenient with numbers, strict with the rest.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ProtocolError("ref and join_ref must be strings or null")


def decode(raw: str | bytes, vsn: str) -> Message:
    """Parse one text frame; :class:`ProtocolError` when it is not a well-formed message."""
    try:
        data = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise ProtocolError("frame is not valid JSON") from None
    except RecursionError:  # nested past the parser's limit
        raise ProtocolError("frame nests too deep") from None
    if vsn == V2:
        if not isinstance(data, list) or len(data) != 5:
            raise ProtocolError("a v2 frame is an array [join_ref, ref, topic, event, payload]")
        join_ref, ref, topic, event, payload = data
    else:
        if not isinstance(data, dict):
            raise ProtocolError("a v1 frame is an object with topic, event, payload, ref")
        join_ref, ref = data.get("join_ref"), data.get("ref")
        topic, event, payload = data.get("topic"), data.get("event"), data.get("payload", {})
    if not isinstance(topic, str) or not topic:
        raise ProtocolError("topic must be a non-empty string")
    if not isinstance(event, str) or not event:
        raise ProtocolError("event must be a non-empty string")
    if payload is None:
        payload = {}
    return Message(topic=topic, event=event, payload=payload, ref=_ref(ref), join_ref=_ref(join_ref))


def encode(vsn: str, join_ref: str | None, ref: str | None, topic: str, event: str,
           payload: Any) -> str:
    """One frame as text, in the serializer ``vsn``."""
    if vsn == V2:
        return _encode([join_ref, ref, topic, event, payload]).decode()
    return _encode(
        {"join_ref": join_ref, "ref": ref, "topic": topic, "event": event, "payload": payload}
    ).decode()


def reply(vsn: str, msg: Message, status: str, response: Any = None) -> str:
    """``phx_reply`` to ``msg``: ``{"status": "ok"|"error", "response": {...}}``."""
    return encode(vsn, msg.join_ref, msg.ref, msg.topic, REPLY,
                  {"status": status, "response": response if response is not None else {}})
