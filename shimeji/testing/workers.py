"""``worker_factory``: a service instance for a unit test, no cluster needed."""

from __future__ import annotations

from typing import Any
from unittest.mock import MagicMock

from shimeji.core.exceptions import ConfigurationError, ExtensionNotFound
from shimeji.core.extensions import iter_dependencies

__all__ = ["worker_factory"]


def worker_factory(service_cls: type, **dependencies: Any) -> Any:
    """An instance of ``service_cls`` whose dependencies are the values given by
    attribute name, and ``MagicMock`` objects for the rest. Any class will do,
    with or without a ``name`` (a mixin, a base class of services).

        service = worker_factory(UserService, calculator_rpc=FakeCalculator())
        assert service.calculate_user_score("u1", 10, 3)["score"] == 30
    """
    if not isinstance(service_cls, type):
        raise ConfigurationError(
            f"worker_factory takes a service class (the class itself), got {service_cls!r}"
        )
    declared = [name for name, _ in iter_dependencies(service_cls)]
    for name in dependencies:
        if name not in declared:
            raise ExtensionNotFound(
                f"{service_cls.__qualname__} has no dependency named {name!r}; "
                f"its dependencies are {declared}"
            )
    service = service_cls()
    for name in declared:
        setattr(service, name, dependencies[name] if name in dependencies else MagicMock())
    return service
