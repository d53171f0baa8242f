"""A scenario exercising most of the simulator, printed as its trace.

Run as ``python -m tests.sim.scenario SEED`` from the repository root; the
determinism tests run it in fresh processes and compare the output.
"""

from __future__ import annotations

import sys

from shimeji.exceptions import RemoteError, RpcTimeout, ServiceNotFound
from shimeji.sim import SimCluster
from tests.sim.services import CalculatorService, ChainService, UserService


def run(seed: int) -> str:
    with SimCluster(seed=seed, config={"max_workers": 4}) as cluster:
        cluster.add_service(CalculatorService, replicas=3)
        cluster.add_service(UserService, replicas=2)
        cluster.add_service(ChainService)
        client = cluster.rpc_proxy(context_data={"user_id": "u-1", "tags": ["a", "b"]}, timeout=5)
        outcomes = [client.user_service.calculate_user_score("u1", 10, 3)]
        replies = [client.calculator.multiply.call_async(i, 3) for i in range(7)]
        outcomes += [reply.result() for reply in reversed(replies)]
        outcomes.append(client.chain.hop(3))
        for call in (
            lambda: client.calculator.divide(1, 0),
            lambda: client.calculator.slow(10),
            lambda: client.ghost.method(),
        ):
            try:
                call()
            except (RemoteError, RpcTimeout, ServiceNotFound) as exc:
                outcomes.append(f"{type(exc).__name__}: {exc}")
        cluster.advance(20)
        return f"{outcomes!r}\n{cluster.trace}\n{cluster.trace.to_jsonl()}"


if __name__ == "__main__":
    sys.stdout.write(run(int(sys.argv[1])))
