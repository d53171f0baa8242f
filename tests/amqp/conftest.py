"""Fixtures of the tests that always run on RabbitMQ (skipped without a broker)."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from shimeji.testing.transports import AmqpCluster, require_broker

from .broker import clean_broker
from .processes import NAMEKO_SIDE, nameko_side

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broker_uri(request: pytest.FixtureRequest) -> str:
    return require_broker(request.config)


@pytest.fixture(scope="module")
def nameko_python() -> str:
    """The Python of the nameko 2.14.1 virtualenv made by .ci/nameko-venv.sh."""
    path = os.environ.get("SHIMEJI_NAMEKO_PYTHON") or str(
        ROOT / ".ci" / ".nameko-venv" / "bin" / "python"
    )
    if not Path(path).exists():
        reason = (
            f"no nameko virtualenv at {path}: run `bash .ci/nameko-venv.sh` "
            "(or set SHIMEJI_NAMEKO_PYTHON)"
        )
        if os.environ.get("SHIMEJI_REQUIRE_AMQP") == "1":
            pytest.fail(f"SHIMEJI_REQUIRE_AMQP=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="module")
def interop_exchange() -> str:
    return f"shimeji-interop-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def nameko_service(broker_uri: str, nameko_python: str, interop_exchange: str):
    """A nameko 2.14.1 service (``nameko_greeter``) running in its own process."""
    try:
        with nameko_side(
            nameko_python, "serve", broker_uri, interop_exchange, what="the nameko service"
        ) as proc:
            yield proc
    finally:
        clean_broker(
            broker_uri,
            "rpc-nameko_greeter",
            "evt-shimeji_echo-shimeji_happened--nameko_greeter.on_shimeji",
            exchange=interop_exchange,
        )
        for source in ("nameko_greeter", "shimeji_echo"):
            clean_broker(broker_uri, exchange=f"{source}.events")


@pytest.fixture
def interop_cluster(broker_uri: str, interop_exchange: str):
    """An AmqpCluster on the exchange the nameko service uses."""
    with AmqpCluster(broker_uri, {"rpc_exchange": interop_exchange}) as made:
        yield made


@pytest.fixture
def nameko_call(broker_uri: str, nameko_python: str, interop_exchange: str):
    """``nameko_call([{service, method, args, kwargs, context}, ...])``: run the calls
    with nameko's ClusterRpcProxy in a nameko process; their outcomes as dicts."""

    def run(calls: list[dict]) -> list[dict]:
        done = subprocess.run(
            [
                nameko_python,
                "-W",
                "ignore",
                str(NAMEKO_SIDE),
                "call",
                broker_uri,
                interop_exchange,
                json.dumps(calls),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"the nameko client failed:\n{done.stderr}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run


@pytest.fixture
def nameko_dispatch(broker_uri: str, nameko_python: str):
    """``nameko_dispatch(source, event_type, data)``: dispatch an event with
    nameko's standalone ``event_dispatcher``, in a nameko process."""

    def run(source: str, event_type: str, data: object) -> None:
        done = subprocess.run(
            [
                nameko_python,
                "-W",
                "ignore",
                str(NAMEKO_SIDE),
                "dispatch",
                broker_uri,
                source,
                event_type,
                json.dumps(data),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise AssertionError(f"the nameko dispatcher failed:\n{done.stderr}")

    return run
