"""Every exception shimeji raises, and how exceptions cross the wire.

A worker's exception travels to its caller as a small JSON-able mapping
(``serialize``) and is rebuilt there (``deserialize``): as the original class
when that class was registered with ``deserialize_to_instance``, otherwise as a
``RemoteError`` carrying the original type name, arguments and module path.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from shimeji.core.quoting import quote

__all__ = [
    "BadRequest",
    "ConfigurationError",
    "ContainerBeingKilled",
    "EventHandlerConfigurationError",
    "ExtensionNotFound",
    "FaultPlanError",
    "IncorrectSignature",
    "MalformedReply",
    "MalformedRequest",
    "MethodNotFound",
    "OutsideClosed",
    "OutsideVirtualTime",
    "PublishFailed",
    "RemoteError",
    "ReplicaCrashed",
    "RpcTimeout",
    "ServiceNotFound",
    "ShimejiError",
    "SimulationLivelock",
    "SimulationStalled",
    "UnknownService",
    "UnserializableValueError",
    "describe",
    "deserialize",
    "deserialize_to_instance",
    "exception_path",
    "safe_for_serialization",
    "safe_str",
    "serialize",
]

E = TypeVar("E", bound=type[BaseException])


class ShimejiError(Exception):
    """Base class of every exception defined by shimeji."""


class RemoteError(ShimejiError):
    """An exception raised by a remote worker, seen by its caller.

    ``exc_type`` is the original class name, ``exc_args`` its arguments (made
    JSON-safe), ``exc_path`` the dotted path of the class and ``value`` the
    original ``str(exc)``.
    """

    def __init__(
        self,
        exc_type: str | None = None,
        value: str = "",
        exc_args: list[Any] | tuple[Any, ...] = (),
        exc_path: str | None = None,
    ) -> None:
        self.exc_type = exc_type
        self.value = value
        self.exc_args = list(exc_args)
        self.exc_path = exc_path
        super().__init__(f"{exc_type} {value}")

    def __str__(self) -> str:
        return f"{self.exc_type} {self.value}"


class BadRequest(ShimejiError):
    """A request that can never succeed as sent; base of the three below."""


class MethodNotFound(BadRequest):
    """The target service has no RPC method of that name. ``str()`` is the name."""


class IncorrectSignature(BadRequest):
    """The arguments do not fit the target method's signature."""


class MalformedRequest(BadRequest):
    """The request could not be decoded, or lacks ``args`` / ``kwargs``."""


class MalformedReply(ShimejiError):
    """A reply could not be decoded; the caller cannot know the call's outcome."""


class ServiceNotFound(ShimejiError):
    """No queue is bound for the target service: the request was unroutable."""

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self._service_name = service_name  # nameko's name for it, which its tests read
        super().__init__(service_name)

    def __str__(self) -> str:
        return (
            f"Unknown service {self.service_name!r}: no queue is bound for it. "
            "Check the service name, and that the service was started at least once."
        )

    def wire_error(self) -> dict[str, Any]:
        """nameko's form: a nameko or shimeji caller up the chain gets a RemoteError
        ``UnknownService`` with nameko's text."""
        return {
            "exc_type": "UnknownService",
            "exc_path": "nameko.exceptions.UnknownService",
            "exc_args": [safe_for_serialization(self.service_name)],
            "value": f"Unknown service `{safe_str(self.service_name)}`",
        }


UnknownService = ServiceNotFound


class RpcTimeout(ShimejiError):
    """No reply arrived within the call's timeout."""

    def __init__(
        self, service: str, method: str, timeout: float, correlation_id: str | None = None
    ) -> None:
        self.service = service
        self.method = method
        self.timeout = timeout
        self.correlation_id = correlation_id
        super().__init__(service, method, timeout, correlation_id)

    def __str__(self) -> str:
        return (
            f"{self.service}.{self.method} got no reply within {self.timeout:g}s "
            f"(correlation id {self.correlation_id}); raise the timeout or check the service"
        )


class UnserializableValueError(ShimejiError):
    """A value cannot be encoded by the configured serializer.

    ``where`` says where the value is, in the caller's terms (``argument 1 of
    orders.place['when']``, ``the return value of orders.get['when']``);
    ``path`` is the same place as keys and indexes into the message body
    (``("result", "when")``), when the codec knows it; ``reason`` says why and
    what to do instead.
    """

    def __init__(
        self,
        value: Any,
        where: str = "value",
        reason: str = "",
        *,
        path: tuple[Any, ...] = (),
        shown: str | None = None,
    ) -> None:
        self.value = value
        self.where = where
        self.reason = reason
        self.path = path
        # Short and inert whatever the value: this text goes into logs and replies.
        self.repr_value = _shown_value(value) if shown is None else shown
        super().__init__(self.repr_value)

    def __str__(self) -> str:
        if self.where == "value" and not self.reason:  # made as nameko makes it
            return f"Unserializable value: `{self.repr_value}`"
        text = f"{self.where} cannot be sent: {self.repr_value}"
        if self.reason:
            text += f"; {self.reason}"
        return text

    def wire_error(self) -> dict[str, Any]:
        """nameko's form (no ``exc_args``, a value starting as nameko's), with where
        the value was and what to do after it."""
        value = f"Unserializable value: `{self.repr_value}`"
        if self.where != "value" or self.reason:
            value += f" in {self.where}"
            if self.reason:
                value += f": {self.reason}"
        return {
            "exc_type": "UnserializableValueError",
            "exc_path": "nameko.exceptions.UnserializableValueError",
            "exc_args": [],
            "value": value,
        }


