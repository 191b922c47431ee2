"""The connection admission rule (gateway/connlimit.py): per-IP cap, global cap, reserve."""

from __future__ import annotations

from gateway import ipallow
from gateway.connlimit import RESERVE_PER_IP, Limits


def _limits(**kw: object) -> Limits:
    base: dict[str, object] = dict(total=20, per_ip=10, reserve=8,
                                   exempt=ipallow.parse_networks("10.0.0.1"),
                                   privileged=ipallow.parse_networks("127.0.0.1"))
    base.update(kw)
    return Limits(**base)  # type: ignore[arg-type]


def test_per_ip_cap_and_release() -> None:
    lim = _limits()
    assert all(lim.admit("192.0.2.1") for _ in range(10))
    assert not lim.admit("192.0.2.1")
    lim.release("192.0.2.1")
    assert lim.admit("192.0.2.1")
    assert lim.refused == 1


def test_trusted_proxy_is_not_capped_per_ip() -> None:
    lim = _limits()
    assert all(lim.admit("10.0.0.1") for _ in range(12))  # only the reserve stops it


def test_reserve_keeps_room_for_small_clients_and_the_admin_allowlist() -> None:
    lim = _limits(per_ip=0)
    assert all(lim.admit("192.0.2.1") for _ in range(12))  # 20 - 8: the reserve starts
    assert not lim.admit("192.0.2.1")  # the big holder is out of the reserve
    assert all(lim.admit("198.51.100.7") for _ in range(RESERVE_PER_IP))  # a health checker
    assert not lim.admit("198.51.100.7")
    assert all(lim.admit("127.0.0.1") for _ in range(4))  # the admin allowlist: up to the cap
    assert not lim.admit("127.0.0.1")  # the total cap holds for everyone
    assert lim.open == 20


def test_no_caps() -> None:
    lim = _limits(total=0, per_ip=0)
    assert all(lim.admit("192.0.2.1") for _ in range(1000))
    assert lim.admit(None)
