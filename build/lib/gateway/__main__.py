import multiprocessing

if __name__ == "__main__":
    # First, before anything else: a frozen (PyInstaller) build must not re-run itself.
    multiprocessing.freeze_support()
    from gateway.cli import main

    raise SystemExit(main())
