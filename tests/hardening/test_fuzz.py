"""API fuzzing (issue 9 part 1): schemathesis generates requests from the served
``/api/openapi.json`` — valid and invalid bodies, query strings and path ids — and sends them,
with valid credentials, to a real server. Every answer must be a documented status (never a
500), within a per-request timeout, with the documented content type and a body that validates
against the documented schema.

Bounded for the default suite (``FUZZ_EXAMPLES`` cases per operation and generation mode,
default 8); the long run is ``tests/fuzz/run_fuzz.py``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import schemathesis

from tests.hardening.fuzz_support import TIMEOUT, fuzz, make_world
from tests.support.server import Server

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # A server of its own: the fuzzer rotates keys and deletes the tenants it is pointed at.
    srv = Server(tmp_path_factory.mktemp("fuzz")).start()
    yield srv
    srv.stop()


def test_api_fuzz(fuzz_server: Server) -> None:
    started = time.monotonic()
    world = make_world(fuzz_server.url)
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/api/openapi.json", timeout=TIMEOUT)
    tally = fuzz(schema, world, EXAMPLES)
    elapsed = time.monotonic() - started
    print(f"fuzz: {tally.operations} operations, {tally.requests} requests in {elapsed:.1f}s, "
          f"statuses {dict(sorted(tally.statuses.items()))}")
    for label, statuses in sorted(tally.by_operation.items()):
        print(f"  {label}: {dict(sorted(statuses.items()))}")
    assert not tally.failures, "\n\n".join(tally.failures)
    assert tally.requests >= tally.operations * 2
    # The server logged no unhandled error (a 500 swallowed by a check would show here).
    assert "unhandled error" not in fuzz_server.log()
