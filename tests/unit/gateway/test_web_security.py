"""Web security in-process: the login limiter's counting, templates and static files shipped inside the package."""

from __future__ import annotations

from pathlib import Path

from gateway.web.security import LoginLimiter


def test_login_limiter_counts_failures_per_ip_and_email() -> None:
    clock = [1000.0]
    lim = LoginLimiter(limit=3, window=60, now=lambda: clock[0])
    for _ in range(3):
        assert not lim.blocked("1.2.3.4", "a@x")
        lim.failed("1.2.3.4", "A@x")
    assert lim.blocked("1.2.3.4", "a@x")
    assert not lim.blocked("1.2.3.5", "a@x") and not lim.blocked("1.2.3.4", "b@x")
    clock[0] += 61
    assert not lim.blocked("1.2.3.4", "a@x")


def test_templates_and_static_files_ship_inside_the_package() -> None:
    web = Path(__file__).resolve().parents[3] / "gateway" / "web"
    assert (web / "templates" / "base.html").is_file()
    assert {"app.css", "app.js", "favicon.svg"} <= {p.name for p in (web / "static").iterdir()}
