"""Small simulations for the view tests: the examples, and a few failure paths."""

from __future__ import annotations

import contextlib
import importlib
import time

from shimeji.exceptions import RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.views import EventLog

EXAMPLES = (
    "calculator",
    "user_score",
    "orders",
    "order_errors",
    "audit",
    "timeouts",
    "notifications",
    "gateway",
)


def run_example(name: str, seed: int = 0) -> SimCluster:
    """A stopped cluster that ran ``examples.<name>.scenario``."""
    module = importlib.import_module(f"examples.{name}")
    with SimCluster(seed=seed) as cluster:
        module.scenario(cluster)
    return cluster


def example_log(name: str, seed: int = 0, canonical: bool = True) -> EventLog:
    return EventLog.from_cluster(run_example(name, seed), canonical_ids=canonical)


class SlowService:
    name = "slow"

    @rpc
    def wait(self, seconds):
        time.sleep(seconds)  # virtual time
        return seconds


class Vault:
    name = "vault"

    @rpc(sensitive_arguments=("password", "card.number"))
    def login(self, user, password, card=None):
        return {"user": user, "ok": True}


class Gateway:
    name = "gateway"
    vault_rpc = RpcProxy("vault")

    @rpc(sensitive_arguments="password")
    def enter(self, user, password):
        return self.vault_rpc.login(user, password, card={"number": "4111-1111", "exp": "12/30"})


def timeout_cluster(seed: int = 0) -> SimCluster:
    """A call that times out, whose reply arrives later and is dropped."""
    with SimCluster(seed=seed) as cluster:
        cluster.add_service(SlowService)
        client = cluster.rpc_proxy(timeout=1)
        with contextlib.suppress(RpcTimeout):
            client.slow.wait(3)
        cluster.advance(5)
        client.slow.wait(0)
    return cluster


def concurrent_cluster(seed: int = 0) -> SimCluster:
    """Overlapping workers on one replica, of different lengths."""
    with SimCluster(seed=seed) as cluster:
        cluster.add_service(SlowService)
        replies = [cluster.rpc.slow.wait.call_async(s) for s in (3, 1, 2)]
        assert [reply.result() for reply in replies] == [3, 1, 2]
    return cluster


def secret_cluster(seed: int = 0) -> SimCluster:
    """Sensitive arguments passed by position, by name, and nested, through two hops."""
    with SimCluster(seed=seed) as cluster:
        cluster.add_service(Vault)
        cluster.add_service(Gateway)
        cluster.rpc.gateway.enter("ada", "hunter2-by-position")
        cluster.rpc.vault.login("bob", password="s3cret-by-name", card={"number": "5500-0000"})
    return cluster


class Ledger:
    name = "ledger"

    @rpc
    def record(self, entry):
        return {"entry": entry, "ok": True}


class Checkout:
    name = "checkout"
    ledger_rpc = RpcProxy("ledger")
    vault_rpc = RpcProxy("vault")

    @rpc
    def pay(self, order, amount):
        replies = [self.ledger_rpc.record.call_async({"order": order, "line": n}) for n in range(2)]
        self.vault_rpc.login("shop", "pw")
        return {"order": order, "amount": amount, "lines": [r.result() for r in replies]}


def big_cluster(events: int = 10_000, seed: int = 0) -> SimCluster:
    """A trace of about ``events`` events: nested and parallel calls over three
    services with several replicas, made in waves of parallel calls."""
    with SimCluster(seed=seed) as cluster:
        cluster.add_service(Checkout, replicas=3)
        cluster.add_service(Ledger, replicas=2)
        cluster.add_service(Vault, replicas=2)
        order = 0
        while len(cluster.trace.events) < events - 40:
            wave = [cluster.rpc.checkout.pay.call_async(order + n, n * 1.5) for n in range(5)]
            order += len(wave)
            for reply in wave:
                reply.result()
    return cluster
