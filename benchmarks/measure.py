"""Timing loops shared by the AMQP benchmark's clients (standard library only: the
nameko client imports it from nameko's own virtualenv).

``call(x)`` makes one blocking call; ``call_async(x)`` starts one and returns
an object whose ``result()`` waits for it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["events", "percentile", "pipelined", "sequential"]


def percentile(sorted_values: list[float], fraction: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(fraction * (len(sorted_values) - 1))))
    return sorted_values[index]


def sequential(call: Callable[[int], Any], calls: int, warmup: int) -> dict[str, float]:
    """Round trips one after another: p50 and p99 latency (ms) and calls per second."""
    for i in range(warmup):
        call(i)
    latencies = []
    clock = time.perf_counter
    began = clock()
    for i in range(calls):
        start = clock()
        result = call(i)
        latencies.append(clock() - start)
        if result != i:
            raise AssertionError(f"call {i} returned {result!r}")
    elapsed = clock() - began
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "calls_per_s": calls / elapsed,
    }


def pipelined(call_async: Callable[[int], Any], calls: int, in_flight: int) -> float:
    """Calls per second with ``in_flight`` calls outstanding from one client."""
    pending: deque[tuple[int, Any]] = deque()
    began = time.perf_counter()
    for i in range(calls):
        pending.append((i, call_async(i)))
        if len(pending) >= in_flight:
            expected, reply = pending.popleft()
            if reply.result() != expected:
                raise AssertionError(f"call {expected} returned a wrong result")
    while pending:
        expected, reply = pending.popleft()
        if reply.result() != expected:
            raise AssertionError(f"call {expected} returned a wrong result")
    return calls / (time.perf_counter() - began)


def events(
    dispatch: Callable[[int], Any], count: Callable[[], int], events: int
) -> dict[str, float]:
    """Dispatch ``events`` events one after another, then wait until the service's
    ``count()`` has grown by as many: dispatches per second, and events handled
    per second from the first dispatch to the last one handled."""
    clock = time.perf_counter
    before = count()
    began = clock()
    for i in range(events):
        dispatch(i)
    dispatched = clock() - began
    while count() < before + events:
        time.sleep(0.005)
    handled = clock() - began
    return {"dispatch_per_s": events / dispatched, "handled_per_s": events / handled}
