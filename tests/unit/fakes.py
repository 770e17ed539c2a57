"""Stand-ins for what the worker's outbox talks to, for unit tests without a broker."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable
from types import SimpleNamespace
from typing import Any

from aiokafka.producer.message_accumulator import BatchBuilder

from processor.worker.outbox import KafkaOutbox


class FakeProducer:
    """What KafkaOutbox uses of AIOKafkaProducer: real record batches, offsets handed out per partition."""

    def __init__(self, partitions: dict[str, int], batch_bytes: int = 4096, fail: bool = False) -> None:
        self.partitions, self.batch_bytes, self.fail = partitions, batch_bytes, fail
        self.sent: list[tuple[str, int, int]] = []  # (topic, partition, records) in the order sent
        self.next_offset: dict[tuple[str, int], int] = defaultdict(int)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions[topic]))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_bytes, 0)  # 0: no compression

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Awaitable[Any]:
        records = batch.record_count()
        offset = self.next_offset[(topic, partition)]
        self.next_offset[(topic, partition)] += records
        self.sent.append((topic, partition, records))
        acknowledgement = asyncio.get_running_loop().create_future()
        if self.fail:
            acknowledgement.set_exception(RuntimeError("not leader for partition"))
        else:
            acknowledgement.set_result(SimpleNamespace(offset=offset))
        return acknowledgement


def outbox_over(producer: FakeProducer, source_partitions: int = 4) -> KafkaOutbox:
    outbox = KafkaOutbox({"bootstrap_servers": ["127.0.0.1:1"]}, source_partitions)
    outbox.producer = producer  # started: what start() would have made
    return outbox
