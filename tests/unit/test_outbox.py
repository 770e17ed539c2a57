"""The worker's outbox, batched table writes and batch bookkeeping, against stand-ins for Kafka and Faust."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import FakeProducer, outbox_over
from faust.streams import current_event

from processor.worker.batch import Batch, acting_for
from processor.worker.outbox import default_partition
from processor.worker.state.tablewrites import BatchedTable


def test_records_go_where_the_default_partitioner_puts_their_key() -> None:
    producer = FakeProducer({"out": 4, "wide": 7, "dead": 3})
    outbox = outbox_over(producer)
    keys = [b"c-%d" % i for i in range(40)]

    async def run() -> None:
        for key in keys:
            await outbox.put("out", key, b"{}", placed=default_partition(key, 4))
            await outbox.put("wide", key, b"{}", placed=default_partition(key, 4))  # 7 partitions: murmur2 again
            await outbox.put("dead", key, b"{}")
        await outbox.delivered()

    asyncio.run(run())
    for topic, count in (("out", 4), ("wide", 7), ("dead", 3)):
        per_partition = {p: n for t, p, n in producer.sent if t == topic}
        expected: dict[int, int] = defaultdict(int)
        for key in keys:
            expected[default_partition(key, count)] += 1
        assert per_partition == expected, topic


def test_full_batches_are_sent_and_every_record_is_delivered_once() -> None:
    producer = FakeProducer({"out": 1}, batch_bytes=1024)
    outbox = outbox_over(producer, source_partitions=1)
    value = b"x" * 200  # about four records fill a 1 KiB batch

    async def run() -> dict[tuple[str, int], int]:
        for i in range(50):
            await outbox.put("out", b"k%d" % i, value, placed=0)
        assert len(producer.sent) > 5  # filled batches left without waiting for delivered()
        for i in range(30):
            outbox.append("log", 2, b"k%d" % i, value)
        return await outbox.delivered()

    last = asyncio.run(run())
    assert sum(n for t, _, n in producer.sent if t == "out") == 50
    assert sum(n for t, _, n in producer.sent if t == "log") == 30
    assert last == {("out", 0): 49, ("log", 2): 29}  # the last offset written, over several batches
    assert asyncio.run(outbox.delivered()) == {}  # nothing left over


def test_an_unacknowledged_batch_raises() -> None:
    outbox = outbox_over(FakeProducer({"out": 2}, fail=True))

    async def run() -> None:
        await outbox.put("out", b"c", b"{}")
        await outbox.delivered()

    with pytest.raises(RuntimeError, match="not leader"):
        asyncio.run(run())


def test_a_record_larger_than_a_batch_goes_alone_in_one() -> None:
    producer = FakeProducer({"out": 1}, batch_bytes=512)
    outbox = outbox_over(producer, source_partitions=1)

    async def run() -> dict[tuple[str, int], int]:
        await outbox.put("out", b"a", b"small")
        await outbox.put("out", b"b", b"x" * 600)
        await outbox.put("out", b"c", b"small")
        return await outbox.delivered()

    assert asyncio.run(run()) == {("out", 0): 2}
    assert [n for _, _, n in producer.sent] == [1, 1, 1]


class FakeStore(dict[bytes, bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[Any, int] = {}

    def set_persisted_offset(self, tp: Any, offset: int) -> None:
        self.persisted[tp] = offset


class FakeTable:
    def __init__(self) -> None:
        self.data = FakeStore()
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-journeys-changelog")

    def keys(self) -> Any:
        return self.data.keys()

    def __len__(self) -> int:
        return len(self.data)


class Appended:
    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes, bytes]] = []

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        self.records.append((topic, partition, key, value))


def test_batched_table_writes_the_store_and_the_changelog_of_its_partition() -> None:
    table, appended = FakeTable(), Appended()
    mine = BatchedTable(table, 3, appended)
    mine[b"acme"] = b"state-1"
    mine[b"acme"] = b"state-2"
    assert mine[b"acme"] == b"state-2" and table.data == {b"acme": b"state-2"}
    assert appended.records == [
        ("app-journeys-changelog", 3, b"acme", b"state-1"),
        ("app-journeys-changelog", 3, b"acme", b"state-2"),
    ]
    assert list(mine) == [b"acme"] and len(mine) == 1
    with pytest.raises(KeyError):
        mine[b"nobody"]
    assert mine.get(b"nobody") is None
    mine.persisted({("app-journeys-changelog", 3): 41, ("app-journeys-changelog", 2): 7, ("other", 3): 9})
    assert [(tp.topic, tp.partition, offset) for tp, offset in table.data.persisted.items()] == [
        ("app-journeys-changelog", 3, 41)
    ]
    with pytest.raises(TypeError):
        del mine[b"acme"]


class Event:  # Faust refers to its current event weakly
    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def test_acting_for_makes_an_event_current_only_within_the_block() -> None:
    event: Any = Event(2)  # stands in for a faust event
    assert current_event() is None
    with acting_for(event):
        assert current_event() is event
    assert current_event() is None


def test_a_batch_keeps_records_in_order_and_the_last_event_of_each_partition() -> None:
    batch = Batch()
    assert len(batch) == 0 and batch.age() == 0.0
    events = [SimpleNamespace(n=i) for i in range(5)]
    for event, partition in zip(events, [0, 1, 0, 2, 1], strict=True):
        batch.add(event, partition)
    assert batch.records == events and batch.last_of == {0: events[2], 1: events[4], 2: events[3]}
    assert batch.age() >= 0.0
    batch.clear()
    assert len(batch) == 0 and batch.last_of == {} and batch.counted == []
