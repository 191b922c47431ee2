"""The provider adapters' shared helpers (adapters/common.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from adapters.base import MAX_RETRY_AFTER, retry_after

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 UTC


@pytest.fixture
def local_time_not_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone five hours west of UTC (a POSIX TZ: no tzdata needed)."""
    monkeypatch.setenv("TZ", "EST+05")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_retry_after_forms() -> None:
    assert retry_after("30") == 30.0
    assert retry_after(" 12 ") == 12.0
    assert retry_after("Tue, 14 Nov 2023 22:14:20 GMT", now=NOW) == 60.0
    assert retry_after("Tue, 14 Nov 2023 22:12:20 GMT", now=NOW) == 0.0  # in the past
    assert retry_after("99999999999999") == MAX_RETRY_AFTER
    assert retry_after("soon") is None and retry_after(None) is None and retry_after("") is None


@pytest.mark.parametrize("value", ["1.5", "-3", "inf", "nan", "1e3", "+5", "²"])
def test_retry_after_is_delay_seconds_or_a_date_nothing_else(value: str) -> None:
    # RFC 9110 §10.2.3: delay-seconds is 1*DIGIT. Every adapter (webhook, Slack, WhatsApp, …)
    # reads the header with this one function, so they agree on what is unreadable.
    assert retry_after(value) is None


def test_retry_after_date_without_zone_is_utc(local_time_not_utc: None) -> None:
    # RFC 5322's "-0000" (parsed without a tzinfo) is UTC, not the server's local time.
    assert retry_after("Tue, 14 Nov 2023 22:14:20 -0000", now=NOW) == 60.0
