"""A broker outage mid-stream: Apache Kafka stopped for 20 s, then started again on its data.

The worker rides it out (README: Broker outages): its clients retry until the broker is
back, then it rejoins its group and carries on from the committed offsets. It must not
exit, must not flood its log while the broker is away, and once the group has committed
the whole input the outputs must equal the replay's: nothing lost, repeats only as
exact copies (at-least-once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from expected import PARTITIONS, assert_same_outputs, oracle, simulate
from kafkaread import group_lag, read_outputs, wait_caught_up

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

pytestmark = pytest.mark.kafka_only

TOUCHPOINTS = 20_000
OUTAGE_S = 20.0
PROGRESS_TIMEOUT_S = 120.0
CAUGHT_UP_TIMEOUT_S = 300.0
LOG_LINES_PER_OUTAGE_SECOND = 200  # all the worker's clients together, retrying every retry_backoff_ms


def test_a_broker_outage_mid_stream_is_ridden_out_and_loses_nothing(
    own_kafka: Callable[..., Any],
    topic_names: Callable[[int], Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    broker = own_kafka()
    names = topic_names(PARTITIONS)
    env = broker.env(names, idle_after="1d", store="rocksdb", web_port=free_port())
    settings = Settings.from_env(env)
    kafkaio.create_topics(settings)
    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=19)
    expected = oracle(lines, PARTITIONS)
    kafkaio.produce_lines(settings, names.touchpoints, lines)

    proc = worker(env)
    proc.wait_ready()
    deadline = time.monotonic() + PROGRESS_TIMEOUT_S
    while (lag := group_lag(settings, names.touchpoints)) is None or lag > TOUCHPOINTS * 5 // 6:
        assert time.monotonic() < deadline, f"the worker committed too little within {PROGRESS_TIMEOUT_S} s: {lag}"
        time.sleep(0.2)

    lines_before = len(proc.log_text().splitlines())
    broker.local.stop()  # SIGTERM by PID: the broker is gone
    time.sleep(OUTAGE_S)
    assert proc.process.poll() is None, f"the worker exited during the outage:\n{proc.log_text()[-3000:]}"
    outage_lines = len(proc.log_text().splitlines()) - lines_before
    broker.local.start()  # the same data directory and address
    took = wait_caught_up(settings, CAUGHT_UP_TIMEOUT_S)

    got = read_outputs(settings, committed_only=False)
    repeats = assert_same_outputs(got, expected)
    print(
        f"broker down {OUTAGE_S:g} s after {TOUCHPOINTS - lag} committed touchpoints; worker log +{outage_lines} "
        f"lines meanwhile; whole input committed {took:.0f} s after the broker was back; "
        f"{len(expected)} outputs, {repeats} repeats"
    )
    assert outage_lines <= OUTAGE_S * LOG_LINES_PER_OUTAGE_SECOND
    assert proc.stop() == 0
    assert "Traceback" not in proc.log_text()
