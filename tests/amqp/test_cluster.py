"""shimeji on a three-node RabbitMQ cluster with quorum queues (.ci/rabbitmq-cluster.sh).

The nodes run on this machine beside the main broker. Skipped, saying why,
where RabbitMQ cannot be run here; SHIMEJI_REQUIRE_CLUSTER=1 (CI) makes that
a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from shimeji.runner import ServiceRunner
from shimeji.standalone import ClusterRpcProxy

from .broker import clean_broker
from .cluster import cluster_available, leader_of, start_cluster, start_node, stop_node
from .ledger import Ledger, read_ledger
from .load import Load

NAMEKO_SIDE = Path(__file__).with_name("nameko_side.py")


@pytest.fixture(scope="module")
def nodes(broker_uri):
    reason = cluster_available()
    if reason is not None:
        if os.environ.get("SHIMEJI_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"SHIMEJI_REQUIRE_CLUSTER=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return start_cluster()


@pytest.fixture
def quorum(nodes):
    """A configuration on the cluster: every node listed, quorum queues."""
    exchange = f"shimeji-quorum-{uuid.uuid4().hex[:8]}"
    yield {"AMQP_URI": nodes, "rpc_exchange": exchange, "RPC_QUEUE_TYPE": "quorum"}
    for uri in nodes:  # whichever node is up deletes them
        try:
            clean_broker(uri, "rpc-ledger", exchange=exchange)
            break
        except Exception:
            continue


def rotated(config: dict, by: int) -> dict:
    """The configuration with its node list starting at another node."""
    uris = config["AMQP_URI"]
    return {**config, "AMQP_URI": uris[by:] + uris[:by]}


def test_stopping_the_leader_of_a_quorum_queue_under_load_loses_no_call(
    quorum, tmp_path, monkeypatch, capsys
):
    """Under continuous calls, the node leading the service's quorum queue stops:
    every call ends rightly, services and clients fail over to the other nodes,
    and the calls go on; the failover time is the longest wait for an answer."""
    ledger = tmp_path / "ledger.txt"
    ledger.touch()
    monkeypatch.setenv("SHIMEJI_TEST_LEDGER", str(ledger))
    runner = ServiceRunner(quorum)
    runner.add_service(Ledger, replicas=2)
    runner.start()
    proxy = ClusterRpcProxy(rotated(quorum, 1), timeout=60)
    rpc = proxy.start()
    leader = leader_of("rpc-ledger")
    try:
        with Load(lambda tag, value: rpc.ledger.record(tag, value)) as load:
            time.sleep(2)
            stopped_at = time.monotonic()
            stop_node(leader)
            time.sleep(6)
            new_leader = leader_of("rpc-ledger")
            start_node(leader)
            time.sleep(2)
        assert not runner.crashes
    finally:
        proxy.stop()
        runner.stop(timeout=10)
    runs = read_ledger(str(ledger))
    assert load.failures == []
    assert set(load.answered) <= set(runs)
    assert new_leader != leader
    after = sorted(t for t in load.times if t > stopped_at)
    before = max(t for t in load.times if t <= stopped_at)
    gaps = [b - a for a, b in zip([before, *after], after, strict=False)]
    failover = max(gaps)
    with capsys.disabled():
        print(
            f"\nquorum leader stopped: {len(load.answered)} calls answered, 0 failed, "
            f"{len(runs) - len(set(runs))} ran more than once; failover {failover:.2f}s"
        )
    assert failover < 20
    assert len(after) > 100  # the calls went on on the other nodes


def test_a_nameko_client_calls_a_shimeji_service_on_quorum_queues(quorum, nameko_python):
    """A nameko 2.14.1 client on another node of the cluster calls a shimeji service
    whose queue is a quorum queue (nameko's own reply queue stays classic)."""
    with ServiceRunner(quorum) as runner:
        runner.add_service(Ledger)
        os.environ.setdefault("SHIMEJI_TEST_LEDGER", os.devnull)
        calls = [{"service": "ledger", "method": "record", "args": ["from-nameko", 21]}]
        done = subprocess.run(
            [nameko_python, "-W", "ignore", str(NAMEKO_SIDE), "call",
             quorum["AMQP_URI"][2], quorum["rpc_exchange"], json.dumps(calls)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [{"result": 42}]
