"""A real headless Chromium for tests, driven over the DevTools protocol on a pipe.

No extra package: Chromium's ``--remote-debugging-pipe`` reads commands from
file descriptor 3 and writes replies and events to descriptor 4, as JSON
messages ending in a NUL byte.

    with Browser.launch() as browser:
        page = browser.open("file:///tmp/trace.html")
        assert page.evaluate("document.title") == "..."
        assert page.console_errors == []
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Any

__all__ = ["Browser", "BrowserError", "Page", "find_chromium"]

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
)


class BrowserError(RuntimeError):
    """Chromium failed, or did not answer in time."""


def find_chromium() -> str | None:
    """Chromium's executable: $CHROMIUM, or chromium / chromium-browser on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    def __init__(
        self, process: subprocess.Popen[bytes], to_browser: int, from_browser: int, profile: str
    ) -> None:
        self.process = process
        self._to = to_browser
        self._from = from_browser
        self._profile = profile
        self._next_id = 0
        self._replies: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self.events: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def launch(cls, executable: str | None = None) -> Browser:
        executable = executable or find_chromium()
        if executable is None:
            raise BrowserError("no chromium found (install Debian's chromium package)")
        profile = tempfile.mkdtemp(prefix="shimeji-chromium-")
        command_read, command_write = os.pipe()
        reply_read, reply_write = os.pipe()

        def wire() -> None:  # in the child: commands on fd 3, replies on fd 4
            os.dup2(command_read, 3)
            os.dup2(reply_write, 4)

        process = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4, command_read, reply_write),
            preexec_fn=wire,
        )
        os.close(command_read)
        os.close(reply_write)
        return cls(process, command_write, reply_read, profile)

    # -- protocol ---------------------------------------------------------------------

    def _read(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from, 1 << 16)
            except OSError:
                return
            if not chunk:
                return
            buffer += chunk
            while b"\0" in buffer:
                raw, buffer = buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "id" in message:
                    with self._lock:
                        box = self._replies.get(message["id"])
                    if box is not None:
                        box.put(message)
                else:
                    self.events.append(message)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout: float = 20.0,
    ) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            number = self._next_id
            box: queue.Queue[dict[str, Any]] = queue.Queue()
            self._replies[number] = box
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to, json.dumps(message).encode() + b"\0")
        try:
            reply = box.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"chromium did not answer {method} within {timeout}s") from None
        if "error" in reply:
            raise BrowserError(f"{method} failed: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in list(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            time.sleep(0.02)
        raise BrowserError(f"no {method} within {timeout}s")

    # -- pages --------------------------------------------------------------------------

    def open(self, url: str) -> Page:
        """A new page that has loaded ``url`` (console and network recorded from the start)."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired", session)
        return Page(self, session)

    def close(self) -> None:
        try:
            if self.process.poll() is None:
                self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (raises BrowserError if it throws)."""
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def _events(self, method: str) -> list[dict[str, Any]]:
        return [
            event["params"]
            for event in list(self.browser.events)
            if event.get("method") == method and event.get("sessionId") == self.session
        ]

    @property
    def console_errors(self) -> list[str]:
        """Uncaught exceptions, console.error/warn calls and error log entries (CSP too)."""
        errors = [
            str(
                event["exceptionDetails"].get("exception", {}).get("description")
                or event["exceptionDetails"].get("text")
            )
            for event in self._events("Runtime.exceptionThrown")
        ]
        errors += [
            " ".join(str(arg.get("value", arg.get("description", ""))) for arg in event["args"])
            for event in self._events("Runtime.consoleAPICalled")
            if event["type"] in ("error", "warning", "assert")
        ]
        errors += [
            f"{event['entry']['source']}: {event['entry']['text']}"
            for event in self._events("Log.entryAdded")
            if event["entry"]["level"] in ("error", "warning")
        ]
        return errors

    @property
    def requested_urls(self) -> list[str]:
        return [event["request"]["url"] for event in self._events("Network.requestWillBeSent")]
