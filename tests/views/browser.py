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

__all__ = ["Browser", "BrowserError", "Page", "find_chromium", "png_pixels", "png_size"]

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

    def set_viewport(self, width: int, height: int) -> None:
        """Lay the page out in a window of ``width`` x ``height`` CSS pixels."""
        self.browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            session=self.session,
        )
        self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")

    def screenshot(self, scale: float = 1.0) -> bytes:
        """A PNG of the viewport as it is drawn now (``scale``: of its pixels)."""
        import base64

        params: dict[str, Any] = {"format": "png"}
        if scale != 1.0:
            width, height = self.evaluate("[innerWidth, innerHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": scale}
        data = self.browser.send(
            "Page.captureScreenshot", params, session=self.session, timeout=60
        )["data"]
        return base64.b64decode(data)

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


def png_size(png: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG, from its header."""
    import struct

    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def png_pixels(png: bytes) -> tuple[int, int, list[bytes]]:
    """``(width, height, rows)`` of an 8-bit RGB or RGBA PNG (as Chromium writes
    screenshots): each row holds ``width`` pixels of 3 or 4 bytes, unfiltered."""
    import struct
    import zlib

    if png[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    position, chunks, header = 8, [], b""
    while position < len(png):
        (length,) = struct.unpack(">I", png[position : position + 4])
        kind = png[position + 4 : position + 8]
        body = png[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or color not in (2, 6) or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, color type {color})")
    size = 3 if color == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * size
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for x in range(stride):
            left = line[x - size] if x >= size else 0
            up = previous[x]
            corner = previous[x - size] if x >= size else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                guess = left + up - corner
                near = min((abs(guess - left), 0), (abs(guess - up), 1), (abs(guess - corner), 2))
                line[x] = (line[x] + (left, up, corner)[near[1]]) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, rows
