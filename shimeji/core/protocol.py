"""The RPC wire protocol, as nameko 2.x speaks it on RabbitMQ.

- Requests go to the topic exchange (``rpc_exchange``, default ``nameko-rpc``)
  with routing key ``<service>.<method>``. Each service has one durable queue
  ``rpc-<service>`` bound with ``<service>.*``; its replicas compete on it.
- A request body is ``{"args": [...], "kwargs": {...}}``; a reply body is
  ``{"result": ..., "error": null}`` or ``{"result": null, "error": {...}}``
  with the error as ``shimeji.core.exceptions.serialize`` makes it.
- The caller sets ``reply_to`` (the routing key of its reply queue, bound on
  the same exchange) and ``correlation_id``; the reply carries the same
  correlation id.
- Context data travels in headers prefixed ``nameko.``; ``nameko.call_id_stack``
  holds the chain of call ids that led to the request.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from shimeji.core.exceptions import (
    MalformedRequest,
    UnserializableValueError,
    deserialize,
    safe_str,
    serialize,
)
from shimeji.core.quoting import quote, shorten
from shimeji.core.serialization import Codec, path_text

__all__ = [
    "CALL_ID_STACK_HEADER",
    "CALL_ID_STACK_KEY",
    "EVENT_EXCHANGE_SUFFIX",
    "HEADER_PREFIX",
    "STANDALONE_SERVICE",
    "broadcast_queue_name",
    "context_from_headers",
    "decode_reply",
    "decode_request",
    "encode_reply",
    "encode_request",
    "encode_result",
    "event_exchange_name",
    "event_source",
    "headers_from_context",
    "pool_queue_name",
    "reply_queue_name",
    "request_routing_key",
    "service_binding_key",
    "service_queue_name",
    "singleton_queue_name",
    "split_routing_key",
    "validate_service_name",
]

HEADER_PREFIX = "nameko"
CALL_ID_STACK_KEY = "call_id_stack"
STANDALONE_SERVICE = "standalone_rpc_proxy"

_SERVICE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_\-]*(\.[A-Za-z0-9_][A-Za-z0-9_\-]*)*$")


def validate_service_name(name: Any) -> str | None:
    """None if ``name`` can be a service name, else what is wrong with it."""
    if not isinstance(name, str) or not name:
        return f"a service name must be a non-empty string, not {name!r}"
    if not _SERVICE_NAME.match(name):
        return (
            f"service name {name!r} may hold only letters, digits, '_', '-' and single "
            "dots between words (it becomes a routing key)"
        )
    return None


def service_queue_name(service: str) -> str:
    return f"rpc-{service}"


def service_binding_key(service: str) -> str:
    return f"{service}.*"


def request_routing_key(service: str, method: str) -> str:
    return f"{service}.{method}"


def split_routing_key(routing_key: str) -> tuple[str, str]:
    """``("service", "method")`` from ``"service.method"``; the method is the last word."""
    service, _, method = routing_key.rpartition(".")
    return service, method


def reply_queue_name(owner: str, reply_id: str) -> str:
    return f"rpc.reply-{owner}-{reply_id}"


# -- events (nameko's publish-subscribe) ---------------------------------------------
#
# A service dispatches events to a topic exchange of its own, ``<service>.events``,
# with the event type as routing key and the event data as the body. Handlers
# consume queues bound to it with the event type, named by handler type:
#   SERVICE_POOL  evt-<source>-<event type>--<service>.<method>
#   SINGLETON     evt-<source>-<event type>
#   BROADCAST     evt-<source>-<event type>--<service>.<method>-<broadcast identifier>

EVENT_EXCHANGE_SUFFIX = ".events"


def event_exchange_name(source_service: str) -> str:
    return f"{source_service}{EVENT_EXCHANGE_SUFFIX}"


def event_source(exchange: str) -> str | None:
    """The service an event exchange belongs to, or None if it is not one."""
    if exchange.endswith(EVENT_EXCHANGE_SUFFIX):
        return exchange[: -len(EVENT_EXCHANGE_SUFFIX)]
    return None


def pool_queue_name(source: str, event_type: str, service: str, method: str) -> str:
    return f"evt-{source}-{event_type}--{service}.{method}"


def singleton_queue_name(source: str, event_type: str) -> str:
    return f"evt-{source}-{event_type}"


def broadcast_queue_name(
    source: str, event_type: str, service: str, method: str, identifier: str
) -> str:
    return f"evt-{source}-{event_type}--{service}.{method}-{identifier}"


# -- headers ---------------------------------------------------------------------


#: The header a call's call id stack travels in (``nameko.call_id_stack``).
CALL_ID_STACK_HEADER = f"{HEADER_PREFIX}.{CALL_ID_STACK_KEY}"


def headers_from_context(context_data: Mapping[str, Any], call_id_stack: list[str]) -> dict:
    if not context_data:  # the usual request: the call id stack alone
        return {CALL_ID_STACK_HEADER: list(call_id_stack)}
    headers = {f"{HEADER_PREFIX}.{key}": value for key, value in context_data.items()}
    headers[CALL_ID_STACK_HEADER] = list(call_id_stack)
    return headers


_PREFIX = HEADER_PREFIX + "."


def _all_str(values: Any) -> bool:
    for value in values:  # noqa: SIM110 (no generator made per request)
        if type(value) is not str and not isinstance(value, str):
            return False
    return True


def context_from_headers(headers: Any) -> tuple[dict[str, Any], list[str]]:
    """Context data and the parent call id stack carried by request headers.

    Raises ``MalformedRequest`` for headers of the wrong shape.
    """
    if headers is None:
        return {}, []
    # type() first: a dict is the usual case, and an ABC's isinstance check is slow.
    if type(headers) is not dict and not isinstance(headers, Mapping):
        raise MalformedRequest(f"message headers must be a table, got {type(headers).__name__}")
    context: dict[str, Any] = {}
    stack: list[str] = []
    for key, value in headers.items():
        if key == CALL_ID_STACK_HEADER and isinstance(key, str):  # in every request
            if not isinstance(value, (list, tuple)) or not _all_str(value):
                raise MalformedRequest(
                    f"header {quote(key)} must be a list of call id strings, got {quote(value)}"
                )
            stack = list(value)
        elif isinstance(key, str) and key.startswith(_PREFIX):
            context[key[len(_PREFIX) :]] = value
    return context, stack


# -- bodies ----------------------------------------------------------------------


def _rephrased(exc: UnserializableValueError, root: str, rest: tuple[Any, ...]) -> Exception:
    """The same error, its place said from the caller's side (not the body's)."""
    return UnserializableValueError(
        exc.value, root + path_text(rest), exc.reason, path=exc.path, shown=exc.repr_value
    )


def encode_request(
    codec: Codec, args: tuple | list, kwargs: Mapping[str, Any], target: str = "the call"
) -> bytes:
    """Raises UnserializableValueError naming the argument that cannot be sent
    (``argument 2 of calculator.multiply['when']``; ``target``: ``service.method``)."""
    try:
        # Encoded at once: the caller's dict need not be copied.
        kwargs = kwargs if type(kwargs) is dict else dict(kwargs)
        return codec.dumps({"args": list(args), "kwargs": kwargs}, "the call's arguments")
    except UnserializableValueError as exc:
        path = exc.path
        if len(path) >= 2 and path[0] == "args" and isinstance(path[1], int):
            raise _rephrased(exc, f"argument {path[1] + 1} of {target}", path[2:]) from None
        if len(path) >= 2 and path[0] == "kwargs" and isinstance(path[1], str):
            raise _rephrased(exc, f"argument {path[1]}= of {target}", path[2:]) from None
        raise


def encode_result(codec: Codec, result: Any, target: str = "the method") -> bytes:
    """A reply body carrying ``result``; raises UnserializableValueError naming the
    place in the return value of ``target`` that cannot be sent."""
    try:
        return codec.dumps({"result": result, "error": None}, "the result")
    except UnserializableValueError as exc:
        if exc.path[:1] == ("result",):
            raise _rephrased(exc, f"the return value of {target}", exc.path[1:]) from None
        raise


def decode_request(codec: Codec, body: bytes) -> tuple[list[Any], dict[str, Any]]:
    """``(args, kwargs)`` from a request body; raises MalformedRequest explaining why not."""
    try:
        payload = codec.loads(body)
    except Exception as exc:
        raise MalformedRequest(
            f"request body cannot be decoded as {codec.name}: {shorten(safe_str(exc))}"
        ) from None
    if type(payload) is not dict and not isinstance(payload, Mapping):
        raise MalformedRequest(
            f"request body must be a mapping with 'args' and 'kwargs', got {type(payload).__name__}"
        )
    if "args" not in payload or "kwargs" not in payload:
        missing = [key for key in ("args", "kwargs") if key not in payload]
        raise MalformedRequest(
            f"request body lacks {' and '.join(repr(m) for m in missing)}; "
            'send {"args": [...], "kwargs": {...}}'
        )
    args, kwargs = payload["args"], payload["kwargs"]
    if not isinstance(args, (list, tuple)):
        raise MalformedRequest(f"request 'args' must be a list, got {type(args).__name__}")
    if (type(kwargs) is not dict and not isinstance(kwargs, Mapping)) or not _all_str(kwargs):
        raise MalformedRequest(
            f"request 'kwargs' must be a mapping of names to values, got {quote(kwargs)}"
        )
    # Decoded just now, they are nobody else's: copied only to be a list and a dict.
    return (
        args if type(args) is list else list(args),
        kwargs if type(kwargs) is dict else dict(kwargs),
    )


def encode_reply(
    codec: Codec, result: Any, exc: BaseException | None, target: str = "the method"
) -> bytes:
    """A reply body; an unserializable result becomes an UnserializableValueError reply."""
    if exc is not None:
        return codec.dumps({"result": None, "error": serialize(exc)}, "the error")
    try:
        return encode_result(codec, result, target)
    except Exception as unserializable:  # UnserializableValueError, or a codec's own error
        return codec.dumps({"result": None, "error": serialize(unserializable)}, "the error")


def decode_reply(codec: Codec, body: bytes) -> tuple[Any, BaseException | None]:
    """``(result, error)`` from a reply body; raises ValueError when it is not one."""
    payload = codec.loads(body)
    if (type(payload) is not dict and not isinstance(payload, Mapping)) or (
        "result" not in payload and "error" not in payload
    ):
        raise ValueError(f"reply body is not a mapping with 'result' and 'error': {quote(payload)}")
    error = payload.get("error")
    if error is not None:
        return None, deserialize(error)
    return payload.get("result"), None
