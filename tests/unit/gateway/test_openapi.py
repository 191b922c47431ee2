"""The OpenAPI document in-process: every route of the app documented, with its auth and errors
(served by the real server: tests/integration/gateway/test_openapi.py)."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.api.openapi import document
from gateway.app import create_app
from gateway.config import Settings


def served_api_routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(Settings(data_dir=str(tmp_path)))
    out = set()
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        if not path.startswith("/api/"):
            continue
        path = re.sub(r"<([^:>]+)(:[^>]*)?>", r"{\1}", path)
        for method in route.methods:
            if method not in ("HEAD", "OPTIONS"):
                out.add((method, path))
    return out


def test_every_api_route_is_documented(tmp_path: Path) -> None:
    doc = document()
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    missing = served_api_routes(tmp_path) - documented - {("GET", "/api/openapi.json")}
    assert not missing, f"routes missing from the OpenAPI document: {sorted(missing)}"


def test_every_operation_documents_its_auth_and_errors() -> None:
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert "security" in op, (method, path)
            if op["security"]:
                assert "401" in op["responses"], (method, path)