def _shown_value(value: Any) -> str:
    """``quote(value)``; nameko's placeholder when the value's own ``__repr__`` fails
    (built-in containers are not tried whole: ``quote`` shows their items, bounded)."""
    if type(value) not in _BUILTIN_REPRS:
        try:
            repr(value)
        except Exception:
            return "[__repr__ failed]"
    return quote(value)


_BUILTIN_REPRS = frozenset(
    {list, tuple, dict, set, frozenset, str, bytes, bytearray, int, float, bool, type(None)}
)


class ConfigurationError(ShimejiError):
    """The configuration, a service class or an argument is invalid."""


class FaultPlanError(ConfigurationError):
    """A fault plan names a service, method, replica or client the cluster does not
    have: it could never fire. ``problems`` holds one sentence per such name."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__(*self.problems)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return f"the fault plan can never fire as written: {self.problems[0]}"
        listed = "; ".join(f"({n}) {p}" for n, p in enumerate(self.problems, start=1))
        return f"the fault plan can never fire as written: {listed}"


class SimulationStalled(ShimejiError):
    """A caller waits with no deadline, and nothing left in the simulation can
    ever answer it (raised by the simulator; ``stuck`` lists what waits, one
    line each)."""

    def __init__(self, message: str, stuck: list[str] | None = None) -> None:
        self.stuck = list(stuck or [])
        super().__init__(message)


class SimulationLivelock(ShimejiError):
    """The simulation runs in circles: one message has gone back to its queue so
    often that it would never be settled (``shimeji.sim.bus.REDELIVERY_LOOP``)."""


class OutsideVirtualTime(ShimejiError):
    """Code running on a real thread, outside the simulation's virtual time (a
    route answered on ``web_config``'s listener while the simulation's thread
    was blocked), waited for the simulation: an RPC, say (``shimeji.sim.bridge``)."""


class PublishFailed(ShimejiError):
    """Publishing failed on every attempt the retry policy allowed; nothing was sent."""

    def __init__(self, routing_key: str, attempts: int, cause: BaseException | str) -> None:
        self.routing_key = routing_key
        self.attempts = attempts
        self.cause = cause
        super().__init__(routing_key, attempts, str(cause))

    def __str__(self) -> str:
        return (
            f"could not publish {self.routing_key!r}: {self.attempts} attempt(s) failed, last "
            f"with: {self.cause}. Nothing was sent; check the broker, or raise "
            "RPC_RETRY_POLICY max_retries"
        )


class EventHandlerConfigurationError(ConfigurationError):
    """An event handler asks for what cannot be: a broadcast handler with reliable
    delivery and the default broadcast identifier."""


class ExtensionNotFound(ShimejiError):
    """A named dependency does not exist on the service class."""


class ContainerBeingKilled(ShimejiError):
    """The replica is dying and cannot start new work; the message is requeued."""


class OutsideClosed(ContainerBeingKilled):
    """A real thread asked the simulation for work after it stopped taking any
    (its cluster stopped: ``shimeji.sim.bridge``)."""


class ReplicaCrashed(ShimejiError):
    """A replica died because one of its extensions failed (a lifecycle hook raised)."""

    def __init__(self, replica: str, cause: BaseException) -> None:
        self.replica = replica
        self.cause = cause
        super().__init__(replica, cause)

    def __str__(self) -> str:
        return f"replica {self.replica} crashed: {type(self.cause).__name__}: {self.cause}"


# -- exceptions on the wire ---------------------------------------------------

_registry: dict[str, type[BaseException]] = {}


def exception_path(exc_type: type[BaseException]) -> str:
    """The dotted path that identifies an exception class on the wire."""
    wire_path = exc_type.__dict__.get("__wire_path__")
    if isinstance(wire_path, str):
        return wire_path
    return f"{exc_type.__module__}.{exc_type.__qualname__}"


def deserialize_to_instance(exc_type: E) -> E:
    """Class decorator: callers receive this exception as itself, not as RemoteError.

    The class must be importable under the same path on both sides, and must be
    constructible from its ``args``.
    """
    _registry[exception_path(exc_type)] = exc_type
    for alias in exc_type.__dict__.get("__wire_aliases__", ()):
        _registry[alias] = exc_type
    return exc_type


def safe_str(value: Any) -> str:
    """``str(value)``, or a placeholder when its ``__str__`` itself fails."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} with failing __str__>"


