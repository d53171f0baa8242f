"""The HTTP server's error log: cheroot's messages and tracebacks, escaped."""

from __future__ import annotations

import io
import logging

from shimeji.http_server import _ErrorLog


def test_cheroot_errors_are_logged_escaped_with_their_traceback():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("shimeji.web")
    logger.addHandler(handler)
    try:
        _ErrorLog()("plain\r\nforged line", level=logging.WARNING)
        try:
            raise ValueError("bad chunk b'\x1b[2J'\nERROR forged")
        except ValueError as exc:
            _ErrorLog()(repr(exc) + "\x00" + "z" * 2000, level=logging.ERROR, traceback=True)
    finally:
        logger.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "WARNING http server: plain\\r\\nforged line"
    assert lines[1].startswith("ERROR http server: ValueError(")
    assert lines[1].endswith("characters)") and len(lines[1]) < 600
    assert lines[2] == "Traceback (most recent call last):"
    assert lines[-1] == "ValueError: bad chunk b'\\x1b[2J'\\nERROR forged"
    assert all(line.isprintable() for line in lines)
    assert not any(line.startswith("ERROR forged") for line in lines)
