"""What a ``shimeji run`` process of RPC-only services loads, and what it must not.

A replica process stays up for the life of the service, so every module it
imports is memory it holds for good (the idle RSS that ``benchmarks/amqp_rpc.py``
measures). The process runs here as ``shimeji run`` runs it, up to its first
connection to the broker (refused: nothing listens on the port), and lists
what it imported.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

#: Modules an idle process of RPC-only services has no use for, and why.
NOT_LOADED = {
    "attr": "attrs (the production path uses dataclasses)",
    "attrs": "attrs (the production path uses dataclasses)",
    "werkzeug": "the HTTP stack, only for services with @http routes",
    "cheroot": "the HTTP server, only for services with @http routes",
    "http.server": "the health server, only with --health",
    "shimeji.core.web": "@http, only for services with HTTP routes",
    "shimeji.http_server": "the HTTP server, only for services with HTTP routes",
    "shimeji.health": "the health server, only with --health",
    "shimeji.core.pubsub": "events, only for services that dispatch or handle them",
    "shimeji.core.timer": "@timer, only for services that use it",
    "shimeji.sim": "the simulator",
    "shimeji.views": "the trace views",
    "shimeji.testing": "the test helpers",
    "shimeji.otel": "OpenTelemetry, only when configured",
    "opentelemetry": "OpenTelemetry, only when configured",
    "hypothesis": "property tests",
    "shimeji.cli.sim": "another subcommand",
    "shimeji.cli.shell": "another subcommand",
    "shimeji.cli.show_config": "another subcommand",
    "logging.config": "only with a LOGGING configuration",
    "encodings.idna": "host names are resolved as bytes (the codec imports stringprep)",
    "stringprep": "host names are resolved as bytes (the codec imports stringprep)",
    "ctypes": "nothing on the path needs it",
    "asyncio": "nothing on the path needs it",
}

SERVICES = """
from shimeji.rpc import RpcProxy, rpc


class Echo:
    name = "echo"

    @rpc
    def echo(self, value):
        return value


class Front:
    name = "front"

    echo_rpc = RpcProxy("echo")

    @rpc
    def relay(self, value):
        return self.echo_rpc.echo(value)
"""

# A YAML configuration (it loads yaml, as it should); a broker that refuses at
# once, and no retry: the process stops at its first connection.
CONFIG = """
AMQP_URI: 'amqp://guest:guest@localhost:1//'
RPC_RETRY_POLICY:
  max_retries: 0
"""

PROBE = textwrap.dedent(
    """
    import json, sys
    from shimeji.cli import main

    status = main(["run", sys.argv[1], "--config", sys.argv[2], "--log-level", "error"])
    print(json.dumps({"status": status, "modules": sorted(sys.modules)}))
    """
)


def _loaded(tmp_path: Path) -> dict:
    services = tmp_path / "rpc_only_services.py"
    services.write_text(SERVICES)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(services), str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.stdout, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_an_rpc_only_service_process_loads_only_what_it_uses(tmp_path: Path) -> None:
    result = _loaded(tmp_path)
    # It got as far as connecting: the broker refused, the command said so.
    assert result["status"] == 2
    modules = set(result["modules"])
    # What it needs was loaded (the probe is not vacuous)...
    for needed in ("shimeji.runner", "shimeji.amqp_adapter.loop", "kombu.connection", "yaml"):
        assert needed in modules, needed
    # ...and nothing an RPC-only service has no use for.
    unwanted = {
        name: why
        for name, why in NOT_LOADED.items()
        if any(module == name or module.startswith(name + ".") for module in modules)
    }
    assert unwanted == {}
