"""Finding extensions and containers in a test (nameko's ``nameko.testing.utils``).

proxy = get_extension(container, RpcProxy, target_service="calculator")
orders = get_container(runner, OrderService)
"""

from __future__ import annotations

from typing import Any

from shimeji.core.extensions import Extension

__all__ = ["get_container", "get_extension"]


def _extensions(container: Any) -> list[Extension]:
    extensions = getattr(container, "extensions", None)
    if extensions is None:
        inner = getattr(container, "container", None) or getattr(container, "prepared", None)
        extensions = getattr(inner, "extensions", None)
    if extensions is None:
        raise TypeError(
            f"get_extension takes a container (from container_factory or runner_factory, a "
            f"started replica, or a ServiceContainer); got {container!r}"
        )
    return list(extensions)


def get_extension(container: Any, extension_cls: type, **match_attrs: Any) -> Any:
    """The first of the container's extensions that is an ``extension_cls`` and
    whose attributes equal ``match_attrs`` (None if there is none).

    A container is anything ``entrypoint_hook`` takes."""
    for extension in _extensions(container):
        if not isinstance(extension, extension_cls):
            continue
        if all(getattr(extension, name, _MISSING) == value for name, value in match_attrs.items()):
            return extension
    return None


def get_container(runner: Any, service_cls: type) -> Any:
    """The container of ``runner`` (``runner_factory``'s, or any object with
    ``containers``) that runs ``service_cls``; None if none does."""
    for container in runner.containers:
        if container.service_cls is service_cls:
            return container
    return None


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
