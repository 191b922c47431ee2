"""Unit tests of the guards in ``gateway.web.security``: cookie signing and expiry, the client
address behind proxies, the allowlist, passwords."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gateway.web import security as sessions
from gateway.web.security import Sessions, client_ip, parse_networks, within


def test_session_round_trip_expiry_and_tampering() -> None:
    clock = [1_000_000.0]
    s = Sessions("key", lifetime=60, now=lambda: clock[0])
    cookie = s.dump({"uid": "u1", "csrf": "c"})
    assert s.load(cookie) == {"uid": "u1", "csrf": "c"}
    clock[0] += 59
    assert s.load(cookie) is not None
    clock[0] += 1
    assert s.load(cookie) is None  # expired exactly at its lifetime
    clock[0] -= 60
    assert Sessions("other", 60, now=lambda: clock[0]).load(cookie) is None
    payload, mac = cookie.split(".")
    assert s.load(payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + mac) is None
    for junk in (None, "", "a", "a.b.c", "!!!.???"):
        assert s.load(junk) is None


def test_csrf_comparison() -> None:
    assert sessions.csrf_ok({"csrf": "abc"}, "abc")
    assert not sessions.csrf_ok({"csrf": "abc"}, "abd")
    assert not sessions.csrf_ok({"csrf": "abc"}, None)
    assert not sessions.csrf_ok({}, "")


def _request(peer: str, headers: dict[str, str] | None = None, scheme: str = "http") -> object:
    return SimpleNamespace(ip=peer, conn_info=SimpleNamespace(client_ip=peer), headers=headers or {},
                           scheme=scheme)


def test_allowlist_addresses_cidrs_and_mapped_ipv4() -> None:
    nets = parse_networks("127.0.0.1, ::1, 10.0.0.0/8")
    assert within("127.0.0.1", nets) and within("::1", nets) and within("10.200.1.2", nets)
    assert within("::ffff:10.1.1.1", nets)  # IPv4-mapped IPv6 peers count as IPv4
    assert not within("11.0.0.1", nets) and not within("garbage", nets) and not within("", nets)
    with pytest.raises(ValueError):
        parse_networks("10.0.0.0/33")


def test_forwarded_for_only_from_trusted_proxies() -> None:
    proxies = parse_networks("10.0.0.1, 10.0.1.0/24")
    xff = {"x-forwarded-for": "6.6.6.6, 203.0.113.9, 10.0.1.5"}
    # Not from a proxy: the header is ignored.
    assert client_ip(_request("198.51.100.1", xff), proxies) == "198.51.100.1"
    assert client_ip(_request("198.51.100.1", xff), []) == "198.51.100.1"
    # From a proxy: the right-most hop that is not a proxy (6.6.6.6 could be forged).
    assert client_ip(_request("10.0.0.1", xff), proxies) == "203.0.113.9"
    assert client_ip(_request("10.0.0.1", {}), proxies) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", {"x-forwarded-for": "10.0.1.7"}), proxies) == "10.0.1.7"


def test_https_detection() -> None:
    proxies = parse_networks("10.0.0.1")
    assert sessions.is_https(_request("1.2.3.4", scheme="https"), [])
    assert not sessions.is_https(_request("1.2.3.4", {"x-forwarded-proto": "https"}), proxies)
    assert sessions.is_https(_request("10.0.0.1", {"x-forwarded-proto": "https"}), proxies)


def test_passwords() -> None:
    stored = sessions.hash_password("s3cret password")
    assert stored.startswith("$argon2id$")
    assert sessions.verify_password(stored, "s3cret password")
    assert not sessions.verify_password(stored, "wrong")
    assert not sessions.verify_password(None, "anything")  # unknown user
    assert not sessions.verify_password("not-a-hash", "anything")