def describe(exc: BaseException) -> str:
    """``"TypeName: message"``, safe for any exception."""
    return f"{type(exc).__name__}: {safe_str(exc)}"


_STR_FAILED = "[__unicode__ failed]"  # nameko's placeholder, which its peers may look for


def safe_for_serialization(value: Any) -> Any:
    """A JSON-safe rendering of ``value``, exactly as nameko 2.x makes it: a string
    as it is, a dict with its keys and values made safe, any other iterable a list
    of its items made safe, and everything else its ``str()`` (numbers, None and
    booleans too: ``(1, {2})`` becomes ``['1', ['2']]``), or
    ``"[__unicode__ failed]"`` when that ``str()`` raises."""
    return _safe(value, 0, False)


def _safe(value: Any, depth: int, keep_scalars: bool) -> Any:
    if isinstance(value, str):
        return value
    if keep_scalars and (
        value is None
        or isinstance(value, (bool, int))
        or (isinstance(value, float) and math.isfinite(value))
    ):
        return value
    if depth < _SAFE_DEPTH:
        if isinstance(value, dict):
            return {
                _safe(k, depth + 1, False): _safe(v, depth + 1, keep_scalars)
                for k, v in value.items()
            }
        if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
            try:
                return [_safe(v, depth + 1, keep_scalars) for v in value]
            except Exception:  # an iterable whose iteration fails: its text instead
                pass
    try:
        return str(value)
    except Exception:
        return _STR_FAILED


# Deeper than this (or a container holding itself), the rest is given as text.
_SAFE_DEPTH = 50


def serialize(exc: BaseException) -> dict[str, Any]:
    """The wire form of an exception: ``exc_type``, ``exc_path``, ``exc_args``, ``value``.

    As nameko makes it (arguments and text through ``safe_for_serialization``),
    except for a ``RemoteError`` passed on, which keeps the original's identity,
    and the few shimeji exceptions that go by nameko's own form (``wire_error``).
    """
    wire_error = getattr(exc, "wire_error", None)
    if isinstance(exc, ShimejiError) and wire_error is not None:
        return wire_error()  # type: ignore[no-any-return]
    if isinstance(exc, RemoteError):
        # Re-raising a remote error keeps the original identity.
        return {
            "exc_type": exc.exc_type,
            "exc_path": exc.exc_path,
            "exc_args": [_safe(arg, 0, True) for arg in exc.exc_args],
            "value": exc.value,
        }
    return {
        "exc_type": type(exc).__name__,
        "exc_path": exception_path(type(exc)),
        # nameko turns numbers, booleans and None into text here too; shimeji keeps
        # them (JSON carries them), so a registered exception gets its own back.
        "exc_args": [_safe(arg, 0, True) for arg in exc.args],
        "value": safe_for_serialization(exc),
    }


def deserialize(data: Any) -> BaseException:
    """Rebuild an exception from its wire form (see ``serialize``)."""
    if not isinstance(data, Mapping):
        return MalformedReply(f"error payload is not a mapping: {quote(data)}")
    exc_path = data.get("exc_path")
    exc_type = data.get("exc_type")
    exc_args = data.get("exc_args") or []
    value = data.get("value", "")
    if not isinstance(exc_args, list):
        exc_args = [exc_args]
    registered = _registry.get(exc_path) if isinstance(exc_path, str) else None
    if registered is not None:
        try:
            return registered(*exc_args)
        except Exception:  # the class no longer accepts these args: fall back
            pass
    return RemoteError(
        exc_type=exc_type if isinstance(exc_type, str) else str(exc_type),
        value=value if isinstance(value, str) else str(value),
        exc_args=exc_args,
        exc_path=exc_path if isinstance(exc_path, str) else None,
    )


# Users import these from ``shimeji.exceptions``; name them so on the wire and
# in tracebacks.
for _cls in list(globals().values()):
    if isinstance(_cls, type) and issubclass(_cls, ShimejiError):
        _cls.__module__ = "shimeji.exceptions"

# The request errors come back to the caller as themselves. On the wire they go
# by nameko's paths, so that nameko callers rebuild them as their own classes
# too; shimeji's own paths are understood as well.
for _cls in (MethodNotFound, IncorrectSignature, MalformedRequest):
    _cls.__wire_path__ = f"nameko.exceptions.{_cls.__name__}"  # type: ignore[attr-defined]
    _cls.__wire_aliases__ = (f"shimeji.exceptions.{_cls.__name__}",)  # type: ignore[attr-defined]
    deserialize_to_instance(_cls)
del _cls
