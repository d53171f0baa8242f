"""Service classes shared by the simulator tests."""

from __future__ import annotations

import time

from shimeji.contextdata import ContextDataProvider
from shimeji.exceptions import BadRequest, deserialize_to_instance
from shimeji.extensions import DependencyProvider
from shimeji.rpc import RpcProxy, rpc


@deserialize_to_instance
class InsufficientFunds(Exception):
    """Comes back to callers as itself."""


class CalculatorService:
    name = "calculator"

    @rpc
    def add(self, a, b):
        return a + b

    @rpc
    def multiply(self, a, b):
        return a * b

    @rpc(expected_exceptions=(ValueError, BadRequest))
    def divide(self, a, b):
        if b == 0:
            raise ValueError("Division by zero")
        return a / b

    @rpc
    def explode(self):
        raise KeyError("boom")

    @rpc
    def pay(self, amount):
        raise InsufficientFunds(amount, "short by 5")

    @rpc
    def unserializable(self):
        return {"when": object()}

    @rpc
    def echo(self, value):
        return value

    @rpc
    def slow(self, seconds, value=None):
        time.sleep(seconds)
        return value

    @rpc
    def kw(self, a, b=2, *rest, c, **more):
        return [a, b, list(rest), c, more]


class UserService:
    name = "user_service"
    calculator_rpc = RpcProxy("calculator")
    context_data = ContextDataProvider()

    @rpc
    def calculate_user_score(self, user_id, base_score, multiplier):
        score = self.calculator_rpc.multiply(base_score, multiplier)
        return {
            "user_id": user_id,
            "score": score,
            "asked_by": self.context_data.get("user_id"),
            "at": time.time(),
        }


class WorkerCtx(DependencyProvider):
    """Injects the worker context itself (for tests that inspect call ids)."""

    def get_dependency(self, worker_ctx):
        return worker_ctx


class ChainService:
    """A chain of calls recording context data and call ids at each hop."""

    name = "chain"
    me = RpcProxy("chain")
    context = ContextDataProvider()
    worker = WorkerCtx()

    @rpc
    def hop(self, remaining):
        ctx = self.worker
        here = {
            "context": dict(self.context),
            "call_id": ctx.call_id,
            "call_id_stack": list(ctx.call_id_stack),
            "origin": ctx.origin_call_id,
            "parent": ctx.immediate_parent_call_id,
        }
        if remaining:
            return [here, *self.me.hop(remaining - 1)]
        return [here]
