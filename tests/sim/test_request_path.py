"""Requests read by ``@rpc`` and by an entrypoint class of its own that reads
them through ``Rpc.handle_request`` come out the same: the same outcomes,
the same trace, byte for byte, with faults or without; and the names the
client and the consumer remember per target stay bounded and current."""

from __future__ import annotations

from typing import Any

import pytest

from shimeji.core.rpc.server import Rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import Corrupt, Crash, CrashDuring, Delay, Drop, Duplicate


class _GeneralRpc(Rpc):
    """Reads requests through Rpc.handle_request (a subclass may change it)."""

    def handle_request(self, delivery: Any) -> None:
        super().handle_request(delivery)


def _service(entrypoint: Any) -> type:
    class Calculator:
        name = "calculator"

        @entrypoint
        def multiply(self, a, b=2):
            return a * b

        @entrypoint
        def divide(self, a, b):
            return a / b

        @entrypoint
        def total(self, *values, start=0):
            return start + sum(values)

    return Calculator


FAULT_PLANS = {
    "none": [],
    "drops": [Drop(service="calculator", count=None, probability=0.3)],
    "reply drops": [Drop(direction="reply", service="calculator", count=2, skip=1)],
    "duplicates and delays": [
        Duplicate(service="calculator", count=3),
        Delay(service="calculator", method="total", seconds=0.5, count=2),
    ],
    "corrupt": [Corrupt(service="calculator", method="multiply", count=2, skip=1)],
    "crashes": [
        Crash("calculator-1", at=0.0015),
        CrashDuring(service="calculator", method="divide", nth=2, restart_after=0.1),
    ],
}


def _run(entrypoint: Any, plan: list[Any], seed: int) -> tuple[list[str], str, str]:
    outcomes: list[str] = []
    with SimCluster(seed=seed, faults=plan) as cluster:
        cluster.add_service(_service(entrypoint), replicas=2)
        client = cluster.rpc_proxy(context_data={"user": "u-1"}, timeout=2)
        calls = [
            lambda: client.calculator.multiply(3, 4),
            lambda: client.calculator.multiply(3),  # a default: bound, not plain
            lambda: client.calculator.multiply(a=5, b=6),  # keywords
            lambda: client.calculator.multiply(1, 2, 3),  # wrong arguments
            lambda: client.calculator.divide(1, 0),  # the method fails
            lambda: client.calculator.divide(9, 3),
            lambda: client.calculator.total(1, 2, 3, start=4),
            lambda: client.calculator.nothing(),  # no such method
        ]
        for call in calls:
            try:
                outcomes.append(repr(call()))
            except Exception as exc:  # the errors a caller gets are compared too
                outcomes.append(f"{type(exc).__name__}: {exc}")
        replies = [client.calculator.multiply.call_async(i, 3) for i in range(6)]
        for reply in replies:
            try:
                outcomes.append(repr(reply.result()))
            except Exception as exc:  # the errors a caller gets are compared too
                outcomes.append(f"{type(exc).__name__}: {exc}")
        cluster.advance(5)
        return outcomes, str(cluster.trace), cluster.trace.to_jsonl()


@pytest.mark.parametrize("plan", FAULT_PLANS, ids=list(FAULT_PLANS))
@pytest.mark.parametrize("seed", [0, 7])
def test_both_paths_make_the_same_trace(plan: str, seed: int) -> None:
    plain = _run(Rpc.decorator, FAULT_PLANS[plan], seed)
    general = _run(_GeneralRpc.decorator, FAULT_PLANS[plan], seed)
    assert plain[0] == general[0]
    assert plain[1] == general[1]
    assert plain[2] == general[2]
    assert "worker_start" in plain[1]


def test_names_remembered_by_the_client_stay_bounded() -> None:
    """A client remembers each target's routing key and wait description; calls
    to names made up at run time do not grow that memory without bound, and a
    name called again after it was forgotten is sent as before."""
    with SimCluster() as cluster:
        cluster.add_service(_service(Rpc.decorator))
        proxy = cluster.rpc_proxy()
        client = proxy._client
        for i in range(1_050):
            with pytest.raises(Exception, match=f"method{i}"):
                getattr(proxy.calculator, f"method{i}")()
            assert len(client._names) <= 1_000
        assert proxy.calculator.multiply(2, 5) == 10
        assert client._names[("calculator", "multiply", client.label)] == (
            "calculator.multiply",
            f"a reply from calculator.multiply to {client.label}",
        )
        assert cluster.trace.filter("publish")[-1].message.routing_key == "calculator.multiply"


def test_providers_found_by_routing_key_stay_bounded_and_current() -> None:
    """The RPC consumer finds a request's provider by its routing key, as the
    key's last word names it; the keys it remembers stay bounded, and a provider
    registered or removed is seen at once."""
    with SimCluster() as cluster:
        cluster.add_service(_service(Rpc.decorator))
        container = cluster.replica("calculator-1").container
        multiply = next(e for e in container.entrypoints if e.method_name == "multiply")
        consumer = multiply.rpc_consumer
        for i in range(1_500):
            assert consumer._provider_of(f"service{i}.multiply") is multiply
            assert len(consumer._by_key) <= 1_000
        assert consumer._provider_of("calculator.nothing") is None
        assert "calculator.nothing" not in consumer._by_key
        consumer._provider_of("calculator.multiply")
        assert consumer._by_key
        consumer.unregister_provider(multiply)
        assert not consumer._by_key
        assert consumer._provider_of("calculator.multiply") is None
        consumer.register_provider(multiply)
        assert consumer._provider_of("calculator.multiply") is multiply
