"""The long fuzz run (not in the default suite): many more schemathesis cases per operation
than tests/integration/hardening/test_fuzz.py, with shrinking, against a real server of its own.

    PYTHONPATH=. python tests/fuzz/run_fuzz.py [--examples 300] [--seed N|--random]

Prints the requests sent, the statuses seen per operation and every failure (a 500, an
undocumented status or content type, a body that does not match its schema, a hang past the
per-request timeout); exits 1 when there was any, or when the server logged an unhandled error.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import schemathesis  # noqa: E402

from tests.integration.hardening.fuzz_support import TIMEOUT, fuzz, make_world  # noqa: E402
from tests.support.server import Server  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="cases per operation and mode")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random", action="store_true", help="a fresh random seed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Server(Path(tmp) / "data") as server:
        started = time.monotonic()
        world = make_world(server.url)
        schema = schemathesis.openapi.from_url(server.url + "/api/openapi.json", timeout=TIMEOUT)
        tally = fuzz(schema, world, args.examples, shrink=True,
                     seed=None if args.random else args.seed)
        elapsed = time.monotonic() - started
        print(f"{tally.operations} operations, {tally.requests} requests in {elapsed:.1f}s "
              f"({tally.requests / elapsed:.0f}/s); statuses {dict(sorted(tally.statuses.items()))}")
        for label, statuses in sorted(tally.by_operation.items()):
            print(f"  {label}: {dict(sorted(statuses.items()))}")
        for failure in tally.failures:
            print("\nFAILURE", failure)
        log = server.log_path.read_text(errors="replace")
        unhandled = "unhandled error" in log
        if unhandled:
            print("\nthe server logged an unhandled error:\n" + log)
    return 1 if tally.failures or unhandled else 0


if __name__ == "__main__":
    sys.exit(main())
