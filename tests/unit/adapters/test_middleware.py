"""Per-channel transformations (reference §10.3): validation messages and their effects."""

from __future__ import annotations

import pytest

from adapters import middleware
from adapters.base import OutboundActivity


def act(text: str | None = "hello world", **metadata: object) -> OutboundActivity:
    return OutboundActivity(id="a", type="message", sender="u", text=text, attachments=[],
                            metadata=dict(metadata), conversation_id="c", tenant_id="t",
                            timestamp="2026-01-01T00:00:00.000000Z")


@pytest.mark.parametrize(("steps", "error"), [
    ("nope", "transformations must be a list"),
    ([{"type": "shout"}], "unknown middleware type: shout"),
    ([{"type": "add_prefix"}], 'add_prefix: requires "prefix" (string)'),
    ([{"type": "add_suffix", "suffix": 1}], 'add_suffix: requires "suffix" (string)'),
    ([{"type": "text_replace", "pattern": "a"}], 'text_replace: requires "pattern" and "replacement" (strings)'),
    ([{"type": "truncate_text", "max_length": 0}], 'truncate_text: requires "max_length" (positive integer)'),
    ([{"type": "set_metadata", "values": []}], 'set_metadata: requires "values" (map)'),
    ([{"type": "content_filter"}], 'content_filter: requires "block_patterns" (list of strings)'),
    ([{"type": "content_filter", "block_patterns": ["a", 1]}], "content_filter: all block_patterns must be strings"),
    ([{"type": "add_prefix", "prefix": ">"}, {"type": "bad"}], "unknown middleware type: bad"),
    ([], None),
])
def test_validation_messages(steps: object, error: str | None) -> None:
    assert middleware.validate(steps) == error


def test_chain_applies_in_order_and_leaves_the_original() -> None:
    original = act(k="old")
    out = middleware.apply([
        {"type": "add_prefix", "prefix": "[x] "},
        {"type": "text_replace", "pattern": "world", "replacement": "there"},
        {"type": "add_suffix", "suffix": "!"},
        {"type": "truncate_text", "max_length": 8, "ellipsis": "…"},
        {"type": "set_metadata", "values": {"k": "new", "n": 1}},
    ], original)
    assert out.text == "[x] hell…"
    assert out.metadata == {"k": "new", "n": 1}
    assert original.text == "hello world" and original.metadata == {"k": "old"}


def test_none_text_and_passthrough() -> None:
    assert middleware.apply([{"type": "add_suffix", "suffix": "?"}], act(None)).text == "?"
    same = act()
    assert middleware.apply([], same) is same


def test_content_filter_halts() -> None:
    steps = [{"type": "content_filter", "block_patterns": ["World", "hello"]}]
    with pytest.raises(middleware.Halt, match="content blocked by filter"):
        middleware.apply(steps, act())
    assert middleware.apply(steps, act("HELLO")).text == "HELLO"  # case-sensitive
