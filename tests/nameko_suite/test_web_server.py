"""The web server's address, after nameko's ``test/web/test_server.py``.

Not ported: the tests of eventlet's socket errors (``test_broken_pipe``,
``test_other_socket_error``, ``test_client_disconnect_os_error``,
``test_other_os_error``) and of ``WebServer.get_wsgi_app`` and
``get_wsgi_server`` (``test_adding_middleware_with_get_wsgi_app``,
``test_custom_wsgi_server_is_used``), hooks shimeji's web server does not
have (docs/fidelity.md, "Against nameko's own tests").
"""

from __future__ import annotations

import pytest

from shimeji.exceptions import ConfigurationError
from shimeji.web import http

pytest_plugins = ["shimeji.testing.nameko_fixtures"]


class Service:
    name = "web"

    @http("GET", "/")
    def index(self, request):
        return "OK"


# follows nameko test/web/test_server.py::test_parse_address
@pytest.mark.parametrize(
    ("source", "result"),
    [
        ("8000", ("0.0.0.0", 8000)),  # nameko's host is "": every interface, as 0.0.0.0
        ("foo:8000", ("foo", 8000)),
        ("foo", None),
    ],
)
def test_parse_address(container_factory, web_session, source, result):
    """``WEB_SERVER_ADDRESS`` is ``[host:]port``; anything else is refused,
    naming the bad value (nameko: ``Misconfigured bind address `foo` ``)."""
    if result is None:
        with pytest.raises(ConfigurationError, match="WEB_SERVER_ADDRESS must be") as exc:
            container_factory(Service, {"WEB_SERVER_ADDRESS": source}).start()
        assert "'foo'" in str(exc.value)
        return
    container = container_factory(Service, {"WEB_SERVER_ADDRESS": source})
    container.start()
    assert container.service_container.settings.web_server_address == result
    assert web_session.get("/").text == "OK"
