"""The benchmark's pieces that need no broker: py-spy stacks grouped into parts, and the ratio rows.

The harness itself runs end to end in tests/smoke/test_bench_harness.py; these check what
it computes from what it measured, with stacks and drains made up for the purpose.
"""

from __future__ import annotations

import pytest

from bench import spy
from bench.cases import Results, scale_rows, worker_ratios
from bench.scaleout import ScaleRun, settled
from bench.throughput import Drain

SITE = "/venv/lib/python3.11/site-packages"
REPO = "/work/repo"


def frame(func: str, path: str, line: int = 1) -> str:
    return f"{func} ({path}:{line})"


LOOP = [
    frame("<module>", f"{REPO}/processor/__main__.py"),
    frame("main", f"{REPO}/processor/cli/worker.py"),
    frame("run_forever", "/usr/lib/python3.11/asyncio/base_events.py"),
    frame("_run_once", "/usr/lib/python3.11/asyncio/base_events.py"),
    frame("_run", "/usr/lib/python3.11/asyncio/events.py"),
]
AGENT = [
    *LOOP,
    frame("_execute_actor", f"{SITE}/faust/agents/agent.py"),
    frame("process", f"{REPO}/processor/worker/agent.py"),
]


def line(stack: list[str], count: int) -> str:
    return ";".join(stack) + f" {count}"


RAW = [
    # the core, under the agent under Faust's actor: the leaf's part wins
    line(
        [
            *AGENT,
            frame("_apply", f"{REPO}/processor/worker/agent.py"),
            frame("apply", f"{REPO}/processor/funnel/engine.py"),
            frame("advance", f"{REPO}/processor/funnel/journey.py"),
        ],
        30,
    ),
    # Faust's stream iteration calling nothing of the worker's
    line(
        [*AGENT, frame("__aiter__", f"{SITE}/faust/streams.py"), frame("get", "/usr/lib/python3.11/asyncio/queues.py")],
        20,
    ),
    # decode: the touchpoint module, and timefmt's parser; format_time is the core's
    line(
        [
            *AGENT,
            frame("_apply", f"{REPO}/processor/worker/agent.py"),
            frame("decode", f"{REPO}/processor/funnel/touchpoint.py"),
        ],
        6,
    ),
    line(
        [
            *AGENT,
            frame("from_dict", f"{REPO}/processor/funnel/touchpoint.py"),
            frame("parse_time_text", f"{REPO}/processor/funnel/timefmt.py"),
        ],
        4,
    ),
    # murmur2 through default_partition: counted where it was called from (the agent's key check here)
    line(
        [
            *AGENT,
            frame("_apply", f"{REPO}/processor/worker/agent.py"),
            frame("default_partition", f"{REPO}/processor/worker/outbox.py"),
            frame("murmur2", f"{SITE}/aiokafka/partitioner.py"),
        ],
        5,
    ),
    # ... and from the outbox when it places an output
    line(
        [
            *AGENT,
            frame("put", f"{REPO}/processor/worker/outbox.py"),
            frame("default_partition", f"{REPO}/processor/worker/outbox.py"),
            frame("murmur2", f"{SITE}/aiokafka/partitioner.py"),
        ],
        7,
    ),
    # commits: a function-name rule inside a module that also delivers
    line(
        [
            *LOOP,
            frame("_commit_offsets", f"{SITE}/faust/transport/consumer.py"),
            frame("commit", f"{SITE}/faust/transport/drivers/aiokafka.py"),
        ],
        3,
    ),
    line([*LOOP, frame("_drain_messages", f"{SITE}/faust/transport/consumer.py")], 9),
    line(
        [
            *LOOP,
            frame("commit", f"{REPO}/processor/worker/checkpoint.py"),
            frame("count", f"{REPO}/processor/worker/metrics.py"),
            frame("inc", f"{SITE}/prometheus_client/metrics.py"),
        ],
        2,
    ),
    line(
        [
            *LOOP,
            frame("commit", f"{REPO}/processor/worker/checkpoint.py"),
            frame("write", f"{REPO}/processor/worker/state/store.py"),
        ],
        4,
    ),
    line([*LOOP, frame("commit", f"{REPO}/processor/worker/checkpoint.py")], 1),
    line([*LOOP, frame("_read", f"{SITE}/aiokafka/conn.py")], 3),
    # nothing but the loop and start-up
    line(LOOP, 6),
]


