"""HTTPS rules in-process: settings, the retry schedule, when a renewal is due, the certificate
store's files. (The real thing, against Pebble: tests/integration/deploy/.)"""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest

from gateway import config
from gateway.tls import RETRY_MAX, CertStore, TlsError, check_pair, inspect, retry_delay
from gateway.tls_serve import Tls
from tests.support.pebble import make_ca_and_leaf


def test_domains_give_the_public_url_and_bad_ones_are_refused() -> None:
    s = config.load({"CONVERGER_DOMAINS": "Chat.Example.com., b.example.org"})
    assert s.tls == "acme" and s.domain_list == ["chat.example.com", "b.example.org"]
    assert s.public_url == "https://chat.example.com"
    s = config.load({"CONVERGER_DOMAINS": "a.example.com", "CONVERGER_HTTPS_PORT": "8443"})
    assert s.public_url == "https://a.example.com:8443"
    s = config.load({"CONVERGER_DOMAINS": "a.example.com",
                     "CONVERGER_PUBLIC_URL": "https://front.example.com"})
    assert s.public_url == "https://front.example.com"  # an explicit one wins
    for env in ({"CONVERGER_DOMAINS": "*.example.com"}, {"CONVERGER_DOMAINS": "::1"},
                {"CONVERGER_DOMAINS": "a.example.com", "CONVERGER_HTTP_PORT": "0"},
                {"CONVERGER_DOMAINS": "a.example.com", "CONVERGER_HTTP_PORT": "443"},
                {"CONVERGER_TLS_KEY": "k.pem"}):
        with pytest.raises(config.ConfigError):
            config.load(env)
    assert config.load({}).tls == ""


def test_failed_attempts_back_off_to_six_hours_and_honour_a_rate_limit() -> None:
    assert [retry_delay(n) for n in (1, 2, 3)] == [60, 120, 240]
    assert retry_delay(30) == RETRY_MAX
    assert retry_delay(1, scale=0.001) == pytest.approx(0.06)
    assert retry_delay(1, least=3600) == 3600


def test_a_certificate_is_due_when_near_expiry_or_a_domain_is_added(tmp_path: Path) -> None:
    _, cert, key = make_ca_and_leaf(tmp_path / "c", ["a.example.com"])  # valid 2 days
    settings = config.load({"CONVERGER_DOMAINS": "a.example.com",
                            "CONVERGER_DATA_DIR": str(tmp_path / "data")})
    store = CertStore(settings.data_dir)
    store.save(key.read_bytes(), cert.read_bytes(), settings.acme_directory)
    clock = [time.time()]
    tls = Tls(settings, logging.getLogger("t"), now=lambda: clock[0])
    assert tls.cert is not None and tls.cert.names == ("a.example.com",)
    assert not tls.renewal_due()  # 2 days left of 2: a third of the lifetime is the window
    clock[0] += 1.5 * 86400
    assert tls.renewal_due()
    clock[0] -= 1.5 * 86400
    tls.settings = config.load({"CONVERGER_DOMAINS": "a.example.com,b.example.com",
                                "CONVERGER_DATA_DIR": str(tmp_path / "data")})
    assert tls.renewal_due()


def test_the_store_replaces_a_certificate_whole_and_keeps_the_previous(tmp_path: Path) -> None:
    store = CertStore(tmp_path)
    a = make_ca_and_leaf(tmp_path / "a", ["a.example.com"])
    b = make_ca_and_leaf(tmp_path / "b", ["a.example.com"])
    store.save(a[2].read_bytes(), a[1].read_bytes(), "https://ca/dir")
    first = inspect(store.current.read_bytes())
    with pytest.raises(TlsError, match="does not match"):
        store.save(a[2].read_bytes(), b[1].read_bytes(), "https://ca/dir")  # b's cert, a's key
    assert inspect(store.current.read_bytes()) == first  # untouched
    store.save(b[2].read_bytes(), b[1].read_bytes(), "https://ca/dir")
    assert check_pair(store.current).serial != first.serial
    assert check_pair(store.dir / "certificate.pem.previous").serial == first.serial
    account = store.account_key("https://ca/dir")
    assert store.account_key("https://ca/dir") == account  # made once, kept
    assert stat.S_IMODE(store.dir.stat().st_mode) == 0o700
    for path in store.dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
