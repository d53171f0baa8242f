"""Random service graphs and call plans, for property tests.

A graph is ``n`` services ``s0 .. s<n-1>``; service ``i`` may call any
service ``j > i`` (a DAG: no call can wait on itself). Each call carries a
``Plan``: what the called worker does (calls of its own, synchronous or with
``call_async``, a virtual sleep, then return a value or fail). ``expected``
computes, without any simulation, what a plan must return.
"""

from __future__ import annotations

import functools
from typing import Any

import attrs
from hypothesis import strategies as st

from shimeji.exceptions import PublishFailed, RemoteError, RpcTimeout, ServiceNotFound
from shimeji.rpc import RpcProxy, rpc

__all__ = ["Call", "Failure", "Plan", "consistent", "expected", "make_services", "plans"]


@attrs.frozen
class Call:
    target: int
    mode: str  # "sync" | "async"
    plan: Plan


@attrs.frozen
class Plan:
    value: int
    calls: tuple[Call, ...] = ()
    sleep: float = 0.0
    fail: bool = False

    def to_wire(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "sleep": self.sleep,
            "fail": self.fail,
            "calls": [[c.target, c.mode, c.plan.to_wire()] for c in self.calls],
        }


def expected(plan: Plan) -> Any:
    """What a worker running ``plan`` returns (or the error text it raises)."""
    children = []
    for call in plan.calls:
        outcome = expected(call.plan)
        children.append(
            {"error": f"ValueError failed {call.plan.value}"}
            if isinstance(outcome, Failure)
            else outcome
        )
    if plan.fail:
        return Failure(plan.value)
    return {"value": plan.value, "children": children}


@attrs.frozen
class Failure:
    value: int


def consistent(plan: Plan, outcome: Any) -> bool:
    """Whether ``outcome`` is what ``plan`` returns when some nested calls failed
    on the way: every value is the right one, and a call whose plan fails is
    never reported as a success."""
    if not isinstance(outcome, dict) or outcome.get("value") != plan.value or plan.fail:
        return False
    children = outcome.get("children")
    if not isinstance(children, list) or len(children) != len(plan.calls):
        return False
    for call, child in zip(plan.calls, children, strict=True):
        if isinstance(child, dict) and set(child) == {"error"}:
            continue
        if not consistent(call.plan, child):
            return False
    return True


# Each plan is drawn by one composite that draws its parts directly (rather
# than through ``st.builds`` and ``flatmap``, each a layer of draws of its own),
# and every strategy is made once: the same choices, in the same order, for
# less of Hypothesis' bookkeeping per example.
VALUES = st.integers(0, 99)
SLEEPS = st.sampled_from([0.0, 0.0, 0.01, 0.5])
FAILS = st.sampled_from([False, False, False, True])
MODES = st.sampled_from(["sync", "async"])


@functools.cache  # the same strategy for the same graph: Hypothesis builds each once
def plans(service: int, services: int, depth: int) -> st.SearchStrategy[Plan]:
    """Plans for a worker of ``service`` that may call services above it."""
    callees = tuple(range(service + 1, services))
    if depth == 0 or not callees:
        return _plan(None)
    return _plan(st.lists(_calls(callees, services, depth - 1), max_size=3))


@st.composite
def _plan(draw: st.DrawFn, calls: st.SearchStrategy[list[Call]] | None) -> Plan:
    value = draw(VALUES)
    return Plan(
        value=value,
        calls=() if calls is None else tuple(draw(calls)),
        sleep=draw(SLEEPS),
        fail=draw(FAILS),
    )


@functools.cache  # made once per graph, not at each draw
def _calls(callees: tuple[int, ...], services: int, depth: int) -> st.SearchStrategy[Call]:
    """One call to a service of ``callees``, with the plan its worker runs."""
    targets = st.sampled_from(callees)

    @st.composite
    def call(draw: st.DrawFn) -> Call:
        target = draw(targets)
        return Call(target=target, mode=draw(MODES), plan=draw(plans(target, services, depth)))

    return call()


@functools.cache
def make_services(count: int) -> tuple[type, ...]:
    """Service classes s0..s<count-1>, each able to run plans.

    Made once per count and shared by every example: a class holds no state
    of a run (each replica binds its own copies of the class's extensions, and
    the plan to run comes with each call), and a class seen before is one the
    containers need not scan again."""
    classes = []
    for index in range(count):

        def run(self: Any, plan: dict[str, Any]) -> Any:
            return _run(self, plan)

        # A fresh function per class: entrypoints are registered on the function.
        namespace: dict[str, Any] = {
            "name": f"s{index}",
            "run": rpc(expected_exceptions=(ValueError,))(run),
        }
        for target in range(index + 1, count):
            namespace[f"p{target}"] = RpcProxy(f"s{target}")
        classes.append(type(f"S{index}", (), namespace))
    return tuple(classes)


def _run(self: Any, plan: dict[str, Any]) -> Any:
    import time

    pending = []
    for target, mode, subplan in plan["calls"]:
        proxy = getattr(self, f"p{target}")
        if mode == "async":
            pending.append(proxy.run.call_async(subplan))
        else:
            pending.append(_outcome(lambda p=proxy, s=subplan: p.run(s)))
    children = [item if not hasattr(item, "result") else _outcome(item.result) for item in pending]
    if plan["sleep"]:
        time.sleep(plan["sleep"])
    if plan["fail"]:
        raise ValueError(f"failed {plan['value']}")
    return {"value": plan["value"], "children": children}


def _outcome(fn: Any) -> Any:
    """A nested call's result, or a record of how it failed."""
    try:
        return fn()
    except RemoteError as exc:
        return {"error": str(exc)}
    except (RpcTimeout, PublishFailed, ServiceNotFound) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
