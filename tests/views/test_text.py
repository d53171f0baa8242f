"""The text view: an aligned timeline."""

from __future__ import annotations

from shimeji.views.text import render_text, short_id
from tests.views.scenarios import example_log


def test_columns_are_aligned():
    """Every line starts each column at the same offset as the header."""
    lines = render_text(example_log("orders")).splitlines()
    header = lines[0]
    starts = [header.index(name) for name in ("replica", "event", "target", "call", "corr")]
    for line in lines[1:]:
        for start in starts:
            assert line[start - 2 : start] == "  ", line
            assert line[start] != " ", line
    assert header.split() == ["time", "replica", "event", "target", "call", "corr", "detail"]


def test_details_show_arguments_senders_and_results():
    """Publishes show their arguments, deliveries their sender, replies their result."""
    text = render_text(example_log("calculator"))
    publish = "publish        calculator.divide    standalone_rpc_proxy.call.4  c4    divide(1, 0)"
    assert publish in text
    assert "from client" in text
    assert "reply from calculator-1: ValueError: Division by zero" in text
    assert (
        "worker_end     calculator.divide    calculator.divide.2          c4    "
        "ValueError: Division by zero" in text
    )


def test_short_ids_abbreviate_uuids_only():
    """Raw ids are cut to 8 hex digits; canonical ones are short already."""
    assert short_id("calc.add.1a2b3c4d-0000-4000-8000-000000000000") == "calc.add.1a2b3c4d"
    assert short_id("c12") == "c12"
    assert short_id(None) == "-"


def test_fit_json_keeps_a_value_on_one_line_when_it_fits():
    """Small values stay on one line; a long one breaks item by item, its nested
    values fitted the same way, indented by two."""
    from shimeji.views.text import fit_json

    assert fit_json({"a": [1, 2]}, width=40) == ['{"a": [1, 2]}']
    value = {"status": "success", "payment": {"charged": 42.5, "currency": "EUR"}, "n": [1, 2]}
    assert fit_json(value, width=50) == [
        "{",
        '  "status": "success",',
        '  "payment": {"charged": 42.5, "currency": "EUR"},',
        '  "n": [1, 2]',
        "}",
    ]
    assert fit_json(["x" * 30, ["y" * 30]], width=30, column=4, indent=4) == [
        "[",
        '      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",',
        "      [",
        '        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyy"',
        "      ]",
        "    ]",
    ]


def test_the_summary_ends_with_what_each_client_call_came_to():
    """A result in full, an error as raised, a timeout as such: each client call once."""
    from shimeji.views import EventLog
    from tests.views.scenarios import timeout_cluster

    text = render_text(
        EventLog.from_cluster(timeout_cluster(), canonical_ids=True), width=100, results=True
    )
    results = text.split("Calls made by clients, and what each returned, in full:\n")[1]
    assert results == (
        "c1  slow.wait(3)\n    timeout: no reply within 1s\nc2  slow.wait(0)\n    -> 0\n"
    )
    errors = render_text(example_log("calculator"), width=100, results=True)
    assert "c4  calculator.divide(1, 0)\n    raised ValueError: Division by zero\n" in errors


def test_folding_leaves_out_routine_kinds_only_and_counts_them():
    """fold drops the kinds KINDS marks routine, and says how many it dropped."""
    from shimeji.core.events import KINDS

    log = example_log("calculator")
    routine = [record for record in log if KINDS[record.kind].routine]
    folded = render_text(log, fold=True).splitlines()
    assert len(folded) == 1 + len(log) - len(routine) + 1
    assert folded[-1].startswith(f"{len(routine)} routine events not shown: ")


def test_each_reply_of_a_request_run_twice_names_its_own_replier():
    """A duplicated request is answered by two replicas: each delivered reply says
    which one sent it (in the order they replied), not the last one twice."""
    from shimeji.rpc import rpc as rpc_decorator
    from shimeji.sim import SimCluster as Cluster
    from shimeji.sim.faults import Duplicate

    class Answer:
        name = "answer"

        @rpc_decorator
        def get(self):
            return 1

    with Cluster(faults=[Duplicate()]) as cluster:
        cluster.add_service(Answer, replicas=2)
        cluster.rpc.answer.get()
        cluster.advance(1)
    lines = [line for line in str(cluster.trace).splitlines() if "reply from" in line]
    assert [line.split("reply from ")[1] for line in lines] == ["answer-1: 1", "answer-2: 1"]
