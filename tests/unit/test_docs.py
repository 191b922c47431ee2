"""The docs point at tests as proof (docs/guarantees.md, docs/hardening.md, …): every such
reference names a file and a test that exist, so a renamed or deleted test cannot leave a
promise pointing at nothing."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REF = re.compile(r"tests/[A-Za-z0-9_/]+\.py(?:::([A-Za-z0-9_]+))?")


def test_every_test_the_docs_name_exists() -> None:
    docs = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
    refs = {(m.group(0).split("::")[0], m.group(1)) for doc in docs
            for m in REF.finditer(doc.read_text())}
    assert len(refs) > 20  # the docs do cite tests: the pattern still matches them
    missing = []
    for path, name in sorted(refs, key=lambda r: (r[0], r[1] or "")):
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\b", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert missing == []


OUTSIDE = re.compile(r"DESIGN §|reference §|quirk [0-9]|house rule")


def test_product_code_cites_no_document_outside_the_repository() -> None:
    """A reader of the repository cannot follow "DESIGN §7": comments give the reason, or a
    pointer into docs/."""
    cites = [f"{path.relative_to(ROOT)}:{n}"
             for package in ("gateway", "store", "adapters")
             for path in sorted((ROOT / package).rglob("*"))
             if path.suffix in {".py", ".js", ".html", ".css"}
             for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert cites == []
