"""The perfetto view: Chrome trace-event JSON for ui.perfetto.dev (or chrome://tracing).

Layout, in virtual time (microseconds, as the simulator counts them):

- a process per participant (each client, each replica, the broker), in the
  mermaid view's order; its first thread is its track;
- a slice per worker on its replica's track (``service.method``, from
  worker_start to worker_end) and a slice per call on a client's track (from
  publish to the reply, timeout or failure). A replica running several
  workers at once gets more threads ("workers 2", ...) so that slices on one
  thread always nest, as the format requires;
- a flow per message delivered (request, reply or event): a zero-length
  ``publish`` slice inside the sending worker or call, a zero-length
  ``deliver`` slice inside the receiving one, joined by a flow (version 2
  flow events: ``bind_id`` with ``flow_out`` / ``flow_in``, so each end
  binds to its own slice);
- every event of the log as a process-scoped instant with its fields as args.

The output is deterministic: events are sorted on (timestamp, kind of
event, sequence number), and JSON keys are sorted.
"""

from __future__ import annotations

import json
from typing import Any

import attrs

from shimeji.views.log import EventLog, EventRecord
from shimeji.views.model import (
    BROKER,
    CLIENT,
    TraceModel,
    Worker,
    describe_dispatch,
    describe_reply,
    describe_request,
)

__all__ = ["render_perfetto", "trace_events"]


@attrs.define(slots=True)
class _Slice:
    participant: str
    name: str
    cat: str
    start: int
    end: int
    args: dict[str, Any]
    lane: int = 0
    order: int = 0  # tie-break: the seq of the event that began it
    flow: int = 0  # the flow this message end belongs to (0: none)
    flow_key: str = ""  # "flow_out" or "flow_in"


def _lanes(slices: list[_Slice]) -> None:
    """Give each slice a lane (thread) where it does not overlap another slice.

    Greedy in order of start (longest first on ties): the first lane whose
    last slice ended at or before this one's start.
    """
    ends: dict[str, list[int]] = {}
    for item in sorted(slices, key=lambda s: (s.start, -(s.end - s.start), s.order)):
        lanes = ends.setdefault(item.participant, [])
        for index, end in enumerate(lanes):
            if end <= item.start:
                item.lane = index
                lanes[index] = item.end
                break
        else:
            item.lane = len(lanes)
            lanes.append(item.end)


