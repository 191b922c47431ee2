"""Metrics and logs in-process: the address allowlist, secrets redacted from log lines."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from gateway import ipallow
from gateway.logs import JsonFormatter


def test_ipallow() -> None:
    nets = ipallow.parse_networks("127.0.0.1, ::1, 10.0.0.0/8")
    assert ipallow.in_networks("127.0.0.1", nets)
    assert ipallow.in_networks("::ffff:127.0.0.1", nets)
    assert ipallow.in_networks("::1", nets) and ipallow.in_networks("10.9.8.7", nets)
    assert not ipallow.in_networks("192.168.1.1", nets)
    assert not ipallow.in_networks("garbage", nets)

    def req(peer: str, xff: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(ip=peer, headers={"x-forwarded-for": xff} if xff else {})

    assert ipallow.client_ip(req("127.0.0.1", "10.1.1.1")) == "127.0.0.1"
    assert ipallow.client_ip(req("127.0.0.1", "6.6.6.6, 10.1.1.1"), "127.0.0.1") == "10.1.1.1"
    assert ipallow.client_ip(req("127.0.0.1", "6.6.6.6, 10.1.1.1"), "127.0.0.1,10.0.0.0/8") == "6.6.6.6"
    assert ipallow.client_ip(req("9.9.9.9", "10.1.1.1"), "127.0.0.1") == "9.9.9.9"


def test_log_lines_redact_secrets() -> None:
    fmt = JsonFormatter()
    rec = logging.LogRecord("converger", logging.INFO, __file__, 1,
                            "calling with api_key=cvk_abcdef123456 and Authorization: Bearer eyJhbGciOi.x.y "
                            "token=%s", ("cvk_zzz",), None)
    line = fmt.format(rec)
    assert "cvk_abcdef123456" not in line and "eyJhbGciOi" not in line and "cvk_zzz" not in line
    assert "[REDACTED]" in line
    stream = ("GET /v3/directline/conversations/c/stream?watermark=MDE&t="
              "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl-_x")
    line = fmt.format(logging.LogRecord("converger", logging.INFO, __file__, 1, stream, (), None))
    assert "eyJ" not in line and "c2lnbmF0dXJl" not in line and "watermark=MDE" in line
