"""Bench-only tracing, loaded by every Python process of a bench run (``--trace DIR`` puts this
directory first on ``PYTHONPATH`` and sets ``CONVERGER_BENCH_TRACE=DIR``): each process appends
to ``DIR/<role>-<pid>.jsonl`` every garbage collection of 1 ms or more (and counts of all),
every event-loop lag of 2 ms or more (a 5 ms timer that fired late), and, in a gateway worker,
the age of each activity when the hub publishes it and each feed read. Nothing happens without
the variable."""

from __future__ import annotations

import os

_DIR = os.environ.get("CONVERGER_BENCH_TRACE")

if _DIR:
    import atexit
    import gc
    import json
    import sys
    import time

    # Records are tuples of strings and numbers, which the collector stops tracking at their
    # first collection: the trace must not itself make the collections it records.
    _records: list[tuple] = []
    _KEYS = {"gc": ("t", "d", "g", "c", "cpu"), "lag": ("t", "d"), "pub": ("t", "d"),
             "feed": ("t", "d", "n"), "lock": ("t", "wait", "hold")}
    _gc_totals = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    _gc_start = [0.0, 0.0, 0.0]
    _cpu = time.thread_time  # a collection's CPU time: what it costs on an idle machine
    _perf = time.perf_counter
    _wall = time.time

    def _role() -> str:
        role = os.environ.get("BENCH_ROLE")
        if role:
            return role
        slot = os.environ.get("CONVERGER_WORKER_SLOT")
        if slot is not None:
            return f"worker{slot}"
        argv = " ".join(sys.argv)
        if "baseline" in argv:
            return "baseline"
        if "gateway" in argv or "serve" in argv:
            return "gateway"
        return "proc"

    def _dump() -> None:
        global _records
        recs, _records = _records, []
        try:  # CPU time, time spent waiting for a CPU (run queue), timeslices: ns, ns, count
            with open("/proc/self/schedstat") as f:
                sched = [int(x) for x in f.read().split()]
        except OSError:
            sched = []
        totals = {"k": "gctotal", "t": _wall(), "sched": sched,
                  **{f"g{g}": {"n": n, "s": round(s, 4)} for g, (n, s) in _gc_totals.items()}}
        try:
            with open(os.path.join(_DIR, f"{_role()}-{os.getpid()}.jsonl"), "a") as f:
                for r in recs:
                    f.write(json.dumps({"k": r[0], **dict(zip(_KEYS[r[0]], r[1:], strict=True))}) + "\n")
                f.write(json.dumps(totals) + "\n")
        except OSError:
            pass

    def _on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[0] = _perf()
            _gc_start[1] = _wall()
            _gc_start[2] = _cpu()
            return
        cpu = _cpu() - _gc_start[2]
        d = _perf() - _gc_start[0]
        g = info["generation"]
        tot = _gc_totals[g]
        tot[0] += 1
        tot[1] += d
        if d >= 0.001:
            _records.append(("gc", _gc_start[1], d, g, info.get("collected", 0), cpu))

    gc.callbacks.append(_on_gc)

    def _cycles(garbage: list, names: list[str]) -> dict[str, str]:
        """For one garbage object of each named type, a shortest reference path among the
        garbage leading back to it: the cycle that kept it."""
        ids = {id(o): o for o in garbage}
        out: dict[str, str] = {}
        for name in names:
            start = next((o for o in garbage if type(o).__name__ == name), None)
            if start is None:
                continue
            prev: dict[int, int] = {}
            todo = [start]
            found = None
            while todo and found is None and len(prev) < 5000:
                nxt = []
                for o in todo:
                    for r in gc.get_referents(o):
                        if r is start:
                            found = o
                            break
                        if id(r) in ids and id(r) not in prev:
                            prev[id(r)] = id(o)
                            nxt.append(r)
                    if found is not None:
                        break
                todo = nxt
            if found is None:
                out[name] = "(no cycle back to it)"
                continue
            path = [found]
            while id(path[-1]) != id(start) and id(path[-1]) in prev:
                path.append(ids[prev[id(path[-1])]])
            out[name] = " -> ".join(type(o).__name__ for o in reversed(path)) + f" -> {name}"
        return out

    def _census(kind: str) -> None:
        """SIGUSR1: collect and freeze (what a frozen heap leaves behind is then measurable);
        SIGUSR2: unfreeze and collect, keeping the garbage: how many objects of which types
        were unreachable (with SIGUSR1 before: garbage the freeze had kept)."""
        from collections import Counter

        if kind == "freeze":
            cpu = _cpu()
            gc.collect()
            cpu = _cpu() - cpu
            objs = gc.get_objects()
            types = Counter(type(o).__name__ for o in objs).most_common(40)
            del objs
            gc.freeze()
            info = {"frozen": gc.get_freeze_count(), "collect_cpu_ms": round(cpu * 1000, 1),
                    "types": types}
        else:
            frozen = gc.get_freeze_count()
            gc.unfreeze()
            gc.set_debug(gc.DEBUG_SAVEALL)
            n = gc.collect()
            gc.set_debug(0)
            types = Counter(type(o).__name__ for o in gc.garbage).most_common(25)
            cycles = _cycles(gc.garbage, [n for n, _ in types[:12]])
            gc.garbage.clear()
            info = {"was_frozen": frozen, "unreachable": n, "types": types, "cycles": cycles,
                    "tracked": len(gc.get_objects())}
        with open(os.path.join(_DIR, f"census-{os.getpid()}.jsonl"), "a") as f:
            f.write(json.dumps({"t": _wall(), "kind": kind, **info}) + "\n")

    import signal

    if os.environ.get("CONVERGER_WORKER_SLOT") is not None:
        signal.signal(signal.SIGUSR1, lambda *_: _census("freeze"))
        signal.signal(signal.SIGUSR2, lambda *_: _census("collect"))
    atexit.register(_dump)

    def _start_monitor(loop) -> None:  # type: ignore[no-untyped-def]
        period = 0.005
        state = {"due": _perf() + period, "dump": _perf() + 1.0}

        def tick() -> None:
            now = _perf()
            lag = now - state["due"]
            if lag >= 0.002:
                _records.append(("lag", _wall() - lag, lag))
            if now >= state["dump"]:
                state["dump"] = now + 1.0
                _dump()
            state["due"] = _perf() + period
            loop.call_later(period, tick)

        loop.call_later(period, tick)
        _patch_gateway()

    def _patch_gateway() -> None:
        hub = sys.modules.get("gateway.hub")
        if hub is not None and not getattr(hub.Hub, "_traced", False):
            orig = hub.Hub.publish

            def publish(self, topic, event, payload):  # type: ignore[no-untyped-def]
                if event == "new_activity":
                    try:
                        now = _wall()
                        _records.append(("pub", now, now - float(payload.text)))
                    except (TypeError, ValueError, AttributeError):
                        pass
                return orig(self, topic, event, payload)

            hub.Hub.publish = publish
            hub.Hub._traced = True
        dbmod = sys.modules.get("store.db")
        if dbmod is not None and not getattr(dbmod._WriteLock, "_traced", False):
            # The writers' lock file (from BEGIN to COMMIT, WAL checkpoints included): how long
            # each writer waited for it and held it.
            enter, leave = dbmod._WriteLock.__enter__, dbmod._WriteLock.__exit__
            held = [0.0, 0.0, 0.0]

            def __enter__(self):  # type: ignore[no-untyped-def]
                w0, t0 = _wall(), _perf()
                enter(self)
                held[0], held[1], held[2] = w0, t0, _perf()

            def __exit__(self, *exc):  # type: ignore[no-untyped-def]
                leave(self, *exc)
                now = _perf()
                _records.append(("lock", held[0], held[2] - held[1], now - held[2]))

            dbmod._WriteLock.__enter__ = __enter__
            dbmod._WriteLock.__exit__ = __exit__
            dbmod._WriteLock._traced = True
        feedmod = sys.modules.get("gateway.feed")
        if feedmod is not None and not getattr(feedmod.FeedReader, "_traced", False):
            orig_cu = feedmod.FeedReader.catch_up

            async def catch_up(self):  # type: ignore[no-untyped-def]
                t0, w0 = _perf(), _wall()
                n = await orig_cu(self)
                if n:
                    _records.append(("feed", w0, _perf() - t0, n))
                return n

            feedmod.FeedReader.catch_up = catch_up
            feedmod.FeedReader._traced = True

    import asyncio
    import asyncio.events

    _orig_set = asyncio.events.set_event_loop
    _monitored: set[int] = set()

    def set_event_loop(loop) -> None:  # type: ignore[no-untyped-def]
        _orig_set(loop)
        if loop is not None and id(loop) not in _monitored:
            _monitored.add(id(loop))
            loop.call_soon(_start_monitor, loop)

    asyncio.events.set_event_loop = set_event_loop
    asyncio.set_event_loop = set_event_loop