def trace_events(log: EventLog) -> list[dict[str, Any]]:
    """The trace events (dicts) of the perfetto view, in order."""
    model = TraceModel(log)
    participants = model.participants
    pids = {label: index + 1 for index, (label, _) in enumerate(participants)}
    roles = dict(participants)
    for record in log.records:  # labels only lifecycle events mention come last
        if record.replica not in pids:
            pids[record.replica] = len(pids) + 1
            roles[record.replica] = BROKER if record.replica == BROKER else "replica"
    last_us = log.records[-1].time_us if log.records else 0

    def pid(label: str) -> int:
        return pids[label]

    # -- slices: workers on replicas, calls on clients --------------------------------
    slices: list[_Slice] = []
    by_worker: dict[str, _Slice] = {}  # call id -> slice
    by_call: dict[str, _Slice] = {}  # correlation id -> client call slice
    for worker in model.workers:
        end = worker.end_us if worker.end_us is not None else last_us
        item = _Slice(
            worker.replica,
            f"{worker.service}.{worker.method}",
            "worker",
            worker.start_us,
            end,
            {
                "call_id": worker.call_id,
                "correlation_id": worker.correlation_id,
                "outcome": worker.outcome or "unfinished",
            },
            order=worker.start_seq,
        )
        slices.append(item)
        by_worker[worker.call_id] = item
    for call in model.calls.values():
        if roles.get(call.caller) != CLIENT:
            continue
        end = call.end_us if call.end_us is not None else last_us
        outcome = call.end_kind or "unanswered"
        if call.end_kind == "reply":
            outcome = describe_reply(call.reply, limit=200)
        item = _Slice(
            call.caller,
            f"call {call.service}.{call.method}",
            "call",
            call.publish_us,
            end,
            {
                "correlation_id": call.correlation_id,
                "call_id": call.caller_call_id,
                "request": describe_request(call.method, call.request, limit=200),
                "outcome": outcome,
            },
            order=call.publish_seq,
        )
        slices.append(item)
        by_call[call.correlation_id] = item
    _lanes(slices)

    # -- message ends: zero-length slices bound by flows ---------------------------------
    flow_ids = 0
    workers_by_request: dict[tuple[str, str], list[Worker]] = {}
    for worker in model.workers:
        key = (worker.correlation_id or "", worker.replica)
        workers_by_request.setdefault(key, []).append(worker)
    sources: dict[int, tuple[str, int, _Slice | None]] = {}  # publish/reply seq -> end
    for record in log.records:
        if record.kind in ("publish", "reply", "dispatch"):
            host = by_worker.get(record.call_id or "") or by_call.get(record.correlation_id or "")
            sources[record.seq] = (record.replica, record.time_us, host)
    # (corr, "publish" | "reply" | "dispatch") -> seq
    last_source: dict[tuple[str, str], int] = {}
    for record in log.records:
        if record.kind in ("publish", "reply", "dispatch") and record.correlation_id:
            last_source[(record.correlation_id, record.kind)] = record.seq
            continue
        if record.kind != "deliver" or not record.correlation_id:
            continue
        request = model.is_request(record)
        event = not request and model.is_event(record)
        source_kind = "publish" if request else "dispatch" if event else "reply"
        source_seq = last_source.get((record.correlation_id, source_kind))
        if source_seq is None:
            continue
        sender, sent_us, sender_host = sources[source_seq]
        if event:
            receiver_host = _worker_for(workers_by_request, record, by_worker)
            name = "event " + describe_dispatch(record.method, record.message, limit=80)
        elif request:
            receiver_host = _worker_for(workers_by_request, record, by_worker)
            name = describe_request(record.method, record.message, limit=80)
        else:
            receiver_host = _reply_host(model, record, by_call, by_worker)
            name = "reply: " + describe_reply(record.message, limit=80)
        flow_ids += 1
        args = {"correlation_id": record.correlation_id, "seq": record.seq}
        out = _Slice(sender, f"publish {name}", "message", sent_us, sent_us, args, order=source_seq)
        into = _Slice(
            record.replica,
            f"deliver {name}",
            "message",
            record.time_us,
            record.time_us,
            args,
            order=record.seq,
        )
        for piece, host, key in ((out, sender_host, "flow_out"), (into, receiver_host, "flow_in")):
            piece.flow, piece.flow_key = flow_ids, key
            if (
                host is not None
                and host.participant == piece.participant
                and (host.start <= piece.start <= host.end)
            ):
                piece.lane = host.lane
            else:
                piece.lane = _free_lane(piece, slices)
            slices.append(piece)

    # -- output ----------------------------------------------------------------------------
    events: list[dict[str, Any]] = []
    lanes_used: dict[str, int] = {}
    for item in slices:
        lanes_used[item.participant] = max(lanes_used.get(item.participant, 0), item.lane + 1)
    for label, number in pids.items():
        events.append(_meta("process_name", number, 0, {"name": label}))
        events.append(_meta("process_sort_index", number, 0, {"sort_index": number}))
        role = roles.get(label, "replica")
        noun = "calls" if role == CLIENT else ("broker" if role == BROKER else "workers")
        for lane in range(max(1, lanes_used.get(label, 0))):
            name = noun if lane == 0 else f"{noun} {lane + 1}"
            events.append(_meta("thread_name", number, lane + 1, {"name": name}))
            events.append(_meta("thread_sort_index", number, lane + 1, {"sort_index": lane}))
    body: list[tuple[tuple[int, int, int, int], dict[str, Any]]] = []
    for item in slices:
        event: dict[str, Any] = {
            "ph": "X",
            "name": item.name,
            "cat": item.cat,
            "pid": pid(item.participant),
            "tid": item.lane + 1,
            "ts": item.start,
            "dur": item.end - item.start,
            "args": item.args,
        }
        if item.flow:
            event["bind_id"] = item.flow
            event[item.flow_key] = True
        # Longer slices first on equal timestamps, so that shorter ones nest in them.
        body.append(((item.start, 0, -(item.end - item.start), item.order), event))
    for record in log.records:
        body.append(((record.time_us, 1, 0, record.seq), _instant(record, pid(record.replica))))
    body.sort(key=lambda pair: pair[0])
    events.extend(event for _, event in body)
    return events


def _worker_for(
    workers: dict[tuple[str, str], list[Worker]],
    record: EventRecord,
    by_worker: dict[str, _Slice],
) -> _Slice | None:
    """The worker that handled the request a deliver event handed over."""
    for worker in workers.get((record.correlation_id or "", record.replica), ()):
        if worker.start_seq > record.seq:
            return by_worker.get(worker.call_id)
    return None


def _reply_host(
    model: TraceModel,
    record: EventRecord,
    by_call: dict[str, _Slice],
    by_worker: dict[str, _Slice],
) -> _Slice | None:
    """The slice waiting for a reply: the client's call, or the worker that called."""
    call = model.call(record.correlation_id)
    if call is None or call.caller != record.replica:
        return None
    return by_call.get(call.correlation_id) or by_worker.get(call.caller_call_id or "")


def _free_lane(piece: _Slice, slices: list[_Slice]) -> int:
    """A lane of the participant where no slice is open at the piece's time."""
    busy = {
        item.lane
        for item in slices
        if item.participant == piece.participant
        and item.cat != "message"
        and item.start < piece.start < item.end
    }
    lane = 0
    while lane in busy:
        lane += 1
    return lane


def _meta(name: str, pid: int, tid: int, args: dict[str, Any]) -> dict[str, Any]:
    return {"ph": "M", "name": name, "pid": pid, "tid": tid, "args": args}


def _instant(record: EventRecord, pid: int) -> dict[str, Any]:
    args: dict[str, Any] = {"seq": record.seq, "replica": record.replica}
    for key in ("service", "method", "call_id", "correlation_id", "detail"):
        value = getattr(record, key)
        if value:
            args[key] = value
    name = f"{record.kind} {record.target}".strip()
    return {
        "ph": "i",
        "s": "p",
        "name": name,
        "cat": record.kind,
        "pid": pid,
        "tid": 1,
        "ts": record.time_us,
        "args": args,
    }


def render_perfetto(log: EventLog, title: str = "shimeji trace") -> str:
    """The JSON document (object form, with ``traceEvents``), ending with a newline."""
    document = {
        "displayTimeUnit": "ms",
        "otherData": {"title": title, "clock": "virtual time of the simulation"},
        "traceEvents": trace_events(log),
    }
    return json.dumps(document, sort_keys=True, ensure_ascii=False) + "\n"
