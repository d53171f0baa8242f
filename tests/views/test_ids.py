"""Canonical ids: stable names in order of first appearance."""

from __future__ import annotations

import re

from shimeji.views import EventLog, render
from shimeji.views.ids import UUID, IdNamer
from tests.views.scenarios import example_log, run_example

CANONICAL_CALL_ID = re.compile(r"^[a-z_]+\.[a-z_]+\.\d+$")


def test_correlation_call_and_reply_ids_get_stable_names():
    """c1.., service.method.N and rN, numbered in order of first appearance."""
    log = example_log("user_score")
    correlations = list(dict.fromkeys(r.correlation_id for r in log if r.correlation_id))
    assert correlations == ["c1", "c2"]
    call_ids = list(dict.fromkeys(r.call_id for r in log if r.call_id))
    assert call_ids == [
        "standalone_rpc_proxy.call.1",
        "user_service.calculate_user_score.1",
        "calculator.multiply.1",
    ]
    nested = next(r for r in log if r.kind == "publish" and r.service == "calculator")
    assert nested.message is not None
    assert nested.message.call_id_stack == [
        "standalone_rpc_proxy.call.1",
        "user_service.calculate_user_score.1",
    ]
    assert nested.message.reply_to == "r2"


def test_no_uuid_is_left_in_a_canonical_log():
    """Every UUID, in fields, headers, bodies and details, is renamed."""
    text = example_log("orders").to_jsonl()
    assert UUID.search(text) is None
    raw = EventLog.from_cluster(run_example("orders")).to_jsonl()
    assert UUID.search(raw) is not None


def test_canonical_logs_do_not_depend_on_the_seed():
    """When only the ids drawn from the RNG change, the canonical views stay the same."""
    for name in ("orders", "user_score", "calculator"):
        seed_0 = EventLog.from_cluster(run_example(name, seed=0), canonical_ids=True)
        seed_9 = EventLog.from_cluster(run_example(name, seed=9), canonical_ids=True)
        raw_0 = EventLog.from_cluster(run_example(name, seed=0))
        raw_9 = EventLog.from_cluster(run_example(name, seed=9))
        assert raw_0.to_jsonl() != raw_9.to_jsonl()
        for format in ("text", "mermaid", "jsonl", "perfetto", "html"):
            assert render(seed_0, format) == render(seed_9, format), (name, format)


def test_the_namer_counts_per_call_prefix():
    """Call ids are numbered per service.method; other UUIDs get idN."""
    namer = IdNamer()
    a, b, c = (f"{n:08x}-0000-4000-8000-000000000000" for n in (1, 2, 3))
    assert namer.rewrite(f"calc.add.{a}") == "calc.add.1"
    assert namer.rewrite(f"calc.mul.{b}") == "calc.mul.1"
    assert namer.rewrite(f"see {c} and calc.add.{a}") == "see id1 and calc.add.1"
    assert namer.rewrite(c, "correlation") == "id1"  # named once, at first sight
    assert namer.rewrite_value({"k": [f"x.y.{b}"]}) == {"k": ["x.y.1"]}
