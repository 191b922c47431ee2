"""An in-process scheduler for periodic jobs. Each job is an ``async fn(now)``; ``now`` comes
from an injectable clock, and ``tick(now)`` runs whatever is due, so tests drive time by hand."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from store import leases
from store.util import iso, parse_iso, utcnow

from ..tasks import wait_event

JobFn = Callable[[datetime], Awaitable[Any]]
MAX_SLEEP = 60.0  # re-read the clock at least this often


class Job:
    def __init__(self, name: str, interval: float, fn: JobFn, next_run: datetime) -> None:
        self.name = name
        self.interval = timedelta(seconds=interval)
        self.fn = fn
        self.next_run = next_run
        self.last_run: datetime | None = None
        self.last_error: str | None = None
        self.runs = 0


class Scheduler:
    def __init__(self, log: Any, clock: Callable[[], datetime] = utcnow) -> None:
        self.log = log
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Called after each run (several workers: records it in the store).
        self.on_run: Callable[[str, datetime], Awaitable[Any]] | None = None

    async def resume(self, last_runs: dict[str, str]) -> None:
        """Keep each job's period from its last run (by whichever process ran it)."""
        now = self.clock()
        for job in self.jobs.values():
            last = last_runs.get(job.name)
            if last is not None:
                job.next_run = max(now, parse_iso(last) + job.interval)

    def add(self, name: str, interval: float, fn: JobFn, *, first_in: float | None = None) -> None:
        """Run ``fn`` every ``interval`` seconds; first after ``first_in`` (default: one interval)."""
        if interval <= 0:
            return
        delay = interval if first_in is None else first_in
        self.jobs[name] = Job(name, interval, fn, self.clock() + timedelta(seconds=delay))

    async def tick(self, now: datetime) -> list[str]:
        """Run every job due at ``now`` (one after another); returns the names run."""
        ran = []
        for job in self.jobs.values():
            if job.next_run > now:
                continue
            try:
                await job.fn(now)
                job.last_error = None
            except Exception as exc:  # one failing job must not stop the others
                job.last_error = f"{type(exc).__name__}: {exc}"
                self.log.exception("job %s failed", job.name)
            job.last_run = now
            job.runs += 1
            job.next_run = now + job.interval
            ran.append(job.name)
            if self.on_run is not None:
                try:
                    await self.on_run(job.name, now)
                except Exception as exc:
                    self.log.error("job %s: could not record its run: %s", job.name, exc)
        return ran

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="scheduler")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        while not self._stop.is_set():
            await self.tick(self.clock())
            if not self.jobs:
                wait = MAX_SLEEP
            else:
                nxt = min(j.next_run for j in self.jobs.values())
                wait = min(MAX_SLEEP, max(0.0, (nxt - self.clock()).total_seconds()))
            await wait_event(self._stop, wait)

    def status(self) -> dict[str, Any]:
        alive = self._task is not None and not self._task.done()
        return {"ok": alive, "jobs": {
            j.name: {"every": j.interval.total_seconds(), "runs": j.runs,
                     "last_run": iso(j.last_run) if j.last_run else None,
                     "next_run": iso(j.next_run), "last_error": j.last_error}
            for j in self.jobs.values()}}


def install(app: Any) -> None:
    """Start the periodic jobs after the server starts; stop them first on shutdown."""
    from . import expiry, health, rollup

    @app.after_server_start
    async def _start(app: Any) -> None:
        ctx = app.ctx
        cluster = ctx.cluster

        async def start() -> None:
            s = ctx.settings
            sched = Scheduler(ctx.log)
            sched.add("channel_health", s.health_interval, lambda now: health.run(ctx, now))
            sched.add("conversation_expiry", s.expiry_interval, lambda now: expiry.run(ctx, now))
            sched.add("prune", s.prune_interval, lambda now: expiry.prune(ctx, now))
            sched.add("analytics_rollup", s.analytics_interval, lambda now: rollup.run(ctx, now))
            if cluster is not None or ctx.node is not None:
                # The scheduler moves between processes (worker processes, or nodes on
                # PostgreSQL): each job keeps its period across owners (its last run is in the
                # store), and every run is recorded there.
                await sched.resume(await ctx.db.read(leases.job_last_runs))
                pid = cluster.pid if cluster is not None else os.getpid()
                sched.on_run = lambda name, now: ctx.db.write(leases.job_ran, name, iso(now), pid)
            ctx.scheduler = sched
            ctx.readiness["jobs"] = sched.status
            sched.start()

        async def stop() -> None:
            sched = ctx.scheduler
            ctx.readiness.pop("jobs", None)
            if sched is not None:
                ctx.scheduler = None
                await sched.stop()

        from ..cluster import singleton

        await singleton(app, "scheduler", start, stop)

    @app.before_server_stop
    async def _stop(app: Any) -> None:
        sched = app.ctx.scheduler
        if sched is not None:
            await sched.stop()
