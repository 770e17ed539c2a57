"""`funnel-processor worker` refuses to start on a configuration that cannot work.

Each case runs the worker in a subprocess configured only by its environment and
expects a quick exit with one message that names the problem and what to do, never a
Python traceback (README: Configuration, "ends the worker with one message").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workers import EXIT_WITHIN_S, assert_one_clear_message, run_expecting_exit

from processor.kafka import clients as kafkaio


def test_an_unreachable_broker_ends_the_worker_naming_it(broker: Any, free_port: Callable[[], int]) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    refusal = run_expecting_exit(broker.env(broker_url=f"kafka://{address}"))
    assert refusal.code != 0
    assert refusal.seconds < EXIT_WITHIN_S
    assert_one_clear_message(refusal, address, "FUNNEL_BROKER_URL")
    assert "\n" not in refusal.message, f"more than one line:\n{refusal.message}"


def test_a_value_that_is_not_a_number_is_refused_naming_the_variable(broker: Any, topics: Callable[..., Any]) -> None:
    refusal = run_expecting_exit(broker.env(topics(4, create=False), partitions="eight"))
    assert refusal.code == 2
    assert_one_clear_message(refusal, "FUNNEL_PARTITIONS", "eight")


def test_missing_topics_are_refused_saying_what_to_run(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(4, create=False)
    refusal = run_expecting_exit(broker.env(names))
    assert refusal.code == 2
    assert_one_clear_message(refusal, "funnel-processor topics create", names.touchpoints)
    settings = broker.settings(names)
    left = kafkaio.partition_counts(settings, kafkaio.all_topics(settings))
    assert set(left.values()) == {None}, f"the refused worker created topics: {left}"


def test_a_partition_count_mismatch_is_refused_explaining_it(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(2)
    refusal = run_expecting_exit(broker.env(names, partitions=4))
    assert refusal.code == 2
    explained = (names.touchpoints, "2 partitions", "FUNNEL_PARTITIONS is 4", "FUNNEL_PARTITIONS=2")
    assert_one_clear_message(refusal, *explained)
    settings = broker.settings(names)
    assert kafkaio.partition_counts(settings, [names.touchpoints]) == {names.touchpoints: 2}


def test_a_misspelt_variable_is_refused_with_a_suggestion(broker: Any, topics: Callable[..., Any]) -> None:
    env = broker.env(topics(4))
    env["FUNNEL_PARTITONS"] = env.pop("FUNNEL_PARTITIONS")
    refusal = run_expecting_exit(env)
    assert refusal.code == 2
    assert_one_clear_message(refusal, "FUNNEL_PARTITONS", "did you mean FUNNEL_PARTITIONS?")
