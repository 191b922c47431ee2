"""The original's Prometheus metric names, exported in ``/metrics`` beside
converger's own so that its dashboards and alerts keep working (docs/observability.md).

Written as text after prometheus-client's exposition, in the original's form: counters keep
their names without ``_total`` (``phoenix_http_request_count{status="200"}``), last values are
gauges, durations in milliseconds. The counters are derived at scrape time from converger's own
families, so with worker processes (multiprocess mode) they add up over every process like
those do. The last values come from gauges in converger's registry (``livemostrecent`` with
worker processes). Names converger has nothing to measure for are exported as 0 (or without
samples when they carry labels); docs/observability.md lists which is which.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import Gauge
from prometheus_client.metrics_core import Metric

# Every name the original exports, by kind, in its order.
LAST_VALUES = (
    "phoenix_endpoint_start_system_time", "phoenix_endpoint_stop_duration",
    "phoenix_router_dispatch_start_system_time", "phoenix_router_dispatch_exception_duration",
    "phoenix_router_dispatch_stop_duration", "phoenix_socket_connected_duration",
    "phoenix_channel_joined_duration", "phoenix_channel_handled_in_duration",
    "converger_repo_query_total_time", "converger_repo_query_decode_time",
    "converger_repo_query_query_time", "converger_repo_query_queue_time",
    "converger_repo_query_idle_time", "vm_memory_total", "vm_total_run_queue_lengths_total",
    "vm_total_run_queue_lengths_cpu", "vm_total_run_queue_lengths_io",
    "oban_job_exception_duration",
)
SUMS = ("phoenix_socket_drain_count",)
COUNTERS = ("converger_activities_create_count", "phoenix_socket_connected_count",
            "phoenix_channel_joined_count", "phoenix_http_request_count",
            "converger_repo_query_count")
NAMES = LAST_VALUES + SUMS + COUNTERS
# Converger's own counter each original counter is derived from (sample name, label kept).
_DERIVED: dict[str, tuple[str, str | None]] = {
    "converger_activities_create_count": ("converger_activities_created_total", None),
    "phoenix_socket_connected_count": ("converger_websocket_connects_total", None),
    "phoenix_http_request_count": ("converger_http_requests_total", "status"),
}
_LABELED = {"phoenix_router_dispatch_start_system_time", "phoenix_router_dispatch_exception_duration",
            "phoenix_router_dispatch_stop_duration", "phoenix_channel_handled_in_duration"}


def gauges(registry: Any) -> dict[str, Gauge]:
    """The last-value gauges set by the request hook (in converger's registry)."""
    mode: Any = "livemostrecent"
    return {
        "phoenix_endpoint_start_system_time": Gauge(
            "phoenix_endpoint_start_system_time", "Original name: when the last request started "
            "(unix ms).", registry=registry, multiprocess_mode=mode),
        "phoenix_endpoint_stop_duration": Gauge(
            "phoenix_endpoint_stop_duration", "Original name: the last request's duration (ms).",
            registry=registry, multiprocess_mode=mode),
        "phoenix_router_dispatch_start_system_time": Gauge(
            "phoenix_router_dispatch_start_system_time", "Original name: when the route last "
            "started a request (unix ms).", ["route"], registry=registry, multiprocess_mode=mode),
        "phoenix_router_dispatch_stop_duration": Gauge(
            "phoenix_router_dispatch_stop_duration", "Original name: the route's last request "
            "duration (ms).", ["route"], registry=registry, multiprocess_mode=mode),
        "phoenix_router_dispatch_exception_duration": Gauge(
            "phoenix_router_dispatch_exception_duration", "Original name: the route's last "
            "failed (5xx) request duration (ms).", ["route"], registry=registry,
            multiprocess_mode=mode),
    }


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labels: dict[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {float(value)!r}\n" if inner else f"{name} {float(value)!r}\n"


def _memory_kb() -> float:
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        import os

        return pages * os.sysconf("SC_PAGE_SIZE") / 1024
    except (OSError, ValueError, IndexError):
        import resource

        return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _run_queue() -> float:
    """Callbacks ready to run on this process's event loop (its run queue)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0.0
    return float(len(getattr(loop, "_ready", ())))


def text(families: Iterable[Metric], probe_ms: dict[str, float] | None = None) -> str:
    """The original's names as exposition text, from converger's collected ``families``
    (after multiprocess aggregation) and ``probe_ms``, the scrape's own database query timings
    (``query``, ``queue``)."""
    fams = {f.name: f for f in families}
    samples: dict[str, list[Any]] = {}
    for fam in fams.values():
        for s in fam.samples:
            samples.setdefault(s.name, []).append(s)
    out: list[str] = []
    probe = probe_ms or {}
    fixed = {
        "converger_repo_query_query_time": probe.get("query", 0.0),
        "converger_repo_query_queue_time": probe.get("queue", 0.0),
        "converger_repo_query_total_time": probe.get("query", 0.0) + probe.get("queue", 0.0),
        "vm_memory_total": _memory_kb(),
        "vm_total_run_queue_lengths_total": _run_queue(),
        "vm_total_run_queue_lengths_cpu": _run_queue(),
    }
    for name in NAMES:
        kind = "counter" if name in COUNTERS else "gauge"
        out.append(f"# HELP {name} The original's {name} (docs/observability.md).\n")
        out.append(f"# TYPE {name} {kind}\n")
        if name in _DERIVED:
            source, label = _DERIVED[name]
            totals: dict[str, float] = {}
            for s in samples.get(source, []):
                key = s.labels.get(label, "") if label else ""
                totals[key] = totals.get(key, 0.0) + s.value
            if label is None:
                out.append(_line(name, {}, totals.get("", 0.0)))
            else:
                out.extend(_line(name, {label: k}, v) for k, v in sorted(totals.items()))
        elif name in fams:  # a last-value gauge in converger's registry
            out.extend(_line(name, s.labels, s.value) for s in samples.get(name, [])
                       if s.name == name)
        elif name in _LABELED:
            pass  # a labelled series nothing sets: the family without samples
        else:
            out.append(_line(name, {}, fixed.get(name, 0.0)))
    return "".join(out)


def now_ms() -> float:
    return time.time() * 1000
