"""``shimeji shell``: a Python REPL with ``n.rpc`` connected to RabbitMQ.

>>> n.rpc.calculator.add(2, 3)
5
"""

from __future__ import annotations

import argparse
import code
import json
import sys
from typing import Any

from shimeji.cli import CommandError
from shimeji.cli.common import add_config_arguments, broker_of, load_cli_config
from shimeji.core.exceptions import ConfigurationError
from shimeji.core.transport import BrokerUnavailable

__all__ = ["register", "shell"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "shell",
        help="a Python REPL that calls services on RabbitMQ",
        description="Open a Python REPL where n.rpc.<service>.<method>(...) calls a service.",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--context",
        metavar="JSON",
        help='context data sent with every call, e.g. \'{"user_id": "u1"}\'',
    )
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="SECONDS", help="timeout of each call"
    )
    parser.set_defaults(handler=shell)


class Namespace:
    """What ``n`` holds in the shell: ``n.rpc`` and ``n.config``."""

    def __init__(self, rpc: Any, config: dict[str, Any]) -> None:
        self.rpc = rpc
        self.config = config

    def __repr__(self) -> str:
        return "<shimeji shell: n.rpc.<service>.<method>(...), n.config>"


def shell(args: argparse.Namespace) -> int:
    from shimeji.core.config import FROM_CONFIG
    from shimeji.standalone import ClusterRpcProxy

    config = load_cli_config(args, strict=False)
    context = None
    if args.context:
        try:
            context = json.loads(args.context)
        except json.JSONDecodeError as exc:
            raise CommandError(f"--context is not valid JSON: {exc}") from None
        if not isinstance(context, dict):
            raise CommandError('--context must be a JSON object, e.g. \'{"user_id": "u1"}\'')
    if args.timeout is not None and not (0 < args.timeout < float("inf")):
        raise CommandError(f"--timeout must be seconds > 0, got {args.timeout}")
    try:
        proxy = ClusterRpcProxy(
            config, context, FROM_CONFIG if args.timeout is None else args.timeout
        )
        rpc = proxy.start()
    except BrokerUnavailable as exc:
        raise CommandError(f"cannot connect: {exc}") from None
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    banner = (
        f"shimeji shell on {broker_of(config)} (Python {sys.version.split()[0]})\n"
        "Call services with n.rpc.<service>.<method>(...); Ctrl-D leaves."
    )
    try:
        code.interact(banner=banner, local={"n": Namespace(rpc, config)}, exitmsg="")
    finally:
        proxy.stop()
    return 0
