"""Service code's randomness follows the cluster's seed; what no seed controls is reported."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import socket
import threading
import uuid
from uuid import uuid4 as imported_uuid4

import pytest

from shimeji.rpc import rpc
from shimeji.sim import SimCluster, UncontrolledEffectWarning


class Lottery:
    name = "lottery"

    @rpc
    def draw(self):
        return {
            "random": random.random(),
            "choice": random.choice(range(10**9)),
            "uuid4": str(uuid.uuid4()),
            "imported_uuid4": str(imported_uuid4()),
            "uuid1": str(uuid.uuid1()),
            "token": secrets.token_hex(8),
            "system": random.SystemRandom().randint(0, 10**9),
            "urandom": os.urandom(4).hex(),
        }


def run(seed: int) -> tuple[list[dict], str]:
    with SimCluster(seed=seed) as cluster:
        cluster.add_service(Lottery, replicas=2)
        draws = [cluster.rpc.lottery.draw() for _ in range(3)]
        return draws, cluster.trace.to_jsonl(messages=True)


def test_the_same_seed_draws_the_same_values_and_the_same_trace():
    """random, uuid1/uuid4, secrets and os.urandom in a service replay from the seed,
    and the trace (results included) is byte-identical."""
    first, trace_one = run(11)
    second, trace_two = run(11)
    assert first == second
    assert trace_one == trace_two
    assert len({draw["uuid4"] for draw in first}) == 3  # still distinct within a run
    assert uuid.UUID(first[0]["uuid4"]).version == 4
    assert uuid.UUID(first[0]["uuid1"]).version == 1


def test_another_seed_draws_other_values():
    """Every source differs under another seed."""
    first, _ = run(11)
    other, _ = run(12)
    for key in first[0]:
        assert first[0][key] != other[0][key], key


def test_uuid1_carries_virtual_time():
    """uuid1's timestamp is the virtual clock's, and increases within a run."""
    with SimCluster(seed=3) as cluster:
        one, two = uuid.uuid1(), uuid.uuid1()
        seconds = (one.time - 0x01B21DD213814000) / 10_000_000
        assert seconds == cluster.now()
        assert two.time > one.time
        assert one.node & 0x010000000000  # a random node, not this machine's MAC


@pytest.mark.shimeji_patch_per_cluster  # the process as the cluster leaves it
def test_state_is_restored_after_the_run_even_on_an_exception():
    """The random module's state and the real functions come back, exception or not."""
    random.seed(99)
    expected = random.Random(99).random()
    with pytest.raises(KeyError), SimCluster(seed=1):
        random.random()
        raise KeyError("boom")
    assert random.random() == expected
    assert os.urandom(16) != os.urandom(16)
    assert os.urandom.__module__ == "posix"
    assert uuid.uuid1.__module__ == "uuid"


def test_other_threads_keep_real_entropy():
    """os.urandom on a thread other than the simulation's is the system's."""
    seen: list[bytes] = []
    with SimCluster(seed=5) as cluster, pytest.warns(UncontrolledEffectWarning):
        worker = threading.Thread(target=lambda: seen.append(os.urandom(8)))
        worker.start()
        worker.join()
        mine = os.urandom(8)
    with SimCluster(seed=5), pytest.warns(UncontrolledEffectWarning):
        worker = threading.Thread(target=lambda: seen.append(os.urandom(8)))
        worker.start()
        worker.join()
        assert os.urandom(8) == mine
    assert seen[0] != seen[1]
    assert cluster.uncontrolled and "thread" in cluster.uncontrolled[0]


class Leaky:
    name = "leaky"

    @rpc
    def fetch(self, port):
        threading.Thread(target=lambda: None, name="poller").start()
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.connect(("127.0.0.1", port))
        return "done"


def test_threads_and_sockets_started_by_service_code_are_reported():
    """A thread and a connection from a service are each warned about once and kept
    in cluster.uncontrolled."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with SimCluster() as cluster, pytest.warns(UncontrolledEffectWarning) as warned:
        cluster.add_service(Leaky)
        cluster.rpc.leaky.fetch(port)
        cluster.rpc.leaky.fetch(port)
    assert len(cluster.uncontrolled) == 2
    assert "poller" in cluster.uncontrolled[0]
    assert f"('127.0.0.1', {port})" in cluster.uncontrolled[1]
    assert len(warned) == 2


def test_without_virtual_time_nothing_is_seeded():
    """virtual_time=False leaves the process alone: randomness stays the system's."""
    with SimCluster(seed=1, virtual_time=False):
        one = uuid.uuid4()
    with SimCluster(seed=1, virtual_time=False):
        two = uuid.uuid4()
    assert one != two


def test_the_same_seed_draws_the_same_values_in_another_process():
    """A fresh process (another hash seed) draws the same values and the same trace."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import json; from tests.sim.test_entropy import run; "
        "draws, trace = run(11); print(json.dumps([draws, trace]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(done.stdout) == list(run(11))
