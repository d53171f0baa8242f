"""``shimeji run`` as a separate process, the way production runs it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["NAMEKO_SIDE", "ROOT", "ServiceProcess", "free_port", "nameko_side", "shimeji"]

ROOT = Path(__file__).resolve().parents[2]
NAMEKO_SIDE = Path(__file__).with_name("nameko_side.py")


def shimeji(*args: str, **kwargs: Any) -> subprocess.Popen:
    """``python -m shimeji ARGS`` from the repository's root, unbuffered, in text mode."""
    return subprocess.Popen(
        [sys.executable, "-m", "shimeji", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        text=True,
        **kwargs,
    )


@contextlib.contextmanager
def nameko_side(nameko_python: str, *args: str, what: str) -> Iterator[subprocess.Popen]:
    """``nameko_side.py ARGS`` under nameko's python, once it says ``ready``;
    terminated on exit. ``what`` names it if it does not start."""
    proc = subprocess.Popen(
        [nameko_python, "-W", "ignore", str(NAMEKO_SIDE), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        if line.strip() != "ready":
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"{what} did not start:\n{line}{err}")
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``shimeji run SERVICES --config CONFIG --health 127.0.0.1:<port>``; its stderr
    is collected in ``lines``."""

    def __init__(
        self, *services: str, config: Path, replicas: int = 1, extra: tuple[str, ...] = ()
    ) -> None:
        self.port = free_port()
        self.proc = shimeji(
            "run",
            *services,
            "--config",
            str(config),
            "--replicas",
            str(replicas),
            "--health",
            f"127.0.0.1:{self.port}",
            *extra,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def probe(self, path: str) -> tuple[int, dict[str, Any]]:
        """``(status, body)`` of a health endpoint; ``(0, {})`` if nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as got:
                return got.status, json.loads(got.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return 0, {}

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.probe("/readyz")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"never ready; stderr:\n{''.join(self.lines)}")
            time.sleep(0.1)

    def rss_kb(self) -> int:
        """Resident memory of the process, in kB."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        line = next(line for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(line.split()[1])

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        return code

    def stop(self) -> int:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        code = self.proc.wait()
        self._reader.join(5)
        return code

    def kill(self) -> None:
        """SIGKILL: the process dies at once, as in a crash."""
        self.proc.kill()
        self.proc.wait()
