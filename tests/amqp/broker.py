"""Helpers of the tests that run on RabbitMQ."""

from __future__ import annotations

__all__ = ["clean_broker"]


def clean_broker(uri: str, *queues: str, exchange: str | None = None) -> None:
    """Delete the queues (and the exchange) a test declared, through a connection
    of its own; what is gone already is no error."""
    from shimeji.amqp_adapter import AmqpTransport
    from shimeji.config import Settings

    cleaner = AmqpTransport(Settings.from_config({"AMQP_URI": uri}), name="cleanup")
    try:
        for queue in queues:
            cleaner.delete_queue(queue)
        if exchange is not None:
            cleaner.delete_exchange(exchange)
    finally:
        cleaner.close()
