"""HTTP entrypoints, stated once and run on the simulator and on RabbitMQ (where
requests are real HTTP on 127.0.0.1, served by ``shimeji run``'s server).

Run on RabbitMQ with ``pytest tests/conformance --shimeji-transport=amqp``.
"""

from __future__ import annotations

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.web import http
from tests.conformance.http_services import Catalogue, Gateway, Profiles


@pytest.fixture
def gateway(cluster):
    cluster.add_service(Profiles)
    cluster.add_service(Gateway)
    return cluster


# -- routes and results ---------------------------------------------------------------


def test_a_route_calls_a_service_and_answers(gateway):
    """URL variables arrive converted; a string result is a 200 text/plain."""
    response = gateway.http.get("/profiles/7")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.json()["id"] == 7


def test_status_headers_and_body(gateway):
    """(status, headers, body) and several methods on one route."""
    for method in ("POST", "PUT"):
        response = gateway.http.request(method, "/profiles", json={"id": 3})
        assert response.status_code == 201
        assert response.headers["Location"] == "/profiles/3"
        assert response.json() == {"id": 3}
    assert gateway.http.get("/teapot").status_code == 418
    assert gateway.http.get("/teapot").text == "short and stout"


def test_a_response_object_is_sent_as_is(gateway):
    response = gateway.http.get("/response")
    assert (response.status_code, response.content) == (202, b"\x00raw")
    assert response.headers["Content-Type"] == "application/octet-stream"


def test_head_is_answered_for_a_get_route(gateway):
    response = gateway.http.head("/teapot")
    assert response.status_code == 418
    assert response.content == b""


# -- errors -------------------------------------------------------------------------------


def test_an_expected_exception_is_a_400(gateway):
    response = gateway.http.post("/profiles", json=[1, 2])
    assert response.status_code == 400
    assert response.text == "Error: ValueError: send a JSON object\n"


def test_an_unexpected_exception_is_a_500(gateway):
    response = gateway.http.get("/fail")
    assert response.status_code == 500
    assert response.text == "Error: RuntimeError: it broke\n"


def test_an_exception_with_a_status_code_answers_with_it_as_json(gateway):
    response = gateway.http.get("/invalid")
    assert response.status_code == 422
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": "INVALID_ARGUMENT", "message": "name is required"}


def test_a_result_that_is_not_a_string_is_a_500_saying_so(gateway):
    response = gateway.http.get("/not-a-string")
    assert response.status_code == 500
    assert response.text.startswith("Error: TypeError: Payload must be a string.")


def test_a_subclass_answers_errors_its_own_way(cluster):
    cluster.add_service(Catalogue)
    assert cluster.http.get("/items/apple").text == "fruit"
    response = cluster.http.get("/items/pear")
    assert response.status_code == 404
    assert response.json() == {"missing": "pear"}


def test_methods_are_read_with_spaces_and_any_case_and_slashes_redirect(cluster):
    """'get, post' takes GET and POST; a path missing its trailing slash is
    redirected there (308), as werkzeug's routing does for nameko."""
    cluster.add_service(Catalogue)
    assert cluster.http.get("/shelves/").text == "GET"
    assert cluster.http.post("/shelves/").text == "POST"
    response = cluster.http.get("/shelves")
    assert response.status_code == 308
    assert response.headers["Location"].endswith("/shelves/")


def test_unknown_routes_and_wrong_methods(gateway):
    assert gateway.http.get("/nowhere").status_code == 404
    assert gateway.http.get("/profiles/not-a-number").status_code == 404
    response = gateway.http.delete("/profiles")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"POST", "PUT"}


def test_a_body_over_the_limit_is_a_413(cluster_factory):
    cluster = cluster_factory({"WEB_MAX_BODY_SIZE": 1000})
    cluster.add_service(Profiles)
    cluster.add_service(Gateway)
    assert cluster.http.post("/profiles", data=b"{}" + b" " * 900).status_code == 201
    response = cluster.http.post("/profiles", data=b"x" * 5000)
    assert response.status_code == 413


# -- context and replicas ----------------------------------------------------------------------


def test_nameko_headers_are_context_data_that_follows_the_call(gateway):
    """nameko.<key> headers become context data, and an RPC from the route
    carries it on; a call id stack header starts the chain."""
    response = gateway.http.get(
        "/profiles/1",
        headers={"nameko.user_id": "u-http", "nameko.call_id_stack": "edge.request.1"},
    )
    body = response.json()
    assert body["asked_by"] == "u-http"
    assert body["stack"][0] == "edge.request.1"
    assert [entry.split(".")[0] for entry in body["stack"][1:]] == ["gateway", "profiles"]
    context = gateway.http.get("/context", headers={"nameko.locale": "fr"}).json()
    assert context == {"locale": "fr"}


def test_requests_are_spread_over_the_replicas(cluster):
    cluster.add_service(Gateway, replicas=2)
    seen = {cluster.http.get("/where").text for _ in range(4)}
    assert seen == {"gateway-1", "gateway-2"}


def test_no_running_replica_is_a_503(cluster):
    (replica,) = cluster.add_service(Gateway)
    replica.container.kill()
    assert cluster.http.get("/where").status_code == 503


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "words"),
    [
        ("", "/x", "HTTP method"),
        ("GET,", "/x", "not an HTTP method"),
        ("GET", "x", "starting with '/'"),
        ("GET", "/x/<int:>", "not a valid route"),
    ],
)
def test_a_bad_route_is_refused_where_it_is_declared(method, url, words):
    with pytest.raises(ConfigurationError, match=words):
        http(method, url)


def test_a_route_method_must_take_the_request_and_the_variables(cluster):
    class Wrong:
        name = "wrong"

        @http("GET", "/things/<int:thing_id>")
        def thing(self, request):
            return ""

    with pytest.raises(ConfigurationError, match="thing_id"):
        cluster.add_service(Wrong)


def test_two_services_cannot_claim_one_route(cluster):
    class Other:
        name = "other"

        @http("GET", "/where")
        def where(self, request):
            return ""

    cluster.add_service(Gateway)
    with pytest.raises(ConfigurationError, match=r"claimed by gateway\.where"):
        cluster.add_service(Other)
