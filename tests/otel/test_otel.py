"""OpenTelemetry spans from shimeji's tracer events, checked on the simulator."""

from __future__ import annotations

import itertools
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from shimeji.events import EventDispatcher, event_handler
from shimeji.exceptions import RemoteError, RpcTimeout
from shimeji.otel import OpenTelemetryTracer
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import BrokerOutage, FaultPlan


class Calculator:
    name = "calculator"

    @rpc
    def multiply(self, a, b):
        return a * b

    @rpc
    def divide(self, a, b):
        return a / b

    @rpc
    def slow(self):
        import time

        time.sleep(5)


class Scores:
    name = "scores"
    calculator = RpcProxy("calculator")
    provider: TracerProvider | None = None  # the application's own, set by the test

    @rpc
    def score(self, base, factor):
        from opentelemetry import trace

        tracer = trace.get_tracer("app", tracer_provider=Scores.provider)
        with tracer.start_as_current_span("compute"):
            return self.calculator.multiply(base, factor)


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def by_name(exporter, name, kind):
    found = [s for s in exporter.get_finished_spans() if s.name == name and s.kind == kind]
    assert len(found) == 1, [(s.name, s.kind) for s in exporter.get_finished_spans()]
    return found[0]


def test_a_nested_call_is_one_trace_of_client_and_server_spans(spans, monkeypatch):
    """test span > client scores/score > server scores/score > compute > client/server multiply."""
    provider, exporter = spans
    monkeypatch.setattr(Scores, "provider", provider)
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider)) as cluster:
        cluster.add_service(Calculator)
        cluster.add_service(Scores)
        with provider.get_tracer("test").start_as_current_span("test") as root:
            assert cluster.rpc.scores.score(6, 7) == 42
    client = by_name(exporter, "scores/score", SpanKind.CLIENT)
    server = by_name(exporter, "scores/score", SpanKind.SERVER)
    compute = by_name(exporter, "compute", SpanKind.INTERNAL)
    inner_client = by_name(exporter, "calculator/multiply", SpanKind.CLIENT)
    inner_server = by_name(exporter, "calculator/multiply", SpanKind.SERVER)
    chain = [root, client, server, compute, inner_client, inner_server]
    assert {span.context.trace_id for span in chain} == {root.context.trace_id}
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id, (
            child.name
        )
    assert inner_server.attributes["rpc.system"] == "nameko"
    assert inner_server.attributes["rpc.service"] == "calculator"
    assert inner_server.attributes["rpc.method"] == "multiply"
    assert inner_server.attributes["messaging.system"] == "rabbitmq"
    for span, operation in ((inner_client, "publish"), (inner_server, "process")):
        assert span.attributes["messaging.operation.type"] == operation
        assert span.attributes["messaging.destination.name"] == "nameko-rpc"
        assert span.attributes["messaging.rabbitmq.destination.routing_key"] == (
            "calculator.multiply"
        )
    assert inner_server.attributes["shimeji.replica"] == "calculator-1"
    assert (
        inner_client.attributes["messaging.message.conversation_id"]
        == (inner_server.attributes["messaging.message.conversation_id"])
    )
    assert all(span.status.status_code is StatusCode.UNSET for span in chain)


def test_the_trace_context_travels_in_the_context_data(spans):
    """The request carries nameko.traceparent naming the client span: it crosses processes."""
    provider, exporter = spans
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider)) as cluster:
        cluster.add_service(Calculator)
        cluster.add_service(Scores)
        cluster.rpc.scores.score(1, 2)
    inner_client = by_name(exporter, "calculator/multiply", SpanKind.CLIENT)
    publish = next(e for e in cluster.trace.filter("publish") if e.service == "calculator")
    traceparent = publish.message.headers["nameko.traceparent"]
    context = inner_client.context
    flags = int(context.trace_flags)
    assert traceparent == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


def test_errors_and_timeouts_set_error_status(spans):
    """A remote error marks both spans; a timeout marks the client span."""
    provider, exporter = spans
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider)) as cluster:
        cluster.add_service(Calculator)
        with pytest.raises(RemoteError):
            cluster.rpc.calculator.divide(1, 0)
        with pytest.raises(RpcTimeout):
            cluster.rpc_proxy(timeout=1).calculator.slow()
        cluster.advance(10)
    server = by_name(exporter, "calculator/divide", SpanKind.SERVER)
    client = by_name(exporter, "calculator/divide", SpanKind.CLIENT)
    for span in (server, client):
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "ZeroDivisionError"
    timed_out = by_name(exporter, "calculator/slow", SpanKind.CLIENT)
    assert timed_out.status.status_code is StatusCode.ERROR
    assert timed_out.attributes["error.type"] == "RpcTimeout"
    assert timed_out.end_time - timed_out.start_time == 1_000_000_000  # virtual time
    assert by_name(exporter, "calculator/slow", SpanKind.SERVER).status.status_code is (
        StatusCode.UNSET
    )


