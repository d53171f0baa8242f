"""The ``shimeji`` command. Each subcommand lives in a module of this package
with a ``register(subparsers)`` function; ``COMMANDS`` lists them."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from shimeji import __version__

__all__ = ["COMMANDS", "CommandError", "Parser", "main"]

#: Modules defining subcommands, in the order ``shimeji --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "shimeji.cli.sim",
    "shimeji.cli.run",
    "shimeji.cli.shell",
    "shimeji.cli.show_config",
)


class CommandError(Exception):
    """A problem to report as one line on stderr, with exit status 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: what is wrong, and where the
    help is (not the usage block first, as argparse prints it)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every subcommand; given ``argv`` that names one, of that
    one only (``shimeji run`` then never imports the simulator's modules, nor
    the HTTP stack: a smaller service process)."""
    parser = Parser(
        prog="shimeji",
        description="Run and inspect shimeji services (on the simulator or on RabbitMQ).",
    )
    parser.add_argument("--version", action="version", version=f"shimeji {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = COMMANDS
    if argv:
        named = f"shimeji.cli.{argv[0].replace('-', '_')}"
        if named in COMMANDS:
            modules = (named,)
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        names = ", ".join(name.rpartition(".")[2].replace("_", "-") for name in COMMANDS)
        print(f"shimeji: error: name a command: {names} (see 'shimeji --help')", file=sys.stderr)
        return 2
    try:
        return int(handler(args) or 0)
    except CommandError as exc:
        print(f"shimeji {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
