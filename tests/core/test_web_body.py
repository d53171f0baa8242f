"""``HttpFront.read_body``: the body limit and unreadable bodies, for bodies
whose length is not given up front (chunked, as a WSGI server hands them on)."""

from __future__ import annotations

import io

import pytest
from werkzeug.exceptions import RequestTimeout
from werkzeug.wrappers import Request

from shimeji.core.web import HttpFront

LIMIT = 1000


class Breaking:
    """An input that gives ``good`` bytes, then raises ``error``."""

    def __init__(self, good: bytes, error: BaseException) -> None:
        self._good = good
        self._error = error

    def read(self, size: int = -1) -> bytes:
        if self._good:
            data, self._good = self._good[:size], self._good[size:]
            return data
        raise self._error


def request_with(stream, content_length: int | None = None) -> Request:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": stream,
        "wsgi.input_terminated": True,
    }
    if content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    return Request(environ)


@pytest.mark.parametrize("size", [0, 1, LIMIT - 1, LIMIT])
def test_a_body_within_the_limit_is_read(size):
    request = request_with(io.BytesIO(b"x" * size))
    assert HttpFront(LIMIT).read_body(request) is None
    assert request.get_data() == b"x" * size


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 5000, 10 * LIMIT])
def test_a_body_over_the_limit_without_a_length_is_413(size):
    """werkzeug alone would stop at the limit and hand on a cut body."""
    answer = HttpFront(LIMIT).read_body(request_with(io.BytesIO(b"x" * size)))
    assert answer is not None
    assert answer.status_code == 413
    assert answer.headers["Connection"] == "close"
    assert b"WEB_MAX_BODY_SIZE" in answer.get_data()


def test_a_length_over_the_limit_is_413_before_reading():
    stream = Breaking(b"", AssertionError("read"))
    answer = HttpFront(LIMIT).read_body(request_with(stream, content_length=LIMIT + 1))
    assert answer is not None and answer.status_code == 413


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (ValueError("a chunk size is not a hexadecimal number"), 400),
        (OSError("the client closed the connection in the middle of a chunk"), 400),
        (RequestTimeout(), 408),
    ],
)
def test_a_body_that_cannot_be_read_is_refused_and_the_connection_closed(error, status):
    answer = HttpFront(LIMIT).read_body(request_with(Breaking(b"abc", error)))
    assert answer is not None
    assert answer.status_code == status
    assert answer.headers["Connection"] == "close"
    assert b"request body could not be read" in answer.get_data()
