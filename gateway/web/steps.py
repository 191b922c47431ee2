"""A channel's middleware steps edited as a form (not raw JSON): one fieldset per step, a type
and that type's inputs, each refused with its own message. ``parse`` reads the posted rows
(``steps.<n>.type``, ``steps.<n>.<field>``) into the steps the domain validates
(``adapters.middleware``) and the rows to draw again after an error; ``rows`` turns stored
steps into rows for the form."""

from __future__ import annotations

import json
import re
from typing import Any

from adapters import middleware

# type → its inputs: (key, label, kind, help). kind: "text", "number" or "lines".
FIELDS: dict[str, list[tuple[str, str, str, str]]] = {
    "add_prefix": [("prefix", "Prefix", "text", "Put before the text, e.g. [bot] (spaces kept)")],
    "add_suffix": [("suffix", "Suffix", "text", "Put after the text (spaces kept)")],
    "text_replace": [("pattern", "Find", "text", "Exact text, case-sensitive"),
                     ("replacement", "Replace with", "text", "Empty: the text found is removed")],
    "truncate_text": [("max_length", "Longest text (characters)", "number", "A whole number above 0"),
                      ("ellipsis", "Ellipsis", "text", "Added to a cut text; empty: ...")],
    "set_metadata": [("values", "Metadata", "lines",
                      "One key=value per line, merged into the activity's metadata")],
    "content_filter": [("block_patterns", "Blocked words", "lines",
                        "One per line: a text containing any of them is not sent (final)")],
}
LABELS = {"add_prefix": "Add a prefix", "add_suffix": "Add a suffix",
          "text_replace": "Replace text", "truncate_text": "Cut long texts",
          "set_metadata": "Set metadata", "content_filter": "Block words"}
assert set(FIELDS) == set(middleware.TYPES)  # every type the gateway knows has its inputs
ROW = re.compile(r"^steps\.(\d{1,4})\.type$")


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def _json_or_text(value: str) -> Any:
    """A metadata value: JSON when it is a number, true/false/null, a list or an object,
    else the text as typed."""
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):
        return value
    return value if isinstance(parsed, str) else parsed


def _step(kind: str, raw: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """One row into a step, and its fields' errors."""
    step: dict[str, Any] = {"type": kind}
    errs: dict[str, str] = {}
    if kind in ("add_prefix", "add_suffix"):
        key = "prefix" if kind == "add_prefix" else "suffix"
        if raw.get(key, "") == "":
            errs[key] = "can't be blank"
        step[key] = raw.get(key, "")
    elif kind == "text_replace":
        if raw.get("pattern", "") == "":
            errs["pattern"] = "can't be blank"
        step["pattern"], step["replacement"] = raw.get("pattern", ""), raw.get("replacement", "")
    elif kind == "truncate_text":
        text = raw.get("max_length", "").strip()
        if not text.isdigit() or int(text) <= 0 or len(text) > 9:
            errs["max_length"] = "must be a whole number above 0"
        else:
            step["max_length"] = int(text)
        if raw.get("ellipsis"):
            step["ellipsis"] = raw["ellipsis"]
    elif kind == "set_metadata":
        values: dict[str, Any] = {}
        for n, line in enumerate(_lines(raw.get("values", "")), 1):
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                errs["values"] = f"line {n}: write key=value"
                break
            values[key.strip()] = _json_or_text(value.strip())
        if not values and "values" not in errs:
            errs["values"] = "add at least one key=value line"
        step["values"] = values
    elif kind == "content_filter":
        patterns = _lines(raw.get("block_patterns", ""))
        if not patterns:
            errs["block_patterns"] = "add at least one word or phrase"
        step["block_patterns"] = patterns
    return step, errs


def parse(form: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, list[str]]]:
    """The posted rows, in their order: (steps, rows to draw again, errors keyed
    ``steps.<position>.<field>``). A row whose type is empty was removed."""
    form = form or {}
    indices = sorted(int(m.group(1)) for key in form if (m := ROW.match(key)))
    steps: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    errors: dict[str, list[str]] = {}
    for i in indices:
        kind = (form.get(f"steps.{i}.type") or "").strip()
        if not kind:
            continue
        pos = len(rows)
        raw = {key: form.get(f"steps.{i}.{key}") or ""
               for key, *_ in FIELDS.get(kind, [])}
        rows.append({"type": kind, "values": raw})
        if kind not in FIELDS:
            errors[f"steps.{pos}.type"] = ["choose a step type"]
            continue
        step, errs = _step(kind, raw)
        for key, message in errs.items():
            errors[f"steps.{pos}.{key}"] = [message]
        steps.append(step)
    return steps, rows, errors


def rows(steps: list[Any] | None) -> list[dict[str, Any]]:
    """Stored steps as form rows (their values as the inputs show them)."""
    out = []
    for step in steps or []:
        if not isinstance(step, dict) or step.get("type") not in FIELDS:
            continue
        values: dict[str, str] = {}
        for key, _label, kind, _help in FIELDS[step["type"]]:
            value = step.get(key)
            if value is None:
                values[key] = ""
            elif kind == "lines" and isinstance(value, dict):
                values[key] = "\n".join(
                    f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in value.items())
            elif kind == "lines" and isinstance(value, list):
                values[key] = "\n".join(str(v) for v in value)
            else:
                values[key] = str(value)
        out.append({"type": step["type"], "values": values})
    return out


def context(rows_: list[dict[str, Any]]) -> dict[str, Any]:
    """What the ``steps.html`` editor needs."""
    return {"step_rows": rows_, "step_fields": FIELDS, "step_labels": LABELS}
