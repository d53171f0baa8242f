"""shimeji on RabbitMQ: the kombu Transport and the threaded Runtime.

Everything that imports kombu lives in this package; its errors are
translated here into ``shimeji.exceptions`` (see ``errors.py``). Most code
uses it through ``shimeji.runner.ServiceRunner`` and
``shimeji.standalone.ClusterRpcProxy``.
"""

from shimeji.amqp_adapter.consumer import AmqpConsumer
from shimeji.amqp_adapter.runtime import ThreadRuntime, WorkerKilled
from shimeji.amqp_adapter.tracing import LoggingTracer
from shimeji.amqp_adapter.transport import AmqpTransport
from shimeji.amqp_adapter.wire import connection_for

__all__ = [
    "AmqpConsumer",
    "AmqpTransport",
    "LoggingTracer",
    "ThreadRuntime",
    "WorkerKilled",
    "connection_for",
]
