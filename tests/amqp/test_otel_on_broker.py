"""OpenTelemetry on RabbitMQ: the same spans as on the simulator, across processes'
worth of threads and a real broker."""

from __future__ import annotations

import itertools
import uuid

import pytest

otel = pytest.importorskip("opentelemetry.sdk.trace")

from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (  # noqa: E402
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind  # noqa: E402

from shimeji.otel import OpenTelemetryTracer  # noqa: E402
from shimeji.rpc import RpcProxy, rpc  # noqa: E402
from shimeji.runner import ServiceRunner  # noqa: E402
from shimeji.standalone import ClusterRpcProxy  # noqa: E402

from .broker import clean_broker  # noqa: E402

TAG = uuid.uuid4().hex[:8]


class Multiplier:
    name = f"otel_multiplier_{TAG}"

    @rpc
    def multiply(self, a, b):
        return a * b


class Scorer:
    name = f"otel_scorer_{TAG}"
    multiplier = RpcProxy(Multiplier.name)

    @rpc
    def score(self, base, factor):
        return self.multiplier.multiply(base, factor)


def test_a_nested_call_on_the_broker_is_one_trace(broker_uri):
    """client > server (scorer) > client > server (multiplier), one trace, on RabbitMQ."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    config = {"AMQP_URI": broker_uri, "rpc_exchange": f"shimeji-otel-{TAG}"}
    runner = ServiceRunner(config, tracer=OpenTelemetryTracer(provider))
    runner.add_service(Multiplier)
    runner.add_service(Scorer)
    runner.start()
    try:
        with ClusterRpcProxy(config, tracer=OpenTelemetryTracer(provider)) as client:
            assert client[Scorer.name].score(6, 7) == 42
    finally:
        runner.stop()
        clean_broker(
            broker_uri,
            *(f"rpc-{service.name}" for service in (Multiplier, Scorer)),
            exchange=config["rpc_exchange"],
        )
    spans = exporter.get_finished_spans()

    def one(name, kind):
        found = [s for s in spans if s.name == name and s.kind == kind]
        assert len(found) == 1, [(s.name, s.kind) for s in spans]
        return found[0]

    chain = [
        one(f"{Scorer.name}/score", SpanKind.CLIENT),
        one(f"{Scorer.name}/score", SpanKind.SERVER),
        one(f"{Multiplier.name}/multiply", SpanKind.CLIENT),
        one(f"{Multiplier.name}/multiply", SpanKind.SERVER),
    ]
    assert len({span.context.trace_id for span in chain}) == 1
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert chain[-1].attributes["shimeji.replica"] == f"{Multiplier.name}-1"
