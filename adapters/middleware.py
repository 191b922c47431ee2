"""Per-channel transformations (docs/delivery.md): an ordered list of steps applied to the copy
of an activity sent to that channel. The stored activity is never changed."""

from __future__ import annotations

from typing import Any

from .base import OutboundActivity

TYPES = ("add_prefix", "add_suffix", "text_replace", "truncate_text", "set_metadata", "content_filter")


class Halt(Exception):
    """A step stopped the delivery for good (e.g. the content filter)."""


def validate(steps: Any) -> str | None:
    """The original's validation, first failure wins. None when valid."""
    if not isinstance(steps, list):
        return "transformations must be a list"
    for step in steps:
        if not isinstance(step, dict):
            return "transformations must be a list of objects"
        kind = step.get("type")
        if kind not in TYPES:
            return f"unknown middleware type: {kind}"
        error = _validate_step(kind, step)
        if error:
            return f"{kind}: {error}"
    return None


def _validate_step(kind: str, step: dict[str, Any]) -> str | None:
    if kind == "add_prefix" and not isinstance(step.get("prefix"), str):
        return 'requires "prefix" (string)'
    if kind == "add_suffix" and not isinstance(step.get("suffix"), str):
        return 'requires "suffix" (string)'
    if kind == "text_replace" and not (
        isinstance(step.get("pattern"), str) and isinstance(step.get("replacement"), str)
    ):
        return 'requires "pattern" and "replacement" (strings)'
    if kind == "truncate_text":
        n = step.get("max_length")
        if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
            return 'requires "max_length" (positive integer)'
        if "ellipsis" in step and not isinstance(step["ellipsis"], str):
            return '"ellipsis" must be a string'
    if kind == "set_metadata" and not isinstance(step.get("values"), dict):
        return 'requires "values" (map)'
    if kind == "content_filter":
        patterns = step.get("block_patterns")
        if not isinstance(patterns, list):
            return 'requires "block_patterns" (list of strings)'
        if not all(isinstance(p, str) for p in patterns):
            return "all block_patterns must be strings"
    return None


def apply(steps: list[dict[str, Any]], activity: OutboundActivity) -> OutboundActivity:
    """Run the chain; raises :class:`Halt` when a step blocks the activity."""
    text = activity.text
    metadata = activity.metadata
    for step in steps:
        kind = step.get("type")
        if kind == "add_prefix":
            text = step["prefix"] + (text or "")
        elif kind == "add_suffix":
            text = (text or "") + step["suffix"]
        elif kind == "text_replace" and step["pattern"]:
            text = (text or "").replace(step["pattern"], step["replacement"])
        elif kind == "truncate_text":
            limit = step["max_length"]
            if text is not None and len(text) > limit:
                text = text[:limit] + step.get("ellipsis", "...")
        elif kind == "set_metadata":
            metadata = {**metadata, **step["values"]}
        elif kind == "content_filter":
            if text and any(p and p in text for p in step["block_patterns"]):
                raise Halt("content blocked by filter")
    if text is activity.text and metadata is activity.metadata:
        return activity
    import msgspec

    return msgspec.structs.replace(activity, text=text, metadata=metadata)
