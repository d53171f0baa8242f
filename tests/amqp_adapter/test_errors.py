"""Wire errors become shimeji's own, and never show a password."""

from __future__ import annotations

import traceback

import amqp.exceptions
import pytest

from shimeji.amqp_adapter import AmqpTransport, connection_for
from shimeji.amqp_adapter.errors import broker_errors, describe_error
from shimeji.config import Settings
from shimeji.core.transport import BrokerUnavailable
from shimeji.exceptions import ConfigurationError, PublishFailed
from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy

# Nothing listens on port 1 of localhost: connecting is refused at once.
CLOSED = "amqp://admin:s3cr3t-pw@127.0.0.1:1/prod"
FAST = {"AMQP_URI": CLOSED, "RPC_RETRY_POLICY": {"max_retries": 0}}


def test_unreachable_broker_raises_broker_unavailable_without_the_password(caplog):
    """Connecting to a closed port raises BrokerUnavailable naming the redacted URI."""
    transport = AmqpTransport(Settings.from_config(FAST))
    with pytest.raises(BrokerUnavailable) as caught:
        transport.connect()
    assert type(caught.value).__name__ == "BrokerUnavailable"
    text = str(caught.value)
    assert "amqp://admin:***@127.0.0.1:1/prod" in text
    assert "connection refused" in text
    assert "s3cr3t-pw" not in text and "s3cr3t-pw" not in caplog.text
    shown = "".join(traceback.format_exception(caught.value))
    assert "s3cr3t-pw" not in shown


def test_publish_to_unreachable_broker_fails_after_the_retry_policy(caplog):
    """Publishing with the broker down retries as the policy says, then PublishFailed."""
    config = {"AMQP_URI": CLOSED, "RPC_RETRY_POLICY": {"max_retries": 2, "interval_start": 0.01}}
    from shimeji.amqp_adapter import ThreadRuntime
    from shimeji.core.retry import publish_with_retry
    from shimeji.core.tracing import NullTracer
    from shimeji.core.transport import Message

    settings = Settings.from_config(config)
    runtime = ThreadRuntime(1)
    try:
        with pytest.raises(PublishFailed) as caught:
            publish_with_retry(
                AmqpTransport(settings),
                runtime,
                NullTracer(),
                Message(body=b"{}", routing_key="svc.m", exchange="nameko-rpc"),
                mandatory=True,
                policy=settings.retry_policy,
                label="test",
            )
    finally:
        runtime.close()
    assert caught.value.attempts == 3
    assert "s3cr3t-pw" not in str(caught.value) and "s3cr3t-pw" not in caplog.text


def test_runner_and_proxy_report_an_unreachable_broker_clearly():
    """ServiceRunner.start and ClusterRpcProxy raise BrokerUnavailable, password hidden."""
    from tests.conformance.services import Calculator

    runner = ServiceRunner(FAST)
    runner.add_service(Calculator)
    with pytest.raises(Exception) as caught:
        runner.start()
    assert type(caught.value).__name__ == "BrokerUnavailable"
    assert "s3cr3t-pw" not in str(caught.value)
    with pytest.raises(Exception) as caught, ClusterRpcProxy(FAST):
        pass
    assert type(caught.value).__name__ == "BrokerUnavailable"
    assert "***" in str(caught.value) and "s3cr3t-pw" not in str(caught.value)


def test_descriptions_of_broker_refusals():
    """Refused logins and vhosts say what to check."""
    assert "check the user and password" in describe_error(
        amqp.exceptions.AccessRefused("ACCESS_REFUSED - Login was refused")
    )
    assert "virtual host" in describe_error(amqp.exceptions.NotAllowed("vhost x not found"))
    assert "nacked" in describe_error(amqp.exceptions.MessageNacked())


def test_precondition_failed_is_a_configuration_error():
    """A queue that exists with other settings is a ConfigurationError naming it."""
    with (
        pytest.raises(ConfigurationError, match="exists with other settings"),
        broker_errors("declaring queue 'rpc-x'", CLOSED),
    ):
        raise amqp.exceptions.PreconditionFailed("inequivalent arg 'durable' for queue 'rpc-x'")


def test_ssl_and_transport_options_pass_through():
    """AMQP_SSL reaches kombu as given; TRANSPORT_OPTIONS too, but for the adapter's own."""
    ssl = {"ca_certs": "/etc/ca.pem", "certfile": "/etc/c.pem", "keyfile": "/etc/k.pem"}
    settings = Settings.from_config(
        {
            "AMQP_URI": "amqps://u:p@broker:5671/v",
            "AMQP_SSL": ssl,
            "HEARTBEAT": 15,
            "TRANSPORT_OPTIONS": {"confirm_timeout": 3, "read_timeout": 9},
        }
    )
    conn = connection_for(settings)
    assert conn.ssl == ssl
    assert conn.heartbeat == 15
    assert conn.transport_options == {"read_timeout": 9}
    assert connection_for(Settings.from_config({"AMQP_SSL": True})).ssl is True
    assert connection_for(Settings.from_config({})).ssl is False
