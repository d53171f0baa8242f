"""The perfetto view: Chrome trace-event JSON, checked for the structure Perfetto needs."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from shimeji.views import EventLog
from shimeji.views.perfetto import render_perfetto
from tests.views.scenarios import EXAMPLES, concurrent_cluster, example_log, timeout_cluster


def check_structure(document: dict) -> list[dict]:
    """What Perfetto's JSON importer relies on; returns the trace events."""
    events = document["traceEvents"]
    named_processes, named_threads = set(), set()
    slices = defaultdict(list)
    flows = defaultdict(list)
    last_ts = -1
    for event in events:
        assert event["ph"] in ("M", "X", "i"), event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int)
        if event["ph"] == "M":
            assert event["name"] in (
                "process_name",
                "process_sort_index",
                "thread_name",
                "thread_sort_index",
            )
            if event["name"] == "process_name":
                named_processes.add(event["pid"])
            if event["name"] == "thread_name":
                named_threads.add((event["pid"], event["tid"]))
            continue
        assert isinstance(event["ts"], int) and event["ts"] >= last_ts  # sorted by time
        last_ts = event["ts"]
        assert event["pid"] in named_processes
        if event["ph"] == "X":
            assert isinstance(event["dur"], int) and event["dur"] >= 0
            assert (event["pid"], event["tid"]) in named_threads
            slices[(event["pid"], event["tid"])].append(event)
            if "bind_id" in event:
                flows[event["bind_id"]].append(event)
        else:
            assert event["s"] == "p"
    # Slices on one thread nest: each starts after the enclosing one and ends within it.
    for track, items in slices.items():
        stack: list[tuple[int, int]] = []
        for item in items:
            start, end = item["ts"], item["ts"] + item["dur"]
            while stack and stack[-1][1] <= start and not (stack[-1][1] == start == end):
                stack.pop()
            if stack:
                assert end <= stack[-1][1], (track, item, stack)
            stack.append((start, end))
    # Each flow joins exactly one sending slice to one receiving slice, forward in time.
    for flow, ends in flows.items():
        assert len(ends) == 2, (flow, ends)
        out = next(e for e in ends if e.get("flow_out"))
        into = next(e for e in ends if e.get("flow_in"))
        assert out["ts"] <= into["ts"]
    return events


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_have_a_valid_structure(name):
    """Every example's perfetto JSON passes the structural checks."""
    log = example_log(name)
    events = check_structure(json.loads(render_perfetto(log)))
    workers = [e for e in events if e["ph"] == "X" and e["cat"] == "worker"]
    assert len(workers) == sum(1 for r in log if r.kind == "worker_start")
    flows = {e["bind_id"] for e in events if "bind_id" in e}
    assert len(flows) == sum(1 for r in log if r.kind == "deliver")
    instants = [e for e in events if e["ph"] == "i"]
    assert len(instants) == len(log)


def test_a_track_per_replica_and_client():
    """Processes are the participants, named as in the trace."""
    events = json.loads(render_perfetto(example_log("orders")))["traceEvents"]
    names = [e["args"]["name"] for e in events if e["name"] == "process_name"]
    assert names[:5] == [
        "client",
        "order_service-1",
        "payment_service-1",
        "inventory_service-1",
        "email_service-1",
    ]


def test_overlapping_workers_get_lanes_that_nest():
    """Workers of one replica that overlap go to more threads; every thread still nests."""
    log = EventLog.from_cluster(concurrent_cluster(), canonical_ids=True)
    events = check_structure(json.loads(render_perfetto(log)))
    lanes = {e["tid"] for e in events if e["ph"] == "X" and e["cat"] == "worker"}
    assert len(lanes) >= 2
    durations = sorted(e["dur"] for e in events if e["ph"] == "X" and e["cat"] == "worker")
    assert durations == [1_000_000, 2_000_000, 3_000_000]


def test_client_calls_end_at_their_timeout():
    """A call slice that timed out ends at the timeout and says so."""
    log = EventLog.from_cluster(timeout_cluster(), canonical_ids=True)
    events = check_structure(json.loads(render_perfetto(log)))
    calls = [e for e in events if e["ph"] == "X" and e["cat"] == "call"]
    assert calls[0]["dur"] == 1_000_000 and calls[0]["args"]["outcome"] == "timeout"


def test_the_checker_can_fail():
    """Misnested slices are caught by the structural check above."""
    bad = {
        "traceEvents": [
            {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "p"}},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 1, "args": {"name": "t"}},
            {"ph": "X", "name": "a", "cat": "w", "pid": 1, "tid": 1, "ts": 0, "dur": 10},
            {"ph": "X", "name": "b", "cat": "w", "pid": 1, "tid": 1, "ts": 5, "dur": 10},
        ]
    }
    with pytest.raises(AssertionError):
        check_structure(bad)
