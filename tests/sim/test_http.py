"""HTTP on the simulator: the front's answers under faults, traces and views."""

from __future__ import annotations

import json
import time

import pytest

from shimeji.exceptions import RpcTimeout
from shimeji.rpc import RpcProxy, rpc
from shimeji.sim import SimCluster
from shimeji.sim.faults import CrashDuring, Partition
from shimeji.web import http


class Stock:
    name = "stock"

    @rpc
    def level(self, sku):
        return {"sku": sku, "level": 3}


class Shop:
    name = "shop"
    stock = RpcProxy("stock", timeout=2)

    @http("GET", "/stock/<sku>")
    def stock_level(self, request, sku):
        try:
            return json.dumps(self.stock.level(sku))
        except RpcTimeout:
            return 504, "stock did not answer in time"

    @http("GET", "/slow")
    def slow(self, request):
        time.sleep(3)
        return "slow"


def test_a_replica_dying_mid_request_is_a_502_and_the_next_goes_elsewhere():
    """The front answers 502 for the request the dead replica held; the next
    request goes to the other replica."""
    plan = [CrashDuring(service="shop", method="slow")]
    with SimCluster(seed=0, faults=plan) as cluster:
        cluster.add_service(Shop, replicas=2)
        response = cluster.http.get("/slow")
        assert response.status_code == 502
        assert "died handling the request" in response.text
        again = cluster.http.get("/slow")
        assert (again.status_code, again.text) == (200, "slow")
        refused = [e for e in cluster.trace.events if e.kind == "http_refused"]
        assert [e.detail.split(":")[1].strip() for e in refused] == ["502 BAD GATEWAY (Bad Gateway"]


def test_a_partition_behind_the_gateway_is_the_rpc_timeout_the_route_handles():
    """The backend is cut off from the broker: the gateway's RPC times out after
    2 s of virtual time, and the route answers 504; once healed, 200."""
    with SimCluster(seed=0, faults=[Partition("stock-1", at=0.0, duration=10)]) as cluster:
        cluster.add_service(Stock)
        cluster.add_service(Shop)
        start = cluster.elapsed()
        response = cluster.http.get("/stock/apple")
        assert (response.status_code, response.text) == (504, "stock did not answer in time")
        assert cluster.elapsed() - start == pytest.approx(2.002, abs=0.01)
        cluster.advance(10)
        assert cluster.http.get("/stock/apple").json() == {"sku": "apple", "level": 3}


def test_requests_take_virtual_time_and_appear_as_calls():
    with SimCluster(seed=0, latency=0.25) as cluster:
        cluster.add_service(Stock)
        cluster.add_service(Shop)
        cluster.http.get("/stock/pear")
        assert cluster.elapsed() == pytest.approx(1.0)  # four hops of 0.25 s
        kinds = [
            (e.replica, e.kind)
            for e in cluster.trace.events
            if e.correlation_id and e.service == "shop"
        ]
        assert kinds[:2] == [("http", "publish"), ("shop-1", "deliver")]
        assert ("http", "deliver") in kinds
        text = cluster.trace.to_text()
        assert "GET /stock/pear" in text
        assert '200 {"sku": "pear", "level": 3}' in text
        diagram = cluster.trace.to_mermaid()
        assert "P0->>P1: GET /stock/pear" in diagram


def test_http_traces_are_identical_run_to_run():
    def run():
        with SimCluster(seed=3, faults=[CrashDuring(service="shop", method="slow")]) as cluster:
            cluster.add_service(Stock)
            cluster.add_service(Shop, replicas=2)
            for path in ("/stock/a", "/slow", "/slow", "/stock/b", "/nowhere"):
                cluster.http.get(path, headers={"nameko.user_id": "u1"})
            return cluster.trace.to_text() + cluster.trace.to_jsonl()

    assert run() == run()


def test_a_stuck_route_stalls_with_a_readable_reason():
    """A route waiting for a backend that can never answer (its only replica is
    dead, no timeout anywhere) is a stall that names the HTTP request."""
    from shimeji.exceptions import SimulationStalled

    class Patient:
        name = "patient"
        stock = RpcProxy("stock")

        @http("GET", "/wait")
        def wait(self, request):
            return json.dumps(self.stock.level("x"))

    with SimCluster(seed=0) as cluster:
        (stock,) = cluster.add_service(Stock)
        cluster.add_service(Patient)
        cluster.kill(stock)
        with pytest.raises(SimulationStalled, match="the HTTP response to GET /wait"):
            cluster.http.get("/wait")
