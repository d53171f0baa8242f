"""Run code written for nameko 2.x on shimeji, unmodified: an opt-in import layer.

After ``install()``, ``import nameko.rpc`` (and ``nameko.events``,
``nameko.timer``, ``nameko.web.handlers``, ``nameko.exceptions``, ...) gives a
module holding shimeji's equivalents, whether or not nameko itself is
installed: ``from nameko.rpc import rpc, RpcProxy`` is shimeji's ``rpc`` and
``RpcProxy``. ``shimeji sim --nameko``, the pytest plugin
``shimeji.compat.pytest_nameko`` (``pytest -p shimeji.compat.pytest_nameko``)
and ``install()`` turn it on.

What shimeji does not provide fails at import, with a message saying what
to use instead, never silently: nameko's websocket hub, its raw AMQP
``Publisher``/``@consume``, its CLI and eventlet itself (on the simulator,
``time.sleep`` is virtual and workers are greenlets; in production, threads).

Each ``nameko.X`` module is a module of its own (its ``__name__`` is
``nameko.X``) whose names are those of the shimeji module it stands for, the
same objects: ``nameko.rpc.rpc is shimeji.rpc.rpc``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from shimeji.core.exceptions import ConfigurationError

__all__ = ["MODULES", "UNSUPPORTED", "install", "installed", "is_installed", "uninstall"]

#: nameko's modules, and the shimeji modules each one's names come from
#: (a package with none is an empty package).
MODULES: dict[str, tuple[str, ...]] = {
    "nameko": (),
    "nameko.constants": ("shimeji.compat._nameko_constants",),
    "nameko.containers": ("shimeji.compat._nameko_containers", "shimeji.core.container"),
    "nameko.contextdata": ("shimeji.contextdata",),
    "nameko.dependency_providers": ("shimeji.dependency_providers",),
    "nameko.events": ("shimeji.events",),
    "nameko.exceptions": ("shimeji.exceptions",),
    "nameko.extensions": ("shimeji.extensions",),
    "nameko.rpc": ("shimeji.rpc",),
    "nameko.runners": ("shimeji.compat._nameko_containers",),
    "nameko.standalone": (),
    "nameko.standalone.events": ("shimeji.standalone",),
    "nameko.standalone.rpc": ("shimeji.standalone",),
    "nameko.testing": (),
    "nameko.testing.pytest": ("shimeji.testing.nameko_fixtures",),
    "nameko.testing.services": ("shimeji.testing.services",),
    "nameko.testing.utils": ("shimeji.testing.utils",),
    "nameko.testing.waiting": ("shimeji.testing.waiting",),
    "nameko.timer": ("shimeji.timer",),
    "nameko.web": (),
    "nameko.web.handlers": ("shimeji.web",),
    "nameko.web.server": ("shimeji.web",),
}

#: What cannot be supported, and what to do instead.
UNSUPPORTED: dict[str, str] = {
    "nameko.web.websocket": (
        "nameko's websocket hub (WebSocketHubProvider, @rpc over websockets) has no "
        "shimeji equivalent; serve websockets outside the service graph"
    ),
    "nameko.testing.websocket": "nameko's websocket hub is not supported, nor its test client",
    "nameko.messaging": (
        "nameko's raw AMQP Publisher and @consume are not provided; use events "
        "(EventDispatcher, @event_handler) or RPC"
    ),
    "nameko.amqp": (
        "nameko's kombu helpers are not provided; shimeji talks to RabbitMQ through "
        "shimeji.amqp_adapter, chosen by configuration"
    ),
    "nameko.cli": "nameko's command line is not provided; use `shimeji run` and `shimeji sim`",
    "nameko.testing.rabbit": (
        "RabbitMQ management helpers are not provided; on the simulator there is no broker "
        "to manage"
    ),
    "nameko.utils": "nameko.utils (eventlet helpers) is not provided",
    "nameko.log_helpers": "nameko.log_helpers is not provided",
    "nameko.serialization": (
        "nameko.serialization is not provided; configure serializers with the serializer, "
        "ACCEPT and SERIALIZERS keys"
    ),
    "eventlet": (
        "eventlet is not supported: shimeji runs without it (on the simulator time.sleep "
        "is virtual and workers are greenlets; in production, threads). Replace "
        "eventlet.sleep with time.sleep and eventlet.spawn with call_async or a thread"
    ),
}

_PACKAGES = frozenset(
    name for name in MODULES if any(other.startswith(name + ".") for other in MODULES)
)


def _unsupported(fullname: str) -> str | None:
    for name, why in UNSUPPORTED.items():
        if fullname == name or fullname.startswith(name + "."):
            return why
    return None


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``nameko`` and its modules before any other finder, and builds them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if (
            fullname != "nameko"
            and not fullname.startswith("nameko.")
            and (fullname != "eventlet" and not fullname.startswith("eventlet."))
        ):
            return None
        why = _unsupported(fullname)
        if why is not None:
            raise ImportError(
                f"{fullname} cannot be imported under shimeji's nameko layer: {why}",
                name=fullname,
            )
        if fullname not in MODULES:
            provided = ", ".join(name for name in MODULES if name != "nameko")
            raise ImportError(
                f"{fullname} is not a nameko module shimeji's nameko layer provides; it "
                f"provides {provided}",
                name=fullname,
            )
        return importlib.machinery.ModuleSpec(
            fullname, self, is_package=fullname in _PACKAGES, origin="shimeji.compat.nameko"
        )

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None  # the default: a fresh module

    def exec_module(self, module: types.ModuleType) -> None:
        names: dict[str, Any] = {}
        public: list[str] = []
        for target in reversed(MODULES[module.__name__]):
            source = importlib.import_module(target)
            names.update(
                (key, value) for key, value in vars(source).items() if not key.startswith("__")
            )
            public.extend(name for name in getattr(source, "__all__", ()) if name not in public)
        vars(module).update(names)
        module.__all__ = sorted(public)  # type: ignore[attr-defined]
        module.__doc__ = (
            f"nameko's {module.__name__}, as shimeji provides it (from "
            f"{', '.join(MODULES[module.__name__]) or 'nothing: a package'})."
        )


_FINDER = _Finder()


def is_installed() -> bool:
    return _FINDER in sys.meta_path


def install() -> None:
    """Make ``import nameko...`` resolve to shimeji (idempotent).

    Raises ``ConfigurationError`` if nameko's own modules were imported
    already: they would coexist with shimeji's, and half of the code would use
    each. Install the layer first (the pytest plugin and ``shimeji sim
    --nameko`` do).
    """
    if is_installed():
        return
    real = sorted(
        name
        for name, module in sys.modules.items()
        if (name == "nameko" or name.startswith("nameko."))
        and getattr(module.__spec__, "origin", None) != "shimeji.compat.nameko"
    )
    if real:
        raise ConfigurationError(
            f"nameko is imported already ({', '.join(real[:3])}"
            f"{', ...' if len(real) > 3 else ''}): install shimeji's nameko layer before "
            "anything imports nameko (use `pytest -p shimeji.compat.pytest_nameko`, "
            "`shimeji sim --nameko`, or call shimeji.compat.nameko.install() first)"
        )
    sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    """Undo ``install()``: nameko's names resolve as they would without shimeji,
    and the modules it built are forgotten."""
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
    for name in [n for n in sys.modules if n == "nameko" or n.startswith("nameko.")]:
        module = sys.modules[name]
        if getattr(module.__spec__, "origin", None) == "shimeji.compat.nameko":
            del sys.modules[name]


@contextmanager
def installed() -> Iterator[None]:
    """``install()`` for the duration of a ``with`` block (if it was not already)."""
    was = is_installed()
    install()
    try:
        yield
    finally:
        if not was:
            uninstall()
