"""``shimeji run`` and ``shimeji shell`` against the broker, as separate processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from shimeji.exceptions import RemoteError
from shimeji.standalone import ClusterRpcProxy

from .broker import clean_broker

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def config_file(amqp_uri, tmp_path):
    exchange = f"shimeji-cli-{uuid.uuid4().hex[:10]}"
    path = tmp_path / "config.yaml"
    path.write_text(f"AMQP_URI: {amqp_uri}\nrpc_exchange: {exchange}\nRPC_TIMEOUT: 10\n")
    yield path, {"AMQP_URI": amqp_uri, "rpc_exchange": exchange, "RPC_TIMEOUT": 10}
    clean_broker(amqp_uri, "rpc-calculator", "rpc-slow", exchange=exchange)


def shimeji(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "shimeji", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        **kwargs,
    )


def wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 20) -> list[str]:
    """Read the process's stderr until a line holds ``text``; fail after ``timeout``."""
    assert proc.stderr is not None
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        raise AssertionError(f"never saw {text!r} within {timeout}s; got:\n{''.join(lines)}")
    return lines


def test_run_serves_until_sigterm_and_finishes_calls_in_progress(config_file):
    """shimeji run serves the named classes; SIGTERM lets a call in progress finish
    and exits 0."""
    path, config = config_file
    proc = shimeji(
        "run",
        "tests.conformance.services:Calculator",
        "tests/conformance/services.py:Slow",
        "--config",
        str(path),
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, "serving calculator, slow")
        with ClusterRpcProxy(config) as rpc:
            assert rpc.calculator.add(20, 22) == 42
            reply = rpc.slow.sleep.call_async(0.5, "last")
            time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert reply.result() == ["last", "slow-1"]
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_run_applies_the_logging_configuration(config_file, tmp_path):
    """LOGGING in the config file is applied as a dictConfig: here, shimeji's
    warnings (an expected exception of a worker) go to a file."""
    path, config = config_file
    log_file = tmp_path / "shimeji.log"
    path.write_text(
        path.read_text()
        + "LOGGING:\n"
        + "  version: 1\n"
        + "  formatters: {plain: {format: 'LOGGED %(levelname)s %(name)s %(message)s'}}\n"
        + f"  handlers: {{file: {{class: logging.FileHandler, filename: '{log_file}', "
        + "formatter: plain}}\n"
        + "  loggers: {shimeji: {level: WARNING, handlers: [file]}}\n"
    )
    proc = shimeji(
        "run",
        "tests.conformance.services:Calculator",
        "--config",
        str(path),
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(proc, "serving calculator")
        with ClusterRpcProxy(config) as rpc, pytest.raises(RemoteError):
            rpc.calculator.divide(1, 0)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    logged = log_file.read_text()
    assert "LOGGED WARNING shimeji" in logged and "Division by zero" in logged


def test_second_interrupt_kills(config_file):
    """A first Ctrl-C starts a graceful stop; a second one kills at once, and the
    unfinished request goes back to its queue."""
    path, config = config_file
    proc = shimeji(
        "run", "tests.conformance.services:Slow", "--config", str(path), stderr=subprocess.PIPE
    )
    try:
        wait_for_line(proc, "serving slow")
        with ClusterRpcProxy(config, timeout=None) as rpc:
            rpc.slow.sleep.call_async(30, "abandoned")
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            wait_for_line(proc, "Ctrl-C again to kill")
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=20) == 130
        from shimeji.amqp_adapter import AmqpTransport
        from shimeji.config import Settings

        probe = AmqpTransport(Settings.from_config(config), name="probe")
        try:
            count = probe.inspect_queue("rpc-slow")[0]
        finally:
            probe.close()
        assert count == 1
    finally:
        if proc.poll() is None:
            proc.kill()


def test_shell_calls_a_service(config_file):
    """shimeji shell offers n.rpc.<service>.<method>() on the configured broker."""
    path, _ = config_file
    server = shimeji(
        "run",
        "tests.conformance.services:Calculator",
        "--config",
        str(path),
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_line(server, "serving calculator")
        shell = shimeji(
            "shell",
            "--config",
            str(path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = shell.communicate("print('sum', n.rpc.calculator.add(2, 3))\n", timeout=30)
        assert shell.returncode == 0, err
        assert "sum 5" in out
        assert "shimeji shell on amqp://" in err
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=20)
