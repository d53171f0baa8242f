"""``shimeji run module[:Class] ...``: run services on RabbitMQ until stopped.

SIGTERM or a first Ctrl-C stops gracefully (running calls finish and are
acked); a second Ctrl-C kills at once (unfinished requests go back to their
queues for other replicas). A replica that stops consuming for good (it
could not reconnect within RECONNECT_TIMEOUT, or its consumer loop failed)
makes the process exit with status 1 and a one-line reason, so that a
supervisor restarts it; ``--health`` serves liveness and readiness.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from shimeji.cli import CommandError
from shimeji.cli.common import (
    add_config_arguments,
    add_nameko_argument,
    broker_of,
    configure_logging,
    find_services,
    install_nameko_layer,
    load_cli_config,
)
from shimeji.core.exceptions import ConfigurationError, ReplicaCrashed
from shimeji.core.transport import BrokerUnavailable

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run services on RabbitMQ",
        description="Run service classes on RabbitMQ until SIGTERM or Ctrl-C "
        "(a second Ctrl-C kills at once).",
    )
    parser.add_argument(
        "services",
        nargs="+",
        metavar="module[:Class]",
        help="a module (every service class in it) or module:Class; "
        "a path such as services/calc.py works too",
    )
    add_config_arguments(parser)
    parser.add_argument(
        "--replicas", type=int, default=1, metavar="N", help="replicas of each service (1)"
    )
    parser.add_argument(
        "--health",
        metavar="HOST:PORT",
        help="serve liveness and readiness over HTTP there (/livez, /readyz, /healthz), "
        "for a process supervisor or a Kubernetes probe",
    )
    add_nameko_argument(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="log level when the configuration has no LOGGING (info)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shimeji.amqp_adapter import LoggingTracer
    from shimeji.runner import ServiceRunner

    if args.replicas < 1:
        raise CommandError(f"--replicas must be at least 1, got {args.replicas}")
    if args.nameko:
        install_nameko_layer()
    services = find_services(args.services)
    config = load_cli_config(args, services)
    configure_logging(config, args.log_level)
    tracer = LoggingTracer() if args.log_level == "debug" else None
    try:
        runner = ServiceRunner(config, tracer=tracer)
        for cls in services:
            runner.add_service(cls, replicas=args.replicas)
    except ConfigurationError as exc:
        raise CommandError(str(exc)) from None
    names = ", ".join(runner.services)
    health = None
    if args.health:
        from shimeji.health import HealthServer  # http.server: only when asked for

        try:
            health = HealthServer(runner.health, args.health).start()
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        print(f"health checks on http://{args.health}/", file=sys.stderr, flush=True)
    # SIGTERM is handled from here on. While the services start, it interrupts
    # the start (what started is stopped, the exit status is 0); once they are
    # serving, it asks for a graceful stop.
    stop = threading.Event()
    starting = True

    def on_sigterm(signum: int, frame: Any) -> None:
        stop.set()
        if starting:
            raise _Terminated

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        print(f"starting services: {names}", file=sys.stderr, flush=True)
        try:
            runner.start()
        except BrokerUnavailable as exc:
            raise CommandError(f"cannot start: {exc}") from None
        except ConfigurationError as exc:
            raise CommandError(str(exc)) from None
        starting = False
        print(f"connected to {broker_of(config)}; serving {names}", file=sys.stderr, flush=True)
        return _serve(runner, stop)
    except _Terminated:
        runner.kill()
        print("terminated while starting; stopped", file=sys.stderr, flush=True)
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if health is not None:
            health.close()


class _Terminated(BaseException):
    """SIGTERM arrived while the services were starting."""


def _serve(runner: Any, stop: threading.Event) -> int:
    try:
        while not stop.is_set():
            if runner.wait(timeout=0.5):
                return 0  # stopped from elsewhere
    except KeyboardInterrupt:
        pass
    except ReplicaCrashed as exc:
        print(f"shimeji run: {exc}; stopping", file=sys.stderr, flush=True)
        runner.kill()
        return 1
    print("stopping (Ctrl-C again to kill)", file=sys.stderr, flush=True)
    try:
        runner.stop()
    except KeyboardInterrupt:
        print("killing", file=sys.stderr, flush=True)
        runner.kill()
        return 130
    if runner.crashes:
        print(f"shimeji run: {runner.crashes[0]}", file=sys.stderr, flush=True)
        return 1
    return 0
