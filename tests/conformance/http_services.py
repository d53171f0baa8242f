"""Services the HTTP conformance tests run, on either transport."""

from __future__ import annotations

import json
import time
from typing import Any

from werkzeug.wrappers import Response

from shimeji.contextdata import ContextDataProvider
from shimeji.rpc import RpcProxy, rpc
from shimeji.web import HttpRequestHandler, http
from tests.conformance.services import CallIds, ReplicaName


class InvalidArgument(Exception):
    """Carries its HTTP status, as nameko's documented HttpError pattern does."""

    status_code = 422
    error_code = "INVALID_ARGUMENT"


class Profiles:
    name = "profiles"
    context = ContextDataProvider()
    call_ids = CallIds()

    @rpc
    def get(self, user_id):
        return {"id": user_id, "asked_by": self.context.get("user_id"), "stack": self.call_ids}


class Gateway:
    name = "gateway"
    profiles = RpcProxy("profiles")
    replica = ReplicaName()
    context = ContextDataProvider()

    @http("GET", "/profiles/<int:user_id>")
    def get_profile(self, request, user_id):
        return json.dumps(self.profiles.get(user_id))

    @http("POST,PUT", "/profiles", expected_exceptions=ValueError)
    def create(self, request):
        data = json.loads(request.get_data(as_text=True) or "null")
        if not isinstance(data, dict):
            raise ValueError("send a JSON object")
        return 201, {"Location": f"/profiles/{data.get('id')}"}, json.dumps(data)

    @http("GET", "/where")
    def where(self, request):
        return self.replica

    @http("GET", "/context")
    def show_context(self, request):
        return json.dumps(dict(self.context))

    @http("GET", "/response")
    def response(self, request):
        return Response(b"\x00raw", status=202, mimetype="application/octet-stream")

    @http("GET", "/teapot")
    def teapot(self, request):
        return 418, "short and stout"

    @http("GET", "/fail")
    def fail(self, request):
        raise RuntimeError("it broke")

    @http("GET", "/invalid")
    def invalid(self, request):
        raise InvalidArgument("name is required")

    @http("GET", "/not-a-string")
    def not_a_string(self, request):
        return {"a": 1}

    @http("GET", "/slow")
    def slow(self, request):
        time.sleep(0.5)
        return "done"


class JsonErrors(HttpRequestHandler):
    """nameko's documented way to answer errors your own way."""

    def response_from_exception(self, exc: BaseException) -> Any:
        if isinstance(exc, KeyError):
            return Response(
                json.dumps({"missing": exc.args[0]}), status=404, mimetype="application/json"
            )
        return super().response_from_exception(exc)


class Catalogue:
    name = "catalogue"

    @JsonErrors.decorator("GET", "/items/<name>")
    def item(self, request, name):
        return {"apple": "fruit"}[name]

    @http("get, post", "/shelves/")
    def shelves(self, request):
        return request.method