def test_stacks_are_parsed_root_first_with_their_counts() -> None:
    stacks = spy.parse_raw(RAW)
    assert len(stacks) == len(RAW)
    first, count = stacks[0]
    assert count == 30
    assert first[0] == spy.Frame("<module>", f"{REPO}/processor/__main__.py", 1)
    assert first[-1].func == "advance" and first[-1].path.endswith("processor/funnel/journey.py")


def test_a_frame_whose_function_has_spaces_or_parentheses_keeps_them() -> None:
    assert spy.parse_frame("<lambda> (x.py:3)") == spy.Frame("<lambda>", "x.py", 3)
    assert spy.parse_frame("f (y) (/a b/c.py:12)") == spy.Frame("f (y)", "/a b/c.py", 12)
    assert spy.parse_frame("thread (0x7F)") == spy.Frame("thread (0x7F)", "", 0)


def test_a_line_that_is_not_a_stack_is_refused() -> None:
    with pytest.raises(ValueError, match="not a py-spy raw line"):
        spy.parse_raw(["just some text"])
    with pytest.raises(ValueError, match="not a py-spy raw line"):
        spy.parse_raw(["12"])


def test_samples_with_no_python_frame_count_as_other() -> None:
    stacks = spy.parse_raw([" 27", RAW[0]])
    assert stacks[0] == ((), 27)
    shares = {s.part: s.samples for s in spy.summarize(stacks, cpu_us=None)}
    assert shares[spy.OTHER] == 27 and shares[spy.CORE] == 30


def test_each_sample_goes_to_the_part_of_the_first_claimed_frame_from_the_leaf() -> None:
    shares = {s.part: s for s in spy.summarize(spy.parse_raw(RAW), cpu_us=200.0)}
    samples = {part: s.samples for part, s in shares.items() if s.samples}
    assert samples == {
        spy.CORE: 30,
        spy.DELIVERY: 20 + 9,
        spy.DECODE: 6 + 4,
        spy.GLUE: 5,
        spy.OUTPUTS: 7,
        spy.ACKS: 3 + 1,
        spy.METRICS: 2,
        spy.STATE: 4,
        spy.KAFKA_IO: 3,
        spy.OTHER: 6,
    }
    total = sum(samples.values())
    assert [s.part for s in shares.values()] == [*spy.PARTS, spy.WAITING]
    assert shares[spy.CORE].us_per_touchpoint == pytest.approx(200.0 * 30 / total)
    assert sum(s.us_per_touchpoint or 0 for s in shares.values()) == pytest.approx(200.0)


THREAD = [
    frame("_bootstrap", "/usr/lib/python3.11/threading.py"),
    frame("run", f"{SITE}/mode/threads.py"),
    frame("run_forever", "/usr/lib/python3.11/asyncio/base_events.py"),
    frame("_run_once", "/usr/lib/python3.11/asyncio/base_events.py"),
]


def test_waiting_in_epoll_is_left_out_and_faust_s_consumer_thread_is_delivery() -> None:
    waiting = line([*THREAD, frame("select", "/usr/lib/python3.11/selectors.py")], 50)
    main_waiting = line([*LOOP[:4], frame("select", "/usr/lib/python3.11/selectors.py")], 10)
    thread_loop = line(THREAD, 4)
    shares = spy.summarize(spy.parse_raw([waiting, main_waiting, thread_loop, RAW[0]]), cpu_us=100.0)
    by_part = {s.part: s for s in shares}
    assert by_part[spy.WAITING].samples == 60 and by_part[spy.WAITING].us_per_touchpoint is None
    assert by_part[spy.DELIVERY].samples == 4 and by_part[spy.CORE].samples == 30
    assert by_part[spy.CORE].share == pytest.approx(30 / 34)  # waiting samples are not in the shares
    text = spy.render(shares)
    assert "60 samples waiting in epoll" in text and text.splitlines()[-2].split()[-1] == "100.0"


