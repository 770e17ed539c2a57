"""Fetching a range of offsets, which the worker uses for records Faust left out.

The fetch is processor/worker/patches/skippedrecords.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from processor.kafka import clients as kafkaio
from processor.kafka.connect import aiokafka_connection
from processor.worker.patches.skippedrecords import consumer_config, fetch_range, start_offset


def test_fetch_range_returns_exactly_the_asked_offsets(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(1)
    settings = broker.settings(names)
    records = [(b"c%d" % i, b'{"n": %d}' % i) for i in range(10)]
    kafkaio.produce_records(settings, names.touchpoints, records)
    got = asyncio.run(fetch_range(consumer_config(aiokafka_connection(settings)), names.touchpoints, 0, 3, 7))
    assert [(r.offset, r.key, r.value) for r in got] == [(i, *records[i]) for i in range(3, 7)]
    assert asyncio.run(fetch_range(consumer_config(aiokafka_connection(settings)), names.touchpoints, 0, 10, 10)) == []


def test_start_offset_is_the_committed_offset_else_the_first(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(1)
    settings = broker.settings(names)
    kafkaio.produce_records(settings, names.touchpoints, [(b"c%d" % i, b"{}") for i in range(8)])
    config = consumer_config(aiokafka_connection(settings))

    async def commit(offset: int) -> None:
        tp = TopicPartition(names.touchpoints, 0)
        consumer = AIOKafkaConsumer(**config, group_id=names.app_id)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.commit({tp: offset})
        finally:
            await consumer.stop()

    assert asyncio.run(start_offset(config, names.app_id, names.touchpoints, 0)) == 0  # nothing committed
    asyncio.run(commit(5))
    assert asyncio.run(start_offset(config, names.app_id, names.touchpoints, 0)) == 5
