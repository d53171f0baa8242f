"""What the RabbitMQ subcommands share: finding service classes, loading the
configuration, setting up logging, showing errors in one line."""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from shimeji.cli import CommandError
from shimeji.cli.loading import find_services as loaded_services
from shimeji.cli.loading import load_module
from shimeji.config import load_config
from shimeji.core.config import DEFAULT_CONFIG, Settings, redact_uri
from shimeji.core.container import get_service_name
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.extensions import iter_dependencies, iter_entrypoints

__all__ = [
    "add_config_arguments",
    "add_nameko_argument",
    "configure_logging",
    "find_services",
    "install_nameko_layer",
    "load_cli_config",
]


def add_nameko_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nameko",
        action="store_true",
        help="run code written for nameko: `import nameko.rpc` and the rest give shimeji's "
        "equivalents (shimeji.compat.nameko)",
    )


def install_nameko_layer() -> None:
    """``--nameko``: install shimeji's nameko layer before any module is loaded."""
    from shimeji.compat import nameko

    try:
        nameko.install()
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML configuration (${VAR} and ${VAR:default} are substituted)",
    )
    parser.add_argument(
        "--broker",
        metavar="URI",
        help="AMQP URI of the broker (overrides AMQP_URI), e.g. amqp://guest:guest@localhost/",
    )


def find_services(specs: Iterable[str]) -> list[type]:
    """The service classes named by ``module[:Class]`` specs (a module is a dotted
    name or a ``.py`` path, as for ``shimeji sim``).

    A module alone gives every service class defined in it. Raises CommandError
    with what to fix.
    """
    found: list[type] = []
    for spec in specs:
        module_part, colon, class_name = spec.partition(":")
        if colon and not class_name:
            raise CommandError(f"{spec!r}: name a class after the colon, or drop the colon")
        module = load_module(module_part)
        if class_name:
            cls = getattr(module, class_name, None)
            if cls is None:
                available = [c.__name__ for c in loaded_services(module, imported=False)]
                raise CommandError(
                    f"module {module_part!r} has no {class_name!r}; its service classes: "
                    f"{', '.join(available) or 'none'}"
                )
            if not inspect.isclass(cls):
                raise CommandError(f"{spec!r} is not a class but {type(cls).__name__}")
            if not any(True for _ in iter_entrypoints(cls)):
                raise CommandError(
                    f"{spec!r} has no entrypoints: decorate at least one of its methods with @rpc"
                )
            classes = [cls]
        else:
            classes = loaded_services(module, imported=False)
            if not classes:
                raise CommandError(
                    f"module {module_part!r} defines no service class (a class with a name "
                    "and at least one @rpc method)"
                )
        for cls in classes:
            try:
                get_service_name(cls)
            except ConfigurationError as exc:
                raise CommandError(str(exc)) from None
            if cls not in found:
                found.append(cls)
    return found


def load_cli_config(
    args: argparse.Namespace, services: Iterable[type] = (), strict: bool = True
) -> dict[str, Any]:
    """The configuration from ``--config`` (or the defaults) with ``--broker`` applied.

    Application keys must be declared by the services' providers
    (``config_keys``); with ``strict=False`` undeclared keys are let through.
    """
    declared: set[str] = set()
    for cls in services:
        for _, provider in iter_dependencies(cls):
            declared.update(provider.config_keys)
    config: dict[str, Any] = {}
    try:
        if args.config:
            config = load_config(args.config, extra_keys=_all_keys(args.config))
        if args.broker:
            config["AMQP_URI"] = args.broker
        extra = declared if strict else set(config) - set(DEFAULT_CONFIG)
        Settings.from_config(config, extra_keys=extra)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    return config


def _all_keys(path: str) -> set[str]:
    # The file's own keys, so that load_config checks only shimeji's values;
    # whether unknown keys are allowed is decided once the services are known.
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except Exception:
        return set()
    return {key for key in data if isinstance(key, str)} if isinstance(data, dict) else set()


def configure_logging(config: Mapping[str, Any], level: str) -> None:
    """``LOGGING`` (a dictConfig mapping) if the configuration has one, else
    plain lines on stderr at ``level``."""
    logging_config = config.get("LOGGING")
    if logging_config:
        from logging.config import dictConfig  # only with LOGGING: a smaller process

        try:
            dictConfig(dict(logging_config))
        except (ValueError, TypeError, AttributeError, ImportError) as exc:
            raise CommandError(f"LOGGING is not a valid logging configuration: {exc}") from None
        return
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


def broker_of(config: Mapping[str, Any]) -> str:
    return redact_uri(str(config.get("AMQP_URI", DEFAULT_CONFIG["AMQP_URI"])))