def test_a_call_to_no_service_ends_its_span(spans):
    """An unroutable call ends its client span as ServiceNotFound."""
    provider, exporter = spans
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider)) as cluster:
        cluster.add_service(Calculator)
        with pytest.raises(Exception, match="ghost"):
            cluster.rpc.ghost.method()
    span = by_name(exporter, "ghost/method", SpanKind.CLIENT)
    assert span.attributes["error.type"] == "ServiceNotFound"


def test_the_simulator_trace_is_unchanged_but_for_the_new_header(spans):
    """Tracing with OpenTelemetry changes no event of the simulation, only adds a header."""
    provider, _ = spans

    def run(tracer):
        with SimCluster(seed=4, tracer=tracer) as cluster:
            cluster.add_service(Calculator, replicas=2)
            cluster.add_service(Scores)
            cluster.rpc.scores.score(2, 3)
        return cluster.trace.to_text()

    assert run(OpenTelemetryTracer(provider)) == run(None)


class Shop:
    name = "shop"
    dispatch = EventDispatcher()

    @rpc
    def sell(self, item):
        self.dispatch("sold", {"item": item})


class Stock:
    name = "stock"

    @event_handler("shop", "sold")
    def on_sold(self, payload):
        pass


def test_an_event_is_a_producer_span_and_its_handlers_consumer_spans(spans):
    """client shop/sell > server shop/sell > producer 'shop.events sold publish'
    > consumer stock/on_sold, one trace; the traceparent rides the event's headers."""
    provider, exporter = spans
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider)) as cluster:
        cluster.add_service(Shop)
        cluster.add_service(Stock)
        cluster.rpc.shop.sell("apple")
        cluster.advance(1)
    client = by_name(exporter, "shop/sell", SpanKind.CLIENT)
    server = by_name(exporter, "shop/sell", SpanKind.SERVER)
    producer = by_name(exporter, "shop.events sold publish", SpanKind.PRODUCER)
    consumer = by_name(exporter, "stock/on_sold", SpanKind.CONSUMER)
    chain = [client, server, producer, consumer]
    for parent, child in itertools.pairwise(chain):
        assert child.parent is not None and child.parent.span_id == parent.context.span_id
    assert producer.attributes["messaging.destination.name"] == "shop.events"
    assert producer.attributes["messaging.rabbitmq.destination.routing_key"] == "sold"
    assert consumer.attributes["messaging.operation.type"] == "process"
    assert consumer.attributes["messaging.rabbitmq.destination.routing_key"] == "sold"
    assert (
        producer.attributes["messaging.message.id"]
        == (consumer.attributes["messaging.message.conversation_id"])
    )
    dispatch = next(iter(cluster.trace.filter("dispatch")))
    context = producer.context
    assert dispatch.message.headers["nameko.traceparent"] == (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    )


class SlowShop:
    name = "slowshop"
    dispatch = EventDispatcher()

    @rpc
    def sell(self, item):
        time.sleep(1)  # virtual: the broker goes down meanwhile
        self.dispatch("sold", {"item": item})


def test_a_producer_span_lasts_until_the_broker_has_the_event(spans):
    """Dispatched while the broker is down, the event is published once it is back:
    its PRODUCER span covers the retries, each an event of the span."""
    provider, exporter = spans
    outage = FaultPlan([BrokerOutage(at=0.5, duration=2.0)])
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider), faults=outage) as cluster:
        cluster.add_service(SlowShop)
        cluster.rpc_proxy(timeout=30).slowshop.sell("apple")
    producer = by_name(exporter, "slowshop.events sold publish", SpanKind.PRODUCER)
    assert producer.status.status_code is StatusCode.UNSET
    retries = [event for event in producer.events if event.name == "publish retry"]
    assert retries
    # From the dispatch (t=1 s) to the publish that went through (the broker is
    # back at t=2.5 s), in virtual time.
    assert 1.5e9 <= producer.end_time - producer.start_time < 3e9


def test_a_producer_span_whose_publish_fails_is_an_error(spans):
    provider, exporter = spans
    outage = FaultPlan([BrokerOutage(at=0.5, duration=120.0)])
    with SimCluster(seed=0, tracer=OpenTelemetryTracer(provider), faults=outage) as cluster:
        cluster.add_service(SlowShop)
        with pytest.raises(RpcTimeout):  # its reply cannot be published either
            cluster.rpc_proxy(timeout=60).slowshop.sell("apple")
    producer = by_name(exporter, "slowshop.events sold publish", SpanKind.PRODUCER)
    assert producer.status.status_code is StatusCode.ERROR
    assert producer.attributes["error.type"] == "PublishFailed"