def test_a_core_helper_called_by_the_metrics_counts_as_metrics() -> None:
    stack = [
        *LOOP,
        frame("count", f"{REPO}/processor/worker/breakdownmetrics.py"),
        frame("last_touch_type", f"{REPO}/processor/funnel/outputs.py"),
    ]
    assert spy.part_of([spy.parse_frame(f) for f in stack]) == spy.METRICS


def test_without_a_cpu_figure_only_shares_are_given_and_no_samples_is_an_error() -> None:
    shares = spy.summarize(spy.parse_raw(RAW[:1]), cpu_us=None)
    assert [(s.part, s.share, s.us_per_touchpoint) for s in shares if s.samples] == [(spy.CORE, 1.0, None)]
    with pytest.raises(ValueError, match="no samples"):
        spy.summarize([], cpu_us=100.0)


def test_the_summary_prints_every_part_and_the_total() -> None:
    text = spy.render(spy.summarize(spy.parse_raw(RAW), cpu_us=200.0), "header line")
    lines = text.splitlines()
    assert lines[0] == "header line"
    for part in spy.PARTS:
        assert any(row.startswith(part) for row in lines), part
    assert lines[-2].split()[-1] == "200.0"


def drain(touchpoints: int, span_s: float, cpu_s: float | None) -> Drain:
    return Drain(touchpoints, touchpoints * 2, span_s, 1.0, cpu_s)


def test_the_worker_ratios_divide_the_right_way_round() -> None:
    res = Results(ceiling=40_000.0, faust=2_000.0, faust_cpu_us=400.0)
    rows = {r.case: r for r in worker_ratios(drain(30_000, 6.0, 6.0), res)}  # 5,000/s, 200 µs per touchpoint
    assert rows["3u"].figure == pytest.approx(200.0) and "400" in rows["3u"].note
    assert rows["3a"].figure == pytest.approx(5_000 / 40_000)
    assert rows["3b"].figure == pytest.approx(5_000 / 2_000)
    assert rows["3c"].figure == pytest.approx(200 / 400)  # the worker's CPU over Faust's
    assert rows["3c"].verdict() == "MISSED: 1.5x over"  # the target: at most a third of Faust's
    assert rows["3b"].verdict() == "MISSED: 1.2x short"
    cheap = {r.case: r for r in worker_ratios(drain(30_000, 6.0, 3.0), res)}
    assert cheap["3c"].verdict() == "met"
    near = {r.case: r for r in worker_ratios(drain(30_000, 6.0, 4.2), res)}  # 140 µs: 0.35x Faust's
    assert near["3c"].verdict() == "MISSED: 1.05x over"


def test_a_missing_baseline_or_cpu_figure_fails_only_its_rows() -> None:
    rows = {r.case: r for r in worker_ratios(drain(30_000, 6.0, None), Results(ceiling=40_000.0))}
    assert rows["3a"].figure == pytest.approx(0.125)
    for case in ("3u", "3b", "3c"):
        assert rows[case].figure is None and rows[case].verdict() == "FAILED", case


def test_scale_out_rows_give_both_rates_and_two_over_one() -> None:
    one = ScaleRun(1, drain(30_000, 10.0, 6.0), [[0, 1, 2, 3]])
    two = ScaleRun(2, drain(30_000, 6.0, 7.2), [[0, 1], [2, 3]])
    rows = {r.case: r for r in scale_rows(one, two)}
    assert rows["8a"].figure == pytest.approx(3_000.0)
    assert rows["8b"].figure == pytest.approx(5_000.0) and "[0, 1] and [2, 3]" in rows["8b"].note
    assert rows["8c"].figure == pytest.approx(5_000 / 3_000)
    assert "1.20x one process's" in rows["8c"].note  # CPU per touchpoint: 240 µs against 200


def test_a_group_is_settled_when_each_worker_owns_some_and_all_are_owned_once() -> None:
    assert settled([[0, 1], [2, 3]], 4)
    assert settled([[0, 1, 2, 3]], 4)
    assert not settled([[0, 1, 2, 3], []], 4)  # the second has not joined yet
    assert not settled([[0, 1], [1, 2, 3]], 4)  # mid-rebalance: one partition twice
    assert not settled([[0, 1], [2]], 4)
