"""kombu, py-amqp and socket errors, translated into shimeji's own exceptions.

Nothing raised by the wire libraries leaves ``shimeji.amqp_adapter``: every
call into them runs inside ``broker_errors``, which turns

- an unreachable broker, a dropped connection, a closed channel, a nack
  into ``BrokerUnavailable`` (retrying may help);
- a refused login, an unknown virtual host or a refused TLS handshake into
  ``BrokerUnavailable`` too, saying what to fix (retrying will not help,
  but the caller sees the same type whichever transport it runs on);
- an exchange or queue that exists with other settings into
  ``ConfigurationError`` naming it;
- the broker saying it has no such queue (``NOT_FOUND`` naming a queue) into
  ``QueueNotFound``, where the caller names the queue it used; an exclusive
  queue of another connection (``RESOURCE_LOCKED``), ``QueueLocked``
  (``broker_errors(queue=)``; the consumer loop, for a consumer that cannot
  start). A publish to an exchange that does not exist is ``NOT_FOUND`` too,
  naming the exchange: the publisher reports that message as ``Unroutable``.

Messages name the broker by its redacted URI: a password never appears in an
exception, hence never in a log or a traceback.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import amqp.exceptions
import kombu.exceptions

from shimeji.core.config import redact_uri
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.transport import BrokerUnavailable, QueueLocked, QueueNotFound

__all__ = [
    "CONNECTION_ERRORS",
    "TRANSLATED_ERRORS",
    "broker_errors",
    "describe_error",
    "is_missing_queue",
    "translate_error",
]

#: Errors after which a connection (not just a channel) must be rebuilt.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    amqp.exceptions.ConnectionError,
    kombu.exceptions.OperationalError,
    OSError,  # socket errors, refused connections, TLS errors (ssl.SSLError is one)
    EOFError,
)


def describe_error(exc: BaseException) -> str:
    """A one-line reason for a wire error, without any secret in it."""
    if isinstance(exc, amqp.exceptions.AccessRefused) or (
        isinstance(exc, amqp.exceptions.AMQPError) and exc.reply_code == 403
    ):
        return (
            "the broker refused the login (ACCESS_REFUSED); check the user and password "
            "in AMQP_URI, and that the user may use this virtual host"
        )
    if isinstance(exc, amqp.exceptions.NotAllowed) or (
        isinstance(exc, amqp.exceptions.AMQPError) and exc.reply_code == 530
    ):
        return (
            f"the broker does not allow this virtual host ({exc.reply_text}); "
            "check the virtual host at the end of AMQP_URI"
        )
    if isinstance(exc, amqp.exceptions.MessageNacked):
        return "the broker refused to take the message (it was nacked)"
    if isinstance(exc, ssl.SSLError):
        return f"the TLS handshake failed ({exc.reason or exc}); check AMQP_SSL"
    if isinstance(exc, socket.timeout):
        return "the broker did not answer in time"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused: is RabbitMQ running and listening there?"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror})"
    if isinstance(exc, amqp.exceptions.AMQPError):
        return f"{type(exc).__name__}: {exc.reply_text or exc}"
    if isinstance(exc, kombu.exceptions.OperationalError) and exc.__cause__ is not None:
        return describe_error(exc.__cause__)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def is_missing_queue(exc: BaseException) -> bool:
    """Whether ``exc`` is the broker saying it has no such queue (``NOT_FOUND``
    naming a queue, not an exchange)."""
    return isinstance(exc, amqp.exceptions.NotFound) and "no queue" in str(exc.reply_text or "")


def translate_error(
    exc: BaseException, what: str, uri: str, *, queue: str | None = None, verb: str = "use"
) -> Exception | None:
    """What ``broker_errors`` raises for ``exc`` (None: ``exc`` itself)."""
    if isinstance(exc, amqp.exceptions.PreconditionFailed):
        return ConfigurationError(
            f"{what}: the broker at {redact_uri(uri)} refused it: {exc.reply_text}. An exchange "
            "or queue of that name exists with other settings (perhaps declared by another "
            "program); delete it, or use another name"
        )
    if isinstance(exc, TRANSLATED_ERRORS):
        if queue is not None and is_missing_queue(exc):
            return QueueNotFound(queue, verb)
        if queue is not None and isinstance(exc, amqp.exceptions.ResourceLocked):
            return QueueLocked(queue, verb)
        return BrokerUnavailable(
            f"{what}: broker at {redact_uri(uri)} unavailable: {describe_error(exc)}"
        )
    return None


#: The errors ``broker_errors`` translates.
TRANSLATED_ERRORS: tuple[type[BaseException], ...] = (
    *CONNECTION_ERRORS,
    amqp.exceptions.AMQPError,
    amqp.exceptions.MessageNacked,
)


@contextmanager
def broker_errors(
    what: str, uri: str, *, queue: str | None = None, verb: str = "use"
) -> Iterator[None]:
    """Run a call into kombu / py-amqp; re-raise what it raises as shimeji's own error.

    ``what`` says what was being done ("publishing 'calculator.add'"); ``uri``
    is redacted before it is shown. With ``queue`` (the queue the call names),
    the broker saying it has no such queue raises ``QueueNotFound(queue, verb)``.
    """
    try:
        yield
    except TRANSLATED_ERRORS as exc:
        raise translate_error(exc, what, uri, queue=queue, verb=verb) from None
