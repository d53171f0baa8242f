"""Extensions: the pieces a service container is made of (nameko's model).

A service class declares extensions: entrypoints (decorators on methods, such
as ``@rpc``) and dependency providers (class attributes, such as
``RpcProxy("calculator")``). Those declarations are templates. Each replica's
container *binds* its own copy of every extension, so no state is shared
between replicas, except by a ``SharedExtension`` shared on purpose within one
container.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator
from operator import eq
from types import FunctionType
from typing import TYPE_CHECKING, Any, TypeVar

from shimeji.core.exceptions import ConfigurationError, IncorrectSignature
from shimeji.core.quoting import shorten

if TYPE_CHECKING:
    from shimeji.core.container import ServiceContainer, WorkerContext

__all__ = [
    "DependencyProvider",
    "Entrypoint",
    "Extension",
    "SharedExtension",
    "class_memo",
    "declared_extensions",
    "iter_dependencies",
    "iter_entrypoints",
    "register_entrypoint",
]

T = TypeVar("T", bound="Extension")

ENTRYPOINTS_ATTR = "__shimeji_entrypoints__"


class Extension:
    """Base of every extension: lifecycle hooks plus binding to a container.

    ``setup`` runs before any extension starts, ``start`` when the container
    starts, ``stop`` for a graceful stop and ``kill`` when the container dies.
    Override the ones you need; each default does nothing.
    """

    container: ServiceContainer | None = None
    _init_params: tuple[tuple[Any, ...], dict[str, Any]]

    def __new__(cls, *args: Any, **kwargs: Any) -> Extension:
        instance = super().__new__(cls)
        # Kept so that ``bind`` can build a fresh copy for each container.
        instance._init_params = (args, kwargs)
        return instance

    def setup(self) -> None:
        """Called once, before any extension of the container starts."""

    def start(self) -> None:
        """Called when the container starts."""

    def stop(self) -> None:
        """Called for a graceful stop."""

    def kill(self) -> None:
        """Called when the container dies: stop at once, release everything."""

    def clone(self: T) -> T:
        args, kwargs = self._init_params
        return type(self)(*args, **kwargs)

    def bind(self: T, container: ServiceContainer) -> T:
        """A copy of this extension bound to ``container``, with its sub-extensions bound."""
        instance = self.clone()
        instance.container = container
        instance._bind_subextensions(container)
        return instance

    def _bind_subextensions(self, container: ServiceContainer) -> None:
        # In name order, so binding order never depends on hashing.
        for name, template in _extension_members(type(self)):
            setattr(self, name, template.bind(container))

    def is_bound(self) -> bool:
        return self.container is not None

    def __repr__(self) -> str:
        state = "bound" if self.is_bound() else "declared"
        return f"<{type(self).__name__} ({state}) at 0x{id(self):x}>"


class SharedExtension(Extension):
    """An extension of which a container holds one instance, whoever declares it.

    Instances are shared by ``sharing_key`` (the class, unless overridden).
    """

    @property
    def sharing_key(self) -> Any:
        return type(self)

    def bind(self: T, container: ServiceContainer) -> T:
        existing = container.shared_extensions.get(self.sharing_key)  # type: ignore[attr-defined]
        if existing is not None:
            return existing  # type: ignore[no-any-return]
        instance = super().bind(container)
        container.shared_extensions[self.sharing_key] = instance  # type: ignore[attr-defined]
        return instance


class DependencyProvider(Extension):
    """Provides a value to a service attribute for each worker.

    ``get_dependency`` returns what the attribute holds while the worker runs.
    ``worker_setup``, ``worker_result`` and ``worker_teardown`` see every worker
    of the container. ``config_keys`` lists configuration keys of the
    application that this provider reads (so that they are not refused as
    unknown).
    """

    attr_name: str = ""
    config_keys: tuple[str, ...] = ()

    def bind(self: T, container: ServiceContainer, attr_name: str = "") -> T:  # type: ignore[override]
        instance = super().bind(container)
        instance.attr_name = attr_name  # type: ignore[attr-defined]
        return instance

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        """The value injected into the service instance for this worker."""
        return None

    def worker_setup(self, worker_ctx: WorkerContext) -> None:
        """Before the service method runs."""

    def worker_result(
        self, worker_ctx: WorkerContext, result: Any = None, exc_info: Any = None
    ) -> None:
        """After the method returned (``result``) or raised (``exc_info``)."""

    def worker_teardown(self, worker_ctx: WorkerContext) -> None:
        """Last, whatever happened."""


class Entrypoint(Extension):
    """A way in to a service method (``@rpc`` is one).

    ``expected_exceptions`` are errors the method raises on purpose: they are
    logged at WARNING rather than ERROR. ``sensitive_arguments`` name arguments
    (or ``"arg.key"`` paths inside them) redacted wherever calls are logged or
    traced.
    """

    method_name: str = ""

    def __init__(
        self,
        expected_exceptions: type[BaseException] | tuple[type[BaseException], ...] = (),
        sensitive_arguments: str | tuple[str, ...] = (),
    ) -> None:
        if isinstance(expected_exceptions, type):
            expected_exceptions = (expected_exceptions,)
        if not isinstance(expected_exceptions, (tuple, list)) or not all(
            isinstance(e, type) and issubclass(e, BaseException) for e in expected_exceptions
        ):
            raise ConfigurationError(
                "expected_exceptions must be an exception class or a tuple of them, "
                f"got {expected_exceptions!r}"
            )
        if isinstance(sensitive_arguments, str):
            sensitive_arguments = (sensitive_arguments,)
        if not all(isinstance(a, str) and a for a in sensitive_arguments):
            raise ConfigurationError(
                f"sensitive_arguments must be argument names, got {sensitive_arguments!r}"
            )
        self.expected_exceptions: tuple[type[BaseException], ...] = tuple(expected_exceptions)
        self.sensitive_arguments: tuple[str, ...] = tuple(sensitive_arguments)

    def bind(self: T, container: ServiceContainer, method_name: str = "") -> T:  # type: ignore[override]
        instance = super().bind(container)
        instance.method_name = method_name  # type: ignore[attr-defined]
        return instance

    def plain_method(self, decorator: str) -> Callable[..., Any]:
        """The service class's function this entrypoint runs; a static or class
        method is refused (``decorator`` names the entrypoint in the message)."""
        container = self.container
        assert container is not None
        fn = inspect.getattr_static(container.service_cls, self.method_name)
        if isinstance(fn, (staticmethod, classmethod)):
            raise ConfigurationError(
                f"{decorator} method {container.service_cls.__qualname__}.{self.method_name} "
                "must be a plain method, not a static or class method"
            )
        return fn  # type: ignore[no-any-return]

    def method_signature(self, fn: Callable[..., Any]) -> inspect.Signature:
        """``inspect.signature(fn)``, read once per function (every replica of
        every cluster sets up its entrypoints from the same functions)."""
        if type(fn) is not FunctionType:  # (a callable object: read each time)
            return inspect.signature(fn)
        key = (
            fn.__code__,
            fn.__defaults__,
            fn.__kwdefaults__,
            fn.__dict__.get("__signature__"),
            fn.__dict__.get("__wrapped__"),
        )
        known = _SIGNATURES.get(fn)
        if known is not None and known[0] == key:
            return known[1]
        signature = inspect.signature(fn)
        _SIGNATURES[fn] = (key, signature)
        return signature

    def bind_arguments(self, signature: inspect.Signature, args: Any, kwargs: Any) -> None:
        """Check that ``args`` and ``kwargs`` fit the method (``signature``, its
        ``self`` first); ``IncorrectSignature`` naming its parameters if not."""
        try:
            signature.bind(None, *args, **kwargs)
        except TypeError as exc:
            params = ", ".join(list(signature.parameters)[1:])
            # The error names what was sent (an unexpected keyword): keep it short.
            raise IncorrectSignature(f"{self.method_name}({params}): {shorten(str(exc))}") from None

    @classmethod
    def decorator(cls, *args: Any, **kwargs: Any) -> Any:
        """Use as ``@entrypoint`` or ``@entrypoint(option=...)``."""

        def registering(fn: Callable[..., Any]) -> Callable[..., Any]:
            if not callable(fn):
                raise ConfigurationError(f"@{cls.__name__.lower()} decorates methods, not {fn!r}")
            register_entrypoint(fn, cls(*args, **kwargs))
            return fn

        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], type):
            # bare @decorator: the single positional argument is the method
            fn, args = args[0], ()
            return registering(fn)
        cls(*args, **kwargs)  # check the options now, where the mistake is
        return registering


def register_entrypoint(fn: Callable[..., Any], entrypoint: Entrypoint) -> None:
    global _registrations
    _registrations += 1  # what classes declare is read again (``_declared``)
    declared = fn.__dict__.get(ENTRYPOINTS_ATTR)
    if declared is None:
        declared = []
        setattr(fn, ENTRYPOINTS_ATTR, declared)
    declared.append(entrypoint)


def _static_members(cls: type) -> list[tuple[str, Any]]:
    """``(name, member)`` for each attribute of ``cls`` but ``object``'s, in name
    order (``dir``'s), without running descriptors: what
    ``inspect.getattr_static`` finds (the first class of the MRO that defines
    the name), read from the MRO's namespaces directly, many times faster.
    A class with a metaclass of its own (which may list more names) goes the
    slow way."""
    if type(cls) is not type:
        return [
            (name, inspect.getattr_static(cls, name, None))
            for name in dir(cls)
            if name not in _OBJECT_NAMES
        ]
    members: dict[str, Any] = {}
    for namespace in map(vars, cls.__mro__[:-1]):  # (object is last)
        for name, member in namespace.items():
            members.setdefault(name, member)
    return sorted(members.items(), key=_name)


_OBJECT_NAMES = frozenset(vars(object))


def _name(item: tuple[str, Any]) -> str:
    return item[0]


class _Declared:
    """What a class declares (read from ``_static_members``), what its MRO's
    namespaces held when it was read, and ``memo``: what depends on the class as
    it is (``class_memo``)."""

    __slots__ = ("dependencies", "entrypoints", "extensions", "held", "memo", "registrations")

    def __init__(self, members: list[tuple[str, Any]], held: list[dict[str, Any]]) -> None:
        self.held = held
        self.registrations = _registrations
        self.memo: dict[str, Any] = {}
        self.extensions = [(name, m) for name, m in members if isinstance(m, Extension)]
        self.dependencies = [
            (name, m) for name, m in self.extensions if isinstance(m, DependencyProvider)
        ]
        entrypoints = []
        for name, member in members:
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            for entrypoint in getattr(member, ENTRYPOINTS_ATTR, None) or ():
                entrypoints.append((name, entrypoint))
        self.entrypoints: list[tuple[str, Entrypoint]] = entrypoints


class _Remembered:
    """Holds, on the class itself, the class's latest ``_Declared``."""

    __slots__ = ("declared",)

    def __init__(self) -> None:
        self.declared: _Declared | None = None


#: The attribute of a class under which what it declares is remembered (read for
#: every extension of every replica of every cluster, and read again when the
#: class changed or an entrypoint was registered since). On the class, not in a
#: table of shimeji's: what is remembered refers to the class (through its
#: methods' closures, its descriptors), so a table would keep every class it
#: saw alive for the life of the process; on the class, it is a cycle that goes
#: with the class.
REMEMBERED_ATTR = "__shimeji_declared__"
_registrations = 0
#: function -> (what its signature is read from, the signature)
_SIGNATURES: weakref.WeakKeyDictionary[Callable[..., Any], tuple[Any, inspect.Signature]] = (
    weakref.WeakKeyDictionary()
)


def _declared(cls: type) -> _Declared:
    if type(cls) is not type:  # (a metaclass of its own: read each time)
        return _Declared(_static_members(cls), [])
    remembered = cls.__dict__.get(REMEMBERED_ATTR)
    if remembered is None:
        remembered = _Remembered()
        try:
            type.__setattr__(cls, REMEMBERED_ATTR, remembered)
        except TypeError:  # a type that cannot be changed: read each time
            return _Declared(_static_members(cls), [])
    namespaces = list(map(vars, cls.__mro__[:-1]))
    known = remembered.declared
    # Compared as dicts, in C: the same objects, so no __eq__ runs.
    if (
        known is not None
        and known.registrations == _registrations
        and len(known.held) == len(namespaces)
        and all(map(eq, namespaces, known.held))
    ):
        return known
    known = remembered.declared = _Declared(_static_members(cls), list(map(dict, namespaces)))
    return known


def class_memo(cls: type) -> dict[str, Any]:
    """A dict for what depends on ``cls`` as it is now (``SimCluster``'s class
    checks): the same dict while the namespaces of its MRO hold the same
    objects and no entrypoint was registered since, a new empty one after. It
    goes with the class. A class with a metaclass of its own gets a new one
    each time (nothing is remembered of it)."""
    return _declared(cls).memo


def declared_extensions(
    service_cls: type,
) -> tuple[list[tuple[str, Entrypoint]], list[tuple[str, DependencyProvider]]]:
    """``(entrypoints, dependencies)`` of a service class, as ``iter_entrypoints``
    and ``iter_dependencies`` give them (one reading of the class for both)."""
    declared = _declared(service_cls)
    return declared.entrypoints, declared.dependencies


def _extension_members(cls: type) -> list[tuple[str, Extension]]:
    """``(name, template)`` for each extension a class declares, in name order."""
    return _declared(cls).extensions


def iter_entrypoints(service_cls: type) -> Iterator[tuple[str, Entrypoint]]:
    """``(method_name, entrypoint template)`` for each entrypoint, in name order."""
    return iter(_declared(service_cls).entrypoints)


def iter_dependencies(service_cls: type) -> Iterator[tuple[str, DependencyProvider]]:
    """``(attribute name, provider template)`` for each dependency, in name order."""
    return iter(_declared(service_cls).dependencies)
