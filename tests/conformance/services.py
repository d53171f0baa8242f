"""Services the conformance tests run, on either transport."""

from __future__ import annotations

import time
from typing import Any

from shimeji.contextdata import ContextDataProvider
from shimeji.exceptions import deserialize_to_instance
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc


class ReplicaName(DependencyProvider):
    """Injects the name of the replica running the worker."""

    def get_dependency(self, worker_ctx: Any) -> str:
        return worker_ctx.container.replica_name


class CallIds(DependencyProvider):
    """Injects the worker's call id stack."""

    def get_dependency(self, worker_ctx: Any) -> list[str]:
        return list(worker_ctx.call_id_stack)


@deserialize_to_instance
class InsufficientFunds(Exception):
    """Registered: callers get it back as itself."""


class Unregistered(Exception):
    pass


class Calculator:
    name = "calculator"
    replica = ReplicaName()

    @rpc
    def add(self, a, b):
        return a + b

    @rpc
    def echo(self, value):
        return value

    @rpc
    def where(self):
        return self.replica

    @rpc(expected_exceptions=ValueError)
    def divide(self, a, b):
        if b == 0:
            raise ValueError("Division by zero", a)
        return a / b

    @rpc
    def fail(self, kind):
        if kind == "registered":
            raise InsufficientFunds("balance too low", 42)
        raise Unregistered("custom", {"detail": [1, 2]})

    @rpc
    def unserializable(self):
        return {"when": object()}

    @rpc
    def keywords(self, a, *, b=2, **rest):
        return {"a": a, "b": b, "rest": rest}


class Slow:
    name = "slow"
    replica = ReplicaName()

    @rpc
    def sleep(self, seconds, tag=None):
        time.sleep(seconds)
        return [tag, self.replica]


class Concurrency:
    """Counts how many of its workers run at once."""

    name = "concurrency"
    running = 0
    peak = 0

    @rpc
    def hold(self, seconds):
        cls = type(self)
        cls.running += 1
        cls.peak = max(cls.peak, cls.running)
        try:
            time.sleep(seconds)
        finally:
            cls.running -= 1
        return cls.peak


class Audit:
    name = "audit"
    context = ContextDataProvider()
    user_id = ContextDataProvider("user_id")
    call_ids = CallIds()

    @rpc
    def seen(self):
        return {"context": dict(self.context), "user_id": self.user_id, "stack": self.call_ids}


class Front:
    """Calls audit (and calculator) on behalf of its callers."""

    name = "front"
    audit = RpcProxy("audit")
    calculator = RpcProxy("calculator")
    missing = RpcProxy("no_such_service")
    call_ids = CallIds()

    @rpc
    def relay(self):
        return {"mine": self.call_ids, "audit": self.audit.seen()}

    @rpc
    def fan_out(self, n):
        replies = [self.calculator.add.call_async(i, i) for i in range(n)]
        return [reply.result() for reply in replies]

    @rpc
    def call_missing(self):
        return self.missing.anything()

    @rpc
    def divide_via(self, a, b):
        return self.calculator.divide(a, b)
