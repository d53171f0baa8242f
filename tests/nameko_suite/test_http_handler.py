"""HTTP entrypoints on the simulator, test by test after nameko's
``test/web/test_http_handler.py``. ``web_session`` sends its requests to the
simulated HTTP front, in virtual time (docs/fidelity.md, "Testing tools
against nameko").
"""

from __future__ import annotations

import json

import pytest
from werkzeug.wrappers import Response

from shimeji.web import http

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class ExampleService:
    name = "exampleservice"

    @http("GET", "/foo/<int:bar>")
    def do_get(self, request, bar):
        return f"value: {bar}"

    @http("POST", "/post")
    def do_post(self, request):
        return json.loads(request.get_data(as_text=True))["value"]

    @http("GET,PUT,POST", "/multi")
    def do_multi(self, request):
        return request.method

    @http("GET", "/custom")
    def do_custom(self, request):
        return Response("response")

    @http("GET", "/status_code")
    def do_status_code(self, request):
        return 201, "created"

    @http("GET", "/headers")
    def do_headers(self, request):
        return 201, {"x-foo": "bar"}, "created"

    @http("GET", "/fail")
    def fail(self, request):
        raise ValueError("oops")

    @http("GET", "/fail_expected", expected_exceptions=ValueError)
    def fail_expected(self, request):
        raise ValueError("oops")


@pytest.fixture
def web_session(container_factory, web_config, web_session):
    container = container_factory(ExampleService, web_config)
    container.start()
    return web_session


# follows nameko test/web/test_http_handler.py::test_get
def test_get(web_session):
    rv = web_session.get("/foo/42")
    assert rv.text == "value: 42"
    rv = web_session.get("/foo/something")
    assert rv.status_code == 404


# follows nameko test/web/test_http_handler.py::test_post
def test_post(web_session):
    rv = web_session.post("/post", data=json.dumps({"value": "foo"}))
    assert rv.text == "foo"


# follows nameko test/web/test_http_handler.py::test_multi_get
def test_multi_get(web_session):
    assert web_session.get("/multi").text == "GET"


# follows nameko test/web/test_http_handler.py::test_multi_put
def test_multi_put(web_session):
    assert web_session.put("/multi").text == "PUT"


# follows nameko test/web/test_http_handler.py::test_multi_post
def test_multi_post(web_session):
    assert web_session.post("/multi").text == "POST"


# follows nameko test/web/test_http_handler.py::test_custom_response
def test_custom_response(web_session):
    assert web_session.get("/custom").text == "response"


# follows nameko test/web/test_http_handler.py::test_custom_status_code
def test_custom_status_code(web_session):
    rv = web_session.get("/status_code")
    assert rv.text == "created"
    assert rv.status_code == 201


# follows nameko test/web/test_http_handler.py::test_custom_headers
def test_custom_headers(web_session):
    rv = web_session.get("/headers")
    assert rv.text == "created"
    assert rv.status_code == 201
    assert rv.headers["x-foo"] == "bar"


# follows nameko test/web/test_http_handler.py::test_broken_method
def test_broken_method(web_session):
    rv = web_session.get("/fail")
    assert rv.status_code == 500
    assert "ValueError: oops" in rv.text


# follows nameko test/web/test_http_handler.py::test_broken_method_expected
def test_broken_method_expected(web_session):
    rv = web_session.get("/fail_expected")
    assert rv.status_code == 400
    assert "ValueError: oops" in rv.text


# follows nameko test/web/test_http_handler.py::test_bad_payload
def test_bad_payload(web_session):
    rv = web_session.post("/post", data=json.dumps({"value": 23}))
    assert rv.status_code == 500
    assert "Error: TypeError: Payload must be a string. Got `23`" in rv.text
