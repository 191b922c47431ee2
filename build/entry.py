"""The binary's entry point: the same ``main`` as the ``converger`` console script."""

import multiprocessing

if __name__ == "__main__":
    # First, before anything else: a frozen build must never re-run itself as a worker.
    multiprocessing.freeze_support()
    from gateway.cli import main

    raise SystemExit(main())
