"""The gateway's state is typed: ``app.ctx`` is a ``Gateway`` and ``request.ctx`` a
``RequestState`` (gateway/context.py), so no code probes them for an attribute that may be
missing, and a new piece of state gets a typed field instead."""

from __future__ import annotations

import re
from pathlib import Path

from gateway import config
from gateway.app import create_app
from gateway.context import Gateway, RequestState

GATEWAY = Path(__file__).parents[3] / "gateway"


def test_no_attribute_probes_on_the_context() -> None:
    probes = [f"{p.relative_to(GATEWAY.parent)}:{n}: {line.strip()}"
              for p in sorted(GATEWAY.rglob("*.py"))
              for n, line in enumerate(p.read_text().splitlines(), 1)
              if re.search(r"getattr\(.*ctx", line)]
    assert probes == []


def test_the_app_context_is_the_gateway(tmp_path: Path) -> None:
    app = create_app(config.load({}, data_dir=str(tmp_path), secret_key="k" * 40))
    assert isinstance(app.ctx, Gateway)
    assert isinstance(app.request_class.make_context(), RequestState)
    assert not app.ctx.db_open
