"""The trace: events with their fields, and the text, jsonl and mermaid views."""

from __future__ import annotations

import contextlib
import dataclasses
import json

from shimeji.exceptions import RemoteError
from shimeji.sim import TraceEvent

from .services import CalculatorService, UserService

REQUIRED = ("seq", "time", "kind", "service", "method", "replica", "call_id", "correlation_id")


def test_events_are_dataclasses_with_the_required_fields(sim_cluster):
    """Events are dataclasses carrying time, kind, service, method, replica and ids."""
    sim_cluster.add_service(CalculatorService)
    sim_cluster.rpc.calculator.add(1, 2)
    events = sim_cluster.trace.events
    assert events and all(isinstance(e, TraceEvent) and dataclasses.is_dataclass(e) for e in events)
    names = {f.name for f in dataclasses.fields(TraceEvent)}
    assert set(REQUIRED) <= names
    assert [e.seq for e in events] == list(range(len(events)))
    assert [e.time for e in events] == sorted(e.time for e in events)


def test_one_call_step_by_step(sim_cluster):
    """A call is publish, deliver, worker_start, worker_end, reply, ack, deliver."""
    sim_cluster.add_service(CalculatorService)
    sim_cluster.trace.clear()
    sim_cluster.rpc.calculator.add(1, 2)
    events = sim_cluster.trace.events
    assert [e.kind for e in events] == [
        "publish",
        "deliver",
        "worker_start",
        "worker_end",
        "reply",
        "ack",
        "deliver",
    ]
    assert [e.replica for e in events] == [
        "client",
        "calculator-1",
        "calculator-1",
        "calculator-1",
        "calculator-1",
        "calculator-1",
        "client",
    ]
    assert all(e.service == "calculator" and e.method == "add" for e in events)
    corr = events[0].correlation_id
    assert all(
        e.correlation_id == corr for e in events if e.kind not in ("worker_start", "worker_end")
    )
    assert events[2].call_id == events[3].call_id == events[4].call_id
    assert events[2].call_id.startswith("calculator.add.")
    assert [e.time for e in events] == [0.0, 0.001, 0.001, 0.001, 0.001, 0.001, 0.002]
    assert not events[1].is_reply and events[6].is_reply


def test_text_timeline(sim_cluster):
    """str(trace) is an aligned timeline with one line per event."""
    sim_cluster.add_service(CalculatorService)
    sim_cluster.add_service(UserService)
    sim_cluster.rpc.user_service.calculate_user_score("u", 2, 3)
    text = str(sim_cluster.trace)
    lines = text.splitlines()
    assert lines[0].split() == ["time", "replica", "event", "target", "call", "corr", "detail"]
    assert len(lines) == len(sim_cluster.trace) + 1
    column = lines[0].index("event")
    assert all(line[column - 2 : column] == "  " for line in lines[1:])
    assert "user_service-1  worker_start" in text


def test_jsonl(sim_cluster):
    """to_jsonl() is one JSON object per event."""
    sim_cluster.add_service(CalculatorService)
    with contextlib.suppress(RemoteError):
        sim_cluster.rpc.calculator.divide(1, 0)
    rows = [json.loads(line) for line in sim_cluster.trace.to_jsonl().splitlines()]
    assert len(rows) == len(sim_cluster.trace)
    assert set(REQUIRED) <= set(rows[0])
    assert any(r["kind"] == "worker_end" and "ValueError" in r["detail"] for r in rows)


def test_mermaid(sim_cluster):
    """to_mermaid() is a sequence diagram with a participant per replica and client."""
    sim_cluster.add_service(CalculatorService, replicas=2)
    sim_cluster.add_service(UserService)
    sim_cluster.rpc.user_service.calculate_user_score("u", 2, 3)
    diagram = sim_cluster.trace.to_mermaid()
    assert diagram.startswith("sequenceDiagram\n")
    assert "actor P0 as client" in diagram  # the one mermaid view draws clients as actors
    assert "as user_service-1" in diagram and "as calculator-1" in diagram
    assert "->>" in diagram and "-->>" in diagram
    assert diagram.count("->>") == 4


def test_trace_can_be_turned_off():
    """trace=False records nothing (for the fastest runs)."""
    from shimeji.sim import SimCluster

    with SimCluster(trace=False) as cluster:
        cluster.add_service(CalculatorService)
        assert cluster.rpc.calculator.add(1, 1) == 2
        assert len(cluster.trace) == 0
