"""Context data and call id stacks follow a call down a chain of services."""

from __future__ import annotations

import re

import pytest

from shimeji.contextdata import AuthToken, ContextDataProvider, Language, UserAgent, UserId
from shimeji.rpc import rpc
from shimeji.sim import SimCluster

from .services import ChainService

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def test_context_reaches_every_hop(sim_cluster):
    """Context data given to rpc_proxy reaches every service down the chain."""
    sim_cluster.add_service(ChainService, replicas=2)
    client = sim_cluster.rpc_proxy(context_data={"user_id": "u-7", "language": "fr"})
    hops = client.chain.hop(3)
    assert len(hops) == 4
    assert all(h["context"] == {"user_id": "u-7", "language": "fr"} for h in hops)


def test_call_id_stack_grows_one_per_hop(sim_cluster):
    """call_id_stack grows by one service.method.<id> per hop, with origin and parent."""
    sim_cluster.add_service(ChainService)
    hops = sim_cluster.rpc.chain.hop(2)
    stacks = [h["call_id_stack"] for h in hops]
    assert [len(s) for s in stacks] == [2, 3, 4]
    assert re.fullmatch(rf"standalone_rpc_proxy\.call\.{UUID}", stacks[0][0])
    for hop, stack in zip(hops, stacks, strict=True):
        assert re.fullmatch(rf"chain\.hop\.{UUID}", hop["call_id"])
        assert stack[-1] == hop["call_id"]
        assert hop["origin"] == stacks[0][0]
        assert hop["parent"] == stack[-2]
    assert stacks[1][:-1] == stacks[0] and stacks[2][:-1] == stacks[1]


def test_parent_calls_tracked_bounds_the_stack():
    """parent_calls_tracked keeps that many parents (plus the call itself)."""
    with SimCluster(config={"parent_calls_tracked": 2}) as cluster:
        cluster.add_service(ChainService)
        hops = cluster.rpc.chain.hop(4)
        assert [len(h["call_id_stack"]) for h in hops] == [2, 3, 3, 3, 3]
        assert hops[-1]["call_id_stack"][:2] == hops[-2]["call_id_stack"][1:]
    with SimCluster(config={"parent_calls_tracked": 0}) as cluster:
        cluster.add_service(ChainService)
        hops = cluster.rpc.chain.hop(1)
        assert [h["call_id_stack"] for h in hops] == [[h["call_id"]] for h in hops]
        assert hops[1]["parent"] is None


class Keyed:
    name = "keyed"
    everything = ContextDataProvider()
    user = ContextDataProvider("user_id")
    language = Language()
    user_id = UserId()
    agent = UserAgent()
    token = AuthToken()

    @rpc
    def show(self):
        return {
            "everything": dict(self.everything),
            "user": self.user,
            "language": self.language,
            "user_id": self.user_id,
            "agent": self.agent,
            "token": self.token,
        }

    @rpc
    def mutate(self):
        self.everything["user_id"] = "hacker"


def test_context_providers(sim_cluster):
    """Keyed providers inject one value (None when absent); the mapping is read-only."""
    sim_cluster.add_service(Keyed)
    client = sim_cluster.rpc_proxy(
        context_data={"user_id": "u1", "language": "en", "user_agent": "cli", "x": 1}
    )
    assert client.keyed.show() == {
        "everything": {"user_id": "u1", "language": "en", "user_agent": "cli", "x": 1},
        "user": "u1",
        "language": "en",
        "user_id": "u1",
        "agent": "cli",
        "token": None,
    }
    assert sim_cluster.rpc.keyed.show()["everything"] == {}
    with pytest.raises(Exception, match="does not support item assignment"):
        client.keyed.mutate()


def test_context_travels_in_nameko_headers(sim_cluster):
    """On the wire, context data is in nameko.-prefixed headers with nameko.call_id_stack."""
    sim_cluster.add_service(Keyed)
    sim_cluster.rpc_proxy(context_data={"user_id": "u1"}).keyed.show()
    publish = sim_cluster.trace.filter("publish")[-1]
    headers = publish.message.headers
    assert headers["nameko.user_id"] == "u1"
    assert re.fullmatch(rf"standalone_rpc_proxy\.call\.{UUID}", headers["nameko.call_id_stack"][0])
    message = publish.message
    assert message.routing_key == "keyed.show"
    assert message.exchange == "nameko-rpc"
    assert message.reply_to and message.correlation_id
    assert message.content_type == "application/json"
    assert message.body == b'{"args":[],"kwargs":{}}'
