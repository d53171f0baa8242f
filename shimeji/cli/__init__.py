"""The ``shimeji`` command. Each subcommand lives in a module of this package
with a ``register(subparsers)`` function; ``COMMANDS`` lists them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["COMMANDS", "CommandError", "main"]

#: Modules defining subcommands, in the order ``shimeji --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "shimeji.cli.sim",
    "shimeji.cli.run",
    "shimeji.cli.shell",
    "shimeji.cli.show_config",
)


class CommandError(Exception):
    """A problem to report as one line on stderr, with exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shimeji",
        description="Run and inspect shimeji services (on the simulator or on RabbitMQ).",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except CommandError as exc:
        print(f"shimeji {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
