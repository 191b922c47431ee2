"""Every problem code the gateway can answer is documented in the OpenAPI document."""

from __future__ import annotations

import ast
from pathlib import Path

from gateway.api.openapi import CODES


def test_every_problem_code_is_documented() -> None:
    """The document's per-status ``code`` enums list every code the source raises, so the
    fuzzer's schema check catches a status answered with a code nobody documented."""
    raised = _raised_codes()
    assert len(raised) > 30
    missing = sorted((s, c) for s, c in raised if c not in CODES.get(s, ()))
    assert not missing, f"problem codes missing from gateway.api.openapi.CODES: {missing}"


def _raised_codes() -> set[tuple[int, str]]:
    """(status, code) of every problem the gateway's source raises with a literal code."""
    ctor = {"not_found": (404, "not_found"), "bad_request": (400, "bad_request"),
            "unauthorized": (401, "unauthorized"), "forbidden": (403, "forbidden"),
            "conflict": (409, "conflict"), "validation": (422, "validation_failed")}
    out: set[tuple[int, str]] = set()
    for path in (Path(__file__).parents[3] / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
            literal = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if name in ("ApiError", "_refuse", "directline") and len(literal) >= 2 and isinstance(literal[0], int):
                out.add((literal[0], literal[1]))
            elif name in ctor:
                status, code = ctor[name]
                given = [k.value.value for k in node.keywords
                         if k.arg == "code" and isinstance(k.value, ast.Constant)]
                if name != "validation" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                    given.append(node.args[1].value)
                out.add((status, given[0] if given else code))
    return out
