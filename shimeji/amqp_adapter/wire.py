"""The wire: kombu connections, channels and messages as shimeji needs them.

- ``connection_for``: a kombu connection as the settings describe it (nodes
  of a cluster tried in turn, TLS, timeouts), with py-amqp's frame reader
  replaced by the tolerant one of ``frames.py``;
- ``connect_with_policy``: connect it, retrying as ``RPC_RETRY_POLICY``
  says; ``connect_patiently``: connect it again after a loss, retrying
  forever at the policy's intervals until told to stop;
- ``to_amqp`` and ``from_amqp``: a transport ``Message`` to a py-amqp
  message and back;
- ``open_channel``: a channel that hands message bodies over as the bytes
  that came;
- ``declare_exchange``: nameko's exchange, a durable topic exchange.

Nothing here holds state or knows of threads: the publisher, the consumers
and their loop call these functions on the connections they own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import amqp
import kombu

from shimeji.amqp_adapter.errors import describe_error
from shimeji.amqp_adapter.frames import TolerantSSLTransport, TolerantTransport
from shimeji.core.config import RetryPolicy, Settings
from shimeji.core.transport import Message

__all__ = [
    "ADAPTER_OPTIONS",
    "DEFAULT_CONNECT_TIMEOUT",
    "StopConnecting",
    "connect_patiently",
    "connect_with_policy",
    "connection_for",
    "declare_exchange",
    "from_amqp",
    "open_channel",
    "to_amqp",
]

log = logging.getLogger("shimeji.amqp")

#: TRANSPORT_OPTIONS keys read by this package (the others go to kombu / py-amqp).
ADAPTER_OPTIONS = ("confirm_timeout",)
DEFAULT_CONNECT_TIMEOUT = 5.0


def connection_for(settings: Settings, first: int = 0) -> kombu.Connection:
    """A (not yet connected) kombu connection as the settings describe it.

    With several nodes in ``AMQP_URI``, the connection tries them in turn,
    starting with node ``first`` (counted from 0, modulo their number).

    ``AMQP_SSL`` is handed to kombu as it is (``true`` or a mapping of
    ``ssl`` options: ``ca_certs``, ``certfile``, ``keyfile``, ``cert_reqs``,
    ``server_hostname``...); ``TRANSPORT_OPTIONS`` too, but for the keys this
    transport reads itself (``confirm_timeout``).
    """
    options = {k: v for k, v in settings.transport_options.items() if k not in ADAPTER_OPTIONS}
    connect_timeout = options.pop("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    ssl = settings.amqp_ssl
    if isinstance(ssl, Mapping):
        ssl = dict(ssl)
    # py-amqp's own frame reader raises, ending the reading thread, on a
    # message that does not decode; these transports hand it over, marked.
    secure = settings.amqp_uri.startswith("amqps:")
    nodes = settings.amqp_uri.split(";")
    first %= len(nodes)
    return kombu.Connection(
        ";".join(nodes[first:] + nodes[:first]),
        transport=TolerantSSLTransport if secure else TolerantTransport,
        heartbeat=settings.heartbeat,
        ssl=ssl if ssl is not None else False,
        connect_timeout=connect_timeout,
        transport_options=options,
    )


def connect_with_policy(
    conn: kombu.Connection, policy: RetryPolicy, *, name: str, redacted_uri: str, role: str
) -> None:
    """Connect ``conn``, retrying as ``policy`` says (then raise kombu's error);
    each failed attempt is logged, naming ``name`` and the ``role`` of the
    connection."""

    def errback(exc: BaseException, interval: float) -> None:
        log.warning(
            "%s: cannot reach %s for the %s (%s); next attempt in %.1fs",
            name,
            redacted_uri,
            role,
            describe_error(exc),
            interval,
        )

    conn.ensure_connection(
        errback=errback,
        max_retries=policy.max_retries,
        interval_start=policy.interval_start,
        interval_step=policy.interval_step,
        interval_max=policy.interval_max,
    )


class StopConnecting(Exception):
    """Raised by a check given to ``connect_patiently`` to stop connecting; it
    propagates to the caller."""


def connect_patiently(
    conn: kombu.Connection,
    policy: RetryPolicy,
    *,
    stop_check: Callable[[], None],
    give_up_check: Callable[[], None],
    name: str,
    redacted_uri: str,
) -> bool:
    """Connect ``conn`` again after a loss: retry forever at the policy's
    intervals (0.1 s at least), whatever its ``max_retries``; True once connected.

    ``stop_check()`` is called while waiting and after every failed attempt,
    ``give_up_check()`` after every failed attempt; either stops connecting by
    raising a ``StopConnecting``. An error that retrying does not cure (a
    refused login) is logged, and False returned after 5 s of such checks:
    the caller tries again then.
    """
    attempts = 0

    def errback(exc: BaseException, interval: float) -> None:
        nonlocal attempts
        attempts += 1
        log.warning(
            "%s: cannot reach %s (%s); attempt %d, next in %.1fs",
            name,
            redacted_uri,
            describe_error(exc),
            attempts,
            interval,
        )
        stop_check()
        give_up_check()

    try:
        conn.ensure_connection(
            errback=errback,
            max_retries=None,
            interval_start=policy.interval_start or 0.1,
            interval_step=policy.interval_step,
            interval_max=max(policy.interval_max, 0.1),
            callback=stop_check,
        )
    except StopConnecting:
        raise
    except Exception as exc:  # not recoverable (a refused login): keep trying, slowly
        log.error("%s: cannot connect to %s: %s", name, redacted_uri, describe_error(exc))
        for _ in range(50):
            stop_check()
            give_up_check()
            time.sleep(0.1)
        return False
    return True


def declare_exchange(channel: Any, name: str) -> None:
    """Declare nameko's exchange on ``channel``: a durable topic exchange that
    is never auto-deleted."""
    channel.exchange_declare(name, "topic", durable=True, auto_delete=False)


def to_amqp(message: Message) -> amqp.Message:
    """The py-amqp message that carries ``message`` (unset properties are left out)."""
    properties: dict[str, Any] = {
        "content_type": message.content_type,
        "content_encoding": message.content_encoding,
        "delivery_mode": message.delivery_mode,
    }
    if message.headers:
        properties["application_headers"] = dict(message.headers)
    if message.correlation_id is not None:
        properties["correlation_id"] = message.correlation_id
    if message.reply_to is not None:
        properties["reply_to"] = message.reply_to
    return amqp.Message(message.body, **properties)


def from_amqp(raw: amqp.Message) -> Message:
    """The transport ``Message`` of a delivery; missing properties get defaults
    (an unknown delivery mode reads as 1, transient). May raise on properties
    of types no publisher of ours sends."""
    properties = raw.properties
    info = raw.delivery_info
    body = raw.body
    if isinstance(body, str):  # channels are opened with auto_decode off; be safe
        body = body.encode(properties.get("content_encoding") or "utf-8", "surrogateescape")
    headers = properties.get("application_headers")
    delivery_mode = properties.get("delivery_mode")
    return Message(
        body=bytes(body),
        routing_key=info.get("routing_key", ""),
        exchange=info.get("exchange", ""),
        content_type=properties.get("content_type") or "",
        content_encoding=properties.get("content_encoding") or "",
        headers=headers if headers is not None else {},
        correlation_id=properties.get("correlation_id"),
        reply_to=properties.get("reply_to"),
        delivery_mode=delivery_mode if delivery_mode in (1, 2) else 1,
    )


def open_channel(conn: kombu.Connection) -> Any:
    """A channel that hands message bodies over as the bytes that came.

    (py-amqp's default decodes every body by its content encoding, which a
    publisher chooses: a codec name like ``rot13`` or ``idna`` must not be
    run on a consumer's thread, and shimeji's codecs take bytes anyway.)
    """
    channel = conn.channel()
    channel.auto_decode = False
    return channel
