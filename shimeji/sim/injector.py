"""The fault injector: applies a fault plan to one simulated cluster.

Message faults (drop, delay, duplicate, corrupt) are decided when the broker
accepts a message: the bus calls ``on_publish`` for each. Time faults (crash,
partition, outage) are events in the scheduler. ``CrashDuring`` kills the
replica running a given call, from the containers' worker-start hook
(``worker_started``). Each fault is a trace event whose kind starts with
``fault``. The plans themselves are data, in ``shimeji.sim.faults``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import Any

import attrs

from shimeji.core.events import Event
from shimeji.core.protocol import event_source
from shimeji.core.tracing import Tracer
from shimeji.core.transport import Message
from shimeji.sim.faults import (
    CORRUPT_BODY,
    BrokerOutage,
    Corrupt,
    Crash,
    CrashDuring,
    Delay,
    Drop,
    Duplicate,
    FaultPlan,
    Partition,
    resolve_predicate,
)
from shimeji.sim.scheduler import GreenletExit, Scheduler, SimTimer, to_us

__all__ = ["FaultInjector", "FaultTarget"]


class _Rule:
    """A message fault and how many messages it has seen and hit."""

    __slots__ = ("fault", "hit", "predicate", "seen")

    def __init__(self, fault: Any) -> None:
        self.fault = fault
        self.seen = 0
        self.hit = 0
        self.predicate = resolve_predicate(fault.predicate) if fault.predicate else None


@attrs.frozen
class FaultTarget:
    """What faults act on, as callables (a ``SimCluster`` provides them).

    ``crash(replica, reason, restart_after)`` kills a replica as a fault does;
    ``partition(label)`` / ``heal(label)`` cut and restore a connection;
    ``outage(seconds, restart)`` takes the broker down.
    """

    crash: Callable[[str, str, float | None], None]
    partition: Callable[[str], None]
    heal: Callable[[str], None]
    outage: Callable[[float, bool], None]


class FaultInjector:
    """Applies fault plans to one cluster: ``target`` is what faults act on,
    ``rng`` the cluster's seeded generator (probabilities, jitter), ``tracer``
    where fault events go."""

    def __init__(
        self, scheduler: Scheduler, rng: random.Random, tracer: Tracer, target: FaultTarget
    ) -> None:
        self.scheduler = scheduler
        self.rng = rng
        self.tracer = tracer
        self.target = target
        self.plan = FaultPlan()
        self._rules: list[_Rule] = []
        self._crash_during: list[list[Any]] = []  # [fault, calls seen]
        self._requests: dict[str, tuple[str, str]] = {}  # correlation id -> (service, method)

    @property
    def has_message_faults(self) -> bool:
        """Whether the bus must show this injector every message it accepts."""
        return bool(self._rules)

    @property
    def has_call_faults(self) -> bool:
        """Whether containers must tell this injector of every worker that starts."""
        return bool(self._crash_during)

    def add(self, plan: FaultPlan) -> list[SimTimer]:
        """Arm the faults of ``plan`` (time faults are scheduled from now on); the
        timers of its time faults are returned, for ``disarm``."""
        self.plan = self.plan + plan
        scheduler = self.scheduler
        start = scheduler.clock.now_us
        timers: list[SimTimer] = []
        for fault in plan:
            if isinstance(fault, (Drop, Delay, Duplicate, Corrupt)):
                self._rules.append(_Rule(fault))
            elif isinstance(fault, CrashDuring):
                self._crash_during.append([fault, 0])
            elif isinstance(fault, Crash):
                when = max(start, to_us(fault.at))
                timers.append(
                    scheduler.call_at(
                        when,
                        self.target.crash,
                        fault.replica,
                        f"fault plan: {fault!r}",
                        fault.restart_after,
                    )
                )
            elif isinstance(fault, Partition):
                when = max(start, to_us(fault.at))
                timers.append(scheduler.call_at(when, self.target.partition, fault.replica))
                timers.append(
                    scheduler.call_at(when + to_us(fault.duration), self.target.heal, fault.replica)
                )
            elif isinstance(fault, BrokerOutage):
                when = max(start, to_us(fault.at))
                timers.append(
                    scheduler.call_at(when, self.target.outage, fault.duration, fault.restart)
                )
        return timers

    def disarm(self, plan: FaultPlan, timers: list[SimTimer]) -> None:
        """Take back the faults of ``plan``, armed by ``add`` (which gave ``timers``):
        none of them fires. ``self.plan`` still lists them, as they were given."""
        faults = list(plan)

        def armed(fault: Any) -> bool:
            return not any(fault is taken for taken in faults)

        for timer in timers:
            timer.cancel()
        self._rules = [rule for rule in self._rules if armed(rule.fault)]
        self._crash_during = [entry for entry in self._crash_during if armed(entry[0])]

    # -- message faults, called by the bus ----------------------------------------------

    def on_publish(self, message: Message) -> tuple[int, int, Message, str | None]:
        """``(copies, extra delay in us, message, malformed)`` for a message the broker
        accepted: 0 copies means it is lost; ``message`` is what is delivered
        (its body corrupted, maybe); ``malformed`` says why its deliveries cannot
        be decoded, if they cannot."""
        correlation_id = message.correlation_id or ""
        source = event_source(message.exchange)
        if source is not None:  # an event: its source service and event type
            direction, service, method = "event", source, message.routing_key
        elif "." in message.routing_key:  # service.method: a request
            direction = "request"
            service, _, method = message.routing_key.rpartition(".")
            self._requests[correlation_id] = (service, method)
        else:  # a reply id
            direction = "reply"
            service, method = self._requests.get(correlation_id, ("", ""))
        copies, delay_us, malformed = 1, 0, None
        for rule in self._rules:
            fault = rule.fault
            if not fault.matches(direction, service, method):
                continue
            if rule.predicate is not None and not rule.predicate(
                direction, service, method, message
            ):
                continue
            rule.seen += 1
            if rule.seen <= fault.skip or (fault.count is not None and rule.hit >= fault.count):
                continue
            if fault.probability is not None and self.rng.random() >= fault.probability:
                continue
            rule.hit += 1
            what = f"{direction} {service}.{method}"
            if isinstance(fault, Drop):
                kind, detail = "fault_drop", f"{what} lost"
            elif isinstance(fault, Corrupt):
                kind = "fault_corrupt"
                if fault.part == "body":
                    message = dataclasses.replace(message, body=CORRUPT_BODY)
                    detail = f"{what} corrupted: its body replaced by bytes no codec reads"
                else:
                    malformed = "its content_type is not UTF-8"
                    detail = f"{what} corrupted: its properties made undecodable"
            elif isinstance(fault, Duplicate):
                copies += 1
                kind, detail = "fault_duplicate", f"{what} will be delivered twice"
            else:
                seconds = fault.seconds
                if fault.jitter:
                    seconds += self.rng.uniform(0, fault.jitter)
                delay_us += to_us(seconds)
                kind, detail = "fault_delay", f"{what} held {seconds:.6f}s"
            self.tracer.emit(
                Event(
                    kind=kind,
                    replica="broker",
                    service=service,
                    method=method,
                    correlation_id=correlation_id,
                    detail=detail,
                    message=message,
                )
            )
            if kind == "fault_drop":
                return 0, 0, message, None
        return copies, delay_us, message, malformed

    # -- call faults, called by the containers ------------------------------------------

    def worker_started(self, worker_ctx: Any) -> None:
        """A worker starts (``ServiceContainer.on_worker_start``): crash its replica
        if a ``CrashDuring`` fault aims at this call."""
        if not self._crash_during:
            return
        service, method = worker_ctx.service_name, worker_ctx.method_name
        firing = None
        for entry in self._crash_during:  # every matching fault counts the call
            fault, seen = entry
            if fault.service != service or fault.method not in (None, method):
                continue
            entry[1] = seen = seen + 1
            if seen == fault.nth and firing is None:
                firing = fault, seen
        if firing is not None:
            fault, seen = firing
            current = self.scheduler.current_task()
            self.target.crash(
                worker_ctx.container.replica_name,
                f"fault plan: {fault!r} during call {seen}",
                fault.restart_after,
            )
            if current is not None and current.killed:
                raise GreenletExit  # the worker stops here, mid-call
