"""Built-in dependency providers (nameko's ``nameko.dependency_providers``).

    from shimeji.dependency_providers import Config

    class Mailer:
        name = "mailer"
        config = Config("SMTP_HOST")

        @rpc
        def host(self):
            return self.config["SMTP_HOST"]

``Config`` injects a copy of the replica's configuration: shimeji's keys with
their defaults filled in, and the application's own. Name the application
keys the service reads (``Config("SMTP_HOST", ...)``): shimeji refuses keys
that nothing declares, so that a misspelt key is an error rather than a
silent default.
"""

from __future__ import annotations

from typing import Any

from shimeji.core.container import WorkerContext
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.extensions import DependencyProvider

__all__ = ["Config"]


class Config(DependencyProvider):
    """Injects a copy of the configuration mapping (a fresh ``dict`` per worker,
    so a worker cannot change what the next one sees at the top level).

    ``keys`` are application configuration keys the service reads; they are
    declared as this provider's ``config_keys``.
    """

    def __init__(self, *keys: str) -> None:
        for key in keys:
            if not isinstance(key, str) or not key:
                raise ConfigurationError(
                    f"Config(...) takes the names of configuration keys, got {key!r}"
                )
        self.config_keys = tuple(keys)

    def get_dependency(self, worker_ctx: WorkerContext) -> Any:
        container = self.container
        assert container is not None
        return dict(container.config)
